// Which transport each connection uses. 'websocket' and 'sse' are fixed;
// 'auto' starts with a WebSocket and falls back to SSE (sse.js) on networks
// whose proxies break WebSocket upgrades: refuse them, strip the Upgrade
// header, cut the connection, or leave it hanging. Such a network and a
// relay that is down look the same from here (a WebSocket that does not
// open), and what tells them apart is whether SSE opens right then. So
// after `tries` WebSockets in a row that did not open, or `after` ms spent
// waiting for them to, whichever comes first, SSE is tried at once,
// without a backoff wait in between (in which a restarted relay could come
// back and make SSE look needed). If SSE opens, WebSocket is blocked here;
// if it does not, the relay is likely down, and WebSocket is tried again.

export const DEFAULT_FALLBACK = Object.freeze({
  /** WebSocket connections in a row that did not open before SSE is tried. */
  tries: 2,
  /** Milliseconds spent waiting for them to open before SSE is tried; a WebSocket still opening then is given up. */
  after: 5_000,
});

export const TRANSPORTS = ['auto', 'websocket', 'sse'];

export class TransportChoice {
  #mode;
  #fallback;
  #now;
  /** A WebSocket opened on this client once: after a drop, WebSocket is tried first again. */
  #websocketOpened = false;
  /** SSE opened and no WebSocket ever did: WebSocket is blocked here, so SSE it stays. */
  #sseOnly = false;
  #phase = 'websocket';
  /** WebSocket connections that did not open since the last connection that did. */
  #failures = 0;
  /** Milliseconds they spent trying, backoff waits left out. */
  #spent = 0;
  /** When the WebSocket being tried started. */
  #started = 0;

  /** `mode` is 'auto', 'websocket' or 'sse'. */
  constructor(mode, { fallback = DEFAULT_FALLBACK, now = Date.now } = {}) {
    this.#mode = mode;
    this.#fallback = { ...DEFAULT_FALLBACK, ...fallback };
    this.#now = now;
  }

  /** The transport of the next connection: 'websocket' or 'sse'. */
  next() {
    if (this.#mode !== 'auto') return this.#mode;
    if (this.#sseOnly) return 'sse';
    if (this.#phase === 'websocket') this.#started = this.#now();
    return this.#phase;
  }

  /**
   * How long a connection of `kind` may take to open. A WebSocket tried
   * by 'auto' gets no longer than what is left of the fallback time, so a
   * proxy that holds the upgrade forever does not hold the fallback back.
   */
  connectTimeout(kind, timeout) {
    if (this.#mode !== 'auto' || kind !== 'websocket') return timeout;
    return Math.max(1, Math.min(timeout, this.#fallback.after - this.#spent));
  }

  /** A connection of `kind` opened. */
  opened(kind) {
    this.#failures = 0;
    this.#spent = 0;
    this.#phase = 'websocket';
    if (kind === 'websocket') {
      this.#websocketOpened = true;
      this.#sseOnly = false;
    } else if (!this.#websocketOpened) {
      this.#sseOnly = this.#mode === 'auto';
    }
  }

  /**
   * A connection of `kind` ended, or could not start, before it opened.
   * True when the next connection should start at once: it is SSE, tried
   * right after the WebSocket that used up the bounds.
   */
  failed(kind) {
    if (this.#mode !== 'auto' || this.#sseOnly) return false;
    if (kind === 'websocket') {
      this.#failures += 1;
      this.#spent += this.#now() - this.#started;
      if (this.#failures < this.#fallback.tries && this.#spent < this.#fallback.after) return false;
      this.#phase = 'sse';
      return true;
    }
    // Neither opened: more likely the relay is unreachable than both
    // blocked. Start over with WebSocket, bounded the same way.
    this.#phase = 'websocket';
    this.#failures = 0;
    this.#spent = 0;
    return false;
  }
}

/**
 * The mode for an option and what the platform has: 'auto' without a
 * WebSocket is SSE, without fetch WebSocket. Throws when the mode asked for
 * cannot run here.
 */
export function transportMode(option = 'auto', { WebSocket, fetch }) {
  if (!TRANSPORTS.includes(option)) throw new TypeError(`transport must be one of ${TRANSPORTS.join(', ')}, not ${option}`);
  const missingWebSocket = 'no WebSocket implementation: pass options.WebSocket (for example from the "ws" package)';
  const missingFetch = 'no fetch implementation for SSE: pass options.fetch';
  if (option === 'websocket' && !WebSocket) throw new TypeError(missingWebSocket);
  if (option === 'sse' && !fetch) throw new TypeError(missingFetch);
  if (option !== 'auto') return option;
  if (!WebSocket && !fetch) throw new TypeError(`${missingWebSocket}, or ${missingFetch}`);
  if (!WebSocket) return 'sse';
  if (!fetch) return 'websocket';
  return 'auto';
}
