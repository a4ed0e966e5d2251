// A minimal event emitter, so the library runs unchanged in browsers and Node
// without depending on either platform's event API.

export class Emitter {
  #handlers = new Map();

  /** Adds a handler; returns a function that removes it. */
  on(event, handler) {
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event).add(handler);
    return () => this.off(event, handler);
  }

  off(event, handler) {
    this.#handlers.get(event)?.delete(handler);
  }

  /** Calls each handler once, on the first event only. */
  once(event, handler) {
    const off = this.on(event, (...args) => {
      off();
      handler(...args);
    });
    return off;
  }

  emit(event, ...args) {
    for (const handler of [...(this.#handlers.get(event) ?? [])]) {
      try {
        handler(...args);
      } catch (error) {
        // An application handler that throws must not break the connection's
        // bookkeeping; the error still surfaces as an uncaught exception.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
