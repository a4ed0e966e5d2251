// A network between a client and the relay that a test can break: it wraps
// the real WebSocket (real sockets to a real relay) and can cut the
// connection abruptly, refuse new ones as if offline, lose chosen frames
// from the relay, or reshape them into what another deployment's relay
// sends. It records every URL dialled and every frame sent.

import { Emitter } from '../../src/emitter.js';

export class Network extends Emitter {
  offline = false;
  /** Frames (parsed) from the relay for which this returns true are lost. */
  lose = () => false;
  /** Frames (parsed) from the relay pass through this; what it returns reaches the client. */
  rewrite = (frame) => frame;
  urls = [];
  sent = [];
  received = [];
  sockets = [];

  get WebSocket() {
    const network = this;
    return class FaultyWebSocket {
      onopen = null;
      onmessage = null;
      onclose = null;
      onerror = null;

      constructor(url, protocols) {
        network.urls.push(url);
        this.protocols = protocols;
        network.sockets.push(this);
        if (network.offline) {
          this.readyState = 0;
          // As a browser reports an unreachable host: error, then close 1006.
          setTimeout(() => this.#closed(1006, ''), 0);
          return;
        }
        this.inner = new WebSocket(url, protocols);
        this.inner.onopen = () => this.onopen?.({});
        this.inner.onmessage = (event) => {
          const frame = JSON.parse(event.data);
          network.received.push(frame);
          if (network.lose(frame, this)) return;
          const shown = network.rewrite(frame, this);
          this.onmessage?.({ data: shown === frame ? event.data : JSON.stringify(shown) });
          network.emit('frame', shown);
        };
        this.inner.onclose = (event) => this.#closed(event.code, event.reason);
        this.inner.onerror = () => this.onerror?.({});
      }

      get readyState() {
        return this.inner ? this.inner.readyState : this.state;
      }

      set readyState(value) {
        this.state = value;
      }

      get protocol() {
        return this.inner?.protocol ?? '';
      }

      send(text) {
        network.sent.push(JSON.parse(text));
        this.inner.send(text);
      }

      close(code, reason) {
        this.inner?.close(code, reason);
      }

      /** The network path dies: the client sees close 1006 at once, without a close handshake. */
      cut() {
        if (this.inner) {
          this.inner.onclose = this.inner.onmessage = null;
          this.inner.close();
        }
        this.#closed(1006, '');
      }

      #closed(code, reason) {
        if (this.done) return;
        this.done = true;
        this.state = 3;
        this.onclose?.({ code, reason });
        network.emit('close', { code, reason });
      }
    };
  }

  /** The socket dialled last. */
  get current() {
    return this.sockets.at(-1);
  }
}
