//! A history reader: one connection that pages backwards through a room with
//! one request in flight (a closed loop), from the newest page to the oldest,
//! then again from the newest. A page's latency is request written → page
//! read, both taken in this one task, so no hop between tasks is counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::clock::now_micros;
use crate::conn::{close_reason, Ws};
use crate::dialect::{page_summary, Incoming, Target};
use crate::stats::Stats;

/// A server that has not answered a page within this long is broken, not
/// slow: the reader gives up so that the step still ends.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What every reader pages through.
#[derive(Debug, Clone)]
pub struct Paging {
    pub room: String,
    /// The room holds seqs 1..=newest, without holes.
    pub newest: i64,
    pub limit: usize,
}

enum Reply {
    /// The page's oldest seq and whether older messages exist.
    Page(Option<i64>, bool),
    Refused,
    Closed(String),
}

/// Pages until `until`. In `stats`, a request is a send and a page a
/// delivery (both counted when the request was written inside the window);
/// `messages` counts the messages of those pages.
pub async fn read_pages(
    mut ws: Ws,
    target: Target,
    reader: usize,
    paging: Arc<Paging>,
    until: Instant,
    stats: Arc<Stats>,
    messages: Arc<AtomicU64>,
) {
    let mut before: Option<i64> = None;
    let mut ack_id: u64 = 0;
    while Instant::now() < until {
        ack_id += 1;
        let frame = target.history_frame(&paging.room, before, paging.limit, ack_id);
        let sent_at = now_micros();
        stats.record_send(sent_at);
        if let Err(error) = ws.send(Message::text(frame)).await {
            stats.record_close(format!("reader: error: {error}"));
            return;
        }
        let reply = tokio::time::timeout(REPLY_TIMEOUT, next_reply(&mut ws, target)).await;
        match reply.unwrap_or_else(|_| Reply::Closed(format!("no page within {REPLY_TIMEOUT:?}"))) {
            Reply::Page(oldest, more) => {
                stats.record_delivery(reader, sent_at);
                if let (Some(oldest), true) = (oldest, stats.in_window(sent_at)) {
                    // Seqs have no holes, so a page holds everything from its
                    // oldest seq up to the one it was asked to stop before.
                    let upto = before.unwrap_or(paging.newest + 1);
                    messages.fetch_add(upto.saturating_sub(oldest).max(0) as u64, Ordering::Relaxed);
                }
                before = if more { oldest } else { None };
            }
            Reply::Refused => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                before = None;
            }
            Reply::Closed(why) => {
                stats.record_close(format!("reader: {why}"));
                return;
            }
        }
    }
}

/// Reads until the answer to the request in flight, answering pings on the way.
async fn next_reply(ws: &mut Ws, target: Target) -> Reply {
    while let Some(frame) = ws.next().await {
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(close)) => return Reply::Closed(close_reason(close.map(|c| u16::from(c.code)))),
            Ok(_) => continue,
            Err(error) => return Reply::Closed(format!("error: {error}")),
        };
        match target.classify(&text) {
            Incoming::History => {
                let (oldest, more) = page_summary(&text);
                return Reply::Page(oldest, more);
            }
            Incoming::Refused => return Reply::Refused,
            incoming => {
                if let Some(reply) = target.reply(&incoming) {
                    if let Err(error) = ws.send(Message::text(reply)).await {
                        return Reply::Closed(format!("error: {error}"));
                    }
                }
            }
        }
    }
    Reply::Closed("eof".to_string())
}
