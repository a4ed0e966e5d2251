//! Room membership for `room_policy: membership`. A join is authorized by a
//! `room_members {room, user}` document, read once at the join; the relay
//! then watches `room_members` with one change stream, and a removal (or a
//! change of room or user) ends that user's subscriptions to the room at once.
//! Delete events carry only the document's `_id`, so the `_id` of every
//! membership that backs a join is remembered here, from the moment the join
//! is authorized until the last connection it let in leaves the room: a join
//! still in progress is never forgotten, so its revocation always finds it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bson::Bson;

use crate::collections::id_string;
use crate::fanout::Registry;

/// One remembered membership and the connections it let into its room.
struct Known {
    id: Bson,
    room: String,
    user: String,
    holders: HashSet<u64>,
}

#[derive(Default)]
struct State {
    /// Membership `_id` (as a string) → what it backs.
    by_id: HashMap<String, Known>,
    /// (room, user) → membership `_id` (as a string).
    by_pair: HashMap<(String, String), String>,
}

/// The memberships that back joins in this process, by `_id`.
#[derive(Default)]
pub struct Memberships {
    state: Mutex<State>,
}

impl Memberships {
    /// Connection `holder` was let into `room` by membership `id`.
    pub fn remember(&self, id: Bson, room: &str, user: &str, holder: u64) {
        let mut state = self.state.lock().expect("memberships poisoned");
        let key = id_string(&id);
        let pair = (room.to_string(), user.to_string());
        if let Some(previous) = state.by_pair.insert(pair, key.clone()) {
            if previous != key {
                // The pair is backed by another document now; the old one backs nothing.
                state.by_id.remove(&previous);
            }
        }
        let known = state.by_id.entry(key).or_insert_with(|| Known {
            id,
            room: room.to_string(),
            user: user.to_string(),
            holders: HashSet::new(),
        });
        known.holders.insert(holder);
    }

    /// Connection `holder` left `room` (or never got in): the membership is
    /// forgotten once no connection it let in remains.
    pub fn forget(&self, room: &str, user: &str, holder: u64) {
        let mut state = self.state.lock().expect("memberships poisoned");
        let pair = (room.to_string(), user.to_string());
        let Some(key) = state.by_pair.get(&pair).cloned() else { return };
        let Some(known) = state.by_id.get_mut(&key) else { return };
        known.holders.remove(&holder);
        if known.holders.is_empty() {
            state.by_id.remove(&key);
            state.by_pair.remove(&pair);
        }
    }

    /// The membership document `id` is gone or no longer says (room, user).
    pub fn revoke(&self, id: &str, still: Option<(&str, &str)>, registry: &Registry) {
        let mut state = self.state.lock().expect("memberships poisoned");
        let Some(known) = state.by_id.get(id) else { return };
        if still == Some((known.room.as_str(), known.user.as_str())) {
            return;
        }
        let known = state.by_id.remove(id).expect("just found");
        let pair = (known.room.clone(), known.user.clone());
        if state.by_pair.get(&pair).is_some_and(|key| key == id) {
            state.by_pair.remove(&pair);
        }
        drop(state);
        let count = registry.revoke(&known.room, &known.user);
        tracing::info!(room = known.room, user = known.user, connections = count, "membership revoked");
    }

    /// Every remembered membership, to re-check after the stream lost its history.
    pub fn all(&self) -> Vec<(String, Bson)> {
        let state = self.state.lock().expect("memberships poisoned");
        state.by_id.iter().map(|(key, known)| (key.clone(), known.id.clone())).collect()
    }

    /// How many memberships are remembered.
    pub fn len(&self) -> usize {
        self.state.lock().expect("memberships poisoned").by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_membership_is_kept_while_a_connection_it_let_in_remains() {
        let memberships = Memberships::default();
        memberships.remember(Bson::String("m1".into()), "r", "bob", 1);
        memberships.remember(Bson::String("m1".into()), "r", "bob", 2);
        memberships.remember(Bson::String("m1".into()), "r", "bob", 2);
        memberships.forget("r", "bob", 1);
        assert_eq!(memberships.len(), 1, "connection 2 is still in");
        memberships.forget("r", "bob", 2);
        assert!(memberships.is_empty());
    }

    #[test]
    fn a_revoked_membership_is_forgotten_and_revokes_once() {
        let memberships = Memberships::default();
        let registry = Registry::default();
        memberships.remember(Bson::String("m1".into()), "r", "bob", 1);
        memberships.revoke("m1", Some(("r", "bob")), &registry);
        assert_eq!(memberships.len(), 1, "still says (r, bob)");
        memberships.revoke("m1", None, &registry);
        assert!(memberships.is_empty());
        memberships.forget("r", "bob", 1);
        assert!(memberships.is_empty());
    }
}
