// The Room handle the application holds: one per room, joined or not, from
// `client.room(name)`. It reads the room's read side (reading.js) and who is
// present and typing there (presence.js).

/** seq − lastRead, never below 0; 0 while either is unknown. */
export function unreadOf({ seq, lastRead }) {
  return seq === undefined || lastRead === undefined ? 0 : Math.max(0, seq - lastRead);
}

/** What the application sees of one room; `client.room(name)` returns it. */
export class Room {
  #reading;
  #presence;
  #name;

  constructor(name, reading, presence) {
    this.#name = name;
    this.#reading = reading;
    this.#presence = presence;
  }

  get name() {
    return this.#name;
  }

  /** The room's newest seq as far as this client knows; undefined until it knows. */
  get seq() {
    return this.#reading.state(this.#name).seq;
  }

  /** The user's read marker (from any device); undefined until the relay said. */
  get lastRead() {
    return this.#reading.state(this.#name).lastRead;
  }

  /** seq − lastRead, never below 0; 0 while either is unknown. */
  get unread() {
    return unreadOf(this.#reading.state(this.#name));
  }

  /**
   * Whether messages older than those held may exist: false once a page
   * said none do, or once everything from the room's start was asked for
   * (a join with since 0). Not "seq 1 is held": seq 1 may have been removed.
   */
  get hasOlder() {
    return this.#reading.hasOlder(this.#name);
  }

  /** The messages held, in seq order (only for a joined room). */
  get messages() {
    return this.#reading.messages(this.#name);
  }

  /** The users present, a Set in name order, this user included; undefined before the relay's snapshot and in a room too large to list. */
  get presence() {
    return this.#presence.users(this.#name);
  }

  /** How many users are present; undefined until the relay said (and while disconnected). */
  get occupancy() {
    return this.#presence.count(this.#name);
  }

  /** The other users typing now, sorted. */
  get typists() {
    return this.#presence.typing(this.#name);
  }

  /** Fetches the page before the oldest message held; resolves with `{messages, more}`. */
  loadOlder(options) {
    return this.#reading.loadOlder(this.#name, options);
  }

  /** Marks the room read up to `seq` (by default its newest known seq), on every device. */
  markRead(seq = this.seq) {
    if (seq !== undefined) this.#reading.markRead(this.#name, seq);
  }

  /** `client.typing(name)`: call it on every keystroke; at most one `typing` goes every TYPING_INTERVAL. */
  typing() {
    this.#presence.type(this.#name);
  }
}
