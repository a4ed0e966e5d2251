//! Who is present in the rooms this process has listeners in, as MongoDB's
//! `presence` collection says, kept from its change stream. Each room holds
//! the set of (user, replica) pairs present; a user is present while any
//! pair is. Applying an event is idempotent (a set insert or removal), so a
//! room loaded from the collection while events arrive converges: events
//! for a room still loading are kept and applied after the load, in order.
//!
//! A user's first pair emits `presence_join` to the room's local members,
//! the last one's removal `presence_leave`. Above `presence_max_listed`
//! present users, those are replaced by an `occupancy` frame at most every
//! few seconds. Every frame goes through the fan-out under this module's
//! lock, so a connection's snapshot and the changes after it reach its
//! queue in order.

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

use crate::fanout::{Change, Delivery, Registry, RoomEvent};
use crate::prometheus;
use crate::protocol::{Frame, ServerFrame};

/// One change of the `presence` collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    Present { room: String, user: String, replica: String },
    Gone { room: String, user: String, replica: String },
}

impl PresenceChange {
    fn room(&self) -> &str {
        match self {
            PresenceChange::Present { room, .. } | PresenceChange::Gone { room, .. } => room,
        }
    }
}

enum State {
    /// Being read from the collection; changes meanwhile wait here.
    Loading {
        waiting: Vec<PresenceChange>,
        loaded: Arc<Notify>,
    },
    Ready,
}

struct RoomPresence {
    state: State,
    /// User → the replicas where the user has a connection in the room.
    users: HashMap<String, Replicas>,
    /// The count last sent as `occupancy`, for a large room.
    told: Option<usize>,
}

/// The replicas where a user has a connection in a room: one or a few, so
/// a vector, where a hash set's smallest table holds four.
#[derive(Default)]
struct Replicas(Vec<String>);

impl Replicas {
    /// Adds the replica; false if it was there.
    fn insert(&mut self, replica: String) -> bool {
        if self.0.contains(&replica) {
            return false;
        }
        self.0.reserve_exact(1);
        self.0.push(replica);
        true
    }

    /// Removes the replica; false if it was not there.
    fn remove(&mut self, replica: &str) -> bool {
        let Some(at) = self.0.iter().position(|held| held == replica) else { return false };
        self.0.swap_remove(at);
        true
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a joining connection must do before it can be sent the room's presence.
pub enum Begin {
    /// The room is known: ask for the snapshot.
    Ready,
    /// Nobody loads it: read it from the collection, then call `loaded`.
    Load,
    /// Another connection is loading it: wait, then begin again.
    Wait(Arc<Notify>),
}

/// The presence of the rooms with local listeners.
pub struct Tracker {
    rooms: Mutex<HashMap<String, RoomPresence>>,
    registry: Arc<Registry>,
    max_listed: usize,
}

impl Tracker {
    pub fn new(registry: Arc<Registry>, max_listed: usize) -> Tracker {
        Tracker { rooms: Mutex::new(HashMap::new()), registry, max_listed }
    }

    /// A local connection joined `room`.
    pub fn begin(&self, room: &str) -> Begin {
        let mut rooms = self.rooms.lock().expect("presence poisoned");
        match rooms.get(room).map(|presence| &presence.state) {
            Some(State::Ready) => Begin::Ready,
            Some(State::Loading { loaded, .. }) => Begin::Wait(loaded.clone()),
            None => {
                let state = State::Loading { waiting: Vec::new(), loaded: Arc::new(Notify::new()) };
                rooms.insert(room.to_string(), RoomPresence { state, users: HashMap::new(), told: None });
                Begin::Load
            }
        }
    }

    /// The room's pairs as read from the collection; the changes that came
    /// meanwhile are applied after them.
    pub fn loaded(&self, room: &str, pairs: Vec<(String, String)>) {
        let mut rooms = self.rooms.lock().expect("presence poisoned");
        let Some(presence) = rooms.get_mut(room) else { return };
        let State::Loading { waiting, loaded } = std::mem::replace(&mut presence.state, State::Ready) else { return };
        presence.users.clear();
        for (user, replica) in pairs {
            presence.users.entry(user).or_default().insert(replica);
        }
        for change in waiting {
            self.apply_to(room, presence, change, false);
        }
        loaded.notify_waiters();
    }

    /// Loading failed: the next joining connection tries again.
    pub fn failed(&self, room: &str) {
        let mut rooms = self.rooms.lock().expect("presence poisoned");
        if let Some(RoomPresence { state: State::Loading { loaded, .. }, .. }) = rooms.remove(room) {
            loaded.notify_waiters();
        }
    }

    /// Offers the room's presence to one of its local connections.
    pub fn snapshot_to(&self, room: &str, connection: u64) {
        let rooms = self.rooms.lock().expect("presence poisoned");
        let Some(presence @ RoomPresence { state: State::Ready, .. }) = rooms.get(room) else { return };
        let frame = self.snapshot(room, presence);
        self.registry.offer_to(room, connection, Delivery::Room(event(room, frame)));
    }

    /// Applies a change from the `presence` stream.
    pub fn apply(&self, change: PresenceChange) {
        let mut rooms = self.rooms.lock().expect("presence poisoned");
        let room = change.room().to_string();
        let Some(presence) = rooms.get_mut(&room) else { return };
        if let State::Loading { waiting, .. } = &mut presence.state {
            waiting.push(change);
            return;
        }
        self.apply_to(&room, presence, change, true);
    }

    fn apply_to(&self, room: &str, presence: &mut RoomPresence, change: PresenceChange, tell: bool) {
        let was_large = presence.users.len() > self.max_listed;
        let (user, arrived) = match change {
            PresenceChange::Present { user, replica, .. } => {
                let replicas = presence.users.entry(user.clone()).or_default();
                // Known already (an insert the load had read, relayed after
                // it) or present through another replica: nobody arrived.
                if !replicas.insert(replica) || replicas.len() > 1 {
                    return;
                }
                (user, true)
            }
            PresenceChange::Gone { user, replica, .. } => {
                let Some(replicas) = presence.users.get_mut(&user) else { return };
                if !replicas.remove(&replica) || !replicas.is_empty() {
                    return;
                }
                presence.users.remove(&user);
                (user, false)
            }
        };
        if !tell {
            return;
        }
        let large = presence.users.len() > self.max_listed;
        if was_large && !large {
            // Small again: everyone gets the list back.
            presence.told = None;
            let frame = self.snapshot(room, presence);
            self.registry.publish_room(event(room, frame));
        } else if !large {
            let frame = if arrived {
                ServerFrame::PresenceJoin { room, user: &user }.encode()
            } else {
                ServerFrame::PresenceLeave { room, user: &user }.encode()
            };
            self.registry.publish_room(event(room, frame));
        }
    }

    /// Sends `occupancy` to large rooms whose count changed since they were
    /// last told, and reports how many users are tracked; called every few
    /// seconds.
    pub fn tell_occupancy(&self) {
        let mut rooms = self.rooms.lock().expect("presence poisoned");
        let tracked: usize = rooms.values().map(|presence| presence.users.len()).sum();
        ::metrics::gauge!(prometheus::PRESENCE_TRACKED_USERS).set(tracked as f64);
        for (room, presence) in rooms.iter_mut() {
            let count = presence.users.len();
            if count > self.max_listed && presence.told != Some(count) {
                presence.told = Some(count);
                let frame = ServerFrame::Occupancy { room, count }.encode();
                self.registry.publish_room(event(room, frame));
            }
        }
    }

    /// Stops tracking rooms that have no local listener any more.
    pub fn forget_idle(&self) {
        let mut rooms = self.rooms.lock().expect("presence poisoned");
        rooms.retain(|room, presence| matches!(presence.state, State::Loading { .. }) || self.registry.has_room(room));
    }

    /// Whether more users are present in the room than are listed: such a
    /// room shows a count, and nobody's typing.
    pub fn is_large(&self, room: &str) -> bool {
        let rooms = self.rooms.lock().expect("presence poisoned");
        rooms.get(room).is_some_and(|presence| presence.users.len() > self.max_listed)
    }

    /// The rooms tracked now, to be loaded again after a lost history.
    pub fn rooms(&self) -> Vec<String> {
        self.rooms.lock().expect("presence poisoned").keys().cloned().collect()
    }

    /// Marks a tracked room as loading again (after a lost history); false
    /// if it is not tracked or already loading.
    pub fn reload(&self, room: &str) -> bool {
        let mut rooms = self.rooms.lock().expect("presence poisoned");
        match rooms.get_mut(room) {
            Some(presence) if matches!(presence.state, State::Ready) => {
                presence.state = State::Loading { waiting: Vec::new(), loaded: Arc::new(Notify::new()) };
                true
            }
            _ => false,
        }
    }

    /// Sends the room's presence again to all its local members.
    pub fn resend(&self, room: &str) {
        for connection in self.registry.members_of(room) {
            self.snapshot_to(room, connection);
        }
    }

    fn snapshot(&self, room: &str, presence: &RoomPresence) -> Frame {
        let count = presence.users.len();
        let users = (count <= self.max_listed).then(|| {
            let mut users: Vec<&str> = presence.users.keys().map(String::as_str).collect();
            users.sort_unstable();
            users
        });
        ServerFrame::Presence { room, users, count }.encode()
    }
}

/// A presence frame as a room event: in order with the room's other
/// events, held while a join reads its replay, never part of the seq.
fn event(room: &str, frame: Frame) -> Arc<RoomEvent> {
    Arc::new(RoomEvent { room: room.to_string(), seq: 0, change: Change::Ephemeral, frame, received: Instant::now() })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::fanout::{ChangedPresence, JoinedRooms, Listener};

    /// A connection that keeps what it is handed.
    #[derive(Debug, Default)]
    struct Kept {
        rooms: JoinedRooms,
        delivered: Mutex<Vec<Delivery>>,
    }

    impl Listener for Kept {
        fn id(&self) -> u64 {
            1
        }
        fn user(&self) -> &str {
            "alice"
        }
        fn deliver(&self, delivery: Delivery) {
            self.delivered.lock().unwrap().push(delivery);
        }
        fn held_bytes(&self) -> usize {
            0
        }
        fn rooms(&self) -> &JoinedRooms {
            &self.rooms
        }
        fn go_away(&self) {}
        fn tick(&self, _: tokio::time::Instant) {}
    }

    fn present(user: &str, replica: &str) -> PresenceChange {
        PresenceChange::Present { room: "r".into(), user: user.into(), replica: replica.into() }
    }

    fn gone(user: &str, replica: &str) -> PresenceChange {
        PresenceChange::Gone { room: "r".into(), user: user.into(), replica: replica.into() }
    }

    fn frames(kept: &Kept) -> Vec<String> {
        let mut frames = Vec::new();
        for delivery in kept.delivered.lock().unwrap().drain(..) {
            if let Delivery::Room(event) = delivery {
                frames.push(event.frame.text().to_string());
            }
        }
        frames
    }

    #[test]
    fn only_a_first_arrival_and_a_last_departure_are_told() {
        let registry = Arc::new(Registry::with_presence(Arc::new(ChangedPresence::default())));
        let alice = Arc::new(Kept::default());
        registry.join_room("r", &(alice.clone() as Arc<dyn Listener>));
        let tracker = Tracker::new(registry, 10);
        assert!(matches!(tracker.begin("r"), Begin::Load));
        tracker.loaded("r", vec![("bob".into(), "one".into())]);

        // The insert the load already read, relayed after it; then bob on a
        // second replica, and one of his two replicas going.
        tracker.apply(present("bob", "one"));
        tracker.apply(present("bob", "two"));
        tracker.apply(gone("bob", "one"));
        assert_eq!(frames(&alice), Vec::<String>::new(), "bob stayed present throughout");

        tracker.apply(gone("bob", "two"));
        tracker.apply(present("carol", "one"));
        let told = frames(&alice);
        assert_eq!(told.len(), 2, "{told:?}");
        assert!(told[0].contains(r#""type":"presence_leave""#) && told[0].contains(r#""user":"bob""#), "{told:?}");
        assert!(told[1].contains(r#""type":"presence_join""#) && told[1].contains(r#""user":"carol""#), "{told:?}");
    }
}
