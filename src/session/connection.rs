//! One connection as its session and the fan-out share it: the bounded
//! queue to its writer, the byte budget everything it holds is charged to
//! (queued frames and their places in the queue, events held during a join,
//! replays, pending sends' bodies, a client frame half read), the rooms it
//! joined, and its end. Deliveries are offered without waiting, and a
//! connection that cannot take one is closed as a slow consumer. The
//! session's own replies wait for room instead, which slows only this
//! connection; a session that waits longer than the connection's patience
//! closes it the same way.
//!
//! The queue is a plain deque under a lock that the writer empties whole:
//! an idle connection's queue holds no memory, and a writer takes every
//! frame that arrived while it was writing in one step.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::outbound::{Outbound, QUEUED_ITEM_BYTES};
use crate::fanout::{Budget, Delivery, JoinedRooms, Listener};
use crate::prometheus;
use crate::protocol::CloseReason;

/// How often a session waiting for room looks again even if its own writer
/// released nothing: room may come back to the shared pool from others.
const RECHECK: Duration = Duration::from_millis(100);

/// The items waiting for the writer.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Outbound>,
    /// Set when the writer stopped: nothing more is queued.
    closed: bool,
    /// Rooms whose join replay is queued and not yet taken by the writer.
    replays: Vec<String>,
}

/// One connection, as the fan-out and its own session see it.
#[derive(Debug)]
pub struct Connection {
    pub id: u64,
    pub user: String,
    /// The rooms joined; kept by the registry, which can revoke one.
    rooms: JoinedRooms,
    queue: Mutex<Queue>,
    /// Most items the queue holds at once (`limits.send_queue_frames`).
    max_items: usize,
    budget: Budget,
    /// Wakes the writer when the queue stops being empty, or the connection ends.
    ready: Notify,
    /// Signalled when the writer gave bytes back, for a session waiting for room.
    drained: Notify,
    /// How long the client may stay silent (`server.idle_timeout`); also
    /// how long the session may wait for room before the connection counts
    /// as a slow consumer.
    patience: Duration,
    /// Between keep-alives (`server.ping_interval`).
    ping_interval: Duration,
    /// When the connection's token expires.
    expires: Option<Instant>,
    /// When the next keep-alive is due (ms after `opened`), and whether one is.
    next_ping_ms: AtomicU64,
    ping_due: AtomicBool,
    /// Set once the connection is ending, whoever ended it.
    ending: AtomicBool,
    /// Set when the replica shuts down: the session answers what it read, then closes.
    going_away: AtomicBool,
    /// Wakes whoever waits for either (`stopped`).
    stopped: Notify,
    reason: OnceLock<CloseReason>,
    /// When the connection opened, and how long after that the client was
    /// last heard from (ms): what its idle timeout counts from.
    opened: Instant,
    heard_ms: AtomicU64,
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

    /// A reservation of the same connection charging nothing yet: what a
    /// transport charges bytes it takes in for the connection with.
    pub fn empty_like(&self) -> Reservation {
        Reservation { connection: self.connection.clone(), bytes: 0 }
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

    /// Takes `bytes` more, waiting for room as `Connection::reserve` does;
    /// false when the connection ends first.
    pub async fn grow(&mut self, bytes: usize) -> bool {
        if self.try_grow(bytes) {
            return true;
        }
        match self.connection.reserve(bytes).await {
            Some(more) => {
                self.absorb(more);
                true
            }
            None => false,
        }
    }

    /// Gives back all but `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.connection.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.connection.release(self.bytes);
    }
}

/// How a connection is kept alive, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// How long the client may stay silent (`server.idle_timeout`).
    pub idle_timeout: Duration,
    /// Between keep-alives (`server.ping_interval`).
    pub ping_interval: Duration,
    /// When the connection's token expires.
    pub expires: Option<Instant>,
}

impl Connection {
    pub fn new(id: u64, user: String, max_items: usize, budget: Budget, liveness: Liveness) -> Arc<Connection> {
        Arc::new(Connection {
            id,
            user,
            rooms: JoinedRooms::default(),
            queue: Mutex::new(Queue::default()),
            max_items,
            budget,
            ready: Notify::new(),
            drained: Notify::new(),
            patience: liveness.idle_timeout,
            ping_interval: liveness.ping_interval,
            expires: liveness.expires,
            next_ping_ms: AtomicU64::new(liveness.ping_interval.as_millis() as u64),
            ping_due: AtomicBool::new(false),
            ending: AtomicBool::new(false),
            going_away: AtomicBool::new(false),
            stopped: Notify::new(),
            reason: OnceLock::new(),
            opened: Instant::now(),
            heard_ms: AtomicU64::new(0),
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues an item without waiting; a queue full in items, or a budget
    /// that cannot take its bytes, closes the connection instead (slow
    /// consumer).
    pub fn offer(&self, item: Outbound) {
        let bytes = item.bytes();
        if !self.budget.try_charge(bytes) {
            return self.close(CloseReason::SlowConsumer);
        }
        let mut queue = self.queue();
        if queue.closed || queue.items.len() >= self.max_items {
            let full = !queue.closed;
            drop(queue);
            self.budget.release(bytes);
            if full {
                self.close(CloseReason::SlowConsumer);
            }
            return;
        }
        let wake = queue.items.is_empty();
        queue.items.push_back(item);
        drop(queue);
        // The writer empties the queue whole: only the first item of a batch needs to wake it.
        if wake {
            self.ready.notify_one();
        }
    }

    /// Waits until the queue holds something, or the connection ends (or
    /// either happened since the writer last looked).
    /// (The signal itself rather than an `async fn` around it: this is what
    /// every idle writer waits on, and a wrapper's state would sit in each.)
    pub fn ready(&self) -> tokio::sync::futures::Notified<'_> {
        self.ready.notified()
    }

    /// Every queued item, oldest first; their places are given back. The
    /// queue is left with no memory: an idle connection's queue holds none.
    pub fn take_queued(&self) -> VecDeque<Outbound> {
        let mut queue = self.queue();
        let items = std::mem::take(&mut queue.items);
        if !queue.replays.is_empty() {
            for item in &items {
                if let Outbound::JoinReady { room, .. } = item {
                    if let Some(at) = queue.replays.iter().position(|queued| queued == room) {
                        queue.replays.swap_remove(at);
                    }
                }
            }
            if queue.replays.is_empty() {
                queue.replays = Vec::new();
            }
        }
        drop(queue);
        self.release(items.len() * QUEUED_ITEM_BYTES);
        items
    }

    /// The writer stopped: nothing more is queued, and what was is given back.
    pub fn close_queue(&self) {
        let mut queue = self.queue();
        queue.closed = true;
        let left = std::mem::take(&mut queue.items);
        drop(queue);
        self.release(left.iter().map(Outbound::bytes).sum());
    }

    /// The writer wrote or dropped items holding `bytes`.
    pub fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.budget.release(bytes);
            self.drained.notify_one();
        }
    }

    /// Charges nothing yet: a reservation to grow with `try_grow`.
    pub fn empty_reservation(self: &Arc<Self>) -> Reservation {
        Reservation { connection: self.clone(), bytes: 0 }
    }

    /// Charges `bytes`, waiting while the writer drains the queue; `None`
    /// when the connection ends first, or after waiting longer than its
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
                _ = self.ending() => return None,
                _ = tokio::time::sleep_until(deadline) => {
                    self.close(CloseReason::SlowConsumer);
                    return None;
                }
            }
        }
    }

    /// Queues an item whose frames `reservation` already holds, waiting for
    /// a place in the queue (and for the place's own charge).
    pub async fn queue_reserved(&self, item: Outbound, mut reservation: Reservation) {
        debug_assert_eq!(item.frame_bytes(), reservation.bytes, "a reservation pays for exactly its frames");
        let bytes = item.bytes();
        if !reservation.grow(bytes - reservation.bytes).await {
            return;
        }
        // The queue item owns its bytes from here, and the writer releases
        // them; the reservation gives back only what it held beyond them.
        reservation.bytes = reservation.bytes.saturating_sub(bytes);
        drop(reservation);
        let mut item = Some(item);
        loop {
            let drained = self.drained.notified();
            {
                let mut queue = self.queue();
                if queue.closed {
                    break;
                }
                if queue.items.len() < self.max_items {
                    let item = item.take().expect("queued once");
                    if let Outbound::JoinReady { room, .. } = &item {
                        queue.replays.push(room.clone());
                    }
                    let wake = queue.items.is_empty();
                    queue.items.push_back(item);
                    drop(queue);
                    if wake {
                        self.ready.notify_one();
                    }
                    return;
                }
            }
            tokio::select! {
                _ = drained => {}
                _ = self.ending() => break,
            }
        }
        // The writer stopped, or is stopping: the connection is ending.
        self.release(bytes);
    }

    /// Queues a direct reply, waiting for room: back-pressure on the session only.
    pub async fn reply(self: &Arc<Self>, item: Outbound) {
        if let Some(reservation) = self.reserve(item.frame_bytes()).await {
            self.queue_reserved(item, reservation).await;
        }
    }

    pub fn has_joined(&self, room: &str) -> bool {
        self.rooms.contains(room)
    }

    pub fn joined_count(&self) -> usize {
        self.rooms.len()
    }

    pub fn joined_rooms(&self) -> Vec<String> {
        self.rooms.all()
    }

    /// Whether a replay of `room` is still queued for this connection.
    pub fn replay_queued(&self, room: &str) -> bool {
        self.queue().replays.iter().any(|queued| queued == room)
    }

    /// Asks the connection to close; the first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        if self.reason.set(reason).is_ok() && reason == CloseReason::SlowConsumer {
            ::metrics::counter!(prometheus::SLOW_CONSUMER_DISCONNECTS).increment(1);
        }
        self.end();
    }

    /// Ends the connection with no reason of its own: the client closed it.
    pub fn end(&self) {
        if !self.ending.swap(true, Ordering::AcqRel) {
            self.stopped.notify_waiters();
            // The writer waits for its queue; it looks at `is_ending` when woken.
            self.ready.notify_one();
        }
    }

    pub fn is_ending(&self) -> bool {
        self.ending.load(Ordering::Acquire)
    }

    /// The replica is shutting down: the session answers the sends it read,
    /// then closes with 1001.
    pub fn go_away(&self) {
        if !self.going_away.swap(true, Ordering::AcqRel) {
            self.stopped.notify_waiters();
        }
    }

    pub fn is_going_away(&self) -> bool {
        self.going_away.load(Ordering::Acquire)
    }

    /// Whether the connection is ending, or asked to go away.
    pub fn is_stopping(&self) -> bool {
        self.is_ending() || self.is_going_away()
    }

    /// Signalled when the connection starts ending, or is asked to go
    /// away; enable it before looking at `is_stopping`, so a change in
    /// between is not missed.
    pub fn stop_signal(&self) -> tokio::sync::futures::Notified<'_> {
        self.stopped.notified()
    }

    /// Completes once the connection is ending.
    pub async fn ending(&self) {
        self.wait_for(Connection::is_ending).await
    }

    async fn wait_for(&self, done: impl Fn(&Connection) -> bool) {
        loop {
            let notified = self.stopped.notified();
            tokio::pin!(notified);
            // Registered before looking, so a change in between is not missed.
            notified.as_mut().enable();
            if done(self) {
                return;
            }
            notified.await
        }
    }

    /// The client was heard from: its idle timeout starts again.
    pub fn heard(&self) {
        let since = self.opened.elapsed().as_millis() as u64;
        self.heard_ms.store(since, Ordering::Relaxed);
    }

    /// When the client was last heard from.
    pub fn last_heard(&self) -> Instant {
        self.opened + Duration::from_millis(self.heard_ms.load(Ordering::Relaxed))
    }

    /// Whether a keep-alive is due; asking takes it.
    pub fn take_ping(&self) -> bool {
        self.ping_due.load(Ordering::Relaxed) && self.ping_due.swap(false, Ordering::AcqRel)
    }

    /// The replica's keep-alive clock ticked: a connection whose token
    /// expired, or whose client was silent for the idle timeout, is
    /// closed; one due for a keep-alive has its writer woken for it.
    pub fn tick(&self, now: Instant) {
        if self.is_ending() {
            return;
        }
        if self.expires.is_some_and(|at| at <= now) {
            return self.close(CloseReason::TokenExpired);
        }
        if self.last_heard() + self.patience <= now {
            return self.close(CloseReason::IdleTimeout);
        }
        let since = now.saturating_duration_since(self.opened).as_millis() as u64;
        if since >= self.next_ping_ms.load(Ordering::Relaxed) {
            self.next_ping_ms.store(since + self.ping_interval.as_millis() as u64, Ordering::Relaxed);
            self.ping_due.store(true, Ordering::Release);
            self.ready.notify_one();
        }
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }

    /// Bytes this connection holds now.
    pub fn held_bytes(&self) -> usize {
        self.budget.used()
    }
}

impl Listener for Connection {
    fn id(&self) -> u64 {
        self.id
    }

    fn user(&self) -> &str {
        &self.user
    }

    fn deliver(&self, delivery: Delivery) {
        self.offer(Outbound::from(delivery));
    }

    fn held_bytes(&self) -> usize {
        self.budget.used()
    }

    fn rooms(&self) -> &JoinedRooms {
        &self.rooms
    }

    fn go_away(&self) {
        Connection::go_away(self)
    }

    fn tick(&self, now: Instant) {
        Connection::tick(self, now)
    }
}
