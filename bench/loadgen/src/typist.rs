//! A typing storm's members, and how a delivered `typing` frame is traced
//! back to the client frame that produced it.
//!
//! Both servers pass at most one `typing` per user and room per interval:
//! the first frame read at least an interval after the last one that
//! passed (roomcast checks this per connection, then in MongoDB across
//! devices; the peer in its one process). Everything else is dropped
//! silently, and the frame that reaches the members names only the room
//! and the user. So the generator keeps each typist's send times and
//! replays the same rule on them: the frame that passed is the first one
//! sent an interval or more after the previous one that passed.
//!
//! - A `typing` frame of user U read less than half an interval after the
//!   first read of U's last event belongs to that event (its other
//!   members' copies).
//! - Otherwise it is a new event. Its frame is the newest frame that the
//!   replayed rule passes after the previous event's frame and that was
//!   sent before this read (the newest, so that a write the database's
//!   check dropped, which still restarts the connection's interval, is
//!   skipped over). If the rule passes none, the server passed a frame a
//!   little earlier than the replay (its reads lag the sends by different
//!   amounts), and the newest frame sent before the read is taken.
//!
//! The send period is chosen so that the interval falls well between two
//! frames: then the replay picks the same frame as the server unless the
//! server's reading of two frames is delayed by amounts that differ by
//! tens of ms. Attribution holds while delivery takes less than half an
//! interval.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::micros;
use crate::stats::Stats;

pub const TYPIST_PREFIX: &str = "ty-";

#[derive(Default)]
struct Typist {
    /// Send times (µs) of this typist's recent frames, oldest first.
    sends: VecDeque<i64>,
    /// The frame the last event seen was traced to.
    last_pass: Option<i64>,
    /// When any member first read that event.
    last_seen: i64,
}

/// The storm's shared state. In `stats`, a send is a typing frame written,
/// a delivery a typing frame read by a member, counted and timed from the
/// frame it is traced to.
pub struct Storm {
    typists: Vec<Mutex<Typist>>,
    interval: i64,
    pub stats: Stats,
    /// Events traced to a frame sent in the window: writes that passed
    /// every throttle, as the members saw them.
    pub events: AtomicU64,
}

impl Storm {
    pub fn new(typists: usize, interval: Duration) -> Storm {
        Storm {
            typists: (0..typists).map(|_| Mutex::default()).collect(),
            interval: micros(interval),
            stats: Stats::default(),
            events: AtomicU64::new(0),
        }
    }

    /// Records a frame of `typist` about to be written at `at`: before the
    /// write, so that no member can read what it produced earlier.
    pub fn sent(&self, typist: usize, at: i64) {
        let mut state = self.typists[typist].lock().expect("typist poisoned");
        state.sends.push_back(at);
        // Enough to replay the rule from the previous event's frame.
        while state.sends.front().is_some_and(|s| *s < at - 3 * self.interval) {
            state.sends.pop_front();
        }
        drop(state);
        self.stats.record_send(at);
    }

    /// The send time of the frame that produced a `typing` frame of `typist`
    /// read at `read_at`.
    pub fn attribute(&self, typist: usize, read_at: i64) -> Option<i64> {
        let mut state = self.typists.get(typist)?.lock().expect("typist poisoned");
        if let Some(pass) = state.last_pass {
            if read_at - state.last_seen < self.interval / 2 {
                return Some(pass);
            }
        }
        let pass = replay(&state.sends, state.last_pass, read_at, self.interval)?;
        state.last_pass = Some(pass);
        state.last_seen = read_at;
        drop(state);
        if self.stats.in_window(pass) {
            self.events.fetch_add(1, Ordering::Relaxed);
        }
        Some(pass)
    }
}

/// The frame that passed after `last` and produced an event read at `read_at`.
fn replay(sends: &VecDeque<i64>, last: Option<i64>, read_at: i64, interval: i64) -> Option<i64> {
    let mut pass = last;
    let mut newest = None;
    for &sent in sends.iter().take_while(|s| **s <= read_at) {
        if pass.is_none_or(|p| sent - p >= interval) {
            pass = Some(sent);
            newest = Some(sent);
        }
    }
    newest.or_else(|| sends.iter().rev().find(|s| **s <= read_at && last.is_none_or(|p| **s > p)).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;
    const START: i64 = 1_000_000 * MS;

    /// One typist sending every 85 ms from START, in time order with the
    /// reads: the rule passes frames 0, 24 (2040 ms), 48 (4080 ms), ...
    struct Keyboard {
        storm: Storm,
        next: i64,
    }

    impl Keyboard {
        fn new() -> Keyboard {
            let storm = Storm::new(1, Duration::from_secs(2));
            storm.stats.open_window(0, i64::MAX);
            Keyboard { storm, next: 0 }
        }

        /// A member reads a typing frame `ms` after START.
        fn read(&mut self, ms: i64) -> Option<i64> {
            while self.next <= ms {
                self.storm.sent(0, START + self.next * MS);
                self.next += 85;
            }
            self.storm.attribute(0, START + ms * MS).map(|at| (at - START) / MS)
        }
    }

    #[test]
    fn traces_each_event_to_the_frame_the_throttle_passed() {
        let mut keyboard = Keyboard::new();
        assert_eq!(keyboard.read(3), Some(0));
        assert_eq!(keyboard.read(40), Some(0), "another member's copy of the same event");
        assert_eq!(keyboard.read(2043), Some(2040));
        assert_eq!(keyboard.read(4085), Some(4080));
        assert_eq!(keyboard.storm.events.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_dropped_write_and_an_early_pass_are_followed() {
        let mut keyboard = Keyboard::new();
        assert_eq!(keyboard.read(2), Some(0));
        // The 2040 ms write was dropped by the database: the next event is 4080's.
        assert_eq!(keyboard.read(4090), Some(4080));
        // The server passed 6035 (1955 ms after 4080) before the replay's 6120.
        assert_eq!(keyboard.read(6040), Some(6035));
        assert_eq!(keyboard.read(8080), Some(8075), "and the next one follows the server's");
    }

    #[test]
    fn unknown_typists_are_ignored() {
        assert_eq!(Keyboard::new().storm.attribute(5, 10), None);
    }
}
