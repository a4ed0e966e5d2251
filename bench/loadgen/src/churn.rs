//! Presence churn: short-lived connections that connect, join a room, read
//! their presence snapshot and disconnect, started at a fixed rate; and the
//! watchers that sit in the rooms counting `presence_join` and
//! `presence_leave`.
//!
//! A churner's user is `ch-<n>`, a new user every time, so each cycle is a
//! user's first arrival and last departure: one join and one leave frame
//! per watcher. The time its join frame was written is kept under `n`, so
//! a watcher reading `presence_join` of `ch-<n>` times the hop with this
//! process's one clock, and counts a frame only when its cycle's join was
//! written inside the window (as a message counts by its `bench_t`).

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::clock::now_micros;
use crate::conn::{self, close_reason, Ws};
use crate::dialect::{user_number, Incoming, Target};
use crate::stats::Stats;

pub const CHURN_PREFIX: &str = "ch-";
/// A cycle that has not ended within this long is given up on (and
/// counted as failed), so that the step still ends.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the churners and watchers of one scenario share. `stats` holds the
/// step's window: `sent` counts cycles whose join was written in it,
/// `delivered` join and leave frames of those cycles at the watchers, the
/// latency histogram join → `presence_join`, `refused` failed cycles and
/// `skipped` cycles not started because too many were in flight.
pub struct Churn {
    pub stats: Stats,
    /// When cycle n wrote its join, in µs; 0 until then.
    joins: Vec<AtomicI64>,
    /// Join and leave frames of cycle n read by the watchers, for telling a
    /// cycle the server coalesced away (neither, anywhere) from a loss.
    joins_seen: Vec<AtomicU32>,
    leaves_seen: Vec<AtomicU32>,
    next: AtomicUsize,
    pub join_frames: AtomicU64,
    pub leave_frames: AtomicU64,
    /// Cycles of the window that ended with their close acknowledged.
    pub completed: AtomicU64,
    /// `occupancy` frames: a room went above the server's listing limit,
    /// so its joins and leaves were no longer sent one by one.
    pub occupancy_frames: AtomicU64,
}

impl Churn {
    /// Room for `cycles` cycles in the whole scenario; any more are skipped.
    pub fn new(cycles: usize) -> Churn {
        Churn {
            stats: Stats::default(),
            joins: (0..cycles).map(|_| AtomicI64::new(0)).collect(),
            joins_seen: (0..cycles).map(|_| AtomicU32::new(0)).collect(),
            leaves_seen: (0..cycles).map(|_| AtomicU32::new(0)).collect(),
            next: AtomicUsize::new(0),
            join_frames: AtomicU64::new(0),
            leave_frames: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            occupancy_frames: AtomicU64::new(0),
        }
    }

    /// Clears the per-step counters that `Stats::open_window` does not hold.
    pub fn reset_step(&self) {
        for counter in [&self.join_frames, &self.leave_frames, &self.completed, &self.occupancy_frames] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// The cycle a frame names, and when that cycle wrote its join.
    fn cycle_of(&self, text: &str) -> Option<(usize, i64)> {
        let n = user_number(text, CHURN_PREFIX)?;
        let at = self.joins.get(n)?.load(Ordering::Acquire);
        (at > 0).then_some((n, at))
    }

    /// Cycles whose join was written in the window and of which no watcher
    /// read a join or a leave. roomcast writes the state a user is in when
    /// its presence keeper looks (docs/design.md, "Coalesced, not
    /// queued"): a user who came and went between two looks is never
    /// written, so no frame tells of them. Asked after the drain.
    pub fn coalesced(&self) -> u64 {
        let started = self.next.load(Ordering::Relaxed).min(self.joins.len());
        (0..started)
            .filter(|&n| {
                let at = self.joins[n].load(Ordering::Acquire);
                at > 0
                    && self.stats.in_window(at)
                    && self.joins_seen[n].load(Ordering::Relaxed) == 0
                    && self.leaves_seen[n].load(Ordering::Relaxed) == 0
            })
            .count() as u64
    }
}

/// A watcher: reads as fast as frames come until aborted, counting the
/// churners' joins and leaves.
pub async fn watch(mut ws: Ws, target: Target, conn: usize, churn: Arc<Churn>) {
    while let Some(frame) = ws.next().await {
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(close)) => {
                return churn.stats.record_close(format!("watcher: {}", close_reason(close.map(|c| u16::from(c.code)))))
            }
            Ok(_) => continue,
            Err(error) => return churn.stats.record_close(format!("watcher: error: {error}")),
        };
        match target.classify(&text) {
            Incoming::PresenceJoin => {
                if let Some((n, joined_at)) = churn.cycle_of(&text) {
                    churn.joins_seen[n].fetch_add(1, Ordering::Relaxed);
                    if churn.stats.in_window(joined_at) {
                        churn.join_frames.fetch_add(1, Ordering::Relaxed);
                    }
                    churn.stats.record_delivery(conn, joined_at);
                }
            }
            Incoming::PresenceLeave => {
                if let Some((n, joined_at)) = churn.cycle_of(&text) {
                    churn.leaves_seen[n].fetch_add(1, Ordering::Relaxed);
                    if churn.stats.in_window(joined_at) {
                        churn.leave_frames.fetch_add(1, Ordering::Relaxed);
                        churn.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Incoming::Occupancy => {
                churn.occupancy_frames.fetch_add(1, Ordering::Relaxed);
            }
            incoming => {
                if let Some(reply) = target.reply(&incoming) {
                    if ws.send(Message::text(reply)).await.is_err() {
                        return churn.stats.record_close("watcher: error on pong".to_string());
                    }
                }
            }
        }
    }
    churn.stats.record_close("watcher: eof".to_string());
}

/// Starts cycles at `rate` per second until `until`, in `rooms` round-robin,
/// with at most `max_in_flight` at once; returns once every cycle ended.
pub async fn generate(
    target: Target,
    port: u16,
    rooms: Arc<Vec<String>>,
    rate: f64,
    max_in_flight: usize,
    until: Instant,
    churn: Arc<Churn>,
) {
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut next = Instant::now();
    while next < until {
        // Pacing a fixed-rate generator: a late tick starts its cycle at
        // once, so the offered rate holds on average.
        tokio::time::sleep_until(next).await;
        next += period;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            churn.stats.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let n = churn.next.fetch_add(1, Ordering::Relaxed);
        if n >= churn.joins.len() {
            churn.stats.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (rooms, churn) = (rooms.clone(), churn.clone());
        tokio::spawn(async move {
            let room = &rooms[n % rooms.len()];
            let ended = tokio::time::timeout(CYCLE_TIMEOUT, cycle(target, port, n, room, &churn)).await;
            let failure = match ended {
                Ok(Ok(())) => None,
                Ok(Err(stage)) => Some(stage),
                Err(_) => Some("timed out"),
            };
            if let Some(stage) = failure {
                churn.stats.refused.fetch_add(1, Ordering::Relaxed);
                churn.stats.record_close(format!("churner: {stage}"));
            }
            drop(permit);
        });
    }
    let _ = permits.acquire_many(max_in_flight as u32).await;
}

/// One cycle: connect, join, read `joined` and the presence snapshot (the
/// join is complete, presence included), close and read until the server
/// closed too. The error names the stage that failed.
async fn cycle(target: Target, port: u16, n: usize, room: &str, churn: &Churn) -> Result<(), &'static str> {
    let user = format!("{CHURN_PREFIX}{n}");
    let mut ws = conn::connect(target, port, &user).await.map_err(|_| "connect")?;
    let joined_at = now_micros();
    // Kept before the frame is written: no watcher can see the join earlier.
    churn.joins[n].store(joined_at, Ordering::Release);
    churn.stats.record_send(joined_at);
    ws.send(Message::text(target.join_frame(room, 1))).await.map_err(|_| "join")?;
    conn::await_reply(&mut ws, target, 1, |i| *i == Incoming::Joined).await.map_err(|_| "joined")?;
    conn::await_reply(&mut ws, target, 1, |i| *i == Incoming::Presence).await.map_err(|_| "snapshot")?;
    ws.close(None).await.map_err(|_| "close")?;
    while let Some(frame) = ws.next().await {
        if frame.is_err() {
            break;
        }
    }
    if churn.stats.in_window(joined_at) {
        churn.completed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
