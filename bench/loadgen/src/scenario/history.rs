//! Scenario 5, history paging under load: readers page backwards through a
//! room the database already holds, each with one request in flight, while
//! a fixed-rate fan-out runs on other connections. The fan-out first runs
//! alone on the same connections: its latency then has a baseline to be
//! compared with, and the server CPU the paging adds can be told apart from
//! the fan-out's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use bson::{doc, DateTime, Document};
use futures::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use super::{producer, Ctx};
use crate::conn;
use crate::figures::{StepFigures, Window};
use crate::fleet::{Fleet, Shape};
use crate::pager::{self, Paging};
use crate::publisher::Pace;
use crate::scale::Scale;
use crate::stats::Stats;

/// The pre-filled room; the fan-out's rooms are `room-<i>`.
pub const ROOM: &str = "history";
/// Documents per insert while seeding.
const SEED_BATCH: usize = 1000;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct HistoryShape {
    pub messages: usize,
    pub readers: usize,
    pub limit: usize,
}

#[derive(Debug, Serialize)]
pub struct HistoryRun {
    pub shape: HistoryShape,
    pub fanout_shape: Shape,
    pub fanout_rate: f64,
    pub connect_s: f64,
    /// The fan-out alone, on the same connections, right before the paging.
    pub fanout_alone: StepFigures,
    /// The fan-out during the paging window.
    pub fanout: StepFigures,
    /// The paging, in the fan-out's terms: a send is a request, a delivered
    /// frame a page, latency is request written → page read.
    pub paging: StepFigures,
    pub pages_per_s: f64,
    /// Should equal the limit (the room holds a whole number of pages).
    pub messages_per_page: f64,
    /// Server CPU in the paging window minus that in the fan-out-alone
    /// window (the same length), per 1,000 pages.
    pub server_cpu_s_per_k_pages: f64,
    pub closes: BTreeMap<String, u64>,
}

/// Fills the room with `history_messages` messages in the relay's own schema,
/// straight into the database. It runs before the server under test starts,
/// so neither server's change stream sees the inserts and the step's windows
/// carry no trace of them.
pub async fn seed(mongo_uri: &str, database: &str, scale: &Scale) -> Result<()> {
    let messages = producer::collection(mongo_uri, database, "messages").await?;
    let text = "x".repeat(scale.payload_bytes);
    let sent_at = DateTime::now();
    let all: Vec<Document> = (1..=scale.history_messages as i64)
        .map(|seq| doc! { "room": ROOM, "seq": seq, "author": "seed", "body": { "text": &text }, "sent_at": sent_at })
        .collect();
    for batch in all.chunks(SEED_BATCH) {
        messages.insert_many(batch).await.context("seeding the history room")?;
    }
    Ok(())
}

pub async fn run(ctx: &Ctx<'_>) -> Result<HistoryRun> {
    let scale = ctx.scale;
    let shape =
        HistoryShape { messages: scale.history_messages, readers: scale.history_readers, limit: scale.history_limit };
    let rooms = scale.history_fanout_rooms;
    let fanout_shape = Shape {
        rooms,
        subs_per_room: scale.history_fanout_subs_per_room,
        publishers: rooms,
        payload_bytes: scale.payload_bytes,
    };
    let began = Instant::now();
    let fleet = Fleet::connect(ctx.target, ctx.port, fanout_shape).await?;
    let mut connect_s = began.elapsed().as_secs_f64();
    let pace =
        Pace { rate: Some(scale.history_fanout_rate / rooms as f64), max_in_flight: scale.max_in_flight_per_publisher };
    let fanout_alone = fleet.step(pace, scale.timing, ctx.watched).await?;
    // Opened only now: a reader reads nothing until it pages, so it could
    // not answer the peer's keep-alive pings during the step above.
    // Readers join nothing: a room's history is open to whoever may join it.
    let began = Instant::now();
    let readers = stream::iter(0..shape.readers)
        .map(|i| async move { conn::open(ctx.target, ctx.port, &format!("hist-{i}"), &[]).await })
        .buffer_unordered(conn::CONNECT_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    connect_s += began.elapsed().as_secs_f64();

    let stats = Arc::new(Stats::default());
    let messages = Arc::new(AtomicU64::new(0));
    let paging = Arc::new(Paging { room: ROOM.to_string(), newest: shape.messages as i64, limit: shape.limit });
    let paging_step = async {
        let window = Window::open(&stats, scale.timing);
        let tasks: Vec<_> = readers
            .into_iter()
            .enumerate()
            .map(|(i, ws)| {
                let (paging, stats, messages) = (paging.clone(), stats.clone(), messages.clone());
                tokio::spawn(pager::read_pages(ws, ctx.target, i, paging, window.end, stats, messages))
            })
            .collect();
        let before = window.started(ctx.watched).await?;
        for task in tasks {
            let _ = task.await;
        }
        window.finish(&stats, 1, None, ctx.watched, before).await
    };
    let (fanout, paging) = tokio::join!(fleet.step(pace, scale.timing, ctx.watched), paging_step);
    let (fanout, paging) = (fanout?, paging?);

    let pages = paging.delivered_frames;
    let per_page = |total: f64| if pages > 0 { total / pages as f64 } else { 0.0 };
    let mut closes = fleet.closes();
    for (why, n) in stats.closes() {
        *closes.entry(why).or_default() += n;
    }
    fleet.close();
    Ok(HistoryRun {
        shape,
        fanout_shape,
        fanout_rate: scale.history_fanout_rate,
        connect_s,
        pages_per_s: paging.delivered_frames_per_s,
        messages_per_page: per_page(messages.load(Ordering::Relaxed) as f64),
        server_cpu_s_per_k_pages: per_page((paging.server_cpu_s - fanout_alone.server_cpu_s) * 1000.0),
        fanout_alone,
        fanout,
        paging,
        closes,
    })
}
