//! Notification recovery. Every notification carries a cursor: its route and
//! its position in the change stream (cluster time, plus an index among the
//! events of one transaction, which share a cluster time). Positions come
//! from MongoDB, so they mean the same on every replica. Each replica keeps a
//! ring of the recent notifications of each user route, built from the
//! route's own stream in stream order, and knows its *floor*: every
//! notification after the floor is in the ring. A cursor at or above the
//! floor can be recovered exactly; one below it cannot, and the client is
//! told so instead of getting a silent partial answer.

use std::collections::VecDeque;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bson::Timestamp;

use crate::protocol::Frame;

/// A place in a route's change stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub time: u32,
    pub increment: u32,
    /// Index among events sharing one cluster time (one transaction).
    pub index: u32,
}

impl Position {
    pub fn at(cluster_time: Timestamp, index: u32) -> Position {
        Position { time: cluster_time.time, increment: cluster_time.increment, index }
    }

    /// The opaque cursor clients hold: `ROUTE:TIME.INCREMENT.INDEX`.
    pub fn cursor(&self, route: &str) -> String {
        format!("{route}:{}.{}.{}", self.time, self.increment, self.index)
    }

    /// Splits a cursor into its route and position.
    pub fn parse_cursor(cursor: &str) -> Option<(&str, Position)> {
        let (route, position) = cursor.rsplit_once(':')?;
        let mut parts = position.split('.').map(str::parse::<u32>);
        let position =
            Position { time: parts.next()?.ok()?, increment: parts.next()?.ok()?, index: parts.next()?.ok()? };
        (parts.next().is_none() && !route.is_empty()).then_some((route, position))
    }
}

/// Numbers the events of one stream: events of one transaction share a
/// cluster time and are told apart by their order.
#[derive(Default)]
pub struct Positions {
    last: Option<Timestamp>,
    index: u32,
}

impl Positions {
    pub fn next(&mut self, cluster_time: Timestamp) -> Position {
        if self.last == Some(cluster_time) {
            self.index += 1;
        } else {
            self.last = Some(cluster_time);
            self.index = 0;
        }
        Position::at(cluster_time, self.index)
    }
}

struct Entry {
    position: Position,
    user: String,
    frame: Frame,
    kept_at: Instant,
}

struct State {
    entries: VecDeque<Entry>,
    /// Bytes of the frames in `entries`.
    bytes: usize,
    /// Every notification after this position is in `entries`; `None` until
    /// the stream's start is known.
    floor: Option<Position>,
}

/// What a replay found.
pub struct Replay {
    /// The user's notifications after the cursor, in stream order; `None` when
    /// the ring cannot know them all.
    pub frames: Option<Vec<Frame>>,
    /// The newest position the ring held: anything at or below it that still
    /// arrives live was part of this replay or not for this user.
    pub high_water: Position,
    /// Whether the ring knows where its stream is: before the route's
    /// stream started, nothing tells what a replay must cover.
    pub started: bool,
}

/// The recent notifications of one user route.
pub struct Ring {
    state: RwLock<State>,
    window: Duration,
    max_events: usize,
    max_bytes: usize,
}

impl Ring {
    pub fn new(window: Duration, max_events: usize, max_bytes: usize) -> Ring {
        let state = State { entries: VecDeque::new(), bytes: 0, floor: None };
        Ring { state: RwLock::new(state), window, max_events, max_bytes }
    }

    /// Starts over at a stream that begins just after `start` (a fresh stream
    /// after the old one's history was lost, or the first one): every event at
    /// `start` itself is before the floor.
    pub fn restart(&self, start: Timestamp) {
        let mut state = self.state.write().expect("ring poisoned");
        state.entries.clear();
        state.bytes = 0;
        state.floor = Some(Position::at(start, u32::MAX));
    }

    pub fn push(&self, position: Position, user: &str, frame: &Frame) {
        let mut state = self.state.write().expect("ring poisoned");
        state.bytes += frame.len();
        state.entries.push_back(Entry {
            position,
            user: user.to_string(),
            frame: frame.clone(),
            kept_at: Instant::now(),
        });
        self.evict(&mut state);
    }

    fn evict(&self, state: &mut State) {
        let now = Instant::now();
        while let Some(oldest) = state.entries.front() {
            let expired = now.duration_since(oldest.kept_at) >= self.window;
            if !expired && state.entries.len() <= self.max_events && state.bytes <= self.max_bytes {
                break;
            }
            state.floor = Some(oldest.position);
            state.bytes -= oldest.frame.len();
            state.entries.pop_front();
        }
    }

    /// The user's notifications after `after`, if the ring holds all of them.
    pub fn replay(&self, user: &str, after: Position) -> Replay {
        let mut state = self.state.write().expect("ring poisoned");
        self.evict(&mut state);
        let newest = state.entries.back().map(|e| e.position).into_iter().chain(state.floor).max();
        let high_water = newest.map_or(after, |newest| newest.max(after));
        let covered = state.floor.is_some_and(|floor| after >= floor);
        let frames = covered.then(|| {
            state.entries.iter().filter(|e| e.position > after && e.user == user).map(|e| e.frame.clone()).collect()
        });
        Replay { frames, high_water, started: state.floor.is_some() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: u32, index: u32) -> Position {
        Position { time, increment: 1, index }
    }

    fn texts(frames: &[Frame]) -> Vec<&str> {
        frames.iter().map(Frame::text).collect()
    }

    #[test]
    fn cursors_round_trip() {
        let position = at(1795455010, 3);
        let cursor = position.cursor("notify:eu");
        assert_eq!(Position::parse_cursor(&cursor), Some(("notify:eu", position)));
        for bad in ["", "x", "r:1.2", "r:1.2.3.4", ":1.2.3", "r:a.b.c", "r:-1.2.3"] {
            assert_eq!(Position::parse_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn events_of_one_transaction_are_numbered_in_order() {
        let mut positions = Positions::default();
        let t = |time| Timestamp { time, increment: 1 };
        assert_eq!(positions.next(t(5)), at(5, 0));
        assert_eq!(positions.next(t(5)), at(5, 1));
        assert_eq!(positions.next(t(6)), at(6, 0));
    }

    #[test]
    fn replay_is_exact_inside_the_ring_and_refused_below_its_floor() {
        let ring = Ring::new(Duration::from_secs(60), 3, 1 << 20);
        assert!(ring.replay("bob", at(1, 0)).frames.is_none(), "a ring that has not started knows nothing");
        ring.restart(Timestamp { time: 10, increment: 1 });
        for (time, user) in [(11, "bob"), (12, "amy"), (13, "bob")] {
            ring.push(at(time, 0), user, &Frame::from(format!("{user}{time}")));
        }
        assert!(ring.replay("bob", at(9, 0)).frames.is_none(), "before the stream started");
        let replay = ring.replay("bob", at(11, 0));
        assert_eq!(texts(&replay.frames.unwrap()), ["bob13"]);
        assert_eq!(replay.high_water, at(13, 0));
        assert!(ring.replay("bob", at(10, 0)).frames.is_none(), "events at the start time are before the floor");
        let floor = Position::at(Timestamp { time: 10, increment: 1 }, u32::MAX);
        assert_eq!(texts(&ring.replay("bob", floor).frames.unwrap()), ["bob11", "bob13"], "a cursor at the floor");
        // A fourth event evicts the first: cursors before it are no longer recoverable.
        ring.push(at(14, 0), "bob", &Frame::from("bob14"));
        assert!(ring.replay("bob", at(10, 0)).frames.is_none());
        assert_eq!(texts(&ring.replay("bob", at(11, 0)).frames.unwrap()), ["bob13", "bob14"]);
        // A client ahead of this replica gets nothing now; live events up to its cursor are dropped.
        let ahead = ring.replay("bob", at(20, 0));
        assert_eq!(ahead.frames.unwrap().len(), 0);
        assert_eq!(ahead.high_water, at(20, 0));
    }

    #[test]
    fn the_byte_bound_evicts_the_oldest() {
        let ring = Ring::new(Duration::from_secs(60), 100, 9);
        ring.restart(Timestamp { time: 10, increment: 1 });
        ring.push(at(11, 0), "bob", &Frame::from("bob11"));
        ring.push(at(12, 0), "bob", &Frame::from("bob12"));
        ring.push(at(13, 0), "bob", &Frame::from("bob13"));
        assert!(ring.replay("bob", at(11, 0)).frames.is_none(), "11 and 12 could not stay within 9 bytes");
        assert_eq!(texts(&ring.replay("bob", at(12, 0)).frames.unwrap()), ["bob13"]);
    }

    #[test]
    fn the_window_expires_entries() {
        let ring = Ring::new(Duration::ZERO, 100, 1 << 20);
        ring.restart(Timestamp { time: 10, increment: 1 });
        ring.push(at(11, 0), "bob", &Frame::from("bob11"));
        ring.push(at(12, 0), "bob", &Frame::from("bob12"));
        assert!(ring.replay("bob", at(11, 0)).frames.is_none(), "what came after 11 has expired");
        assert_eq!(ring.replay("bob", at(12, 0)).frames.unwrap().len(), 0, "nothing came after 12");
    }
}
