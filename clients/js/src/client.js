// One logical connection to a roomcast relay that outlives any number of
// connections, each over a WebSocket or SSE (see transports/). After every
// disconnect it follows docs/protocol.md, "Reconnecting without loss":
// reconnect with backoff and jitter, pass the last notification cursor of
// each route, re-join each room from the highest seq held, and resend every
// unacknowledged write with its original client_id.
// The read side (markers, unread counts, pages of older messages and of
// notifications) lives in reading.js and requests.js, who is present and
// typing in presence.js, and replies.js tells which frame an error answers;
// this file routes the frames to them.

import { backoffDelay, retryDelay, DEFAULT_BACKOFF } from './backoff.js';
import { Emitter } from './emitter.js';
import { RoomcastError } from './errors.js';
import { clientIdGenerator } from './ids.js';
import { Outbox, isRetryable } from './outbox.js';
import { Presence, TYPING_TIMEOUT } from './presence.js';
import { Reading } from './reading.js';
import { Replies } from './replies.js';
import { Requests } from './requests.js';
import { RoomState } from './room.js';
import { dial, TransportChoice, transportMode } from './transports/index.js';

export { RoomcastError };
export { SUBPROTOCOL } from './transports/websocket.js';

const ROOM_NAME = /^[A-Za-z0-9._:-]{1,128}$/;
/** Notification ids remembered to drop a replayed duplicate. */
const SEEN_NOTIFICATIONS = 1000;

const DEFAULTS = {
  connectTimeout: 10_000,
  heartbeatInterval: 25_000,
  heartbeatTimeout: 10_000,
  maxMessagesPerRoom: 5000,
  maxFrameBytes: 81_920,
  typingTimeout: TYPING_TIMEOUT,
  retry: { base: 250, cap: 5_000 },
};

export class RoomcastClient extends Emitter {
  #address;
  #options;
  #WebSocket;
  #fetch;
  /** Which transport each connection uses (see transports/choice.js). */
  #choice;
  /** The connection's transport: a WebSocketTransport or an SseTransport. */
  #transport = null;
  #transportName = null;
  #state = 'idle';
  #closed = false;
  #everOpened = false;
  #attempt = 0;
  #timers = { reconnect: null, connect: null, stable: null, heartbeat: null, deadline: null };
  /** room name → membership and history (see #entry). */
  #rooms = new Map();
  #outbox = new Outbox();
  /** route → last notification cursor. */
  #cursors = new Map();
  #seen = new Set();
  /** Pings, and which frame an error without a client_id answers. */
  #replies = new Replies((frame) => this.#transmit(frame));
  #nextClientId = clientIdGenerator();
  #requests;
  #reading;
  #presence;

  constructor(address, options = {}) {
    super();
    this.#address = address;
    this.#options = {
      ...DEFAULTS,
      ...options,
      backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
      retry: { ...DEFAULTS.retry, ...options.retry },
    };
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    // Called as a function: a browser's fetch must not be called on another object.
    const fetch = options.fetch ?? globalThis.fetch;
    this.#fetch = fetch && ((...args) => fetch(...args));
    const mode = transportMode(options.transport, { WebSocket: this.#WebSocket, fetch: this.#fetch });
    this.#choice = new TransportChoice(mode, { fallback: options.fallback });
    for (const [route, cursor] of Object.entries(options.cursors ?? {})) this.#cursors.set(route, cursor);
    const retry = this.#options.retry;
    const isOpen = () => this.#isOpen();
    const send = (frame, tracking) => this.#replies.send(frame, tracking);
    this.#requests = new Requests({ isOpen, send, retry });
    this.#presence = new Presence({
      isJoined: (room) => {
        const entry = this.#rooms.get(room);
        return this.#isOpen() && Boolean(entry?.wanted && entry.joinedHere);
      },
      send,
      emit: (event, ...args) => this.emit(event, ...args),
      typingTimeout: this.#options.typingTimeout,
    });
    this.#reading = new Reading({
      isOpen,
      send,
      retry,
      request: (type, key, frame) => this.#requests.ask(type, key, frame),
      roomState: (room) => {
        const entry = this.#rooms.get(room);
        return entry?.wanted ? entry.history : null;
      },
      whenJoined: (room) => this.#whenJoined(room),
      emit: (event, ...args) => this.emit(event, ...args),
      emitMessages: (emitted) => this.#emitMessages(emitted),
      messages: (room) => this.messages(room),
      presence: this.#presence,
    });
    // Started after the caller's synchronous code, so handlers it attaches
    // right after connect() see the first state change.
    queueMicrotask(() => this.#connect());
  }

  /** 'idle', 'connecting', 'open', 'waiting' (backoff before a retry) or 'closed'. */
  get state() {
    return this.#state;
  }

  /** 'websocket' or 'sse': the transport of the connection open now, or of the last one; null before the first opened. */
  get transport() {
    return this.#transportName;
  }

  /** The last notification cursor of each route; pass as `cursors` to a later client to recover. */
  get cursors() {
    return Object.fromEntries(this.#cursors);
  }

  /** Resolves when the connection is (or next becomes) open. */
  whenOpen() {
    if (this.#state === 'open') return Promise.resolve();
    if (this.#closed) return Promise.reject(new RoomcastError('closed', 'the client was closed'));
    return new Promise((resolve, reject) => {
      const off = this.on('state', ({ state }) => {
        if (state === 'open') resolve();
        else if (state === 'closed') reject(new RoomcastError('closed', 'the client was closed'));
        else return;
        off();
      });
    });
  }

  /** Replaces the token used from the next connection on (for example after `token_expired`). */
  setToken(token) {
    this.#options.token = token;
  }

  /** Skips the backoff wait and reconnects now (for example when the browser comes back online). */
  reconnectNow() {
    if (this.#state !== 'waiting') return;
    clearTimeout(this.#timers.reconnect);
    this.#connect();
  }

  // ---- rooms ----

  /**
   * Joins a room; resolves once its replay has arrived. `since` replays the
   * messages after that seq; `history` fetches the last N messages.
   */
  join(room, { since, history } = {}) {
    if (this.#closed) return Promise.reject(new RoomcastError('closed', 'the client was closed'));
    if (!ROOM_NAME.test(room)) return Promise.reject(invalidRoom(room));
    let entry = this.#rooms.get(room);
    if (entry?.wanted && entry.joinedHere && !entry.inFlight) return Promise.resolve(entry.info);
    if (!entry) {
      entry = this.#entry(room, since, history);
      this.#rooms.set(room, entry);
    }
    entry.wanted = true;
    const joined = new Promise((resolve, reject) => entry.waiters.push({ resolve, reject }));
    // During a leave, the join waits for `left` (see #forget).
    if (!entry.inFlight && !entry.retryTimer && !entry.leaving.length) this.#sendJoin(entry, this.#joinSince(entry));
    return joined;
  }

  /** Leaves a room, forgets its history and drops its writes not sent yet. */
  leave(room) {
    const entry = this.#rooms.get(room);
    if (!entry) return Promise.resolve();
    entry.wanted = false;
    this.#presence.forget(room);
    clearTimeout(entry.retryTimer);
    entry.retryTimer = null;
    this.#settleWaiters(entry, new RoomcastError('left', `left room ${room}`, { room }));
    for (const write of this.#outbox.forRoom(room)) {
      if (write.state !== 'in_flight') this.#failWrite(write, 'not_joined', `left room ${room}`);
    }
    if (!this.#isOpen()) {
      this.#rooms.delete(room);
      return Promise.resolve();
    }
    // Sent even if a join was refused: a rate-limited re-join left the relay
    // still sending the room. A not_joined answer is as good as `left`.
    this.#replies.send({ type: 'leave', room });
    return new Promise((resolve) => entry.leaving.push(resolve));
  }

  /** The rooms joined (or being joined). */
  rooms() {
    return [...this.#rooms.values()].filter((entry) => entry.wanted).map((entry) => entry.name);
  }

  /** The messages held for a room, in seq order. */
  messages(room) {
    return this.#rooms.get(room)?.history.list() ?? [];
  }

  // ---- the read side ----

  /**
   * The read side of a room, joined or not: its unread count and the
   * user's read marker, `markRead()` and `loadOlder()`. One handle per room.
   */
  room(name) {
    if (!ROOM_NAME.test(name)) throw invalidRoom(name);
    return this.#reading.room(name);
  }

  /**
   * Marks a room read up to `seq` on every device of the user. Sends at most
   * one `read` per room every 250 ms, with the highest seq asked for, and
   * none at or below the marker already known. Returns nothing: the relay's
   * `read_marker` updates `room(name).lastRead` and emits `unread`.
   */
  markRead(room, seq) {
    if (!ROOM_NAME.test(room)) throw invalidRoom(room);
    if (!Number.isInteger(seq) || seq < 0) throw new TypeError(`seq must be an integer >= 0, not ${seq}`);
    if (!this.#closed) this.#reading.markRead(room, seq);
  }

  /**
   * The user is typing in a room: call it on every keystroke. Sends at most
   * one `typing` per room every TYPING_INTERVAL, and none for a room not
   * joined on an open connection (never queued for later: typing is stale
   * by then) or too large for the relay to pass typing on.
   */
  typing(room) {
    if (!ROOM_NAME.test(room)) throw invalidRoom(room);
    if (!this.#closed) this.#presence.type(room);
  }

  /** The user's rooms with their unread counts, newest activity first (the relay's `rooms`). */
  listRooms() {
    return this.#requests.ask('rooms', undefined, { type: 'rooms' }).then(({ rooms }) => this.#reading.listed(rooms));
  }

  /** A page of the user's documents of a user route, newest first: `{items, more}`. */
  notificationsPage({ route = 'notifications', before, limit } = {}) {
    const frame = { type: 'notifications', route };
    if (before !== undefined) frame.before = before;
    if (limit !== undefined) frame.limit = limit;
    return this.#requests.ask('notifications', route, frame).then(({ items, more }) => ({
      items: items.map(({ type, ...item }) => item),
      more,
    }));
  }

  // ---- writes ----

  /** Posts a message; resolves with the ack once it is committed. */
  send(room, body, { clientId } = {}) {
    return this.#write({ kind: 'send', room, body, clientId });
  }

  /** Replaces the body of one of your own messages. */
  edit(room, id, body, { clientId } = {}) {
    return this.#write({ kind: 'edit', room, id, body, clientId });
  }

  /** Deletes one of your own messages. */
  delete(room, id, { clientId } = {}) {
    return this.#write({ kind: 'delete', room, id, clientId });
  }

  /** Writes not acknowledged yet, oldest first (all rooms, or one). */
  pending(room) {
    const writes = room === undefined ? this.#outbox.all() : this.#outbox.forRoom(room);
    return writes.map(({ kind, room, clientId, id, body, state }) => ({ kind, room, clientId, id, body, state }));
  }

  /** Closes for good: no reconnect; pending writes and joins are rejected. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of Object.values(this.#timers)) clearTimeout(timer);
    clearInterval(this.#timers.heartbeat);
    this.#transport?.close(1000);
    this.#transport = null;
    const closed = new RoomcastError('closed', 'the client was closed');
    for (const write of this.#outbox.all()) this.#failWrite(write, closed.code, closed.message);
    for (const entry of this.#rooms.values()) {
      clearTimeout(entry.retryTimer);
      this.#settleWaiters(entry, closed);
    }
    this.#requests.close(closed);
    this.#reading.close();
    this.#presence.close();
    this.#setState('closed', {});
  }

  // ---- connection lifecycle ----

  async #connect() {
    if (this.#closed) return;
    this.#setState('connecting', { attempt: this.#attempt });
    let token;
    try {
      token = typeof this.#options.token === 'function' ? await this.#options.token() : this.#options.token;
    } catch (error) {
      this.emit('error', new RoomcastError('token_unavailable', `could not get a token: ${error?.message ?? error}`));
      this.#scheduleReconnect({});
      return;
    }
    if (this.#closed) return;
    const kind = this.#choice.next();
    let transport;
    try {
      const { user, sseUrl, maxFrameBytes } = this.#options;
      const platform = { WebSocket: this.#WebSocket, fetch: this.#fetch };
      transport = dial(kind, { address: this.#address, token, user, cursors: this.#cursors, sseUrl, maxFrameBytes, ...platform });
    } catch (error) {
      this.emit('error', new RoomcastError('connect_failed', `cannot open a ${kind} connection: ${error?.message ?? error}`));
      this.#scheduleReconnect({}, this.#choice.failed(kind));
      return;
    }
    this.#transport = transport;
    const timeout = this.#choice.connectTimeout(kind, this.#options.connectTimeout);
    this.#timers.connect = setTimeout(() => this.#abandon(transport, 'connect timeout'), timeout);
    transport.onopen = () => this.#opened(transport);
    transport.onmessage = (text) => this.#received(transport, text);
    transport.onclose = (code, reason) => this.#dropped(transport, code, reason);
  }

  #opened(transport) {
    if (transport !== this.#transport) return;
    clearTimeout(this.#timers.connect);
    this.#everOpened = true;
    this.#choice.opened(transport.name);
    if (this.#transportName !== transport.name) {
      this.#transportName = transport.name;
      this.emit('transport', transport.name);
    }
    // Only a connection that stays up resets the backoff; one that a sick
    // server accepts and drops at once keeps backing off.
    this.#timers.stable = setTimeout(() => {
      this.#attempt = 0;
    }, this.#options.backoff.resetAfter);
    this.#startHeartbeat(transport);
    this.#setState('open', {});
    for (const entry of this.#rooms.values()) {
      if (entry.wanted) this.#sendJoin(entry, this.#joinSince(entry));
    }
    // Writes to rooms never joined go now; the relay's not_joined answers them.
    for (const write of this.#outbox.all()) {
      if (!this.#rooms.has(write.room)) this.#trySend(write);
    }
    this.#reading.opened();
    this.#requests.opened();
  }

  #dropped(transport, code, reason) {
    if (transport !== this.#transport) return;
    this.#transport = null;
    // Still 'connecting': the connection never opened.
    const fallBack = this.#state !== 'open' && this.#choice.failed(transport.name);
    for (const name of ['connect', 'stable', 'deadline']) {
      clearTimeout(this.#timers[name]);
      this.#timers[name] = null;
    }
    clearInterval(this.#timers.heartbeat);
    this.#replies.reset();
    this.#outbox.requeueAll();
    this.#reading.dropped();
    this.#requests.dropped();
    this.#presence.dropped();
    for (const entry of this.#rooms.values()) {
      entry.joinedHere = false;
      entry.inFlight = false;
      entry.refilling = false;
      entry.history.interrupted();
      clearTimeout(entry.retryTimer);
      entry.retryTimer = null;
      // The relay forgot this connection's rooms: a leave in progress is done.
      if (entry.leaving.length) this.#forget(entry);
    }
    if (this.#closed) return;
    if (code === 4001) {
      this.emit('error', new RoomcastError('token_expired', 'the token expired; reconnecting with a fresh one'));
    }
    this.#scheduleReconnect({ code, reason }, fallBack);
  }

  /** Gives up on a connection that does not answer, without waiting for a close handshake. */
  #abandon(transport, reason) {
    if (transport !== this.#transport) return;
    transport.close();
    this.#dropped(transport, undefined, reason);
  }

  /** `now`: the other transport is tried at once, as part of the same attempt. */
  #scheduleReconnect({ code, reason }, now = false) {
    const delay = now ? 0 : backoffDelay(this.#attempt, this.#options.backoff);
    if (!now) this.#attempt += 1;
    this.#setState('waiting', { attempt: this.#attempt, delay, code, reason });
    this.#timers.reconnect = setTimeout(() => this.#connect(), delay);
  }

  #startHeartbeat(transport) {
    // The relay pings us, but a browser cannot see those pings: our own ping
    // is how a half-open connection (a dead network path) gets noticed.
    this.#timers.heartbeat = setInterval(() => {
      this.#replies.ping(() => {});
      // Any frame clears the deadline; one already running is not pushed back.
      this.#timers.deadline ??= setTimeout(
        () => this.#abandon(transport, 'heartbeat timeout'),
        this.#options.heartbeatTimeout,
      );
    }, this.#options.heartbeatInterval);
  }

  #setState(state, detail) {
    this.#state = state;
    this.emit('state', { state, ...detail });
  }

  #isOpen() {
    return this.#transport !== null && this.#transport.isOpen && this.#state === 'open';
  }

  #transmit(frame) {
    this.#transport.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  // ---- frames from the relay ----

  #received(transport, data) {
    if (transport !== this.#transport) return;
    // Any frame proves the connection alive.
    clearTimeout(this.#timers.deadline);
    this.#timers.deadline = null;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this.emit('error', new RoomcastError('protocol', 'the relay sent a frame that is not JSON'));
      return;
    }
    switch (frame.type) {
      case 'message':
        return this.#onMessage(frame);
      case 'joined':
        return this.#onJoined(frame);
      case 'ack':
        return this.#onAck(frame);
      case 'notification':
        return this.#onNotification(frame);
      case 'recovery':
        return this.emit('recovery', { route: frame.route, recovered: frame.recovered });
      case 'resync':
        // Earlier cursors of the route cannot be recovered any more.
        this.#cursors.delete(frame.route);
        return this.emit('resync', { route: frame.route });
      case 'left':
        return this.#onLeft(frame);
      case 'history':
        return this.#requests.answered('history', frame.room, frame);
      case 'rooms':
        return this.#requests.answered('rooms', undefined, frame);
      case 'notifications':
        return this.#requests.answered('notifications', frame.route, frame);
      case 'read_marker':
        return this.#reading.learn(frame.room, { lastRead: frame.seq });
      case 'presence':
      case 'presence_join':
      case 'presence_leave':
      case 'occupancy':
      case 'typing':
        // Only for a room the application is in; a leave under way ends it.
        if (this.#rooms.get(frame.room)?.wanted) this.#presence.received(frame);
        return undefined;
      case 'error':
        return this.#onError(frame);
      case 'pong':
        return this.#replies.pong();
      default:
        // A newer relay's frame: ignored, as the protocol asks of both sides.
        return undefined;
    }
  }

  #onMessage(frame) {
    const entry = this.#rooms.get(frame.room);
    if (!entry || !entry.wanted) return;
    const { type, ...message } = frame;
    const { emitted, gap } = entry.history.accept(message);
    this.#emitMessages(emitted);
    this.#reading.learn(frame.room, { seq: frame.seq });
    if (gap && !entry.refilling && !entry.inFlight && this.#isOpen()) {
      // A hole in the live stream: ask again from the last seq held without one.
      entry.refilling = true;
      this.#sendJoin(entry, entry.history.since);
    }
  }

  #emitMessages(emitted) {
    // A new message ends its author's typing, before the application sees it.
    for (const { message, previous } of emitted) {
      if (previous === undefined) this.#presence.spoke(message.room, message.author);
    }
    for (const { message, previous } of emitted) {
      this.emit('message', message, { previous, update: previous !== undefined });
    }
  }

  #onJoined(frame) {
    const entry = this.#rooms.get(frame.room);
    if (!entry || !entry.inFlight) return;
    entry.inFlight = false;
    entry.joinedHere = true;
    entry.attempts = 0;
    const since = entry.requestedSince;
    const { historyLost, reset } = entry.history.joined(frame.seq, frame.recovered, since);
    const rejoin = entry.everJoined;
    entry.everJoined = true;
    const lastRead = frame.last_read;
    entry.info = { room: frame.room, seq: frame.seq, recovered: frame.recovered, since, rejoin, historyLost, reset, lastRead };
    this.#reading.learn(frame.room, { seq: frame.seq, lastRead });
    if (!entry.wanted) return;
    this.emit('joined', entry.info);
    if (since === undefined && entry.historyWanted > 0 && frame.seq > 0) {
      // `history`: now that the room's seq is known, replay its last N messages.
      const from = Math.max(0, frame.seq - entry.historyWanted);
      entry.historyWanted = 0;
      this.#sendJoin(entry, from);
    }
    for (const write of this.#outbox.forRoom(frame.room)) this.#trySend(write);
  }

  /** Runs after the pong that follows a join: its replay is complete. */
  #joinSettled(entry) {
    if (entry.inFlight || !entry.joinedHere) return;
    entry.refilling = false;
    // Seqs the replay accounts for and did not bring were removed (or, after
    // a capped replay, are the history `joined` reported lost): what was
    // held back behind them is shown now. A hole is never an error.
    const emitted = entry.history.settled();
    if (entry.wanted) this.#emitMessages(emitted);
    if (entry.wanted && entry.history.ahead.size > 0) {
      // A hole above what the join accounted for: a frame of the live
      // stream since `joined` was lost. Ask again from before it. Each
      // answer settles every seq received before its `joined`, so this asks
      // again only for frames lost after that.
      entry.refilling = true;
      this.#sendJoin(entry, entry.history.since);
    }
    this.#settleWaiters(entry);
  }

  #onAck(frame) {
    const write = frame.client_id === undefined ? undefined : this.#outbox.take(frame.client_id);
    if (!write) return;
    const { type, ...ack } = frame;
    write.resolve(ack);
    this.emit('ack', ack);
    this.emit('pending', { room: write.room });
  }

  #onNotification(frame) {
    if (this.#seen.has(frame.id)) return;
    this.#seen.add(frame.id);
    if (this.#seen.size > SEEN_NOTIFICATIONS) this.#seen.delete(this.#seen.values().next().value);
    this.#cursors.set(frame.route, frame.cursor);
    // A stub (too_large) has no data.
    const { type, ...notification } = frame;
    this.emit('notification', notification);
  }

  #onLeft(frame) {
    const entry = this.#rooms.get(frame.room);
    if (!entry) return;
    if (frame.reason === 'revoked') {
      entry.wanted = false;
      const revoked = new RoomcastError('forbidden', `access to room ${frame.room} was revoked`, { room: frame.room });
      this.#settleWaiters(entry, revoked);
      for (const write of this.#outbox.forRoom(frame.room)) this.#failWrite(write, revoked.code, revoked.message);
    }
    this.#forget(entry);
    this.emit('left', { room: frame.room, reason: frame.reason });
  }

  #onError(frame) {
    const { code, message, ref } = frame;
    const write = ref?.client_id === undefined ? undefined : this.#outbox.get(ref.client_id);
    if (write) return this.#writeRefused(write, code, message);
    // A read or a request refused (joins and leaves are matched below).
    const refused = this.#replies.refusedFrame(ref);
    if (refused?.refused) return refused.refused(code, message);
    const entry = ref?.room === undefined ? undefined : this.#rooms.get(ref.room);
    if (entry?.leaving.length) {
      // not_joined: the relay had already dropped us from the room.
      this.#forget(entry);
      return undefined;
    }
    if (entry?.inFlight) return this.#joinRefused(entry, code, message);
    if (ref?.since_cursor !== undefined) {
      for (const [route, cursor] of this.#cursors) if (cursor === ref.since_cursor) this.#cursors.delete(route);
    }
    this.emit('error', new RoomcastError(code, message, ref));
    return undefined;
  }

  // ---- joins ----

  #entry(name, since, history) {
    return {
      name,
      history: new RoomState(name, { maxMessages: this.#options.maxMessagesPerRoom }),
      /** The application wants to be in the room. */
      wanted: true,
      /** Joined on the current connection. */
      joinedHere: false,
      everJoined: false,
      inFlight: false,
      requestedSince: undefined,
      initialSince: since,
      historyWanted: history ?? 0,
      refilling: false,
      attempts: 0,
      retryTimer: null,
      info: null,
      waiters: [],
      leaving: [],
    };
  }

  #joinSince(entry) {
    return entry.history.since ?? entry.initialSince;
  }

  #sendJoin(entry, since) {
    if (!this.#isOpen()) return;
    entry.inFlight = true;
    entry.requestedSince = since;
    const frame = since === undefined ? { type: 'join', room: entry.name } : { type: 'join', room: entry.name, since };
    this.#replies.send(frame, { settled: () => this.#joinSettled(entry) });
  }

  /** Resolves once a join of the room under way has settled (at once if none); rejects if it fails. */
  #whenJoined(room) {
    if (this.#closed) return Promise.reject(new RoomcastError('closed', 'the client was closed'));
    const entry = this.#rooms.get(room);
    if (!entry?.wanted || (entry.joinedHere && !entry.inFlight)) return Promise.resolve();
    return new Promise((resolve, reject) => entry.waiters.push({ resolve, reject }));
  }

  #joinRefused(entry, code, message) {
    entry.inFlight = false;
    entry.joinedHere = false;
    if (isRetryable(code)) {
      entry.attempts += 1;
      entry.retryTimer = setTimeout(() => {
        entry.retryTimer = null;
        if (entry.wanted) this.#sendJoin(entry, this.#joinSince(entry));
      }, retryDelay(entry.attempts - 1, this.#options.retry));
      return;
    }
    const error = new RoomcastError(code, message, { room: entry.name });
    entry.wanted = false;
    this.#settleWaiters(entry, error);
    for (const write of this.#outbox.forRoom(entry.name)) this.#failWrite(write, code, message);
    this.#rooms.delete(entry.name);
    this.#presence.forget(entry.name);
    this.emit('error', error);
  }

  #settleWaiters(entry, error) {
    const waiters = entry.waiters;
    entry.waiters = [];
    for (const { resolve, reject } of waiters) {
      if (error) reject(error);
      else resolve(entry.info);
    }
  }

  /** Drops a room that was left: resolves leave() calls, and joins it again if asked meanwhile. */
  #forget(entry) {
    const leaving = entry.leaving;
    entry.leaving = [];
    for (const resolve of leaving) resolve();
    // What the relay sent before `left` is over; a join again gets a fresh snapshot.
    this.#presence.forget(entry.name);
    if (entry.wanted && entry.waiters.length) {
      this.#rooms.delete(entry.name);
      const fresh = this.#entry(entry.name, entry.initialSince, entry.historyWanted);
      fresh.waiters = entry.waiters;
      this.#rooms.set(entry.name, fresh);
      this.#sendJoin(fresh, this.#joinSince(fresh));
      return;
    }
    this.#rooms.delete(entry.name);
  }

  // ---- writes ----

  #write({ kind, room, id, body, clientId = this.#nextClientId() }) {
    if (this.#closed) return Promise.reject(new RoomcastError('closed', 'the client was closed'));
    if (!ROOM_NAME.test(room)) return Promise.reject(invalidRoom(room));
    const existing = this.#outbox.get(clientId);
    if (existing) return existing.promise;
    const frame = { type: kind, room, client_id: clientId };
    if (id !== undefined) frame.id = id;
    if (kind !== 'delete') frame.body = body === undefined ? null : body;
    const text = JSON.stringify(frame);
    const size = new TextEncoder().encode(text).length;
    if (size > this.#options.maxFrameBytes) {
      // The relay would close the whole connection (1009) rather than answer.
      return Promise.reject(new RoomcastError('too_large', `the frame is ${size} bytes, over ${this.#options.maxFrameBytes}`));
    }
    const write = { kind, room, clientId, id, body, text, state: 'queued', attempts: 0, retryTimer: null };
    write.promise = new Promise((resolve, reject) => Object.assign(write, { resolve, reject }));
    this.#outbox.add(write);
    this.emit('pending', { room });
    this.#trySend(write);
    return write.promise;
  }

  #trySend(write) {
    if (write.state !== 'queued' || !this.#isOpen()) return;
    const entry = this.#rooms.get(write.room);
    // Into a room being (re)joined: wait for its joined, or the relay answers not_joined.
    if (entry?.wanted && !entry.joinedHere) return;
    write.state = 'in_flight';
    this.#transmit(write.text);
  }

  #writeRefused(write, code, message) {
    const entry = this.#rooms.get(write.room);
    if (code === 'not_joined' && entry?.wanted) {
      // The relay dropped us from the room (a re-join that failed): join
      // again, and the write goes once that succeeds.
      write.state = 'queued';
      entry.joinedHere = false;
      if (!entry.inFlight && !entry.retryTimer) this.#sendJoin(entry, this.#joinSince(entry));
      return;
    }
    if (isRetryable(code)) {
      write.state = 'waiting';
      write.attempts += 1;
      write.retryTimer = setTimeout(() => {
        write.state = 'queued';
        this.#trySend(write);
      }, retryDelay(write.attempts - 1, this.#options.retry));
      return;
    }
    this.#failWrite(write, code, message);
  }

  #failWrite(write, code, message) {
    if (!this.#outbox.take(write.clientId)) return;
    write.reject(new RoomcastError(code, message, { room: write.room, client_id: write.clientId }));
    this.emit('pending', { room: write.room });
  }
}

function invalidRoom(room) {
  return new RoomcastError('invalid_room', 'room names are 1 to 128 characters of A-Z a-z 0-9 . _ : -', { room });
}
