//! Scenario 4, cost growth: one fan-out point per (rooms, subscribers per
//! room), each driven as a closed loop with the same total number of
//! messages in flight, so throughput and p99 show how each server's cost
//! grows with the shape of the fan-out rather than with the offered load.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::Ctx;
use crate::figures::StepFigures;
use crate::fleet::{Fleet, Shape};
use crate::publisher::Pace;

#[derive(Debug, Serialize)]
pub struct GrowthRun {
    pub shape: Shape,
    pub max_in_flight_per_publisher: u64,
    pub figures: StepFigures,
    pub closes: BTreeMap<String, u64>,
}

pub async fn run(ctx: &Ctx<'_>, rooms: usize, subs_per_room: usize) -> Result<GrowthRun> {
    let scale = ctx.scale;
    let publishers = rooms.min(scale.growth_max_publishers);
    let shape = Shape { rooms, subs_per_room, publishers, payload_bytes: scale.payload_bytes };
    let max_in_flight_per_publisher = (scale.growth_window / publishers as u64).max(1);
    let fleet = Fleet::connect(ctx.target, ctx.port, shape).await?;
    let pace = Pace { rate: None, max_in_flight: max_in_flight_per_publisher };
    let figures = fleet.step(pace, scale.timing, ctx.watched).await?;
    let closes = fleet.closes();
    fleet.close();
    Ok(GrowthRun { shape, max_in_flight_per_publisher, figures, closes })
}
