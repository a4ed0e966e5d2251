//! The writing half of a session: it owns the socket, takes items off the
//! connection's bounded queue in batches, lets the outbox put them in order
//! (held events, replays), feeds the frames and flushes once per batch. It
//! also pings, and closes the socket with the connection's close reason.

use std::sync::Arc;

use futures::stream::SplitSink;
use futures::SinkExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as SocketError, Message};

use super::outbox::{Batch, Outbox, Verdict};
use super::progress::Written;
use super::upgrade::WebSocket;
use super::Context;
use crate::fanout::{Connection, Outbound};
use crate::prometheus;
use crate::protocol::CloseReason;

/// Most queued items written before one flush.
const WRITE_BATCH: usize = 64;

pub(super) async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    progress: Written,
    mut queued: mpsc::Receiver<Outbound>,
    connection: Arc<Connection>,
    context: Arc<Context>,
) {
    let mut outbox = Outbox::new(context.limits.send_queue_frames);
    let mut ping =
        tokio::time::interval_at(Instant::now() + context.server.ping_interval, context.server.ping_interval);
    let patience = context.server.ping_interval;
    let limits = WriteLimits { stall: context.server.write_timeout, closing: patience };
    let closing = connection.closing().clone();
    // Made once: a fresh `cancelled()` per frame locked the token and
    // re-registered its waiter every time (seen in the fan-out profile).
    let closed = closing.cancelled();
    tokio::pin!(closed);
    // Grows with use: most connections never hold more than a few frames at once.
    let mut batch = Batch::default();
    let counters = FrameCounters::shared();
    loop {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            item = queued.recv() => {
                let Some(item) = item else { break };
                connection.taken(&item);
                let mut verdict = outbox.absorb(item, &mut batch);
                for _ in 1..WRITE_BATCH {
                    match queued.try_recv() {
                        Ok(item) if verdict == Verdict::Continue => {
                            connection.taken(&item);
                            verdict = outbox.absorb(item, &mut batch);
                        }
                        _ => break,
                    }
                }
                if verdict == Verdict::Overflow {
                    connection.close(CloseReason::SlowConsumer);
                    break;
                }
            }
            _ = ping.tick() => batch.push_ping(),
        }
        let written = {
            let write = write_all(&mut sink, &mut batch, counters);
            tokio::pin!(write);
            // Most batches go straight into the socket's buffer: only one
            // that has to wait is watched, so the common path reads no clock.
            match futures::poll!(&mut write) {
                std::task::Poll::Ready(written) => written,
                std::task::Poll::Pending => match wait_for(write, &mut closed, &connection, &progress, limits).await {
                    Waited::Written(written) => written,
                    Waited::Closed => break,
                    // It could not take a close frame either.
                    Waited::Stalled => return,
                },
            }
        };
        if written.is_err() {
            return;
        }
        connection.release(std::mem::take(&mut batch.release));
    }
    if connection.close_reason() == Some(CloseReason::GoingAway) {
        // Shutting down: what was queued before (acks of in-flight sends among
        // it) still goes out before the close frame.
        while let Ok(item) = queued.try_recv() {
            outbox.absorb(item, &mut batch);
        }
        let _ = tokio::time::timeout(patience, write_all(&mut sink, &mut batch, counters)).await;
    }
    if let Some(reason) = connection.close_reason() {
        let close = Message::Close(Some(CloseFrame { code: reason.code().into(), reason: reason.text().into() }));
        let _ = tokio::time::timeout(context.server.ping_interval, sink.send(close)).await;
    }
    let _ = tokio::time::timeout(context.server.ping_interval, sink.close()).await;
}

/// How long a batch may wait on the socket.
#[derive(Clone, Copy)]
struct WriteLimits {
    /// With no byte taken by the socket (`server.write_timeout`).
    stall: std::time::Duration,
    /// Once the connection is closing for shutdown.
    closing: std::time::Duration,
}

/// How a batch that had to wait ended.
enum Waited {
    Written(Result<(), SocketError>),
    /// The connection was closed meanwhile.
    Closed,
    /// The socket took no byte for a whole `stall`: its client stopped
    /// reading, a slow consumer however few bytes it holds.
    Stalled,
}

/// Waits for a batch the socket did not take at once, watching that the
/// socket takes something at least every `stall`. Shutting down, a batch
/// already begun is finished (it may hold acks), within the close's own wait.
async fn wait_for<W: std::future::Future<Output = Result<(), SocketError>>>(
    mut write: std::pin::Pin<&mut W>,
    closed: &mut std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
    connection: &Connection,
    progress: &Written,
    limits: WriteLimits,
) -> Waited {
    let mut seen = progress.bytes();
    let mut check = tokio::time::interval_at(Instant::now() + limits.stall, limits.stall);
    loop {
        tokio::select! {
            biased;
            _ = &mut *closed => {
                return match connection.close_reason() {
                    Some(CloseReason::GoingAway) => match tokio::time::timeout(limits.closing, write).await {
                        Ok(written) => Waited::Written(written),
                        Err(_) => Waited::Closed,
                    },
                    _ => Waited::Closed,
                };
            }
            written = &mut write => return Waited::Written(written),
            _ = check.tick() => {
                let now = progress.bytes();
                if now == seen {
                    connection.close(CloseReason::SlowConsumer);
                    return Waited::Stalled;
                }
                seen = now;
            }
        }
    }
}

/// Counters of written frames and the relay-overhead histogram, looked up
/// once per process (after `prometheus::install`), not per connection or frame.
struct FrameCounters {
    by_type: [::metrics::Counter; prometheus::FRAME_TYPES.len()],
    bytes: ::metrics::Counter,
    overhead: ::metrics::Histogram,
}

impl FrameCounters {
    fn shared() -> &'static FrameCounters {
        static SHARED: std::sync::OnceLock<FrameCounters> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| FrameCounters {
            by_type: prometheus::FRAME_TYPES.map(|t| ::metrics::counter!(prometheus::FRAMES_OUT, "type" => t)),
            bytes: ::metrics::counter!(prometheus::BYTES_OUT),
            overhead: ::metrics::histogram!(prometheus::RELAY_OVERHEAD_SECONDS),
        })
    }

    fn count(&self, frame: &Message) {
        let Message::Text(text) = frame else { return };
        let bytes = text.as_bytes();
        self.by_type[prometheus::frame_type(bytes)].increment(1);
        self.bytes.increment(bytes.len() as u64);
    }
}

async fn write_all(
    sink: &mut SplitSink<WebSocket, Message>,
    batch: &mut Batch,
    counters: &FrameCounters,
) -> Result<(), SocketError> {
    for frame in batch.frames.drain(..) {
        counters.count(&frame);
        sink.feed(frame).await?;
    }
    sink.flush().await?;
    // The live frames are now in the kernel's hands: their time inside the
    // relay ends here.
    let written = std::time::Instant::now();
    for received in batch.received.drain(..) {
        counters.overhead.record(written.saturating_duration_since(received).as_secs_f64());
    }
    Ok(())
}
