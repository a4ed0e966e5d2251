// One room's history as this client holds it. Messages are keyed by seq: a
// frame with a seq already held is an edit or a deletion, or a duplicate to
// drop. The relay sends each room in seq order with no gap; should a hole
// ever show (a frame lost on the way), the messages after it are held back,
// so the application still sees seq order, until a re-join fills it.
// Older history comes in pages (older()), below everything held.

const NOTHING = Object.freeze({ emitted: [], gap: false });

/** Whether `incoming` is a later state of the message than `held`. */
function isNewer(incoming, held) {
  if (held.deleted) return false;
  if (incoming.deleted) return true;
  if (!incoming.edited_at) return false;
  if (!held.edited_at || incoming.edited_at > held.edited_at) return true;
  if (incoming.edited_at < held.edited_at) return false;
  // Two edits within one millisecond: the body tells them apart.
  return JSON.stringify(incoming.body) !== JSON.stringify(held.body);
}

export class RoomState {
  constructor(name, { maxMessages = 5000 } = {}) {
    this.name = name;
    this.maxMessages = maxMessages;
    /** seq → message, everything shown to the application. */
    this.messages = new Map();
    /** seq → message received past a hole, not shown yet. */
    this.ahead = new Map();
    /** Highest seq held with no hole below it (down to `floor`); null before the first join. */
    this.high = null;
    /** Messages at or below it were never asked for (or were pruned). */
    this.floor = null;
    /** Set by a capped replay: the next new message starts a fresh run. */
    this.restartAtFirst = false;
    /**
     * While a page of older messages is on its way: seq → the latest edit
     * or deletion of a seq below `floor` relayed meanwhile, which the page
     * may predate. Null otherwise.
     */
    this.olderUpdates = null;
  }

  /** The `since` of a re-join: everything above it is wanted. */
  get since() {
    return this.high;
  }

  /** The `before` of the next page of older messages: 1 when nothing older exists, undefined before the first join. */
  get olderBefore() {
    return this.floor === null ? undefined : this.floor + 1;
  }

  /**
   * Applies a `joined` frame that answered a join with `since` (undefined for
   * none). Returns `{historyLost, reset}` for the application.
   */
  joined(seq, recovered, since) {
    if (since === undefined) {
      if (this.high === null) this.high = this.floor = seq;
      return { historyLost: false, reset: false };
    }
    if (since > seq) {
      // We hold seqs the database does not: it was restored or replaced.
      // The database is the source of truth, so start again from it.
      this.messages.clear();
      this.ahead.clear();
      this.high = this.floor = seq;
      return { historyLost: true, reset: true };
    }
    if (this.high === null) this.high = this.floor = since;
    else if (since < this.floor) this.floor = since;
    // Capped replay: only the newest messages follow, and the first of them
    // marks where the known history starts again.
    this.restartAtFirst = !recovered;
    return { historyLost: !recovered, reset: false };
  }

  /**
   * Takes one `message` frame. Returns the messages to show now, in seq
   * order, each with the version it replaces, and whether a hole is open.
   */
  accept(message) {
    const { seq } = message;
    const shown = this.messages.get(seq);
    if (shown) {
      if (!isNewer(message, shown)) return NOTHING;
      this.messages.set(seq, message);
      return { emitted: [{ message, previous: shown }], gap: this.ahead.size > 0 };
    }
    const waiting = this.ahead.get(seq);
    if (waiting) {
      if (isNewer(message, waiting)) this.ahead.set(seq, message);
      return { emitted: [], gap: true };
    }
    if (this.high === null) return NOTHING;
    if (this.restartAtFirst && seq > this.high) {
      this.restartAtFirst = false;
      this.high = seq - 1;
      return { emitted: this.#drainAhead(true).concat(this.#advance(message)), gap: this.ahead.size > 0 };
    }
    if (seq <= this.high) {
      // Older history being filled in (a join with a lower since), unless it
      // is below anything asked for.
      if (seq <= this.floor) {
        const earlier = this.olderUpdates?.get(seq);
        if (this.olderUpdates && (!earlier || isNewer(message, earlier))) this.olderUpdates.set(seq, message);
        return NOTHING;
      }
      this.#store(message);
      return { emitted: [{ message, previous: undefined }], gap: this.ahead.size > 0 };
    }
    if (seq === this.high + 1) {
      return { emitted: this.#advance(message), gap: this.ahead.size > 0 };
    }
    this.ahead.set(seq, message);
    return { emitted: [], gap: true };
  }

  /**
   * Gives up on a hole a re-join could not fill: shows what was held back.
   * Returns the seqs lost and the messages now shown, or null if no hole.
   */
  skipHole() {
    if (this.ahead.size === 0) return null;
    const first = Math.min(...this.ahead.keys());
    const lost = { from: this.high + 1, to: first - 1 };
    this.high = first - 1;
    return { lost, emitted: this.#drainAhead(false) };
  }

  /** A page of older messages is on its way: keep the updates it may predate. */
  expectOlder() {
    this.olderUpdates ??= new Map();
  }

  /**
   * Merges a page of older messages (ascending, as the relay sends them)
   * that answered a request for those before `before`; `more: false` means
   * none exist below the page. The page is taken only when it reaches down
   * from what is held, so `floor` keeps meaning "everything above it was
   * asked for". Returns the page's messages as now held (a newer version
   * held wins), and the held messages it replaced, to emit as updates.
   */
  older(messages, { before, more }) {
    const updates = this.olderUpdates ?? new Map();
    this.olderUpdates = null;
    if (this.floor === null || before - 1 < this.floor) return { page: [], emitted: [] };
    const page = [];
    const emitted = [];
    for (const fetched of messages) {
      const { seq } = fetched;
      // Beyond what is held: the live stream brings it in order.
      if (seq > this.high) continue;
      const later = updates.get(seq);
      const message = later && isNewer(later, fetched) ? later : fetched;
      const held = this.messages.get(seq);
      if (!held) {
        this.messages.set(seq, message);
        page.push(message);
      } else if (isNewer(message, held)) {
        this.messages.set(seq, message);
        page.push(message);
        emitted.push({ message, previous: held });
      } else {
        page.push(held);
      }
    }
    const lowest = more ? (messages[0]?.seq ?? before) : 1;
    this.floor = Math.min(this.floor, lowest - 1);
    return { page, emitted };
  }

  /** The messages shown, in seq order. */
  list() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  #advance(message) {
    this.#store(message);
    this.high = message.seq;
    return [{ message, previous: undefined }, ...this.#drainAhead(false)];
  }

  /** Moves held-back messages that now follow `high` (and, if `belowToo`, any under it). */
  #drainAhead(belowToo) {
    const emitted = [];
    if (belowToo) {
      for (const seq of [...this.ahead.keys()].sort((a, b) => a - b)) {
        if (seq > this.high) break;
        const message = this.ahead.get(seq);
        this.ahead.delete(seq);
        this.#store(message);
        emitted.push({ message, previous: undefined });
      }
    }
    while (this.ahead.has(this.high + 1)) {
      const message = this.ahead.get(this.high + 1);
      this.ahead.delete(this.high + 1);
      this.#store(message);
      this.high += 1;
      emitted.push({ message, previous: undefined });
    }
    return emitted;
  }

  #store(message) {
    this.messages.set(message.seq, message);
    if (this.messages.size <= this.maxMessages) return;
    // Prune the oldest tenth at once, so sorting is rare.
    const keep = Math.floor(this.maxMessages * 0.9);
    const seqs = [...this.messages.keys()].sort((a, b) => a - b);
    for (const seq of seqs.slice(0, seqs.length - keep)) {
      this.messages.delete(seq);
      this.floor = Math.max(this.floor, seq);
    }
  }
}
