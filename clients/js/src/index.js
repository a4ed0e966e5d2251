// roomcast-client: rooms and notifications from a roomcast relay, with
// reconnection that loses nothing. See docs/clients.md in the roomcast
// repository for the API and its guarantees.

import { RoomcastClient } from './client.js';

export { RoomcastClient, RoomcastError, SUBPROTOCOL } from './client.js';
export { backoffDelay, retryDelay, DEFAULT_BACKOFF } from './backoff.js';
export { TYPING_INTERVAL, TYPING_TIMEOUT } from './presence.js';
export { DEFAULT_FALLBACK } from './transports/choice.js';

/**
 * Connects to a relay's WebSocket endpoint (for example
 * `wss://chat.example.com/ws`), or its SSE endpoint next to it where
 * WebSocket does not get through, and keeps reconnecting until `close()`.
 */
export function connect(url, options = {}) {
  return new RoomcastClient(url, options);
}
