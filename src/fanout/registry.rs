//! Who listens to which room and which user, in one process. Publishing reads
//! the maps under a read lock and offers the event's shared frame to each
//! listener; joins and leaves take the write lock.

use foldhash::{HashMap, HashMapExt};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::changed::ChangedPresence;
use super::events::{Change, Delivery, RoomEvent, UserEvent};
use super::listener::Listener;
use crate::prometheus;
use crate::protocol::Frame;

type Members = HashMap<u64, Arc<dyn Listener>>;

/// A user's connections here: a vector, as a user has a few at most (a
/// hash table's smallest allocation holds four entries).
type Devices = Vec<Arc<dyn Listener>>;

const NO_SEQ: i64 = i64::MIN;

/// The listeners of one room, how many of them each user has, and the
/// highest seq relayed to them: after a lost change-stream history, the room
/// is re-filled from there.
#[derive(Default)]
struct Room {
    members: Members,
    users: HashMap<String, usize>,
    relayed_seq: AtomicI64,
}

/// The fan-out maps of one process: rooms and users to their connections.
#[derive(Default)]
pub struct Registry {
    rooms: RwLock<HashMap<String, Room>>,
    users: RwLock<HashMap<String, Devices>>,
    /// Where a user's first arrival in a room and last departure are marked (presence).
    presence: Option<Arc<ChangedPresence>>,
    /// Rooms joined, over all connections, and how many may be: each costs
    /// the replica memory of its own (`limits.max_joined_rooms`).
    memberships: AtomicUsize,
    max_memberships: Option<usize>,
    /// The rooms with listeners, by a hash of their name's bytes (counted,
    /// as names may share one): an event of a room not here is skipped on
    /// its name's bytes, before they are checked to be UTF-8.
    room_hashes: RwLock<HashMap<u64, usize>>,
    hasher: foldhash::fast::RandomState,
}

/// What a join did to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    /// The connection is now in the room.
    Joined,
    /// It already was.
    Already,
    /// The replica holds as many joined rooms as it may.
    Full,
}

impl Registry {
    /// A registry that marks every user's first arrival in a room and last
    /// departure from it in `presence`.
    pub fn with_presence(presence: Arc<ChangedPresence>) -> Registry {
        Registry { presence: Some(presence), ..Registry::default() }
    }

    /// At most `max` rooms joined at once, over all connections.
    pub fn with_max_memberships(self, max: usize) -> Registry {
        Registry { max_memberships: Some(max), ..self }
    }

    /// Counts one more joined room, if the replica may hold it.
    fn take_membership(&self) -> bool {
        let max = self.max_memberships.unwrap_or(usize::MAX);
        self.memberships
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| (held < max).then_some(held + 1))
            .is_ok()
    }

    fn mark(&self, room: &str, user: &str) {
        if let Some(presence) = &self.presence {
            presence.mark(room, user);
        }
    }

    /// Whether `user` has a connection in `room` in this process.
    pub fn is_present(&self, room: &str, user: &str) -> bool {
        self.rooms.read().expect("registry poisoned").get(room).is_some_and(|entry| entry.users.contains_key(user))
    }

    /// Subscribes the connection to the room, unless it already was or the
    /// replica holds all the joined rooms it may.
    pub fn join_room(&self, room: &str, connection: &Arc<dyn Listener>) -> Subscribed {
        if !connection.rooms().insert(room) {
            return Subscribed::Already;
        }
        if !self.take_membership() {
            connection.rooms().remove(room);
            return Subscribed::Full;
        }
        let mut rooms = self.rooms.write().expect("registry poisoned");
        let entry = rooms.entry(room.to_string()).or_insert_with(|| {
            *self.hashes().entry(self.hasher.hash_one(room.as_bytes())).or_default() += 1;
            Room { members: Members::new(), users: HashMap::new(), relayed_seq: AtomicI64::new(NO_SEQ) }
        });
        entry.members.insert(connection.id(), connection.clone());
        let count = entry.users.entry(connection.user().to_string()).or_default();
        *count += 1;
        if *count == 1 {
            self.mark(room, connection.user());
        }
        ::metrics::gauge!(prometheus::ROOMS_JOINED).increment(1.0);
        Subscribed::Joined
    }

    /// Unsubscribes the connection; false if it was not in the room.
    pub fn leave_room(&self, room: &str, connection: &dyn Listener) -> bool {
        if !connection.rooms().remove(room) {
            return false;
        }
        self.memberships.fetch_sub(1, Ordering::AcqRel);
        let mut rooms = self.rooms.write().expect("registry poisoned");
        if let Some(entry) = rooms.get_mut(room) {
            entry.members.remove(&connection.id());
            if let Some(count) = entry.users.get_mut(connection.user()) {
                *count -= 1;
                if *count == 0 {
                    entry.users.remove(connection.user());
                    self.mark(room, connection.user());
                }
            }
            if entry.members.is_empty() {
                rooms.remove(room);
                let mut hashes = self.hashes();
                let hash = self.hasher.hash_one(room.as_bytes());
                if let Some(count) = hashes.get_mut(&hash) {
                    *count -= 1;
                    if *count == 0 {
                        hashes.remove(&hash);
                    }
                }
            }
        }
        ::metrics::gauge!(prometheus::ROOMS_JOINED).decrement(1.0);
        true
    }

    /// Leaves every room and the user channel: the connection is gone.
    pub fn disconnect(&self, connection: &dyn Listener) {
        for room in connection.rooms().all() {
            self.leave_room(&room, connection);
        }
        let mut users = self.users.write().expect("registry poisoned");
        if let Some(devices) = users.get_mut(connection.user()) {
            devices.retain(|device| device.id() != connection.id());
            if devices.is_empty() {
                users.remove(connection.user());
            }
        }
    }

    /// Ends every subscription of `user` to `room`; each connection is told `left` (revoked).
    pub fn revoke(&self, room: &str, user: &str) -> usize {
        let revoked: Vec<Arc<dyn Listener>> = match self.rooms.read().expect("registry poisoned").get(room) {
            Some(entry) => entry.members.values().filter(|c| c.user() == user).cloned().collect(),
            None => Vec::new(),
        };
        for connection in &revoked {
            if self.leave_room(room, connection.as_ref()) {
                connection.deliver(Delivery::Revoked(room.to_string()));
            }
        }
        revoked.len()
    }

    pub fn user_connection_count(&self, user: &str) -> usize {
        self.users.read().expect("registry poisoned").get(user).map_or(0, Vec::len)
    }

    /// A join's replay reached `seq`: the room is known to be delivered up to
    /// there if nothing was relayed to it yet.
    pub fn joined_at(&self, room: &str, seq: i64) {
        if let Some(entry) = self.rooms.read().expect("registry poisoned").get(room) {
            let _ = entry.relayed_seq.compare_exchange(NO_SEQ, seq, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Rooms with listeners and the seq after which they may have missed messages.
    pub fn rooms_to_refill(&self) -> Vec<(String, i64)> {
        let rooms = self.rooms.read().expect("registry poisoned");
        rooms
            .iter()
            .map(|(room, entry)| (room.clone(), entry.relayed_seq.load(Ordering::Acquire)))
            .filter(|(_, seq)| *seq != NO_SEQ)
            .collect()
    }

    /// Registers the connection for its user's channel.
    pub fn add_user(&self, connection: &Arc<dyn Listener>) {
        let mut users = self.users.write().expect("registry poisoned");
        let devices = users.entry(connection.user().to_string()).or_default();
        // One more slot at a time: a vector's first growth would make room for four.
        devices.reserve_exact(1);
        devices.push(connection.clone());
    }

    /// Bytes all connections hold, summed at the moment of asking.
    pub fn held_bytes(&self) -> usize {
        let users = self.users.read().expect("registry poisoned");
        users.values().flatten().map(|c| c.held_bytes()).sum()
    }

    pub fn connection_count(&self) -> usize {
        self.users.read().expect("registry poisoned").values().map(Vec::len).sum()
    }

    pub fn has_room(&self, room: &str) -> bool {
        self.rooms.read().expect("registry poisoned").contains_key(room)
    }

    /// Whether a room named by these bytes has listeners here. Most events
    /// are of rooms that do not: they are told apart by the name's hash,
    /// and only a name that matches one is checked to be UTF-8 and looked up.
    pub fn has_room_named(&self, room: &[u8]) -> bool {
        let hash = self.hasher.hash_one(room);
        if !self.room_hashes.read().expect("registry poisoned").contains_key(&hash) {
            return false;
        }
        std::str::from_utf8(room).is_ok_and(|room| self.has_room(room))
    }

    fn hashes(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, usize>> {
        self.room_hashes.write().expect("registry poisoned")
    }

    pub fn has_user(&self, user: &str) -> bool {
        self.users.read().expect("registry poisoned").contains_key(user)
    }

    /// Offers the event to every subscriber of its room; returns how many.
    pub fn publish_room(&self, event: Arc<RoomEvent>) -> usize {
        let rooms = self.rooms.read().expect("registry poisoned");
        let Some(entry) = rooms.get(&event.room) else { return 0 };
        if event.change == Change::Insert {
            entry.relayed_seq.fetch_max(event.seq, Ordering::AcqRel);
        }
        for connection in entry.members.values() {
            connection.deliver(Delivery::Room(event.clone()));
        }
        ::metrics::counter!(prometheus::FANOUT_FRAMES).increment(entry.members.len() as u64);
        entry.members.len()
    }

    /// Offers the event to every subscriber of its room but `user`'s (typing:
    /// nobody is told of their own).
    pub fn publish_room_except(&self, event: Arc<RoomEvent>, user: &str) {
        let rooms = self.rooms.read().expect("registry poisoned");
        let Some(entry) = rooms.get(&event.room) else { return };
        let mut offered = 0;
        for connection in entry.members.values().filter(|c| c.user() != user) {
            connection.deliver(Delivery::Room(event.clone()));
            offered += 1;
        }
        ::metrics::counter!(prometheus::FANOUT_FRAMES).increment(offered);
    }

    /// Offers `item` to one connection of the room, if it is still in it.
    pub fn offer_to(&self, room: &str, connection: u64, delivery: Delivery) {
        let rooms = self.rooms.read().expect("registry poisoned");
        if let Some(target) = rooms.get(room).and_then(|entry| entry.members.get(&connection)) {
            target.deliver(delivery);
        }
    }

    /// The ids of the room's local connections.
    pub fn members_of(&self, room: &str) -> Vec<u64> {
        let rooms = self.rooms.read().expect("registry poisoned");
        rooms.get(room).map(|entry| entry.members.keys().copied().collect()).unwrap_or_default()
    }

    /// Every user present in this process, by room: the presence it writes.
    pub fn local_presence(&self) -> Vec<(String, String)> {
        let rooms = self.rooms.read().expect("registry poisoned");
        rooms
            .iter()
            .flat_map(|(room, entry)| entry.users.keys().map(move |user| (room.clone(), user.clone())))
            .collect()
    }

    /// Offers the event to every open connection of the user; returns how many.
    pub fn publish_user(&self, user: &str, event: Arc<UserEvent>) -> usize {
        let users = self.users.read().expect("registry poisoned");
        let Some(devices) = users.get(user) else { return 0 };
        for connection in devices {
            connection.deliver(Delivery::User(event.clone()));
        }
        ::metrics::counter!(prometheus::FANOUT_FRAMES).increment(devices.len() as u64);
        devices.len()
    }

    /// Calls `visit` on every open connection, under the registry's read
    /// lock: it must not wait, nor join or leave anything.
    pub fn each_connection(&self, mut visit: impl FnMut(&dyn Listener)) {
        for devices in self.users.read().expect("registry poisoned").values() {
            devices.iter().for_each(|connection| visit(connection.as_ref()));
        }
    }

    /// Tells every open connection that the replica shuts down.
    pub fn go_away_everyone(&self) {
        for devices in self.users.read().expect("registry poisoned").values() {
            devices.iter().for_each(|connection| connection.go_away());
        }
    }

    /// Offers a frame to every open connection (a `resync`), through the same
    /// bounded queue as every relayed frame.
    pub fn publish_everyone(&self, frame: &Frame) {
        for devices in self.users.read().expect("registry poisoned").values() {
            for connection in devices {
                connection.deliver(Delivery::Notice(frame.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::fanout::JoinedRooms;

    /// A connection that counts what it is handed.
    #[derive(Debug, Default)]
    struct Counted {
        id: u64,
        rooms: JoinedRooms,
        delivered: AtomicUsize,
    }

    impl Listener for Counted {
        fn id(&self) -> u64 {
            self.id
        }
        fn user(&self) -> &str {
            "alice"
        }
        fn deliver(&self, _: Delivery) {
            self.delivered.fetch_add(1, Ordering::Relaxed);
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

    #[test]
    fn each_connection_of_a_user_gets_the_users_events_until_it_leaves() {
        let registry = Registry::default();
        let devices: Vec<Arc<Counted>> = (1..=3).map(|id| Arc::new(Counted { id, ..Counted::default() })).collect();
        for device in &devices {
            registry.add_user(&(device.clone() as Arc<dyn Listener>));
        }
        let event = || {
            let frame = Frame::from("n");
            let received = std::time::Instant::now();
            let position = crate::recovery::Position { time: 1, increment: 1, index: 0 };
            Arc::new(UserEvent { route: "n".into(), position, frame, received })
        };
        assert_eq!(registry.publish_user("alice", event()), 3);
        registry.disconnect(devices[1].as_ref());
        assert_eq!(registry.user_connection_count("alice"), 2);
        assert_eq!(registry.publish_user("alice", event()), 2);
        let delivered: Vec<usize> = devices.iter().map(|d| d.delivered.load(Ordering::Relaxed)).collect();
        assert_eq!(delivered, [2, 1, 2]);
        registry.disconnect(devices[0].as_ref());
        registry.disconnect(devices[2].as_ref());
        assert!(!registry.has_user("alice"));
        assert_eq!(registry.publish_user("alice", event()), 0);
    }
}
