//! The per-connection ordering logic between the queue and the socket. While a
//! join reads its replay, the room's live events are held; once the replay is
//! ready the writer sends `joined`, the replay, then the held events, dropping
//! any insert at or below the replay's high-water seq. That is what makes the
//! seam between history and live events free of gaps and duplicates. A
//! notification recovery works the same way per user route, keyed by stream
//! position instead of seq.

use foldhash::{HashMap, HashMapExt};
use litemap::LiteMap;
use std::sync::Arc;
use std::time::Instant;

use super::outbound::Outbound;
use crate::fanout::{Change, RoomEvent, UserEvent};
use crate::protocol::{Frame, ServerFrame};
use crate::recovery::Position;

enum RoomState {
    Pending(Vec<Arc<RoomEvent>>),
    Live { high_water: i64 },
}

enum RouteState {
    Pending(Vec<Arc<UserEvent>>),
    Live { high_water: Position },
}

/// What the writer should do after absorbing an item.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// More live events were held during a join than the queue may hold.
    Overflow,
}

/// Frames ready to be written, in order, and when the oldest change event
/// behind a live one was received, so the relay's own delay can be measured
/// once the frames are on the socket. `release` counts the bytes of every
/// queued frame this batch wrote or dropped: they go back to the
/// connection's budget once the batch is written. Held frames stay charged
/// until they too are written or dropped. A batch may also ask the
/// transport for a keep-alive (`ping`) or to answer the client's ping (`pong`).
#[derive(Debug, Default)]
pub struct Batch {
    pub frames: Vec<Frame>,
    pub oldest_received: Option<Instant>,
    pub release: usize,
    pub ping: bool,
    pub pong: Option<Vec<u8>>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && !self.ping && self.pong.is_none()
    }

    fn push(&mut self, frame: Frame) {
        self.release += frame.len();
        self.frames.push(frame);
    }

    /// A frame the writer made itself, charged to nobody.
    fn push_own(&mut self, frame: Frame) {
        self.frames.push(frame);
    }

    fn push_live(&mut self, frame: &Frame, received: Instant) {
        self.release += frame.len();
        self.frames.push(frame.clone());
        // Events reach a queue in the order they were received.
        self.oldest_received.get_or_insert(received);
    }

    fn extend(&mut self, frames: Vec<Frame>) {
        self.frames.reserve(frames.len());
        for frame in frames {
            self.push(frame);
        }
    }

    /// A queued frame that will not be written.
    fn drop_frame(&mut self, frame: &Frame) {
        self.release += frame.len();
    }
}

/// One connection's ordering state: rooms and routes held or live.
pub struct Outbox {
    /// A sorted vector, not a hash table: most connections join a room or
    /// a few, and a hash table's smallest allocation holds four entries
    /// (212 bytes for one room); a room is found by a few comparisons of
    /// its name, with no hashing, on the way of every delivered frame.
    rooms: LiteMap<String, RoomState>,
    /// Only routes this connection recovered; others are delivered as they come.
    routes: HashMap<String, RouteState>,
    hold_limit: usize,
}

impl Outbox {
    pub fn new(hold_limit: usize) -> Self {
        Outbox { rooms: LiteMap::new(), routes: HashMap::new(), hold_limit }
    }

    /// Turns one queued item into the frames to write, in order, onto `out`.
    pub fn absorb(&mut self, item: Outbound, out: &mut Batch) -> Verdict {
        match item {
            Outbound::Room(event) => match self.rooms.get_mut(&event.room) {
                // Not (or no longer) joined: an event that raced a leave.
                None => out.drop_frame(&event.frame),
                Some(RoomState::Pending(held)) => {
                    if held.len() >= self.hold_limit {
                        out.drop_frame(&event.frame);
                        return Verdict::Overflow;
                    }
                    held.push(event);
                }
                Some(RoomState::Live { high_water }) => deliver(&event, high_water, out),
            },
            Outbound::User(event) => match self.routes.get_mut(&event.route) {
                None => out.push_live(&event.frame, event.received),
                Some(RouteState::Pending(held)) => {
                    if held.len() >= self.hold_limit {
                        out.drop_frame(&event.frame);
                        return Verdict::Overflow;
                    }
                    held.push(event);
                }
                Some(RouteState::Live { high_water }) if event.position > *high_water => {
                    out.push_live(&event.frame, event.received)
                }
                Some(RouteState::Live { .. }) => out.drop_frame(&event.frame),
            },
            Outbound::Reply(frame) | Outbound::Notice(frame) => out.push(frame),
            Outbound::RecoveryStarted(route) => {
                self.routes.insert(route, RouteState::Pending(Vec::new()));
            }
            Outbound::RecoveryReady { route, frames, high_water } => {
                out.extend(frames);
                if let Some(RouteState::Pending(held)) = self.routes.remove(&route) {
                    for event in held {
                        if event.position > high_water {
                            out.push_live(&event.frame, event.received);
                        } else {
                            out.drop_frame(&event.frame);
                        }
                    }
                }
                self.routes.insert(route, RouteState::Live { high_water });
            }
            Outbound::JoinStarted(room) => {
                if self.rooms.is_empty() {
                    // Exactly one entry: a vector's first growth would make room for four.
                    self.rooms = LiteMap::with_capacity(1);
                }
                let before = self.rooms.insert(room, RoomState::Pending(Vec::new()));
                drop_held(before, out);
            }
            Outbound::JoinReady { room, frames, mut high_water } => match self.rooms.get_mut(&room) {
                Some(state @ RoomState::Pending(_)) => {
                    let RoomState::Pending(held) = std::mem::replace(state, RoomState::Live { high_water }) else {
                        unreachable!("matched as pending")
                    };
                    out.extend(frames);
                    for event in held {
                        deliver(&event, &mut high_water, out);
                    }
                    *state = RoomState::Live { high_water };
                }
                // The join was revoked while its replay was read: the client
                // was told `left`, so the replay must not bring the room back.
                _ => frames.iter().for_each(|frame| out.drop_frame(frame)),
            },
            Outbound::JoinFailed { room, error } => {
                drop_held(self.leave(&room), out);
                out.push(error);
            }
            Outbound::Left { room, frame } => {
                drop_held(self.leave(&room), out);
                out.push(frame);
            }
            Outbound::Revoked(room) => {
                drop_held(self.leave(&room), out);
                out.push_own(ServerFrame::Left { room: &room, reason: Some("revoked") }.encode());
            }
            Outbound::Pong(payload) => {
                out.release += payload.len();
                out.pong = Some(payload);
            }
        }
        Verdict::Continue
    }

    fn leave(&mut self, room: &str) -> Option<RoomState> {
        let state = self.rooms.remove(room);
        if self.rooms.is_empty() {
            // A connection that left every room holds no vector.
            self.rooms = LiteMap::new();
        }
        state
    }
}

/// Events held for a room that is gone will never be written.
fn drop_held(state: Option<RoomState>, out: &mut Batch) {
    if let Some(RoomState::Pending(held)) = state {
        held.iter().for_each(|event| out.drop_frame(&event.frame));
    }
}

/// Inserts are delivered once each, in seq order; edits, deletions,
/// presence and typing always.
fn deliver(event: &RoomEvent, high_water: &mut i64, out: &mut Batch) {
    match event.change {
        Change::Insert if event.seq <= *high_water => out.drop_frame(&event.frame),
        Change::Insert => {
            *high_water = event.seq;
            out.push_live(&event.frame, event.received);
        }
        Change::Update => out.push_live(&event.frame, event.received),
        // Presence and typing are not what the relay-overhead histogram measures.
        Change::Ephemeral => out.push(event.frame.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, change: Change) -> Outbound {
        let frame = Frame::from(format!("{seq}{change:?}"));
        Outbound::Room(Arc::new(RoomEvent { room: "r".into(), seq, change, frame, received: Instant::now() }))
    }

    fn texts(out: &Batch) -> Vec<&str> {
        out.frames.iter().map(Frame::text).collect()
    }

    #[test]
    fn seam_has_no_gap_and_no_duplicate() {
        let mut outbox = Outbox::new(10);
        let mut out = Batch::default();
        outbox.absorb(Outbound::JoinStarted("r".into()), &mut out);
        outbox.absorb(event(3, Change::Insert), &mut out);
        outbox.absorb(event(4, Change::Insert), &mut out);
        outbox.absorb(event(2, Change::Update), &mut out);
        assert!(out.frames.is_empty(), "events of a pending room are held");
        let frames = vec![Frame::from("joined"), Frame::from("2Insert"), Frame::from("3Insert")];
        outbox.absorb(Outbound::JoinReady { room: "r".into(), frames, high_water: 3 }, &mut out);
        outbox.absorb(event(4, Change::Insert), &mut out);
        outbox.absorb(event(5, Change::Insert), &mut out);
        assert_eq!(texts(&out), ["joined", "2Insert", "3Insert", "4Insert", "2Update", "5Insert"]);
    }

    fn event_of(room: &str, seq: i64) -> Outbound {
        let frame = Frame::from(format!("{room}{seq}"));
        Outbound::Room(Arc::new(RoomEvent {
            room: room.into(),
            seq,
            change: Change::Insert,
            frame,
            received: Instant::now(),
        }))
    }

    #[test]
    fn each_room_keeps_its_own_seam_whatever_the_order_of_joins() {
        let mut outbox = Outbox::new(10);
        let mut out = Batch::default();
        for room in ["m", "b", "z", "a"] {
            outbox.absorb(Outbound::JoinStarted(room.into()), &mut out);
        }
        for (room, high_water) in [("z", 3), ("a", 1), ("m", 2), ("b", 5)] {
            outbox.absorb(Outbound::JoinReady { room: room.into(), frames: vec![], high_water }, &mut out);
        }
        for (room, seq) in [("a", 1), ("a", 2), ("b", 5), ("b", 6), ("m", 3), ("z", 3), ("z", 4), ("c", 1)] {
            outbox.absorb(event_of(room, seq), &mut out);
        }
        assert_eq!(texts(&out), ["a2", "b6", "m3", "z4"]);
        for room in ["b", "z", "a", "m"] {
            outbox.absorb(Outbound::Revoked(room.into()), &mut out);
        }
        outbox.absorb(event_of("m", 4), &mut out);
        assert_eq!(out.frames.len(), 8, "four `left` frames, and nothing of a room left");
        assert!(outbox.rooms.is_empty());
    }

    #[test]
    fn events_of_rooms_not_joined_are_dropped() {
        let mut outbox = Outbox::new(10);
        let mut out = Batch::default();
        outbox.absorb(event(1, Change::Insert), &mut out);
        outbox.absorb(Outbound::JoinReady { room: "r".into(), frames: vec![], high_water: 1 }, &mut out);
        outbox.absorb(Outbound::Left { room: "r".into(), frame: Frame::from("left") }, &mut out);
        outbox.absorb(event(2, Change::Insert), &mut out);
        assert_eq!(texts(&out), ["left"]);
    }

    #[test]
    fn recovered_notifications_are_not_repeated_live() {
        let position = |time| Position { time, increment: 1, index: 0 };
        let event = |time| {
            let frame = Frame::from(format!("n{time}"));
            Outbound::User(Arc::new(UserEvent {
                route: "notes".into(),
                position: position(time),
                frame,
                received: Instant::now(),
            }))
        };
        let mut outbox = Outbox::new(10);
        let mut out = Batch::default();
        outbox.absorb(Outbound::RecoveryStarted("notes".into()), &mut out);
        outbox.absorb(event(5), &mut out);
        outbox.absorb(event(6), &mut out);
        let frames = vec![Frame::from("recovery"), Frame::from("n4"), Frame::from("n5")];
        outbox.absorb(Outbound::RecoveryReady { route: "notes".into(), frames, high_water: position(5) }, &mut out);
        outbox.absorb(event(5), &mut out);
        outbox.absorb(event(7), &mut out);
        assert_eq!(texts(&out), ["recovery", "n4", "n5", "n6", "n7"]);
    }

    #[test]
    fn a_join_revoked_while_its_replay_is_read_stays_left() {
        let mut outbox = Outbox::new(10);
        let mut out = Batch::default();
        outbox.absorb(Outbound::JoinStarted("r".into()), &mut out);
        outbox.absorb(event(3, Change::Insert), &mut out);
        outbox.absorb(Outbound::Revoked("r".into()), &mut out);
        let frames = vec![Frame::from("joined"), Frame::from("2Insert")];
        outbox.absorb(Outbound::JoinReady { room: "r".into(), frames, high_water: 3 }, &mut out);
        outbox.absorb(event(4, Change::Insert), &mut out);
        assert_eq!(texts(&out), [r#"{"type":"left","room":"r","reason":"revoked"}"#]);
    }

    #[test]
    fn every_queued_byte_is_released_once_whether_written_or_dropped() {
        let items = || {
            vec![
                Outbound::JoinStarted("r".into()),
                event(3, Change::Insert),
                event(4, Change::Insert),
                Outbound::JoinReady {
                    room: "r".into(),
                    frames: vec![Frame::from("joined"), Frame::from("3I")],
                    high_water: 3,
                },
                event(4, Change::Insert),
                event(5, Change::Update),
                Outbound::Reply(Frame::from("pong")),
                Outbound::JoinStarted("s".into()),
                Outbound::JoinFailed { room: "s".into(), error: Frame::from("error") },
                Outbound::Left { room: "r".into(), frame: Frame::from("left") },
                event(6, Change::Insert),
            ]
        };
        let charged: usize = items().iter().map(Outbound::frame_bytes).sum();
        let mut outbox = Outbox::new(10);
        let mut out = Batch::default();
        for item in items() {
            outbox.absorb(item, &mut out);
        }
        assert_eq!(out.release, charged);
    }

    #[test]
    fn holding_too_much_overflows() {
        let mut outbox = Outbox::new(1);
        let mut out = Batch::default();
        outbox.absorb(Outbound::JoinStarted("r".into()), &mut out);
        assert_eq!(outbox.absorb(event(1, Change::Insert), &mut out), Verdict::Continue);
        assert_eq!(outbox.absorb(event(2, Change::Insert), &mut out), Verdict::Overflow);
    }
}
