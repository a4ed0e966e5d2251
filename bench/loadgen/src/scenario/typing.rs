//! Scenario 7, typing storm: N users in one room, each sending `typing`
//! every few tens of ms (a held key's auto-repeat) for the whole step. Each
//! server lets through at most one per user per interval and relays it to
//! the room's other members; the rest are dropped. What is measured: the
//! frames the clients wrote, the writes that passed the throttle, the
//! MongoDB operations they caused (MongoDB's own count), the frames the
//! members read and how long after the frame that produced them (traced as
//! `typist.rs` explains).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

use super::Ctx;
use crate::clock::now_micros;
use crate::conn::{self, close_reason, Ws};
use crate::dbops::{self, DbOps};
use crate::dialect::{user_number, Incoming, Target};
use crate::figures::{StepFigures, Window};
use crate::typist::{Storm, TYPIST_PREFIX};

pub const ROOM: &str = "typing";

type Sink = Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>;

#[derive(Debug, Serialize)]
pub struct TypingRun {
    pub users: usize,
    pub period_ms: u64,
    pub interval_ms: u64,
    pub connect_s: f64,
    /// `typing` frames the clients wrote in the window, per second.
    pub typing_sent_per_s: f64,
    /// Writes that passed every throttle, as the members saw them: distinct
    /// events traced to a frame sent in the window, per second.
    pub events_per_s: f64,
    /// What the throttle lets through: users ÷ interval.
    pub expected_events_per_s: f64,
    /// MongoDB's own count (`top`) of operations on the run's database
    /// between the window's opening and its end; `None` if `top` failed.
    pub db: Option<DbOps>,
    pub db_typing_writes_per_s: Option<f64>,
    pub db_writes_per_s: Option<f64>,
    pub server_cpu_s_per_k_frames: f64,
    /// Delivered frames are `typing` frames read by members; latency is
    /// from the send of the frame each is traced to.
    pub figures: StepFigures,
    pub closes: BTreeMap<String, u64>,
}

pub async fn run(ctx: &Ctx<'_>) -> Result<TypingRun> {
    let scale = ctx.scale;
    let users = scale.typing_users;
    let period = Duration::from_millis(scale.typing_period_ms);
    let interval = Duration::from_millis(scale.typing_interval_ms);
    let storm = Arc::new(Storm::new(users, interval));
    let sinks = Mutex::new(Vec::new());
    let began = Instant::now();
    let readers = conn::open_each(
        ctx.target,
        ctx.port,
        0..users,
        |i| (format!("{TYPIST_PREFIX}{i}"), vec![ROOM.to_string()]),
        |i, ws| {
            let (sink, stream) = ws.split();
            let sink: Sink = Arc::new(tokio::sync::Mutex::new(sink));
            sinks.lock().expect("sinks poisoned").push((i, sink.clone()));
            tokio::spawn(read_typing(stream, sink, ctx.target, i, storm.clone()))
        },
    )
    .await?;
    let connect_s = began.elapsed().as_secs_f64();
    let mut sinks = sinks.into_inner().expect("sinks poisoned");
    sinks.sort_by_key(|(i, _)| *i);

    let admin = mongodb::Client::with_uri_str(ctx.mongo_uri).await?;
    let window = Window::open(&storm.stats, scale.timing);
    let frame = ctx.target.typing_frame(ROOM);
    let senders: Vec<_> = sinks
        .into_iter()
        .map(|(i, sink)| {
            // First keystrokes spread over one interval, so the writes that
            // pass are spread evenly rather than in one burst, and all within
            // the warm-up, so every typist types throughout the window.
            let phase = interval.min(scale.timing.warmup).mul_f64(i as f64 / users as f64);
            let (frame, storm, until) = (frame.clone(), storm.clone(), window.end);
            tokio::spawn(type_away(sink, frame, i, phase, period, until, storm))
        })
        .collect();
    let before = window.started(ctx.watched).await?;
    let ops_before = dbops::sample(&admin, ctx.database).await;
    tokio::time::sleep_until(window.end).await;
    let ops_after = dbops::sample(&admin, ctx.database).await;
    for sender in senders {
        let _ = sender.await;
    }
    // Every event reaches every member but its typist.
    let members = users.saturating_sub(1) as u64;
    let offered = users as f64 / period.as_secs_f64();
    let expected = || storm.events.load(Ordering::Relaxed) * members;
    let figures = window.finish_expecting(&storm.stats, expected, Some(offered), ctx.watched, before).await?;
    for reader in readers {
        reader.abort();
    }
    let seconds = scale.timing.duration.as_secs_f64();
    let db = match (ops_before, ops_after) {
        (Ok(before), Ok(after)) => Some(after.since(&before)),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("bench: MongoDB's top command failed, no write counts: {error:#}");
            None
        }
    };
    let delivered = figures.delivered_frames;
    Ok(TypingRun {
        users,
        period_ms: scale.typing_period_ms,
        interval_ms: scale.typing_interval_ms,
        connect_s,
        typing_sent_per_s: figures.sent_per_s,
        events_per_s: storm.events.load(Ordering::Relaxed) as f64 / seconds,
        expected_events_per_s: users as f64 / interval.as_secs_f64(),
        db_typing_writes_per_s: db.as_ref().map(|d| d.writes_on("typing") as f64 / seconds),
        db_writes_per_s: db.as_ref().map(|d| d.writes() as f64 / seconds),
        db,
        server_cpu_s_per_k_frames: if delivered > 0 { figures.server_cpu_s * 1000.0 / delivered as f64 } else { 0.0 },
        figures,
        closes: storm.stats.closes(),
    })
}

/// Sends `typing` every `period` from `phase` on until `until`: a fixed
/// rate, paced by the timer.
async fn type_away(
    sink: Sink,
    frame: String,
    typist: usize,
    phase: Duration,
    period: Duration,
    until: tokio::time::Instant,
    storm: Arc<Storm>,
) {
    let mut next = tokio::time::Instant::now() + phase;
    while next < until {
        tokio::time::sleep_until(next).await;
        next += period;
        // Stamped once the socket is ours, right before the write.
        let mut sink = sink.lock().await;
        storm.sent(typist, now_micros());
        if sink.send(Message::text(frame.clone())).await.is_err() {
            return;
        }
    }
}

/// A member's reads: every `typing` frame is traced and recorded; pings
/// are answered through the shared sink.
async fn read_typing(
    mut stream: futures::stream::SplitStream<Ws>,
    sink: Sink,
    target: Target,
    member: usize,
    storm: Arc<Storm>,
) {
    while let Some(frame) = stream.next().await {
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(close)) => {
                return storm.stats.record_close(format!("member: {}", close_reason(close.map(|c| u16::from(c.code)))))
            }
            Ok(_) => continue,
            Err(error) => return storm.stats.record_close(format!("member: error: {error}")),
        };
        match target.classify(&text) {
            Incoming::Typing => {
                let read_at = now_micros();
                let traced = user_number(&text, TYPIST_PREFIX).and_then(|typist| storm.attribute(typist, read_at));
                if let Some(sent_at) = traced {
                    storm.stats.record_delivery(member, sent_at);
                }
            }
            Incoming::Refused => {
                storm.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            incoming => {
                if let Some(reply) = target.reply(&incoming) {
                    if sink.lock().await.send(Message::text(reply)).await.is_err() {
                        return storm.stats.record_close("member: error on pong".to_string());
                    }
                }
            }
        }
    }
    storm.stats.record_close("member: eof".to_string());
}
