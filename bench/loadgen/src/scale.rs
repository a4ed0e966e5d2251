//! How big and how long each scenario runs. `full` takes 6–8 minutes on a 2-core
//! machine; `smoke` only proves that the harness still works.

use std::time::Duration;

use serde::Serialize;

use crate::figures::Timing;

/// Descriptors kept free for everything but the idle connections (database
/// pools, logs, the runtime).
const DESCRIPTOR_HEADROOM: u64 = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    pub name: &'static str,
    pub payload_bytes: usize,
    #[serde(skip)]
    pub timing: Timing,
    #[serde(skip)]
    pub settle: Duration,
    /// Fan-out at a fixed offered rate, then a ramp on the same connections.
    pub fanout_rooms: usize,
    pub fanout_subs_per_room: usize,
    pub fanout_publishers: usize,
    pub fanout_rate: f64,
    pub ramp_rates: Vec<f64>,
    pub max_in_flight_per_publisher: u64,
    /// Fan-out at a fixed rate of about 100k delivered frames/s, where the
    /// relay-overhead target applies.
    pub wide_rooms: usize,
    pub wide_subs_per_room: usize,
    pub wide_publishers: usize,
    pub wide_rate: f64,
    /// Idle connections, measured cumulatively on one server.
    pub idle_sizes: Vec<usize>,
    pub idle_members_per_room: usize,
    pub notify_users: usize,
    pub notify_conns_per_user: usize,
    pub notify_rate: f64,
    /// Cost growth: subscribers per room at `growth_rooms_fixed` rooms, then
    /// rooms at `growth_subs_fixed` subscribers, each point a saturating
    /// closed loop with `growth_window` messages in flight in total.
    pub growth_subs: Vec<usize>,
    pub growth_rooms_fixed: usize,
    pub growth_rooms: Vec<usize>,
    pub growth_subs_fixed: usize,
    pub growth_max_publishers: usize,
    pub growth_window: u64,
    /// History paging: `history_readers` connections page backwards through a
    /// room of `history_messages`, `history_limit` per page, one request in
    /// flight each, beside a fan-out of `history_fanout_rooms` ×
    /// `history_fanout_subs_per_room` at `history_fanout_rate` msg/s in total.
    pub history_messages: usize,
    pub history_readers: usize,
    pub history_limit: usize,
    pub history_fanout_rooms: usize,
    pub history_fanout_subs_per_room: usize,
    pub history_fanout_rate: f64,
    /// Presence churn: `presence_rooms` rooms with `presence_watchers_per_room`
    /// watchers each; connections connect, join a room (round-robin), read
    /// their presence snapshot and disconnect, at `presence_rate` cycles/s,
    /// then at each rate of the ramp until a step stops keeping up. At most
    /// `presence_max_in_flight` cycles run at once.
    pub presence_rooms: usize,
    pub presence_watchers_per_room: usize,
    pub presence_rate: f64,
    pub presence_ramp_rates: Vec<f64>,
    pub presence_max_in_flight: usize,
    /// Typing storm: `typing_users` in one room, each sending `typing` every
    /// `typing_period_ms`. The servers let one through per user per
    /// `typing_interval_ms` (set on both, as roomcast's default). The period
    /// does not divide the interval, so which frame passes is never a coin
    /// toss between two (see typist.rs).
    pub typing_users: usize,
    pub typing_period_ms: u64,
    pub typing_interval_ms: u64,
    pub floor_rate: f64,
    /// The bare-driver probe that runs beside each fixed fan-out step: low,
    /// so that it barely adds to the load it measures.
    pub floor_under_load_rate: f64,
}

impl Scale {
    pub fn full() -> Scale {
        Scale {
            name: "full",
            payload_bytes: 100,
            timing: Timing {
                warmup: Duration::from_secs(2),
                duration: Duration::from_secs(10),
                drain: Duration::from_secs(10),
            },
            settle: Duration::from_secs(3),
            fanout_rooms: 20,
            fanout_subs_per_room: 50,
            fanout_publishers: 20,
            fanout_rate: 200.0,
            ramp_rates: vec![400.0, 800.0, 1600.0, 3200.0, 6400.0],
            max_in_flight_per_publisher: 64,
            wide_rooms: 10,
            wide_subs_per_room: 500,
            wide_publishers: 10,
            wide_rate: 200.0,
            idle_sizes: vec![1_000, 10_000, 20_000],
            idle_members_per_room: 100,
            notify_users: 200,
            notify_conns_per_user: 3,
            notify_rate: 500.0,
            growth_subs: vec![1, 10, 100, 1000],
            growth_rooms_fixed: 10,
            growth_rooms: vec![1, 10, 100, 1000],
            growth_subs_fixed: 10,
            growth_max_publishers: 100,
            growth_window: 64,
            history_messages: 10_000,
            history_readers: 50,
            history_limit: 50,
            history_fanout_rooms: 10,
            history_fanout_subs_per_room: 20,
            history_fanout_rate: 100.0,
            presence_rooms: 10,
            presence_watchers_per_room: 10,
            presence_rate: 50.0,
            presence_ramp_rates: vec![100.0, 200.0, 400.0, 800.0],
            presence_max_in_flight: 1000,
            typing_users: 100,
            typing_period_ms: 85,
            typing_interval_ms: 2000,
            floor_rate: 500.0,
            floor_under_load_rate: 50.0,
        }
    }

    pub fn smoke() -> Scale {
        Scale {
            name: "smoke",
            timing: Timing {
                warmup: Duration::from_millis(300),
                duration: Duration::from_millis(700),
                drain: Duration::from_secs(2),
            },
            settle: Duration::from_millis(200),
            fanout_rooms: 2,
            fanout_subs_per_room: 3,
            fanout_publishers: 2,
            fanout_rate: 20.0,
            ramp_rates: vec![40.0],
            wide_rooms: 1,
            wide_subs_per_room: 3,
            wide_publishers: 1,
            wide_rate: 20.0,
            idle_sizes: vec![10, 30],
            idle_members_per_room: 10,
            notify_users: 3,
            notify_conns_per_user: 2,
            notify_rate: 20.0,
            growth_subs: vec![1, 3],
            growth_rooms_fixed: 1,
            growth_rooms: vec![1],
            growth_subs_fixed: 3,
            growth_window: 4,
            history_messages: 200,
            history_readers: 3,
            history_limit: 10,
            history_fanout_rooms: 1,
            history_fanout_subs_per_room: 3,
            history_fanout_rate: 10.0,
            presence_rooms: 1,
            presence_watchers_per_room: 2,
            presence_rate: 10.0,
            presence_ramp_rates: vec![20.0],
            presence_max_in_flight: 50,
            // A shorter interval (on both servers), so that each typist's
            // writes pass more than once in the short window.
            typing_users: 4,
            typing_period_ms: 115,
            typing_interval_ms: 500,
            floor_rate: 20.0,
            floor_under_load_rate: 10.0,
            ..Scale::full()
        }
    }

    /// Multiplies every duration, for shorter or longer runs than the preset.
    pub fn stretched(mut self, factor: f64) -> Scale {
        let f = |d: Duration| d.mul_f64(factor.max(0.01));
        self.timing =
            Timing { warmup: f(self.timing.warmup), duration: f(self.timing.duration), drain: f(self.timing.drain) };
        self.settle = f(self.settle);
        self
    }

    /// Keeps the idle sizes within what both processes can open: each
    /// connection costs a descriptor in the load generator and one in the
    /// server, which inherits the same limit.
    pub fn fit_descriptor_limit(&mut self, limit: u64) {
        let usable = limit.saturating_sub(DESCRIPTOR_HEADROOM) as usize;
        let requested = std::mem::take(&mut self.idle_sizes);
        for size in requested {
            let size = size.min(usable);
            if !self.idle_sizes.contains(&size) {
                self.idle_sizes.push(size);
            }
        }
    }

    /// The (rooms, subscribers per room) points of the growth scenario, each once.
    pub fn growth_points(&self) -> Vec<(usize, usize)> {
        let mut points: Vec<(usize, usize)> = self.growth_subs.iter().map(|s| (self.growth_rooms_fixed, *s)).collect();
        for rooms in &self.growth_rooms {
            let point = (*rooms, self.growth_subs_fixed);
            if !points.contains(&point) {
                points.push(point);
            }
        }
        points
    }
}
