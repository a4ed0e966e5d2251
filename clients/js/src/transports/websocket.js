// The WebSocket transport: one socket to the relay's /ws. Like the SSE
// transport (sse.js) it shows the client only what client.js needs:
//
//   transport.onopen()               the relay accepted the connection
//   transport.onmessage(text)        one frame from the relay
//   transport.onclose(code, reason)  the connection ended; called once
//   transport.send(text)             one frame to the relay
//   transport.close(code, reason)    ends it without calling onclose
//   transport.isOpen                 frames can be sent now
//   transport.name                   'websocket' or 'sse'

export const SUBPROTOCOL = 'roomcast.v1';

const OPEN = 1;

export class WebSocketTransport {
  name = 'websocket';
  onopen = () => {};
  onmessage = () => {};
  onclose = () => {};
  #socket;
  #ended = false;

  /** Dials `url`; throws as the WebSocket constructor does (for example on a malformed URL). */
  constructor({ url, token, WebSocket }) {
    // Browsers cannot set headers on a WebSocket: the token travels as a
    // subprotocol, and the relay answers with roomcast.v1 alone.
    const protocols = token ? [SUBPROTOCOL, `bearer.${token}`] : [SUBPROTOCOL];
    const socket = new WebSocket(url, protocols);
    this.#socket = socket;
    socket.onopen = () => this.onopen();
    socket.onmessage = (event) => this.onmessage(event.data);
    socket.onclose = (event) => this.#end(event.code, event.reason);
    // Browsers follow an error with a close event, but not every
    // implementation does (Node 20's fails a refused connection with an
    // error alone), so the error ends the transport itself. Its close code
    // is 1006 either way.
    socket.onerror = () => {
      this.#end(1006, 'connection error');
      this.#shut();
    };
  }

  get isOpen() {
    return !this.#ended && this.#socket.readyState === OPEN;
  }

  send(text) {
    this.#socket.send(text);
  }

  close(code, reason) {
    this.#ended = true;
    this.#detach();
    this.#shut(code, reason);
  }

  #end(code, reason) {
    if (this.#ended) return;
    this.#ended = true;
    this.#detach();
    this.onclose(code, reason);
  }

  #shut(code, reason) {
    try {
      this.#socket.close(code, reason);
    } catch {
      // Not open yet, or already closing.
    }
  }

  #detach() {
    const socket = this.#socket;
    socket.onopen = socket.onmessage = socket.onclose = null;
    socket.onerror = () => {};
  }
}
