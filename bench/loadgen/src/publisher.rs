//! A publishing connection. It joins its rooms (both protocols need that to
//! send) and sends benchmark messages paced by a rate, a cap on messages in
//! flight, or both. A message stays in flight until the publisher reads its
//! own copy back from the room: that closes the loop end to end, so a
//! saturating load cannot pile up unbounded backlogs in either server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::clock::now_micros;
use crate::conn::{self, close_reason, Ws};
use crate::dialect::{integer_after, Incoming, Target, SOURCE_KEY};
use crate::stats::Stats;

/// After this long without a completion, in-flight messages are given up on
/// so that one lost message cannot stall a publisher for the rest of a step.
const STALL: Duration = Duration::from_secs(5);

/// How one step offers load.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Messages per second for this publisher; `None` sends whenever the cap allows.
    pub rate: Option<f64>,
    pub max_in_flight: u64,
}

pub struct Publisher {
    id: u64,
    target: Target,
    rooms: Vec<String>,
    /// Shared by the send loop and the reader's pongs: a send goes to the
    /// socket from the task that stamped its send time, with no hop between.
    sink: Arc<Mutex<SplitSink<Ws, Message>>>,
    in_flight: Arc<AtomicU64>,
    completed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
    padding: String,
}

impl Publisher {
    pub async fn connect(
        target: Target,
        port: u16,
        id: u64,
        rooms: Vec<String>,
        payload_bytes: usize,
        stats: Arc<Stats>,
    ) -> Result<Publisher> {
        let ws = conn::open(target, port, &format!("pub-{id}"), &rooms).await?;
        let (sink, mut stream) = ws.split();
        let sink = Arc::new(Mutex::new(sink));
        let in_flight = Arc::new(AtomicU64::new(0));
        let completed = Arc::new(Notify::new());
        let reader = tokio::spawn({
            let (sink, in_flight, completed) = (sink.clone(), in_flight.clone(), completed.clone());
            let own_source = id as i64;
            async move {
                while let Some(frame) = stream.next().await {
                    let text = match frame {
                        Ok(Message::Text(text)) => text,
                        Ok(Message::Close(close)) => {
                            stats.record_close(close_reason(close.map(|c| u16::from(c.code))));
                            return;
                        }
                        Ok(_) => continue,
                        Err(error) => {
                            stats.record_close(format!("error: {error}"));
                            return;
                        }
                    };
                    let incoming = target.classify(&text);
                    if incoming == Incoming::Ack {
                        if let Some(sent_at) = ack_sent_at(&text) {
                            stats.record_ack(sent_at);
                        }
                    }
                    let done = match incoming {
                        Incoming::Message(_) => integer_after(&text, SOURCE_KEY) == Some(own_source),
                        Incoming::Refused => {
                            stats.refused.fetch_add(1, Ordering::Relaxed);
                            true
                        }
                        _ => false,
                    };
                    if done {
                        let _ = in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
                        completed.notify_one();
                    }
                    if let Some(reply) = target.reply(&incoming) {
                        let _ = sink.lock().await.send(Message::text(reply)).await;
                    }
                }
            }
        });
        Ok(Publisher {
            id,
            target,
            rooms,
            sink,
            in_flight,
            completed,
            tasks: vec![reader],
            padding: "x".repeat(payload_bytes),
        })
    }

    /// Sends until `until`, recording each send in `stats`.
    pub async fn run(&self, pace: Pace, until: Instant, stats: &Stats) {
        let period = pace.rate.filter(|r| *r > 0.0).map(|r| Duration::from_secs_f64(1.0 / r));
        // Spread publishers over the period so their sends do not all land on one tick.
        let phase = period.map(|p| p.mul_f64((self.id % 97) as f64 / 97.0)).unwrap_or_default();
        let mut next = Instant::now() + phase;
        let mut count: u64 = 0;
        loop {
            match period {
                Some(period) => {
                    tokio::time::sleep_until(next).await;
                    next += period;
                }
                None => self.wait_for_room(pace.max_in_flight, until).await,
            }
            if Instant::now() >= until {
                return;
            }
            if self.in_flight.load(Ordering::Acquire) >= pace.max_in_flight {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            count += 1;
            let room = &self.rooms[(count as usize) % self.rooms.len()];
            let sent_at = now_micros();
            let body = format!(r#"{{"bench_t":{sent_at},"src":{},"pad":"{}"}}"#, self.id, self.padding);
            let client_id = format!("p{}-{sent_at}-{count}", self.id);
            let frame = self.target.send_frame(room, &client_id, count, &body);
            stats.record_send(sent_at);
            if self.sink.lock().await.send(Message::text(frame)).await.is_err() {
                return;
            }
        }
    }

    async fn wait_for_room(&self, cap: u64, until: Instant) {
        loop {
            let completed = self.completed.notified();
            if self.in_flight.load(Ordering::Acquire) < cap || Instant::now() >= until {
                return;
            }
            let deadline = (Instant::now() + STALL).min(until);
            if tokio::time::timeout_at(deadline, completed).await.is_err() && Instant::now() < until {
                self.in_flight.store(0, Ordering::Release);
            }
        }
    }

    pub fn close(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The send time inside a roomcast ack's `client_id` (`p<id>-<sent_at>-<n>`);
/// socket.io's acks do not echo the client id.
fn ack_sent_at(text: &str) -> Option<i64> {
    let client_id = text.split(r#""client_id":"p"#).nth(1)?;
    client_id.split('-').nth(1)?.parse().ok()
}
