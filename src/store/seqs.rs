//! Per-room writer state inside one process: the queue of sends waiting for
//! the room's next group commit, a lock that lets one group at a time be
//! written (so this process never races itself on the unique index), and a
//! hint of the room's last committed seq. The hint is only a guess; the
//! unique (room, seq) index is what decides.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::sends::QueuedSend;

/// Rooms kept before idle entries are dropped; a dropped hint costs one indexed read.
const PRUNE_ABOVE: usize = 10_000;
const UNKNOWN: i64 = -1;

pub struct RoomWriter {
    pub lock: tokio::sync::Mutex<()>,
    queued: Mutex<VecDeque<QueuedSend>>,
    last_seq: AtomicI64,
}

impl RoomWriter {
    fn new() -> Self {
        RoomWriter {
            lock: tokio::sync::Mutex::new(()),
            queued: Mutex::new(VecDeque::new()),
            last_seq: AtomicI64::new(UNKNOWN),
        }
    }

    pub fn enqueue(&self, send: QueuedSend) {
        self.queued.lock().expect("send queue poisoned").push_back(send);
    }

    /// Up to `max` queued sends, oldest first.
    pub fn take_queued(&self, max: usize) -> Vec<QueuedSend> {
        let mut queued = self.queued.lock().expect("send queue poisoned");
        let count = queued.len().min(max);
        queued.drain(..count).collect()
    }

    /// The last seq known to be committed, if any is known.
    pub fn last_seq(&self) -> Option<i64> {
        Some(self.last_seq.load(Ordering::Acquire)).filter(|s| *s != UNKNOWN)
    }

    pub fn raise(&self, seq: i64) {
        self.last_seq.fetch_max(seq, Ordering::AcqRel);
    }

    /// Replaces the hint with an authoritative reading of the room's maximum.
    pub fn reset(&self, seq: i64) {
        self.last_seq.store(seq, Ordering::Release);
    }
}

#[derive(Clone, Default)]
pub struct SeqWriters {
    rooms: Arc<Mutex<HashMap<String, Arc<RoomWriter>>>>,
}

impl SeqWriters {
    pub fn writer(&self, room: &str) -> Arc<RoomWriter> {
        let mut rooms = self.rooms.lock().expect("seq writers poisoned");
        if let Some(writer) = rooms.get(room) {
            return writer.clone();
        }
        if rooms.len() >= PRUNE_ABOVE {
            rooms.retain(|_, w| Arc::strong_count(w) > 1);
        }
        let writer = Arc::new(RoomWriter::new());
        rooms.insert(room.to_string(), writer.clone());
        writer
    }

    /// Raises the hint of a room this process writes to; other rooms are ignored
    /// so the map grows with rooms written here, not with all rooms.
    pub fn observe(&self, room: &str, seq: i64) {
        let rooms = self.rooms.lock().expect("seq writers poisoned");
        if let Some(writer) = rooms.get(room) {
            writer.raise(seq);
        }
    }
}
