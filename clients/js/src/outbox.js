// Writes (send, edit, delete) waiting for their ack. Each keeps its
// client_id for life: a resend after a reconnect carries the same one, so the
// relay either writes it once or answers with the original ack, never twice.

/** Error codes after which the same frame may succeed later. */
const RETRYABLE = new Set(['rate_limited', 'pending', 'db_unavailable']);

export function isRetryable(code) {
  return RETRYABLE.has(code);
}

export class Outbox {
  /** client_id → write, in the order the application made them. */
  #writes = new Map();

  add(write) {
    this.#writes.set(write.clientId, write);
  }

  get(clientId) {
    return this.#writes.get(clientId);
  }

  /** Removes and returns the write, if it is still waiting. */
  take(clientId) {
    const write = this.#writes.get(clientId);
    if (!write) return undefined;
    clearTimeout(write.retryTimer);
    this.#writes.delete(clientId);
    return write;
  }

  /** The room's writes, oldest first. */
  forRoom(room) {
    return [...this.#writes.values()].filter((write) => write.room === room);
  }

  all() {
    return [...this.#writes.values()];
  }

  /** After a disconnect: nothing is in flight any more, everything will be resent. */
  requeueAll() {
    for (const write of this.#writes.values()) {
      if (write.state === 'in_flight') write.state = 'queued';
    }
  }
}
