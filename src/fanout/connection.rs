//! The fan-out side of one WebSocket connection: its bounded queue to the
//! writer task, the byte budget everything it holds is charged to (queued
//! frames, events held during a join, replays, pending sends' bodies), the
//! rooms it joined and the token that closes it. Relayed frames are offered
//! without waiting, and a connection that cannot take one is closed as a
//! slow consumer. The reader's own replies wait for room instead, which
//! slows only this connection; a reader that waits longer than the
//! connection's patience closes it the same way.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
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
    /// Bytes the item's frames occupy, charged to the connection's budget
    /// while it is queued, held or being written.
    pub fn bytes(&self) -> usize {
        match self {
            Outbound::Room(event) => event.frame.len(),
            Outbound::User(event) => event.frame.len(),
            Outbound::Notice(frame) | Outbound::Reply(frame) => frame.len(),
            Outbound::JoinFailed { error: frame, .. } | Outbound::Left { frame, .. } => frame.len(),
            Outbound::JoinReady { frames, .. } | Outbound::RecoveryReady { frames, .. } => {
                frames.iter().map(Frame::len).sum()
            }
            Outbound::JoinStarted(_) | Outbound::Revoked(_) | Outbound::RecoveryStarted(_) => 0,
        }
    }
}

/// How often a reader waiting for room looks again even if its own writer
/// released nothing: room may come back to the shared pool from others.
const RECHECK: Duration = Duration::from_millis(100);

/// One WebSocket connection, as the fan-out and its own session see it.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub user: String,
    /// The rooms joined; shared with the registry, which can revoke one.
    joined: Mutex<HashSet<String>>,
    /// Rooms whose join replay is queued and not yet taken by the writer.
    replays_queued: Mutex<HashSet<String>>,
    queue: mpsc::Sender<Outbound>,
    budget: Budget,
    /// Signalled when the writer gave bytes back, for a reader waiting for room.
    drained: Notify,
    /// How long the reader may wait for room before the connection counts as a slow consumer.
    patience: Duration,
    closing: CancellationToken,
    reason: OnceLock<CloseReason>,
}

/// Bytes charged to a connection's budget and not yet handed to its queue;
/// dropping it gives them back.
#[derive(Debug)]
pub struct Reservation {
    connection: Arc<Connection>,
    bytes: usize,
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds another reservation of the same connection to this one.
    pub fn absorb(&mut self, mut other: Reservation) {
        debug_assert!(Arc::ptr_eq(&self.connection, &other.connection));
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// Takes `bytes` more if they fit now, without waiting.
    pub fn try_grow(&mut self, bytes: usize) -> bool {
        let grown = self.connection.budget.try_charge(bytes);
        if grown {
            self.bytes += bytes;
        }
        grown
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.connection.release(self.bytes);
    }
}

impl Connection {
    pub fn new(
        id: u64,
        user: String,
        queue: mpsc::Sender<Outbound>,
        budget: Budget,
        patience: Duration,
    ) -> Arc<Connection> {
        Arc::new(Connection {
            id,
            user,
            joined: Mutex::new(HashSet::new()),
            replays_queued: Mutex::new(HashSet::new()),
            queue,
            budget,
            drained: Notify::new(),
            patience,
            closing: CancellationToken::new(),
            reason: OnceLock::new(),
        })
    }

    /// Queues a relayed item without waiting; a queue full in frames, or a
    /// budget that cannot take its bytes, closes the connection instead
    /// (slow consumer).
    pub fn offer(&self, item: Outbound) {
        let bytes = item.bytes();
        if !self.budget.try_charge(bytes) {
            return self.close(CloseReason::SlowConsumer);
        }
        if let Err(error) = self.queue.try_send(item) {
            self.budget.release(bytes);
            if let mpsc::error::TrySendError::Full(_) = error {
                self.close(CloseReason::SlowConsumer);
            }
        }
    }

    /// The writer wrote or dropped items holding `bytes`.
    pub fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.budget.release(bytes);
            self.drained.notify_one();
        }
    }

    /// Bytes this connection holds now.
    pub fn held_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Charges nothing yet: a reservation to grow with `try_grow`.
    pub fn empty_reservation(self: &Arc<Self>) -> Reservation {
        Reservation { connection: self.clone(), bytes: 0 }
    }

    /// Charges `bytes`, waiting while the writer drains the queue; `None`
    /// when the connection closes first, or after waiting longer than its
    /// patience, which closes it as a slow consumer.
    pub async fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        if !self.budget.could_fit(bytes) {
            self.close(CloseReason::SlowConsumer);
            return None;
        }
        let deadline = Instant::now() + self.patience;
        loop {
            let drained = self.drained.notified();
            if self.budget.try_charge(bytes) {
                return Some(Reservation { connection: self.clone(), bytes });
            }
            tokio::select! {
                _ = drained => {}
                _ = tokio::time::sleep(RECHECK) => {}
                _ = self.closing.cancelled() => return None,
                _ = tokio::time::sleep_until(deadline) => {
                    self.close(CloseReason::SlowConsumer);
                    return None;
                }
            }
        }
    }

    /// Queues an item whose bytes `reservation` already holds, waiting for a
    /// place in the queue.
    pub async fn queue_reserved(&self, item: Outbound, mut reservation: Reservation) {
        debug_assert_eq!(item.bytes(), reservation.bytes, "a reservation pays for exactly its item");
        let bytes = item.bytes();
        if let Outbound::JoinReady { room, .. } = &item {
            self.replays_queued.lock().expect("replays poisoned").insert(room.clone());
        }
        // The queue item owns its bytes from here, and the writer releases
        // them; the reservation gives back only what it held beyond them.
        reservation.bytes = reservation.bytes.saturating_sub(bytes);
        drop(reservation);
        if self.queue.send(item).await.is_err() {
            // The writer is gone and the connection is ending.
            self.release(bytes);
        }
    }

    /// Queues a direct reply, waiting for room: back-pressure on the reader only.
    pub async fn reply(self: &Arc<Self>, item: Outbound) {
        if let Some(reservation) = self.reserve(item.bytes()).await {
            self.queue_reserved(item, reservation).await;
        }
    }

    pub fn has_joined(&self, room: &str) -> bool {
        self.joined.lock().expect("rooms poisoned").contains(room)
    }

    pub fn joined_count(&self) -> usize {
        self.joined.lock().expect("rooms poisoned").len()
    }

    /// Whether a replay of `room` is still queued for this connection.
    pub fn replay_queued(&self, room: &str) -> bool {
        self.replays_queued.lock().expect("replays poisoned").contains(room)
    }

    /// The writer took the item off the queue: a replay it carried is no
    /// longer queued.
    pub fn taken(&self, item: &Outbound) {
        if let Outbound::JoinReady { room, .. } = item {
            self.replays_queued.lock().expect("replays poisoned").remove(room);
        }
    }

    /// Records a join; false if the room was joined already.
    pub(super) fn mark_joined(&self, room: &str) -> bool {
        self.joined.lock().expect("rooms poisoned").insert(room.to_string())
    }

    pub(super) fn mark_left(&self, room: &str) -> bool {
        self.joined.lock().expect("rooms poisoned").remove(room)
    }

    pub fn joined_rooms(&self) -> Vec<String> {
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
