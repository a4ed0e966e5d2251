//! Room membership for `room_policy: membership`. A join is authorized by a
//! `room_members {room, user}` document, read once at the join; the relay
//! then watches `room_members` with one change stream, and a removal (or a
//! change of room or user) ends that user's subscriptions to the room at once.
//! Delete events carry only the document's `_id`, so the `_id` of every
//! membership that backs a live join is remembered here.

use std::collections::HashMap;
use std::sync::Mutex;

use bson::Bson;

use crate::collections::id_string;
use crate::fanout::Registry;

/// Memberships remembered before those backing no live join are dropped.
const MAX_REMEMBERED: usize = 100_000;

/// The memberships that back live joins in this process, by `_id`.
#[derive(Default)]
pub struct Memberships {
    /// Membership `_id` (as a string) → its raw `_id`, room and user.
    known: Mutex<HashMap<String, (Bson, String, String)>>,
}

impl Memberships {
    pub fn remember(&self, id: Bson, room: &str, user: &str, registry: &Registry) {
        let mut known = self.known.lock().expect("memberships poisoned");
        if known.len() >= MAX_REMEMBERED {
            known.retain(|_, (_, room, user)| registry.is_joined(room, user));
        }
        known.insert(id_string(&id), (id, room.to_string(), user.to_string()));
    }

    /// The membership document `id` is gone or no longer says (room, user).
    pub fn revoke(&self, id: &str, still: Option<(&str, &str)>, registry: &Registry) {
        let mut known = self.known.lock().expect("memberships poisoned");
        let Some((_, room, user)) = known.get(id) else { return };
        if still == Some((room.as_str(), user.as_str())) {
            return;
        }
        let (_, room, user) = known.remove(id).expect("just found");
        drop(known);
        let count = registry.revoke(&room, &user);
        tracing::info!(room, user, connections = count, "membership revoked");
    }

    /// Every remembered membership, to re-check after the stream lost its history.
    pub fn all(&self) -> Vec<(String, Bson)> {
        let known = self.known.lock().expect("memberships poisoned");
        known.iter().map(|(key, (id, _, _))| (key.clone(), id.clone())).collect()
    }
}
