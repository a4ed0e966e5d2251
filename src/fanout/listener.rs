//! A connection as the fan-out sees it: who it is, which rooms it joined,
//! and where deliveries go. The session implements it; the fan-out needs
//! nothing else of a connection, so it knows no transport and no queue.

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

/// The rooms one connection joined, as a sorted vector: most connections
/// join a room or a few, and a hash set's smallest table holds four.
#[derive(Debug, Default)]
pub struct JoinedRooms(Mutex<Vec<Box<str>>>);

impl JoinedRooms {
    fn set(&self) -> std::sync::MutexGuard<'_, Vec<Box<str>>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn contains(&self, room: &str) -> bool {
        self.set().binary_search_by(|joined| (**joined).cmp(room)).is_ok()
    }

    pub fn len(&self) -> usize {
        self.set().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<String> {
        self.set().iter().map(|room| room.to_string()).collect()
    }

    /// Records a join; false if the room was joined already.
    pub(super) fn insert(&self, room: &str) -> bool {
        let mut set = self.set();
        let Err(at) = set.binary_search_by(|joined| (**joined).cmp(room)) else { return false };
        // One more slot at a time: a vector's first growth would make room for four.
        set.reserve_exact(1);
        set.insert(at, room.into());
        true
    }

    pub(super) fn remove(&self, room: &str) -> bool {
        let mut set = self.set();
        let Ok(at) = set.binary_search_by(|joined| (**joined).cmp(room)) else { return false };
        set.remove(at);
        if set.is_empty() {
            // An idle connection that left everything holds no vector.
            *set = Vec::new();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_rooms_are_a_set_whatever_the_order_and_hold_nothing_once_left() {
        let rooms = JoinedRooms::default();
        for room in ["m", "b", "z", "a"] {
            assert!(rooms.insert(room));
        }
        assert!(!rooms.insert("b"), "joined already");
        assert_eq!(rooms.all(), ["a", "b", "m", "z"]);
        assert!(rooms.contains("z") && rooms.contains("a") && !rooms.contains("c"));
        assert_eq!(rooms.set().capacity(), 4, "grown one slot at a time");
        assert!(!rooms.remove("c"));
        for room in ["z", "a", "m", "b"] {
            assert!(rooms.remove(room));
        }
        assert!(rooms.is_empty());
        assert_eq!(rooms.set().capacity(), 0, "a connection that left everything holds no vector");
    }
}
