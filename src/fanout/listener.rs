//! A connection as the fan-out sees it: who it is, which rooms it joined,
//! and where deliveries go. The session implements it; the fan-out needs
//! nothing else of a connection, so it knows no transport and no queue.

use foldhash::HashSet;
use std::sync::Mutex;

use super::events::Delivery;

/// One connection that can be handed deliveries.
pub trait Listener: Send + Sync + std::fmt::Debug {
    fn id(&self) -> u64;
    fn user(&self) -> &str;
    /// Takes a delivery without waiting; one it cannot hold closes it (slow consumer).
    fn deliver(&self, delivery: Delivery);
    /// Bytes the connection holds now (`roomcast_buffered_bytes`).
    fn held_bytes(&self) -> usize;
    /// The rooms it joined, kept by the registry.
    fn rooms(&self) -> &JoinedRooms;
    /// The replica shuts down: finish what was asked, then close.
    fn go_away(&self);
    /// The replica's keep-alive clock ticked (see `session::keepalive`).
    fn tick(&self, now: tokio::time::Instant);
}

/// The rooms one connection joined.
#[derive(Debug, Default)]
pub struct JoinedRooms(Mutex<HashSet<String>>);

impl JoinedRooms {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn contains(&self, room: &str) -> bool {
        self.set().contains(room)
    }

    pub fn len(&self) -> usize {
        self.set().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<String> {
        self.set().iter().cloned().collect()
    }

    /// Records a join; false if the room was joined already.
    pub(super) fn insert(&self, room: &str) -> bool {
        self.set().insert(room.to_string())
    }

    pub(super) fn remove(&self, room: &str) -> bool {
        let mut set = self.set();
        let removed = set.remove(room);
        if set.is_empty() {
            // An idle connection that left everything holds no table.
            set.shrink_to_fit();
        }
        removed
    }
}
