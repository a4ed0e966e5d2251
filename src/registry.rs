//! In-memory fan-out by room and by user. The relay hands each event here once,
//! already serialized; every recipient gets a clone of the same frame (a
//! reference-count bump) through its bounded queue with `try_send`, so a slow
//! connection can only overflow its own queue, never delay the others.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warp::ws::Message;

/// Why a connection is being closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    SlowConsumer,
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
}

/// What a connection's writer task receives, in order.
#[derive(Debug)]
pub enum Outbound {
    /// A live room event from the relay.
    Room(Arc<RoomEvent>),
    /// A live user-channel frame from the relay.
    User(Message),
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
}

/// The fan-out side of one WebSocket connection.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub user: String,
    queue: mpsc::Sender<Outbound>,
    closing: CancellationToken,
    reason: OnceLock<CloseReason>,
}

impl Connection {
    pub fn new(id: u64, user: String, queue: mpsc::Sender<Outbound>) -> Arc<Connection> {
        Arc::new(Connection { id, user, queue, closing: CancellationToken::new(), reason: OnceLock::new() })
    }

    /// Queues a live frame without waiting; a full queue closes the connection.
    pub fn offer(&self, item: Outbound) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(item) {
            self.close(CloseReason::SlowConsumer);
        }
    }

    /// Queues a direct reply, waiting for room: back-pressure on the reader only.
    pub async fn reply(&self, item: Outbound) {
        // A closed queue means the writer is gone and the connection is ending.
        let _ = self.queue.send(item).await;
    }

    /// Asks the connection to close; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
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

/// Who listens to which room and which user, for one process.
#[derive(Default)]
pub struct Registry {
    rooms: RwLock<HashMap<String, Members>>,
    users: RwLock<HashMap<String, Members>>,
}

impl Registry {
    pub fn join_room(&self, room: &str, connection: &Arc<Connection>) {
        add(&self.rooms, room, connection);
    }

    pub fn leave_room(&self, room: &str, connection_id: u64) {
        remove(&self.rooms, room, connection_id);
    }

    pub fn add_user(&self, connection: &Arc<Connection>) {
        add(&self.users, &connection.user, connection);
    }

    pub fn remove_user(&self, connection: &Connection) {
        remove(&self.users, &connection.user, connection.id);
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
        let Some(members) = rooms.get(&event.room) else { return 0 };
        for connection in members.values() {
            connection.offer(Outbound::Room(event.clone()));
        }
        members.len()
    }

    /// Offers the frame to every open connection of the user; returns how many.
    pub fn publish_user(&self, user: &str, frame: &Message) -> usize {
        let users = self.users.read().expect("registry poisoned");
        let Some(members) = users.get(user) else { return 0 };
        for connection in members.values() {
            connection.offer(Outbound::User(frame.clone()));
        }
        members.len()
    }
}

fn add(map: &RwLock<HashMap<String, Members>>, key: &str, connection: &Arc<Connection>) {
    let mut map = map.write().expect("registry poisoned");
    map.entry(key.to_string()).or_default().insert(connection.id, connection.clone());
}

fn remove(map: &RwLock<HashMap<String, Members>>, key: &str, connection_id: u64) {
    let mut map = map.write().expect("registry poisoned");
    if let Some(members) = map.get_mut(key) {
        members.remove(&connection_id);
        if members.is_empty() {
            map.remove(key);
        }
    }
}
