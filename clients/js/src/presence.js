// Who is present in the rooms a client has joined, and who is typing there.
//
// The relay sends a room's `presence` snapshot after `joined` and its
// replay, then `presence_join` and `presence_leave` per user (not per
// connection), or, in a room too large to list, `occupancy` counts. None of
// it is part of the seq or replayed: after a reconnect the relay sends a
// fresh snapshot, so everything known is dropped when a connection ends.
//
// There is no "stopped typing" frame: a user shows as typing until
// `typingTimeout` after their last `typing`, or until their message in the
// room arrives or they leave it. The relay never sends a user their own
// typing, so the set never holds the user of this client.

/**
 * At most one `typing` per room this often, which is the relay's default
 * limits.typing_interval: it would drop anything more.
 */
export const TYPING_INTERVAL = 2000;

/** How long a user shows as typing after their last `typing` frame. */
export const TYPING_TIMEOUT = 5000;

function now() {
  return globalThis.performance?.now() ?? Date.now();
}

/** A timer that does not keep Node's event loop alive (browsers return a number: nothing to do). */
function quietTimeout(run, delay) {
  const timer = setTimeout(run, delay);
  timer?.unref?.();
  return timer;
}

function sortedInsert(users, user) {
  if (users.includes(user)) return false;
  users.push(user);
  users.sort(byName);
  return true;
}

function byName(a, b) {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

export class Presence {
  /** room → {users, count, typists: user → expiry timer, typedAt}. */
  #rooms = new Map();
  /**
   * From the client: isJoined(room) (joined on the open connection),
   * send(frame, {refused}), emit(event, ...args), typingTimeout.
   */
  #host;

  constructor(host) {
    this.#host = host;
  }

  // ---- what the application reads ----

  /** The users present, a Set in name order; undefined before the snapshot and in a room too large to list. */
  users(room) {
    const users = this.#rooms.get(room)?.users;
    return users && new Set(users);
  }

  /** How many users are present; undefined until the relay said. */
  count(room) {
    return this.#rooms.get(room)?.count;
  }

  /** The other users typing now, sorted. */
  typing(room) {
    const typists = this.#rooms.get(room)?.typists;
    return typists?.size ? [...typists.keys()].sort(byName) : [];
  }

  // ---- frames from the relay ----

  /** A presence, presence_join, presence_leave, occupancy or typing frame of a joined room. */
  received(frame) {
    const { room, user } = frame;
    const state = this.#state(room);
    switch (frame.type) {
      case 'presence':
        // The set is replaced: after a lost history, or a large room that became small again.
        state.users = Array.isArray(frame.users) ? [...frame.users].sort(byName) : undefined;
        state.count = frame.count;
        if (!state.users) this.#clearTyping(room, state);
        return this.#emitPresence(room, state, {});
      case 'presence_join':
        // Only a listed room has them; before its snapshot there is nothing to add to.
        if (!state.users || !sortedInsert(state.users, user)) return undefined;
        state.count = state.users.length;
        return this.#emitPresence(room, state, { joined: user });
      case 'presence_leave': {
        const typed = this.#stopTyping(state, user);
        const index = state.users?.indexOf(user) ?? -1;
        if (index >= 0) {
          state.users.splice(index, 1);
          state.count = state.users.length;
          this.#emitPresence(room, state, { left: user });
        }
        if (typed) this.#emitTyping(room);
        return undefined;
      }
      case 'occupancy':
        state.users = undefined;
        state.count = frame.count;
        // The relay drops typing in a room this large.
        this.#clearTyping(room, state);
        return this.#emitPresence(room, state, {});
      case 'typing':
        return this.#typed(room, state, user);
      default:
        return undefined;
    }
  }

  /** A user's new message arrived in the room: they are no longer typing it. */
  spoke(room, user) {
    const state = this.#rooms.get(room);
    if (state && this.#stopTyping(state, user)) this.#emitTyping(room);
  }

  // ---- this user typing ----

  /**
   * The user typed in the room: sends `typing` unless one went less than
   * TYPING_INTERVAL ago, the room is not joined on an open connection (it
   * is never queued: it would be stale by then), or the room is too large
   * for the relay to pass typing on.
   */
  type(room) {
    if (!this.#host.isJoined(room)) return;
    const state = this.#state(room);
    if (state.count !== undefined && !state.users) return;
    const at = now();
    if (state.typedAt !== undefined && at - state.typedAt < TYPING_INTERVAL) return;
    state.typedAt = at;
    // Best effort: a refusal (the relay dropped the room) is not worth reporting.
    this.#host.send({ type: 'typing', room }, { refused: () => {} });
  }

  // ---- lifecycle ----

  /** The room was left (or its join failed for good): forget it, telling the application what it no longer knows. */
  forget(room) {
    const state = this.#rooms.get(room);
    if (!state) return;
    this.#rooms.delete(room);
    this.#reset(room, state);
  }

  /** The connection ended: presence comes again, as a snapshot, after the re-joins; typing is stale. */
  dropped() {
    // typedAt stays: the relay's limit is per (room, user), across connections.
    for (const [room, state] of this.#rooms) this.#reset(room, state);
  }

  /** The client was closed: timers are cleared, nothing is emitted. */
  close() {
    for (const state of this.#rooms.values()) {
      for (const timer of state.typists.values()) clearTimeout(timer);
    }
    this.#rooms.clear();
  }

  // ---- internals ----

  #state(room) {
    let state = this.#rooms.get(room);
    if (!state) {
      state = { users: undefined, count: undefined, typists: new Map(), typedAt: undefined };
      this.#rooms.set(room, state);
    }
    return state;
  }

  #reset(room, state) {
    const known = state.count !== undefined;
    state.users = undefined;
    state.count = undefined;
    if (known) this.#emitPresence(room, state, {});
    this.#clearTyping(room, state);
  }

  #typed(room, state, user) {
    if (typeof user !== 'string') return;
    const fresh = !state.typists.has(user);
    clearTimeout(state.typists.get(user));
    state.typists.set(
      user,
      quietTimeout(() => {
        if (state.typists.delete(user)) this.#emitTyping(room);
      }, this.#host.typingTimeout),
    );
    if (fresh) this.#emitTyping(room);
  }

  /** Removes a typist; true if they were typing. */
  #stopTyping(state, user) {
    if (!state.typists.has(user)) return false;
    clearTimeout(state.typists.get(user));
    state.typists.delete(user);
    return true;
  }

  #clearTyping(room, state) {
    if (state.typists.size === 0) return;
    for (const timer of state.typists.values()) clearTimeout(timer);
    state.typists.clear();
    this.#emitTyping(room);
  }

  #emitPresence(room, state, { joined, left }) {
    const info = { room, users: state.users && [...state.users], count: state.count };
    if (joined !== undefined) info.joined = joined;
    if (left !== undefined) info.left = left;
    this.#host.emit('presence', info);
  }

  #emitTyping(room) {
    this.#host.emit('typing', { room, users: this.typing(room) });
  }
}
