//! One measured step, the same for every scenario and both servers: open the
//! window after a warm-up, sample the processes when it opens, let the load
//! run, wait for frames still on their way, sample again, and turn the
//! counters into figures.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use tokio::time::Instant;

use crate::clock::{micros, now_micros};
use crate::overhead::{self, Overhead, Scrape};
use crate::procstat::{self, cpu_between, ProcSample};
use crate::stats::{Latency, Stats};

#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub duration: Duration,
    /// Longest wait after the window for frames still on their way.
    pub drain: Duration,
}

/// The processes whose CPU and memory a step reports.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    pub server: u32,
    pub db: Option<u32>,
    /// Where roomcast serves `/metrics`, for its relay-overhead histogram.
    pub metrics_port: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepFigures {
    pub offered_per_s: Option<f64>,
    pub sent_per_s: f64,
    pub delivered_frames_per_s: f64,
    pub expected_frames: u64,
    pub delivered_frames: u64,
    pub lost_frames: u64,
    pub skipped_sends: u64,
    pub refused_sends: u64,
    pub latency: Latency,
    /// Send → ack at the publishers, where the ack names the send (roomcast).
    pub ack_latency: Option<Latency>,
    pub server_cpu_s: f64,
    pub server_cpu_s_per_m_frames: f64,
    pub db_cpu_s: f64,
    /// This load generator's own CPU: when it nears the machine's cores, the
    /// figures measure the generator, not the server.
    pub loadgen_cpu_s: f64,
    pub server_rss_mib: f64,
    pub server_peak_rss_mib: f64,
    /// roomcast only: change event received → frame written, from its metrics.
    pub relay_overhead: Option<Overhead>,
    /// roomcast only: a send's majority insert as the relay waited for it.
    pub relay_commit: Option<Overhead>,
}

/// CPU and memory of the server, the database and this process at one instant.
pub struct Samples {
    server: ProcSample,
    db: Option<ProcSample>,
    loadgen: ProcSample,
    metrics: Option<Scrape>,
}

impl Samples {
    async fn take(watched: Watched) -> Result<Samples> {
        let metrics = match watched.metrics_port {
            Some(port) => Some(overhead::scrape(port).await?),
            None => None,
        };
        Ok(Samples {
            server: procstat::sample(watched.server)?,
            db: watched.db.and_then(|pid| procstat::sample(pid).ok()),
            loadgen: procstat::sample(std::process::id())?,
            metrics,
        })
    }
}

/// A step in progress: the window is open in `stats` from `start` to `end`.
pub struct Window {
    pub start: Instant,
    pub end: Instant,
    timing: Timing,
}

impl Window {
    pub fn open(stats: &Stats, timing: Timing) -> Window {
        let start = Instant::now() + timing.warmup;
        let start_micros = now_micros() + micros(timing.warmup);
        stats.open_window(start_micros, start_micros + micros(timing.duration));
        Window { start, end: start + timing.duration, timing }
    }

    /// Waits for the window to open and samples the processes.
    pub async fn started(&self, watched: Watched) -> Result<Samples> {
        tokio::time::sleep_until(self.start).await;
        Samples::take(watched).await
    }

    /// Call once the load stopped: drains, samples again and returns the figures.
    /// `fanout` is the number of frames each send should produce.
    pub async fn finish(
        self,
        stats: &Stats,
        fanout: u64,
        offered_per_s: Option<f64>,
        watched: Watched,
        before: Samples,
    ) -> Result<StepFigures> {
        let expected = stats.sent.load(Ordering::Relaxed) * fanout;
        self.finish_expecting(stats, || expected, offered_per_s, watched, before).await
    }

    /// As `finish`, for a step whose expected frames are only known as they
    /// come (typing: each write that passed the throttle is seen once it is
    /// delivered): `expected` is asked again while draining.
    pub async fn finish_expecting(
        self,
        stats: &Stats,
        expected: impl Fn() -> u64,
        offered_per_s: Option<f64>,
        watched: Watched,
        before: Samples,
    ) -> Result<StepFigures> {
        drain(stats, &expected, self.end + self.timing.drain).await;
        let expected = expected();
        let after = Samples::take(watched).await?;
        let (relay_overhead, relay_commit) = match (&after.metrics, &before.metrics) {
            (Some(after), Some(before)) => {
                (Some(after.overhead.since(&before.overhead)), Some(after.commit.since(&before.commit)))
            }
            _ => (None, None),
        };
        let server = after.server;
        let seconds = self.timing.duration.as_secs_f64();
        let delivered = stats.delivered.load(Ordering::Relaxed);
        let server_cpu_s = cpu_between(Some(before.server), Some(server));
        Ok(StepFigures {
            offered_per_s,
            sent_per_s: stats.sent.load(Ordering::Relaxed) as f64 / seconds,
            delivered_frames_per_s: delivered as f64 / seconds,
            expected_frames: expected,
            delivered_frames: delivered,
            lost_frames: expected.saturating_sub(delivered),
            skipped_sends: stats.skipped.load(Ordering::Relaxed),
            refused_sends: stats.refused.load(Ordering::Relaxed),
            latency: stats.latency(),
            ack_latency: stats.ack_latency(),
            server_cpu_s,
            server_cpu_s_per_m_frames: if delivered > 0 { server_cpu_s * 1e6 / delivered as f64 } else { 0.0 },
            db_cpu_s: cpu_between(before.db, after.db),
            loadgen_cpu_s: cpu_between(Some(before.loadgen), Some(after.loadgen)),
            server_rss_mib: server.rss_kib as f64 / 1024.0,
            server_peak_rss_mib: server.peak_rss_kib as f64 / 1024.0,
            relay_overhead,
            relay_commit,
        })
    }
}

/// Waits until every expected frame arrived, progress stopped for
/// `STALLED`, or the deadline passed.
/// How long a drain waits without a new frame before it counts the rest as
/// lost: longer than a commit takes beside the history step, where the
/// database runs at full CPU and the last sends commit up to 2.5 s late.
const STALLED: Duration = Duration::from_secs(3);

async fn drain(stats: &Stats, expected: &dyn Fn() -> u64, deadline: Instant) {
    let mut last = stats.delivered.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    while Instant::now() < deadline {
        let delivered = stats.delivered.load(Ordering::Relaxed);
        if delivered >= expected() {
            return;
        }
        if delivered != last {
            last = delivered;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALLED {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
