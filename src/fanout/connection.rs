//! The fan-out side of one WebSocket connection: its bounded queue to the
//! writer task, the bytes that queue holds, the rooms it joined and the token
//! that closes it. Live events are offered without waiting; direct replies
//! wait for room, which slows only this connection's own reader.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::events::{RoomEvent, UserEvent};
use crate::prometheus;
use crate::protocol::{CloseReason, Frame};
use crate::recovery::Position;

/// What a connection's writer task receives, in order.
#[derive(Debug)]
pub enum Outbound {
    /// A live room event from the relay.
    Room(Arc<RoomEvent>),
    /// A live user-route event from the relay.
    User(Arc<UserEvent>),
    /// A frame the relay sends to every connection (a `resync`).
    Notice(Frame),
    /// A direct answer to this connection (ack, error, pong, left).
    Reply(Frame),
    /// A join started: hold the room's live events until `JoinReady`.
    JoinStarted(String),
    /// The join's replay is read: send `joined`, the history, then the held events.
    JoinReady { room: String, frames: Vec<Frame>, high_water: i64 },
    /// The join failed: drop what was held and send the error.
    JoinFailed { room: String, error: Frame },
    /// The room was left: stop sending its events, then send `left`.
    Left { room: String, frame: Frame },
    /// The right to the room was revoked: as `Left`, with reason `revoked`.
    Revoked(String),
    /// A notification recovery started: hold the route's live events.
    RecoveryStarted(String),
    /// The recovery is read: send its frames, then the held events above `high_water`.
    RecoveryReady { route: String, frames: Vec<Frame>, high_water: Position },
}

impl Outbound {
    /// Bytes a relayed frame occupies in the queue; replies are not counted,
    /// they are bounded by the reader waiting for room instead.
    fn live_bytes(&self) -> usize {
        match self {
            Outbound::Room(event) => event.frame.len(),
            Outbound::User(event) => event.frame.len(),
            Outbound::Notice(frame) => frame.len(),
            _ => 0,
        }
    }
}

/// One WebSocket connection, as the fan-out and its own session see it.
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

    /// Queues a relayed frame without waiting; a queue full in frames or
    /// bytes closes the connection instead (slow consumer).
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

    /// The writer took an item off the queue.
    pub fn dequeued(&self, item: &Outbound) {
        self.queued_bytes.fetch_sub(item.live_bytes(), Ordering::AcqRel);
    }

    /// Queues a direct reply, waiting for room: back-pressure on the reader only.
    pub async fn reply(&self, item: Outbound) {
        // A closed queue means the writer is gone and the connection is ending.
        let _ = self.queue.send(item).await;
    }

    pub fn has_joined(&self, room: &str) -> bool {
        self.joined.lock().expect("rooms poisoned").contains(room)
    }

    pub fn joined_count(&self) -> usize {
        self.joined.lock().expect("rooms poisoned").len()
    }

    /// Records a join; false if the room was joined already.
    pub(super) fn mark_joined(&self, room: &str) -> bool {
        self.joined.lock().expect("rooms poisoned").insert(room.to_string())
    }

    pub(super) fn mark_left(&self, room: &str) -> bool {
        self.joined.lock().expect("rooms poisoned").remove(room)
    }

    pub(super) fn joined_rooms(&self) -> Vec<String> {
        self.joined.lock().expect("rooms poisoned").iter().cloned().collect()
    }

    /// Asks the connection to close; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        if self.reason.set(reason).is_ok() && reason == CloseReason::SlowConsumer {
            ::metrics::counter!(prometheus::SLOW_CONSUMER_DISCONNECTS).increment(1);
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
