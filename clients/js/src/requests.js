// Requests that read what the relay's database holds and are answered by
// one frame each: a page of a room's history, the user's room list, a page
// of a route's notifications. They change nothing, so asking twice is
// harmless: they wait for an open connection, go again after a reconnect,
// and again after a refusal that may pass (rate_limited, db_unavailable).
// The relay answers a connection's frames in the order they came, so a
// reply belongs to the oldest request of its type and key that was sent.

import { retryDelay } from './backoff.js';
import { RoomcastError } from './errors.js';
import { isRetryable } from './outbox.js';

export class Requests {
  /** In the order they were asked. */
  #waiting = [];
  #closed = false;
  /** `{isOpen(), send(frame, {refused}), retry}` from the client. */
  #host;

  constructor(host) {
    this.#host = host;
  }

  /** Resolves with the reply frame, or rejects with the relay's refusal. `key` is the room or route the reply names. */
  ask(type, key, frame) {
    if (this.#closed) return Promise.reject(new RoomcastError('closed', 'the client was closed'));
    return new Promise((resolve, reject) => {
      const request = { type, key, frame, sent: false, attempts: 0, retryTimer: null, resolve, reject };
      this.#waiting.push(request);
      this.#send(request);
    });
  }

  /** A reply frame; false if no request was waiting for it. */
  answered(type, key, reply) {
    const index = this.#waiting.findIndex((request) => request.sent && request.type === type && request.key === key);
    if (index < 0) return false;
    const [request] = this.#waiting.splice(index, 1);
    request.resolve(reply);
    return true;
  }

  opened() {
    for (const request of this.#waiting) this.#send(request);
  }

  /** The connection ended: nothing is sent any more; everything goes again once it is open. */
  dropped() {
    for (const request of this.#waiting) request.sent = false;
  }

  close(error) {
    this.#closed = true;
    for (const request of this.#waiting.splice(0)) {
      clearTimeout(request.retryTimer);
      request.reject(error);
    }
  }

  #send(request) {
    if (request.sent || request.retryTimer || !this.#host.isOpen()) return;
    request.sent = true;
    this.#host.send(request.frame, { refused: (code, message) => this.#refused(request, code, message) });
  }

  #refused(request, code, message) {
    if (!this.#waiting.includes(request)) return;
    request.sent = false;
    if (isRetryable(code)) {
      request.attempts += 1;
      request.retryTimer = setTimeout(() => {
        request.retryTimer = null;
        this.#send(request);
      }, retryDelay(request.attempts - 1, this.#host.retry));
      return;
    }
    this.#waiting.splice(this.#waiting.indexOf(request), 1);
    const { room, route } = request.frame;
    const ref = room !== undefined ? { room } : route !== undefined ? { route } : undefined;
    request.reject(new RoomcastError(code, message, ref));
  }
}
