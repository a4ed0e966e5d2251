// One room's history as this client holds it. Messages are keyed by seq: a
// frame with a seq already held is an edit, a replace or a deletion, or a
// duplicate to drop.
//
// Holes. The live stream brings each room in seq order with no gap, so a
// hole in it means a frame was lost on the way: the messages after it are
// held back (`ahead`), so the application still sees seq order, and the
// client re-joins with `since` to fill it. A seq can also be missing for
// good: another program removed the message (a hard delete). The answer to
// a join with `since` accounts for that. Its replay brings, in seq order,
// every message the database holds after `since` up to the room's seq in
// `joined`; a seq it skips was removed, not late (docs/protocol.md, "Holes
// in seq"). So a replayed message past a hole is shown at once, and once
// the replay is complete (the pong after the join) every seq up to the
// room's seq is settled, with whatever was held back below it shown. Only a
// hole above that, in the live stream after `joined`, leads to a re-join.
//
// Older history comes in pages (older()), below everything held; a page is
// the same kind of answer, complete for its range.

const NOTHING = Object.freeze({ emitted: [], gap: false });

/**
 * Whether `incoming` is a later state of the message than `held`, judged
 * by the states alone: for two versions whose order is not known.
 */
function isNewer(incoming, held) {
  if (held.deleted) return false;
  if (incoming.deleted) return true;
  if (!incoming.edited_at) return false;
  if (!held.edited_at || incoming.edited_at > held.edited_at) return true;
  if (incoming.edited_at < held.edited_at) return false;
  // Two edits within one millisecond: the body tells them apart.
  return JSON.stringify(incoming.body) !== JSON.stringify(held.body);
}

/** Whether two versions of a message show the same thing. */
function sameState(a, b) {
  return (
    a.id === b.id &&
    a.author === b.author &&
    a.sent_at === b.sent_at &&
    Boolean(a.deleted) === Boolean(b.deleted) &&
    a.edited_at === b.edited_at &&
    Boolean(a.too_large) === Boolean(b.too_large) &&
    JSON.stringify(a.body) === JSON.stringify(b.body)
  );
}

/**
 * `incoming` with what it lacks taken from an earlier version of the same
 * message: a hard delete relayed from a collection sharded by room and seq
 * has an empty `author` and no `sent_at`, and the message still has both.
 */
function completed(incoming, earlier) {
  const author = incoming.author || earlier.author;
  const sentAt = incoming.sent_at ?? earlier.sent_at;
  if (author === incoming.author && sentAt === incoming.sent_at) return incoming;
  const message = { ...incoming, author };
  if (sentAt !== undefined) message.sent_at = sentAt;
  return message;
}

/**
 * What to hold for a seq when a frame for it arrives and `held` is there:
 * the new version, or null to keep `held`. The rule:
 * - Nothing un-deletes a deleted message.
 * - A frame of the live stream replaces what is held. The relay sends a
 *   seq's changes to a connection in the order they were committed, each
 *   as it reads it then, so the latest live frame is the newest state, even
 *   with no `edited_at` (a replace by another program) or an `edited_at`
 *   older than the one held (another replica's clock).
 * - A frame read apart from that order, a replayed one or a page, may have
 *   been read before an update already held: it replaces only a state it
 *   is certainly newer than (`isNewer`). Otherwise the update held, which
 *   no later frame would bring again, would be lost.
 * A version showing nothing new is dropped, so no update is emitted for it.
 */
function replacement(incoming, held, { live }) {
  if (held.deleted) return null;
  const message = completed(incoming, held);
  if (sameState(message, held)) return null;
  return live || isNewer(message, held) ? message : null;
}

export class RoomState {
  constructor(name, { maxMessages = 5000 } = {}) {
    this.name = name;
    this.maxMessages = maxMessages;
    /** seq → message, everything shown to the application. */
    this.messages = new Map();
    /** seq → message received past a hole, not shown yet. */
    this.ahead = new Map();
    /** Highest seq settled with no hole below it (down to `floor`); null before the first join. */
    this.high = null;
    /** Messages at or below it were never asked for (or were pruned). */
    this.floor = null;
    /**
     * The answer to the last join with `since`, until it is complete:
     * `since`; `upto`, the seq up to which it accounts for every seq; `last`,
     * the last seq it replayed; `open` while frames may still be its replay.
     */
    this.replay = null;
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
      this.replay = null;
      this.high = this.floor = seq;
      return { historyLost: true, reset: true };
    }
    if (this.high === null) this.high = this.floor = since;
    else if (since < this.floor) this.floor = since;
    // The replay that follows accounts for every seq up to the room's seq:
    // what it skips was removed or, when it was capped (`recovered: false`),
    // is the older history reported lost. It also accounts for every seq
    // below a message received before `joined`: that message was committed
    // before the relay read, so what is missing below it was removed.
    let upto = seq;
    for (const held of this.ahead.keys()) upto = Math.max(upto, held);
    this.replay = { since, upto, last: since, open: true };
    return { historyLost: !recovered, reset: false };
  }

  /**
   * The last join's replay is complete (the pong after the join came): the
   * seqs it accounts for and did not bring are settled as removed, and what
   * was held back below them is shown. Returns the messages now shown.
   */
  settled() {
    const replay = this.replay;
    this.replay = null;
    if (!replay || this.high === null || replay.upto <= this.high) return [];
    this.high = replay.upto;
    return this.#drainAhead(true);
  }

  /** The connection dropped: a replay cut short accounts for nothing. */
  interrupted() {
    this.replay = null;
  }

  /**
   * Takes one `message` frame. Returns the messages to show now, in seq
   * order, each with the version it replaces, and whether a hole is open
   * that a re-join should fill (never while a join's answer is arriving:
   * it may account for the hole).
   */
  accept(incoming) {
    const { seq } = incoming;
    const replayed = this.#replayed(seq);
    const shown = this.messages.get(seq);
    if (shown) {
      const message = replacement(incoming, shown, { live: !replayed });
      if (!message) return this.#result([]);
      this.messages.set(seq, message);
      return this.#result([{ message, previous: shown }]);
    }
    const waiting = this.ahead.get(seq);
    if (waiting) {
      const message = replacement(incoming, waiting, { live: !replayed });
      if (message) this.ahead.set(seq, message);
      if (!replayed) return this.#result([]);
      // The replay reached a message held back: the seqs below it were removed.
      this.high = Math.max(this.high, seq - 1);
      return this.#result(this.#drainAhead(true));
    }
    if (this.high === null) return NOTHING;
    if (seq <= this.high) {
      // Below what is held: an update of a seq never asked for, kept in
      // case a page on its way predates it.
      if (seq <= this.floor) {
        if (this.olderUpdates) {
          const earlier = this.olderUpdates.get(seq);
          const message = earlier ? replacement(incoming, earlier, { live: !replayed }) : incoming;
          if (message) this.olderUpdates.set(seq, message);
        }
        return this.#result([]);
      }
      // Older history a replay fills in (a join with a lower since). A live
      // frame for a seq settled without a message (one removed) has nothing
      // to update.
      if (!replayed) return this.#result([]);
      this.#store(incoming);
      return this.#result([{ message: incoming, previous: undefined }]);
    }
    if (seq === this.high + 1) return this.#result(this.#advance(incoming));
    if (!replayed) {
      this.ahead.set(seq, incoming);
      return this.#result([]);
    }
    // Past a hole in a replay: the seqs it skipped were removed.
    this.high = seq - 1;
    return this.#result(this.#drainAhead(true).concat(this.#advance(incoming)));
  }

  /**
   * Whether a frame for `seq` is part of the replay of the last join: after
   * `joined`, the replay comes first, in ascending seq order up to `upto`,
   * before anything live of the room. The first frame that does not follow
   * that order ends it.
   */
  #replayed(seq) {
    const replay = this.replay;
    if (!replay?.open) return false;
    if (seq > replay.last && seq <= replay.upto) {
      replay.last = seq;
      return true;
    }
    replay.open = false;
    return false;
  }

  #result(emitted) {
    return { emitted, gap: this.ahead.size > 0 && this.replay === null };
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
   * asked for". Seqs the page skips were removed: nothing waits for them.
   * Returns the page's messages as now held, and the held messages it
   * replaced, to emit as updates. The page was read at some point while it
   * was on its way, so a live update relayed meanwhile wins over it, and
   * so does a version held, unless the page's is certainly newer.
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
      const message = later && !isNewer(fetched, later) ? completed(later, fetched) : fetched;
      const held = this.messages.get(seq);
      const replaced = held && replacement(message, held, { live: false });
      if (!held) {
        this.messages.set(seq, message);
        page.push(message);
      } else if (replaced) {
        this.messages.set(seq, replaced);
        page.push(replaced);
        emitted.push({ message: replaced, previous: held });
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
