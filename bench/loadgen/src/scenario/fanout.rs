//! Scenario 1, fan-out: R rooms × S subscribers and P publishers, first at a
//! fixed offered rate, then a ramp of rising rates on the same connections
//! until delivery stops keeping up. Saturation is the best delivered rate
//! seen on the ramp.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::floor::{self, FloorRun};
use super::Ctx;
use crate::figures::StepFigures;
use crate::fleet::{Fleet, Shape};
use crate::publisher::Pace;

#[derive(Debug, Serialize)]
pub struct FanoutRun {
    pub shape: Shape,
    pub connect_s: f64,
    pub fixed: StepFigures,
    /// The database's own insert → change-event latency, measured by a bare
    /// driver client during the fixed step: the floor under this load.
    pub floor_under_load: Option<FloorRun>,
    /// The fixed step's p50 latency minus that floor's p50.
    pub p50_over_floor_under_load_ms: Option<f64>,
    pub ramp: Vec<StepFigures>,
    pub saturation_frames_per_s: f64,
    pub closes: BTreeMap<String, u64>,
}

/// A step that delivered less than this share of its offered frames, or lost
/// frames, or saw p99 above a second, has passed saturation.
const KEEPING_UP: f64 = 0.9;
const P99_LIMIT_MS: f64 = 1000.0;

/// The fan-out scenario: 20×50 at a fixed rate, then the ramp.
pub async fn run(ctx: &Ctx<'_>) -> Result<FanoutRun> {
    let scale = ctx.scale;
    let shape = (scale.fanout_rooms, scale.fanout_subs_per_room, scale.fanout_publishers);
    fanout(ctx, shape, scale.fanout_rate, &scale.ramp_rates).await
}

/// One fixed-rate step on a wide fleet (about 100k frames/s in the full
/// scale), where the relay-overhead target applies; no ramp.
pub async fn run_wide(ctx: &Ctx<'_>) -> Result<FanoutRun> {
    let scale = ctx.scale;
    fanout(ctx, (scale.wide_rooms, scale.wide_subs_per_room, scale.wide_publishers), scale.wide_rate, &[]).await
}

/// `(rooms, subscribers per room, publishers)` at `rate` msg/s, then each of `ramp_rates`.
async fn fanout(
    ctx: &Ctx<'_>,
    (rooms, subs_per_room, publishers): (usize, usize, usize),
    rate: f64,
    ramp_rates: &[f64],
) -> Result<FanoutRun> {
    let scale = ctx.scale;
    let shape = Shape { rooms, subs_per_room, publishers, payload_bytes: scale.payload_bytes };
    let began = Instant::now();
    let fleet = Fleet::connect(ctx.target, ctx.port, shape).await?;
    let connect_s = began.elapsed().as_secs_f64();
    let pace = |total: f64| Pace {
        rate: Some(total / shape.publishers as f64),
        max_in_flight: scale.max_in_flight_per_publisher,
    };
    let probe_database = format!("{}_floor", ctx.database);
    let (fixed, floor_under_load) = tokio::join!(
        fleet.step(pace(rate), scale.timing, ctx.watched),
        floor::run(ctx.mongo_uri, &probe_database, scale.floor_under_load_rate, scale.timing)
    );
    let fixed = fixed?;
    let floor_under_load = floor_under_load.map_err(|e| eprintln!("bench: the floor under load failed: {e:#}")).ok();
    let p50_over_floor_under_load_ms =
        floor_under_load.as_ref().map(|f| fixed.latency.p50_ms - f.insert_to_event.p50_ms);
    let mut ramp = Vec::new();
    for rate in ramp_rates {
        let step = fleet.step(pace(*rate), scale.timing, ctx.watched).await?;
        let offered_frames = rate * shape.subs_per_room as f64;
        let saturated = step.delivered_frames_per_s < KEEPING_UP * offered_frames
            || step.lost_frames > 0
            || step.latency.p99_ms > P99_LIMIT_MS;
        ramp.push(step);
        if saturated {
            break;
        }
    }
    let saturation_frames_per_s =
        ramp.iter().chain(std::iter::once(&fixed)).map(|s| s.delivered_frames_per_s).fold(0.0, f64::max);
    let closes = fleet.closes();
    fleet.close();
    Ok(FanoutRun {
        shape,
        connect_s,
        fixed,
        floor_under_load,
        p50_over_floor_under_load_ms,
        ramp,
        saturation_frames_per_s,
        closes,
    })
}
