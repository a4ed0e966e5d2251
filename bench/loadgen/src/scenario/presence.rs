//! Scenario 6, presence churn: watchers sit in R rooms while connections
//! connect, join one of the rooms, read their presence snapshot and
//! disconnect, at a fixed offered rate; then a ramp of rising rates on the
//! same watchers until a step stops keeping up. Each cycle is a new user,
//! so it costs roomcast one `presence` insert and one delete in MongoDB
//! and every watcher of its room one `presence_join` and one
//! `presence_leave`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::Ctx;
use crate::churn::{self, Churn};
use crate::conn;
use crate::dbops::{self, DbOps};
use crate::figures::{StepFigures, Window};

/// A step that sustained less than this share of its offered cycles, lost
/// frames, failed cycles or saw p99 above a second has passed saturation.
const KEEPING_UP: f64 = 0.9;
const P99_LIMIT_MS: f64 = 1000.0;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct PresenceShape {
    pub rooms: usize,
    pub watchers_per_room: usize,
    pub max_in_flight: usize,
}

#[derive(Debug, Serialize)]
pub struct ChurnStep {
    pub offered_cycles_per_s: f64,
    /// Cycles (connect, join, snapshot, close acknowledged) whose join was
    /// written in the window and that ended, per second: each is one
    /// connect and one disconnect.
    pub cycles_per_s: f64,
    pub failed_cycles: u64,
    /// Cycles of which no watcher read a join or a leave, counted out of
    /// the expected frames: roomcast's presence keeper writes the state it
    /// finds, so a user gone before it looked is never written.
    pub coalesced_cycles: u64,
    /// Cycles not started because `max_in_flight` were still running.
    pub skipped_cycles: u64,
    /// Join and leave frames read by the watchers, per second; `figures`
    /// has their sum as delivered frames and the join → presence_join latency.
    pub join_frames_per_s: f64,
    pub leave_frames_per_s: f64,
    pub occupancy_frames: u64,
    /// MongoDB's own count (`top`) of operations on the run's database
    /// between the window's opening and its end; `None` if `top` failed.
    pub db: Option<DbOps>,
    pub db_presence_writes_per_s: Option<f64>,
    pub db_writes_per_s: Option<f64>,
    pub server_cpu_s_per_k_cycles: f64,
    pub figures: StepFigures,
}

#[derive(Debug, Serialize)]
pub struct PresenceRun {
    pub shape: PresenceShape,
    pub connect_s: f64,
    pub fixed: ChurnStep,
    pub ramp: Vec<ChurnStep>,
    /// The best sustained cycles/s of the fixed step and the ramp.
    pub saturation_cycles_per_s: f64,
    pub closes: BTreeMap<String, u64>,
}

pub fn room_name(index: usize) -> String {
    format!("presence-{index}")
}

pub async fn run(ctx: &Ctx<'_>) -> Result<PresenceRun> {
    let scale = ctx.scale;
    let shape = PresenceShape {
        rooms: scale.presence_rooms,
        watchers_per_room: scale.presence_watchers_per_room,
        max_in_flight: scale.presence_max_in_flight,
    };
    let rooms: Arc<Vec<String>> = Arc::new((0..shape.rooms).map(room_name).collect());
    // Every cycle the steps can start, at most: rate × (warm-up + window), plus the tick at the start.
    let span = (scale.timing.warmup + scale.timing.duration).as_secs_f64();
    let cycles = std::iter::once(&scale.presence_rate)
        .chain(&scale.presence_ramp_rates)
        .map(|rate| (rate * span).ceil() as usize + 1)
        .sum();
    let churn = Arc::new(Churn::new(cycles));
    let began = Instant::now();
    // Watchers are `pw-<i>`: their own joins reach each other, and are not counted.
    let watchers = conn::open_each(
        ctx.target,
        ctx.port,
        0..shape.rooms * shape.watchers_per_room,
        |i| (format!("pw-{i}"), vec![room_name(i % shape.rooms)]),
        |i, ws| tokio::spawn(churn::watch(ws, ctx.target, i, churn.clone())),
    )
    .await?;
    let connect_s = began.elapsed().as_secs_f64();

    let admin = mongodb::Client::with_uri_str(ctx.mongo_uri).await?;
    let fixed = step(ctx, &shape, &rooms, scale.presence_rate, &churn, &admin).await?;
    let mut ramp = Vec::new();
    for rate in &scale.presence_ramp_rates {
        let step = step(ctx, &shape, &rooms, *rate, &churn, &admin).await?;
        let saturated = step.cycles_per_s < KEEPING_UP * rate
            || step.figures.lost_frames > 0
            || step.failed_cycles > 0
            || step.figures.latency.p99_ms > P99_LIMIT_MS;
        ramp.push(step);
        if saturated {
            break;
        }
    }
    let saturation_cycles_per_s =
        ramp.iter().chain(std::iter::once(&fixed)).map(|s| s.cycles_per_s).fold(0.0, f64::max);
    for watcher in watchers {
        watcher.abort();
    }
    Ok(PresenceRun { shape, connect_s, fixed, ramp, saturation_cycles_per_s, closes: churn.stats.closes() })
}

/// One measured step at `rate` cycles/s: a warm-up, the window, then the
/// drain for the join and leave frames still on their way.
async fn step(
    ctx: &Ctx<'_>,
    shape: &PresenceShape,
    rooms: &Arc<Vec<String>>,
    rate: f64,
    churn: &Arc<Churn>,
    admin: &mongodb::Client,
) -> Result<ChurnStep> {
    let timing = ctx.scale.timing;
    churn.reset_step();
    let window = Window::open(&churn.stats, timing);
    let generator = tokio::spawn(churn::generate(
        ctx.target,
        ctx.port,
        rooms.clone(),
        rate,
        shape.max_in_flight,
        window.end,
        churn.clone(),
    ));
    let before = window.started(ctx.watched).await?;
    let ops_before = dbops::sample(admin, ctx.database).await;
    tokio::time::sleep_until(window.end).await;
    let ops_after = dbops::sample(admin, ctx.database).await;
    let _ = generator.await;
    let watchers = shape.watchers_per_room as u64;
    // A cycle's join and its leave reach every watcher of its room, unless
    // the server coalesced the cycle away: then neither reaches any.
    let sent = churn.stats.sent.load(Ordering::Relaxed);
    let expected = || sent.saturating_sub(churn.coalesced()) * 2 * watchers;
    let figures = window.finish_expecting(&churn.stats, expected, Some(rate), ctx.watched, before).await?;
    let coalesced_cycles = churn.coalesced();
    let seconds = timing.duration.as_secs_f64();
    let db = match (ops_before, ops_after) {
        (Ok(before), Ok(after)) => Some(after.since(&before)),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("bench: MongoDB's top command failed, no write counts: {error:#}");
            None
        }
    };
    let completed = churn.completed.load(Ordering::Relaxed);
    Ok(ChurnStep {
        offered_cycles_per_s: rate,
        cycles_per_s: completed as f64 / seconds,
        failed_cycles: churn.stats.refused.load(Ordering::Relaxed),
        coalesced_cycles,
        skipped_cycles: churn.stats.skipped.load(Ordering::Relaxed),
        join_frames_per_s: churn.join_frames.load(Ordering::Relaxed) as f64 / seconds,
        leave_frames_per_s: churn.leave_frames.load(Ordering::Relaxed) as f64 / seconds,
        occupancy_frames: churn.occupancy_frames.load(Ordering::Relaxed),
        db_presence_writes_per_s: db.as_ref().map(|d| d.writes_on("presence") as f64 / seconds),
        db_writes_per_s: db.as_ref().map(|d| d.writes() as f64 / seconds),
        db,
        server_cpu_s_per_k_cycles: if completed > 0 { figures.server_cpu_s * 1000.0 / completed as f64 } else { 0.0 },
        figures,
    })
}
