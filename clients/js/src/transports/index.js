// Opens a connection to the relay with either transport; both show
// client.js the interface described in websocket.js.

import { connectionUrl, sseUrls } from '../url.js';
import { SseTransport } from './sse.js';
import { WebSocketTransport } from './websocket.js';

export { TransportChoice, transportMode } from './choice.js';

/**
 * A new transport of `kind` ('websocket' or 'sse'), opening. Throws when it
 * cannot even start (a malformed URL).
 */
export function dial(kind, { address, token, user, cursors, sseUrl, maxFrameBytes, WebSocket, fetch }) {
  if (kind === 'websocket') {
    const url = connectionUrl(address, { user, cursors });
    return new WebSocketTransport({ url, token, WebSocket });
  }
  const { stream, post } = sseUrls(address, { user, cursors, sseUrl });
  return new SseTransport({ url: stream, post, token, fetch, maxBodyBytes: maxFrameBytes });
}
