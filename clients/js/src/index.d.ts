// Type declarations for roomcast-client. The wire protocol they describe is
// docs/protocol.md in the roomcast repository.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * A room message: an insert, or a later edit, replace or deletion of the
 * same seq. Seqs may skip: a message removed from the database by another
 * program leaves a hole, which is not a loss.
 */
export interface Message {
  room: string;
  seq: number;
  id: string;
  /**
   * Empty only on the deletion of a message this client never held, as
   * relayed from a collection sharded by room and seq (a deletion of a
   * message held keeps the author held).
   */
  author: string;
  /** null once deleted; absent on a stub (`too_large`). */
  body?: JsonValue;
  /** RFC 3339 UTC with milliseconds; absent where author is empty. */
  sent_at?: string | null;
  edited_at?: string;
  deleted?: true;
  /** A document over the relay's limits.max_document_bytes, relayed as a stub without its body. */
  too_large?: true;
}

export interface MessageInfo {
  /** The version this frame replaces, when it is an edit or a deletion. */
  previous: Message | undefined;
  update: boolean;
}

export interface Ack {
  client_id?: string;
  room: string;
  seq: number;
  id: string;
}

export interface Notification {
  route: string;
  id: string;
  /** Opaque; the client passes the last one as since_cursor when it reconnects. */
  cursor: string;
  /** The whole document, in relaxed Extended JSON, with _id as a string; absent on a stub (`too_large`). */
  data?: { _id: string; [key: string]: JsonValue };
  /** A document over the relay's limits.max_document_bytes, relayed as a stub without its data. */
  too_large?: true;
}

/** A `notifications` page's item: a notification read from the collection, so without a cursor. */
export type NotificationItem = Omit<Notification, 'cursor'>;

export interface JoinedInfo {
  room: string;
  /** The room's highest committed seq at the join. */
  seq: number;
  /** The user's read marker for the room at the join (0 without one); undefined from a relay without read markers. */
  lastRead: number | undefined;
  recovered: boolean;
  /** The since sent with this join, if any. */
  since: number | undefined;
  /** True for every join after the first, such as after a reconnect. */
  rejoin: boolean;
  /** A join with since whose replay was capped: messages before the replayed ones are unknown. */
  historyLost: boolean;
  /** The client held seqs the database does not: its history of the room was discarded. */
  reset: boolean;
}

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

export interface StateChange {
  state: ConnectionState;
  /** Reconnect attempts since the connection was last stable. */
  attempt?: number;
  /** 'waiting': milliseconds before the next attempt. */
  delay?: number;
  /** 'waiting': the close code of the connection that ended (4001: token expired, 4008: slow consumer, 1001: server going away); over SSE, the relay's `close` frame's, or 1006 for a stream that ended without one. */
  code?: number;
  reason?: string;
}

/** A room's unread count, as the `unread` event and `room()` give it. */
export interface UnreadInfo {
  room: string;
  /** The room's newest seq as far as this client knows. */
  seq: number | undefined;
  /** The user's read marker, set on any device. */
  lastRead: number | undefined;
  /** seq − lastRead, never below 0 (deleted messages count); 0 while either is unknown. */
  unread: number;
}

/** An entry of `listRooms()`. */
export interface RoomSummary extends UnreadInfo {
  seq: number;
  lastRead: number;
  /** The room's newest message; absent for an empty room. Its body is left out (`too_large`) when it is large. */
  lastMessage?: Message;
}

export interface OlderPage {
  /** Ascending seq order, each in its latest known version (edits and deletions applied). */
  messages: Message[];
  /** Whether older messages exist before the first of these (seqs may skip: removed messages are absent). */
  more: boolean;
}

export interface NotificationsPage {
  /** Newest first. */
  items: NotificationItem[];
  /** Whether older documents exist; ask again with `before` set to the last item's id. */
  more: boolean;
}

export interface NotificationsPageOptions {
  /** A `user` route's name. Default 'notifications'. */
  route?: string;
  /** The id of an item of an earlier page: this page holds the documents before it. */
  before?: string;
  /** Default 50, capped by the relay's limits.max_history_page. */
  limit?: number;
}

/** Who is present in a room, as the `presence` event gives it. */
export interface PresenceInfo {
  room: string;
  /**
   * The users present, each once whatever their devices, sorted, this user
   * included. Undefined in a room too large to list (more than the relay's
   * limits.presence_max_listed), and when nothing is known: after the room
   * was left, or while disconnected.
   */
  users: string[] | undefined;
  /** How many users are present; undefined when nothing is known. */
  count: number | undefined;
  /** The user who just arrived (their first connection in the room). */
  joined?: string;
  /** The user who just left (their last connection in the room). */
  left?: string;
}

/** Who is typing in a room, as the `typing` event gives it. */
export interface TypingInfo {
  room: string;
  /** The other users typing now, sorted; empty when nobody is. */
  users: string[];
}

/** The read side of one room, joined or not; `client.room(name)` returns the same handle each time. */
export interface Room {
  readonly name: string;
  readonly seq: number | undefined;
  readonly lastRead: number | undefined;
  readonly unread: number;
  /** Whether messages older than those held may exist: false once a page said none do, or the room was read from its start. */
  readonly hasOlder: boolean;
  /** The messages held, in seq order (a joined room only). */
  readonly messages: Message[];
  /**
   * Fetches the page before the oldest message held (the newest page when
   * none is held) and merges it into the room. Calls while one is under way
   * share it. The page's messages are not emitted as `message` events.
   */
  loadOlder(options?: { limit?: number }): Promise<OlderPage>;
  /** `client.markRead(name, seq)`, by default up to the room's newest known seq. */
  markRead(seq?: number): void;
  /** The users present, a Set in name order, this user included; undefined before the relay's snapshot, while disconnected, and in a room too large to list. */
  readonly presence: ReadonlySet<string> | undefined;
  /** How many users are present, in any room size; undefined until the relay said, and while disconnected. */
  readonly occupancy: number | undefined;
  /** The other users typing now, sorted: each until `typingTimeout` after their last typing, their next message, or their leaving. */
  readonly typists: string[];
  /** `client.typing(name)`: call it on every keystroke; throttled to one `typing` frame per TYPING_INTERVAL. */
  typing(): void;
}

export interface PendingWrite {
  kind: 'send' | 'edit' | 'delete';
  room: string;
  clientId: string;
  id?: string;
  body?: JsonValue;
  /** 'queued' (waiting for a connection or a join), 'in_flight', or 'waiting' (retry after rate_limited, pending or db_unavailable). */
  state: 'queued' | 'in_flight' | 'waiting';
}

/**
 * Error codes: the relay's (docs/protocol.md, "Error codes") plus the
 * client's own: closed, left, token_expired, token_unavailable,
 * connect_failed, protocol.
 */
export declare class RoomcastError extends Error {
  readonly code: string;
  readonly ref?: { room?: string; client_id?: string; since_cursor?: string; route?: string };
}

export interface Backoff {
  /** Ceiling of the first reconnect delay, ms. Default 250. */
  base?: number;
  /** Largest delay ceiling, ms. Default 10000. */
  cap?: number;
  /** An open connection this old resets the attempt count, ms. Default 5000. */
  resetAfter?: number;
}

/** How a connection reaches the relay: 'auto' tries WebSocket and falls back to SSE. */
export type TransportOption = 'auto' | 'websocket' | 'sse';

/** The transport of a connection. */
export type TransportName = 'websocket' | 'sse';

/** When 'auto' gives up on WebSocket and tries SSE, at once: whichever bound is met first. */
export interface Fallback {
  /** WebSocket connections in a row that did not open. Default 2. */
  tries?: number;
  /** Ms spent waiting for them to open, backoff waits not counted; a WebSocket still opening then is given up. Default 5000. */
  after?: number;
}

export interface ConnectOptions {
  /** A JWT, or a function returning one (called before every connection, so it can refresh). */
  token?: string | (() => string | Promise<string>);
  /** Local mode (auth.mode none): the user id, sent as ?user=. */
  user?: string;
  /** Last cursor per route, saved from an earlier client's `cursors`, to recover notifications. */
  cursors?: Record<string, string>;
  /** A WebSocket constructor where there is no global one (for example `ws` on Node < 22). */
  WebSocket?: unknown;
  /**
   * 'auto' (the default): WebSocket, and SSE once WebSocket did not open
   * within `fallback`; after SSE opened on a client whose WebSocket never
   * did, SSE only; after a WebSocket opened once, WebSocket first again
   * after every drop. 'websocket' or 'sse': that one only.
   */
  transport?: TransportOption;
  /** When 'auto' falls back to SSE. Default `{tries: 2, after: 5000}`. */
  fallback?: Fallback;
  /** The SSE stream's URL (`GET`); by default the WebSocket URL with `/ws` replaced by `/sse`, over http(s). */
  sseUrl?: string;
  /** A fetch function for SSE where there is no global one. */
  fetch?: (input: string, init?: object) => Promise<unknown>;
  backoff?: Backoff;
  /** Delays for retrying rate-limited or unavailable writes and joins. Default base 250, cap 5000. */
  retry?: { base?: number; cap?: number };
  /** Default 10000 ms. */
  connectTimeout?: number;
  /** How often the client pings to detect a dead connection. Default 25000 ms. */
  heartbeatInterval?: number;
  /** How long it waits for any frame after its ping. Default 10000 ms. */
  heartbeatTimeout?: number;
  /** Oldest messages beyond this are forgotten. Default 5000. */
  maxMessagesPerRoom?: number;
  /** Writes larger than this are refused locally, as the relay would close the connection; over SSE, also the largest body of a POST of frames. Default 81920, the relay's default limits.max_frame_bytes. */
  maxFrameBytes?: number;
  /** How long another user shows as typing after their last typing frame, ms. Default 5000 (TYPING_TIMEOUT). */
  typingTimeout?: number;
}

export interface JoinOptions {
  /** Replay messages with seq above this. */
  since?: number;
  /** Fetch the last N messages (ignored when since is given). */
  history?: number;
}

export interface WriteOptions {
  /** The idempotency key; a fresh one by default. Reuse it to retry a write from an earlier session. */
  clientId?: string;
}

export interface Events {
  message: (message: Message, info: MessageInfo) => void;
  notification: (notification: Notification) => void;
  state: (change: StateChange) => void;
  error: (error: RoomcastError) => void;
  joined: (info: JoinedInfo) => void;
  left: (info: { room: string; reason?: 'revoked' }) => void;
  /** The answer to since_cursor after a reconnect; recovered:false means refetch the route's notifications. */
  recovery: (info: { route: string; recovered: boolean }) => void;
  /** The relay lost the route's history: refetch its notifications. */
  resync: (info: { route: string }) => void;
  ack: (ack: Ack) => void;
  /** The pending writes of a room changed. */
  pending: (info: { room: string }) => void;
  /** A room's newest seq or the user's read marker rose (a message, a joined, a read_marker from any device, a room list). */
  unread: (info: UnreadInfo) => void;
  /** A joined room's presence changed: a snapshot (after a join or a reconnect), a user arrived or left, a large room's count; users and count undefined when it is no longer known (left, disconnected). */
  presence: (info: PresenceInfo) => void;
  /** The set of other users typing in a room changed (someone started, stopped by timeout, sent a message or left). */
  typing: (info: TypingInfo) => void;
  /** A connection opened over another transport than the last one (the first connection included), just before `state` says `open`. */
  transport: (name: TransportName) => void;
}

export declare class RoomcastClient {
  constructor(url: string, options?: ConnectOptions);
  readonly state: ConnectionState;
  /** The transport of the connection open now, or of the last one; null before the first opened. */
  readonly transport: TransportName | null;
  readonly cursors: Record<string, string>;
  on<E extends keyof Events>(event: E, handler: Events[E]): () => void;
  once<E extends keyof Events>(event: E, handler: Events[E]): () => void;
  off<E extends keyof Events>(event: E, handler: Events[E]): void;
  whenOpen(): Promise<void>;
  setToken(token: ConnectOptions['token']): void;
  reconnectNow(): void;
  join(room: string, options?: JoinOptions): Promise<JoinedInfo>;
  leave(room: string): Promise<void>;
  /** The rooms joined or being joined (see listRooms for the user's rooms on the relay). */
  rooms(): string[];
  messages(room: string): Message[];
  /** The read side of a room, joined or not. */
  room(name: string): Room;
  /** Marks the room read up to seq on every device; at most one `read` per room every 250 ms. */
  markRead(room: string, seq: number): void;
  /** The user is typing in a joined room: call it on every keystroke; at most one `typing` per room every TYPING_INTERVAL, nothing while disconnected. */
  typing(room: string): void;
  /** The user's rooms with unread counts, newest activity first. */
  listRooms(): Promise<RoomSummary[]>;
  /** A page of the user's documents of a user route, newest first. */
  notificationsPage(options?: NotificationsPageOptions): Promise<NotificationsPage>;
  send(room: string, body: JsonValue, options?: WriteOptions): Promise<Ack>;
  edit(room: string, id: string, body: JsonValue, options?: WriteOptions): Promise<Ack>;
  delete(room: string, id: string, options?: WriteOptions): Promise<Ack>;
  pending(room?: string): PendingWrite[];
  close(): void;
}

export declare const SUBPROTOCOL: 'roomcast.v1';
export declare const DEFAULT_BACKOFF: Readonly<Required<Backoff>>;
/** When 'auto' falls back to SSE: `{tries: 2, after: 5000}`. */
export declare const DEFAULT_FALLBACK: Readonly<Required<Fallback>>;
/** At most one `typing` frame per room this often, ms (2000, the relay's default limits.typing_interval). */
export declare const TYPING_INTERVAL: number;
/** How long another user shows as typing after their last typing frame by default, ms (5000). */
export declare const TYPING_TIMEOUT: number;
export declare function backoffDelay(attempt: number, backoff?: { base: number; cap: number }, random?: () => number): number;
export declare function retryDelay(attempt: number, backoff?: { base: number; cap: number }, random?: () => number): number;
export declare function connect(url: string, options?: ConnectOptions): RoomcastClient;
