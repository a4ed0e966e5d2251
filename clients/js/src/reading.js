// The read side of the rooms a client knows: the user's read marker in each
// room and the unread count that follows from it, pages of older messages,
// and the Room handle the application holds.
//
// The relay keeps one read marker per user and room, which only rises, and
// tells every connection of the user, on every device, each time it rises.
// So the counts here follow what the user read anywhere, and a marker is
// never lowered by a stale answer: every value only rises. The handle
// itself is in handle.js.

import { retryDelay } from './backoff.js';
import { RoomcastError } from './errors.js';
import { Room, unreadOf } from './handle.js';
import { isRetryable } from './outbox.js';

/**
 * At most one `read` per room this often, with the highest seq asked for
 * meanwhile: an application may mark every message it shows without
 * meeting the relay's token bucket for markers (5 a second by default).
 */
export const READ_INTERVAL = 250;

function summary(room, state) {
  return { room, seq: state.seq, lastRead: state.lastRead, unread: unreadOf(state) };
}

function withoutType({ type, ...rest }) {
  return rest;
}

export class Reading {
  /** room → what is known of it, the marks to send, and a page being fetched. */
  #rooms = new Map();
  /**
   * From the client: isOpen(), send(frame, {refused}), request(type, key,
   * frame), roomState(room), whenJoined(room), emit(event, ...args),
   * emitMessages(emitted), messages(room), retry, and presence (for the
   * handles).
   */
  #host;

  constructor(host) {
    this.#host = host;
  }

  room(name) {
    const state = this.state(name);
    state.handle ??= new Room(name, this, this.#host.presence);
    return state.handle;
  }

  state(name) {
    let state = this.#rooms.get(name);
    if (!state) {
      state = {
        seq: undefined,
        lastRead: undefined,
        /** Highest seq the application marked; `sent`: highest sent on this connection. */
        wanted: undefined,
        sent: undefined,
        readTimer: null,
        attempts: 0,
        /** The page being fetched (calls meanwhile get the same promise). */
        loading: null,
        /** Paging a room that is not joined: the lowest seq fetched, and whether the first was reached. */
        olderBefore: undefined,
        olderDone: false,
        handle: null,
      };
      this.#rooms.set(name, state);
    }
    return state;
  }

  messages(room) {
    return this.#host.messages(room);
  }

  /**
   * Rests on what the relay said, not on seq 1 being held (it may have
   * been removed): a page with `more: false` ends it, and so does holding
   * everything from the start of the room (a join with since 0), a shortcut.
   */
  hasOlder(room) {
    const held = this.#host.roomState(room);
    if (held) return held.olderBefore !== 1;
    return !this.state(room).olderDone;
  }

  // ---- what frames tell: the room's newest seq, the user's marker ----

  /** Takes a room's newest seq or the user's marker from a frame; emits `unread` when either rose. */
  learn(room, { seq, lastRead }) {
    const state = this.state(room);
    let changed = false;
    if (Number.isInteger(lastRead) && (state.lastRead === undefined || lastRead > state.lastRead)) {
      state.lastRead = lastRead;
      state.attempts = 0;
      changed = true;
    }
    // A marker is never beyond the room's newest message.
    const newest = Math.max(seq ?? -1, state.lastRead ?? -1);
    if (newest >= 0 && (state.seq === undefined || newest > state.seq)) {
      state.seq = newest;
      changed = true;
    }
    if (changed) this.#host.emit('unread', summary(room, state));
  }

  /** The entries of a `rooms` answer, with what is known merged in. */
  listed(entries) {
    return entries.map((entry) => {
      this.learn(entry.room, { seq: entry.seq, lastRead: entry.last_read });
      const item = summary(entry.room, this.state(entry.room));
      if (entry.last_message) item.lastMessage = withoutType(entry.last_message);
      return item;
    });
  }

  // ---- marking read ----

  markRead(room, seq) {
    const state = this.state(room);
    if (seq <= Math.max(state.lastRead ?? -1, state.wanted ?? -1)) return;
    state.wanted = seq;
    this.#flushRead(room, state);
  }

  opened() {
    for (const [room, state] of this.#rooms) this.#flushRead(room, state);
  }

  dropped() {
    for (const state of this.#rooms.values()) {
      clearTimeout(state.readTimer);
      state.readTimer = null;
      state.sent = undefined;
    }
  }

  close() {
    this.dropped();
  }

  /** Sends the highest mark not sent yet, unless one went less than READ_INTERVAL ago. */
  #flushRead(room, state) {
    if (state.readTimer || !this.#host.isOpen()) return;
    const seq = state.wanted;
    if (seq === undefined || seq <= Math.max(state.lastRead ?? -1, state.sent ?? -1)) return;
    state.sent = seq;
    this.#host.send({ type: 'read', room, seq }, { refused: (code, message) => this.#readRefused(room, state, code, message) });
    this.#waitBeforeNextRead(room, state, READ_INTERVAL);
  }

  #waitBeforeNextRead(room, state, delay) {
    clearTimeout(state.readTimer);
    state.readTimer = setTimeout(() => {
      state.readTimer = null;
      this.#flushRead(room, state);
    }, delay);
  }

  #readRefused(room, state, code, message) {
    state.sent = undefined;
    if (isRetryable(code)) {
      state.attempts += 1;
      this.#waitBeforeNextRead(room, state, Math.max(READ_INTERVAL, retryDelay(state.attempts - 1, this.#host.retry)));
      return;
    }
    // Refused for good (forbidden, or a seq beyond the room's newest
    // message): a higher mark would be refused too.
    state.wanted = undefined;
    this.#host.emit('error', new RoomcastError(code, message, { room }));
  }

  // ---- older messages ----

  loadOlder(room, { limit } = {}) {
    const state = this.state(room);
    state.loading ??= this.#fetchOlder(room, state, limit).finally(() => {
      state.loading = null;
    });
    return state.loading;
  }

  async #fetchOlder(room, state, limit) {
    // A join under way may still bring the messages a page would repeat.
    await this.#host.whenJoined(room);
    const held = this.#host.roomState(room);
    const before = held ? held.olderBefore : state.olderBefore;
    if (before === 1 || (!held && state.olderDone)) return { messages: [], more: false };
    const frame = { type: 'history', room };
    if (before !== undefined) frame.before = before;
    if (limit !== undefined) frame.limit = limit;
    held?.expectOlder();
    let reply;
    try {
      reply = await this.#host.request('history', room, frame);
    } catch (error) {
      if (held) held.olderUpdates = null;
      throw error;
    }
    const messages = reply.messages.map(withoutType);
    if (messages.length) this.learn(room, { seq: messages.at(-1).seq });
    if (held) {
      // Left (or left and joined again) meanwhile: the page is not merged.
      if (this.#host.roomState(room) !== held) return { messages, more: reply.more };
      const { page, emitted } = held.older(messages, { before: frame.before, more: reply.more });
      this.#host.emitMessages(emitted);
      return { messages: page, more: reply.more };
    }
    if (messages.length) state.olderBefore = messages[0].seq;
    state.olderDone = !reply.more;
    return { messages, more: reply.more };
  }
}
