// Which frame an answer belongs to. The relay answers a connection's frames
// in the order they came, and answers a `ping` with a `pong` once
// everything before it is answered. So a ping sent right after a frame
// that may be refused without naming a client_id (a join, a leave, a read,
// a request) brackets its answer: any error for it comes before that pong,
// and the pong before any answer to a later frame. An error that names no
// client_id therefore answers the oldest such frame whose pong has not come.

export class Replies {
  /** Callbacks of our pings, oldest first. */
  #pongs = [];
  /** Frames sent by send(), oldest first, until their pong. */
  #unanswered = [];
  #transmit;

  constructor(transmit) {
    this.#transmit = transmit;
  }

  /** A round-trip barrier: `done` runs once every frame sent before it was answered. */
  ping(done) {
    this.#pongs.push(done);
    this.#transmit({ type: 'ping' });
  }

  /** The relay's pong: the oldest ping's. */
  pong() {
    this.#pongs.shift()?.();
  }

  /** Sends a frame and a ping; `refused(code, message)` takes its error, `settled()` runs at the pong. */
  send(frame, { refused, settled } = {}) {
    const sent = { room: frame.room, refused, answered: false };
    this.#unanswered.push(sent);
    this.#transmit(frame);
    this.ping(() => {
      this.#unanswered.splice(this.#unanswered.indexOf(sent), 1);
      settled?.();
    });
  }

  /** The frame sent by send() that an error with this `ref` answers, if its ref fits the oldest one waiting. */
  refusedFrame(ref) {
    if (ref?.client_id !== undefined || ref?.since_cursor !== undefined) return undefined;
    const oldest = this.#unanswered[0];
    if (!oldest || oldest.answered || oldest.room !== ref?.room) return undefined;
    oldest.answered = true;
    return oldest;
  }

  /** The connection ended: nothing sent on it will be answered. */
  reset() {
    this.#pongs = [];
    this.#unanswered = [];
  }
}
