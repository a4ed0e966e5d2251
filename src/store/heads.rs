//! The newest seq the change stream showed for each room lately. It is a
//! lower bound of the room's newest committed seq (a commit not streamed yet
//! may be above it), so a read of a room's newest messages can be a short
//! range of seqs above it instead of the whole room: MongoDB reads either
//! in a few keys, but both builds of the development database size up the
//! whole range a filter allows before they read it (docs/design.md, "Query
//! bounds"). Only a hint: a room not here, or a bound gone stale, costs
//! such a read more time, never its correctness.

use foldhash::HashMap;
use std::sync::Mutex;

/// Rooms remembered at most: about 1 MiB. Past it the map starts over, and
/// rooms come back as their messages go by.
const MAX_ROOMS: usize = 16_384;

/// The newest seq seen, per room.
pub(super) struct Heads {
    /// Keyed by the name's bytes, as the change stream has them.
    rooms: Mutex<HashMap<Box<[u8]>, i64>>,
}

impl Default for Heads {
    /// Sized for every room it may remember: the stream notes a room it has
    /// not seen for most events of a busy replica, and a table that grows
    /// would move every entry each time it doubles.
    fn default() -> Self {
        Heads { rooms: Mutex::new(HashMap::with_capacity_and_hasher(MAX_ROOMS, Default::default())) }
    }
}

impl Heads {
    /// The change stream showed `seq` in `room`.
    pub fn observe(&self, room: &[u8], seq: i64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(head) = rooms.get_mut(room) {
            *head = (*head).max(seq);
            return;
        }
        if rooms.len() >= MAX_ROOMS {
            rooms.clear();
        }
        rooms.insert(room.into(), seq);
    }

    /// A seq the room's newest is known to be at or above, if one is known.
    pub fn at_least(&self, room: &str) -> Option<i64> {
        self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(room.as_bytes()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_only_rises_and_the_map_stays_bounded() {
        let heads = Heads::default();
        heads.observe(b"r", 5);
        heads.observe(b"r", 3);
        assert_eq!(heads.at_least("r"), Some(5));
        assert_eq!(heads.at_least("s"), None);
        for i in 0..MAX_ROOMS + 10 {
            heads.observe(format!("room{i}").as_bytes(), 1);
        }
        assert!(heads.rooms.lock().unwrap().len() <= MAX_ROOMS);
    }
}
