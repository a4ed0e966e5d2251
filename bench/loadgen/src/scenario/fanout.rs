//! Scenario 1, fan-out: R rooms × S subscribers and P publishers, first at a
//! fixed offered rate, then a ramp of rising rates on the same connections
//! until delivery stops keeping up. Saturation is the best delivered rate
//! seen on the ramp. For roomcast, the fixed step also runs with SSE
//! subscribers beside WebSocket ones (`run_transports`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::floor::{self, FloorRun};
use super::Ctx;
use crate::dialect::Transport;
use crate::figures::StepFigures;
use crate::fleet::{Fleet, Shape};
use crate::overhead;
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

/// The fan-out's fixed step twice on one server (roomcast): subscribers over
/// WebSocket, then as many over SSE. Publishers are WebSockets both times,
/// so only the subscribers' transport differs, and both costs per frame
/// come from one process and one database, a minute apart.
#[derive(Debug, Serialize)]
pub struct TransportsRun {
    pub shape: Shape,
    pub websocket: TransportStep,
    pub sse: TransportStep,
}

#[derive(Debug, Serialize)]
pub struct TransportStep {
    pub subscribers: Transport,
    pub connect_s: f64,
    pub fixed: StepFigures,
    pub closes: BTreeMap<String, u64>,
}

/// How long the server may take to let go of a closed fleet.
const LET_GO: Duration = Duration::from_secs(30);

pub async fn run_transports(ctx: &Ctx<'_>) -> Result<TransportsRun> {
    let scale = ctx.scale;
    let shape = Shape {
        rooms: scale.fanout_rooms,
        subs_per_room: scale.fanout_subs_per_room,
        publishers: scale.fanout_publishers,
        payload_bytes: scale.payload_bytes,
    };
    let websocket = fixed_step(ctx, shape, Transport::WebSocket).await?;
    // The SSE fleet's warm-up starts once the server ended every session
    // of the first, so none of their teardown falls in its window.
    overhead::await_gauge(ctx.port, "roomcast_connections_open", 0.0, LET_GO).await?;
    let sse = fixed_step(ctx, shape, Transport::Sse).await?;
    Ok(TransportsRun { shape, websocket, sse })
}

async fn fixed_step(ctx: &Ctx<'_>, shape: Shape, transport: Transport) -> Result<TransportStep> {
    let scale = ctx.scale;
    let began = Instant::now();
    let fleet = Fleet::connect_via(transport, ctx.target, ctx.port, shape).await?;
    let connect_s = began.elapsed().as_secs_f64();
    let pace = Pace {
        rate: Some(scale.fanout_rate / shape.publishers as f64),
        max_in_flight: scale.max_in_flight_per_publisher,
    };
    let fixed = fleet.step(pace, scale.timing, ctx.watched).await;
    let closes = fleet.closes();
    fleet.closed().await;
    Ok(TransportStep { subscribers: transport, connect_s, fixed: fixed?, closes })
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
