//! In-memory fan-out by room and by user. The relay hands each event here once,
//! already serialized; every recipient gets a clone of the same frame (a
//! reference-count bump) through its bounded queue with `try_send`, so a slow
//! connection can only overflow its own queue, never delay the others.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::recovery::Position;

/// Why a connection is being closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    SlowConsumer,
    TokenExpired,
    IdleTimeout,
    GoingAway,
    TooBig,
    InvalidUtf8,
    ProtocolError,
}

impl CloseReason {
    pub fn code(self) -> u16 {
        match self {
            CloseReason::GoingAway => 1001,
            CloseReason::ProtocolError => 1002,
            CloseReason::InvalidUtf8 => 1007,
            CloseReason::TooBig => 1009,
            CloseReason::IdleTimeout => 4000,
            CloseReason::TokenExpired => 4001,
            CloseReason::SlowConsumer => 4008,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            CloseReason::GoingAway => "going away",
            CloseReason::ProtocolError => "protocol error",
            CloseReason::InvalidUtf8 => "invalid utf-8",
            CloseReason::TooBig => "frame too large",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::TokenExpired => "token expired",
            CloseReason::SlowConsumer => "slow consumer: send queue overflow",
        }
    }
}

/// Whether a room event adds a message or changes one already sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Insert,
    Update,
}

/// One change-stream event of a room, serialized once for all its recipients.
#[derive(Debug)]
pub struct RoomEvent {
    pub room: String,
    pub seq: i64,
    pub change: Change,
    pub frame: Message,
    /// When the change stream delivered it: the start of the relay's overhead.
    pub received: std::time::Instant,
}

/// One change-stream event of a user route, serialized once for all its recipients.
#[derive(Debug)]
pub struct UserEvent {
    pub route: String,
    pub position: Position,
    pub frame: Message,
    /// When the change stream delivered it: the start of the relay's overhead.
    pub received: std::time::Instant,
}

/// What a connection's writer task receives, in order.
#[derive(Debug)]
pub enum Outbound {
    /// A live room event from the relay.
    Room(Arc<RoomEvent>),
    /// A live user-route event from the relay.
    User(Arc<UserEvent>),
    /// A direct answer to this connection (ack, error, pong, left).
    Reply(Message),
    /// A join started: hold the room's live events until `JoinReady`.
    JoinStarted(String),
    /// The join's replay is read: send `joined`, the history, then the held events.
    JoinReady { room: String, frames: Vec<Message>, high_water: i64 },
    /// The join failed: drop what was held and send the error.
    JoinFailed { room: String, error: Message },
    /// The room was left: stop sending its events, then send `left`.
    Left { room: String, frame: Message },
    /// The right to the room was revoked: as `Left`, with reason `revoked`.
    Revoked(String),
    /// A notification recovery started: hold the route's live events.
    RecoveryStarted(String),
    /// The recovery is read: send its frames, then the held events above `high_water`.
    RecoveryReady { route: String, frames: Vec<Message>, high_water: Position },
}

impl Outbound {
    /// Bytes a live frame occupies in the queue; replies are not counted, they
    /// are bounded by the reader waiting for room instead.
    fn live_bytes(&self) -> usize {
        match self {
            Outbound::Room(event) => event.frame.len(),
            Outbound::User(event) => event.frame.len(),
            _ => 0,
        }
    }
}

/// The fan-out side of one WebSocket connection.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub user: String,
    /// The rooms joined; shared with the registry, which can revoke one.
    joined: Mutex<HashSet<String>>,
    queue: mpsc::Sender<Outbound>,
    queued_bytes: AtomicUsize,
    max_queued_bytes: usize,
    closing: CancellationToken,
    reason: OnceLock<CloseReason>,
}

impl Connection {
    pub fn new(id: u64, user: String, queue: mpsc::Sender<Outbound>, max_queued_bytes: usize) -> Arc<Connection> {
        Arc::new(Connection {
            id,
            user,
            joined: Mutex::new(HashSet::new()),
            queue,
            queued_bytes: AtomicUsize::new(0),
            max_queued_bytes,
            closing: CancellationToken::new(),
            reason: OnceLock::new(),
        })
    }

    /// Queues a live frame without waiting; a queue full in frames or bytes
    /// closes the connection instead (slow consumer).
    pub fn offer(&self, item: Outbound) {
        let bytes = item.live_bytes();
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        if queued > self.max_queued_bytes {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return self.close(CloseReason::SlowConsumer);
        }
        if let Err(error) = self.queue.try_send(item) {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            if let mpsc::error::TrySendError::Full(_) = error {
                self.close(CloseReason::SlowConsumer);
            }
        }
    }

    pub fn has_joined(&self, room: &str) -> bool {
        self.joined.lock().expect("rooms poisoned").contains(room)
    }

    pub fn joined_count(&self) -> usize {
        self.joined.lock().expect("rooms poisoned").len()
    }

    /// Records a join; false if the room was joined already.
    fn mark_joined(&self, room: &str) -> bool {
        self.joined.lock().expect("rooms poisoned").insert(room.to_string())
    }

    fn mark_left(&self, room: &str) -> bool {
        self.joined.lock().expect("rooms poisoned").remove(room)
    }

    fn joined_rooms(&self) -> Vec<String> {
        self.joined.lock().expect("rooms poisoned").iter().cloned().collect()
    }

    /// The writer took an item off the queue.
    pub fn dequeued(&self, item: &Outbound) {
        self.queued_bytes.fetch_sub(item.live_bytes(), Ordering::AcqRel);
    }

    /// Queues a direct reply, waiting for room: back-pressure on the reader only.
    pub async fn reply(&self, item: Outbound) {
        // A closed queue means the writer is gone and the connection is ending.
        let _ = self.queue.send(item).await;
    }

    /// Asks the connection to close; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        if self.reason.set(reason).is_ok() && reason == CloseReason::SlowConsumer {
            ::metrics::counter!(crate::metrics::SLOW_CONSUMER_DISCONNECTS).increment(1);
        }
        self.closing.cancel();
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }

    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }
}

type Members = HashMap<u64, Arc<Connection>>;

const NO_SEQ: i64 = i64::MIN;

/// The listeners of one room, and the highest seq relayed to them: after a
/// lost change-stream history, the room is re-filled from there.
#[derive(Default)]
struct Room {
    members: Members,
    relayed_seq: AtomicI64,
}

/// Who listens to which room and which user, for one process.
#[derive(Default)]
pub struct Registry {
    rooms: RwLock<HashMap<String, Room>>,
    users: RwLock<HashMap<String, Members>>,
}

impl Registry {
    /// Subscribes the connection to the room; false if it already was.
    pub fn join_room(&self, room: &str, connection: &Arc<Connection>) -> bool {
        if !connection.mark_joined(room) {
            return false;
        }
        let mut rooms = self.rooms.write().expect("registry poisoned");
        let entry = rooms
            .entry(room.to_string())
            .or_insert_with(|| Room { members: Members::new(), relayed_seq: AtomicI64::new(NO_SEQ) });
        entry.members.insert(connection.id, connection.clone());
        ::metrics::gauge!(crate::metrics::ROOMS_JOINED).increment(1.0);
        true
    }

    /// Unsubscribes the connection; false if it was not in the room.
    pub fn leave_room(&self, room: &str, connection: &Connection) -> bool {
        if !connection.mark_left(room) {
            return false;
        }
        let mut rooms = self.rooms.write().expect("registry poisoned");
        if let Some(entry) = rooms.get_mut(room) {
            entry.members.remove(&connection.id);
            if entry.members.is_empty() {
                rooms.remove(room);
            }
        }
        ::metrics::gauge!(crate::metrics::ROOMS_JOINED).decrement(1.0);
        true
    }

    /// Leaves every room and the user channel: the connection is gone.
    pub fn disconnect(&self, connection: &Connection) {
        for room in connection.joined_rooms() {
            self.leave_room(&room, connection);
        }
        self.remove_user(connection);
    }

    /// Ends every subscription of `user` to `room`; each connection is told `left` (revoked).
    pub fn revoke(&self, room: &str, user: &str) -> usize {
        let revoked: Vec<Arc<Connection>> = match self.rooms.read().expect("registry poisoned").get(room) {
            Some(entry) => entry.members.values().filter(|c| c.user == user).cloned().collect(),
            None => Vec::new(),
        };
        for connection in &revoked {
            if self.leave_room(room, connection) {
                connection.offer(Outbound::Revoked(room.to_string()));
            }
        }
        revoked.len()
    }

    /// Whether any connection of `user` is in `room`.
    pub fn is_joined(&self, room: &str, user: &str) -> bool {
        let rooms = self.rooms.read().expect("registry poisoned");
        rooms.get(room).is_some_and(|entry| entry.members.values().any(|c| c.user == user))
    }

    pub fn user_connection_count(&self, user: &str) -> usize {
        self.users.read().expect("registry poisoned").get(user).map_or(0, HashMap::len)
    }

    /// A join's replay reached `seq`: the room is known to be delivered up to
    /// there if nothing was relayed to it yet.
    pub fn joined_at(&self, room: &str, seq: i64) {
        if let Some(entry) = self.rooms.read().expect("registry poisoned").get(room) {
            let _ = entry.relayed_seq.compare_exchange(NO_SEQ, seq, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Rooms with listeners and the seq after which they may have missed messages.
    pub fn rooms_to_refill(&self) -> Vec<(String, i64)> {
        let rooms = self.rooms.read().expect("registry poisoned");
        rooms
            .iter()
            .map(|(room, entry)| (room.clone(), entry.relayed_seq.load(Ordering::Acquire)))
            .filter(|(_, seq)| *seq != NO_SEQ)
            .collect()
    }

    pub fn add_user(&self, connection: &Arc<Connection>) {
        let mut users = self.users.write().expect("registry poisoned");
        users.entry(connection.user.clone()).or_default().insert(connection.id, connection.clone());
    }

    fn remove_user(&self, connection: &Connection) {
        let mut users = self.users.write().expect("registry poisoned");
        if let Some(members) = users.get_mut(&connection.user) {
            members.remove(&connection.id);
            if members.is_empty() {
                users.remove(&connection.user);
            }
        }
    }

    pub fn connection_count(&self) -> usize {
        self.users.read().expect("registry poisoned").values().map(HashMap::len).sum()
    }

    pub fn has_room(&self, room: &str) -> bool {
        self.rooms.read().expect("registry poisoned").contains_key(room)
    }

    pub fn has_user(&self, user: &str) -> bool {
        self.users.read().expect("registry poisoned").contains_key(user)
    }

    /// Offers the event to every subscriber of its room; returns how many.
    pub fn publish_room(&self, event: Arc<RoomEvent>) -> usize {
        let rooms = self.rooms.read().expect("registry poisoned");
        let Some(entry) = rooms.get(&event.room) else { return 0 };
        if event.change == Change::Insert {
            entry.relayed_seq.fetch_max(event.seq, Ordering::AcqRel);
        }
        for connection in entry.members.values() {
            connection.offer(Outbound::Room(event.clone()));
        }
        ::metrics::counter!(crate::metrics::FANOUT_FRAMES).increment(entry.members.len() as u64);
        entry.members.len()
    }

    /// Offers the event to every open connection of the user; returns how many.
    pub fn publish_user(&self, user: &str, event: Arc<UserEvent>) -> usize {
        let users = self.users.read().expect("registry poisoned");
        let Some(members) = users.get(user) else { return 0 };
        for connection in members.values() {
            connection.offer(Outbound::User(event.clone()));
        }
        ::metrics::counter!(crate::metrics::FANOUT_FRAMES).increment(members.len() as u64);
        members.len()
    }

    /// Offers a frame to every open connection (a `resync`).
    pub fn publish_everyone(&self, frame: &Message) {
        for members in self.users.read().expect("registry poisoned").values() {
            for connection in members.values() {
                if let Err(mpsc::error::TrySendError::Full(_)) =
                    connection.queue.try_send(Outbound::Reply(frame.clone()))
                {
                    connection.close(CloseReason::SlowConsumer);
                }
            }
        }
    }
}
