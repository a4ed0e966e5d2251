//! The writing half of a session: it waits for the connection's queue,
//! takes everything queued at once, lets the outbox put it in order (held
//! events, replays) and hands the batch to the transport. It keeps the
//! connection's one timer: a keep-alive every `server.ping_interval`, the
//! idle timeout (`server.idle_timeout` since the client was last heard
//! from) and the token's expiry. It says goodbye with the connection's
//! close reason. Counting is per batch: one clock read and one update per
//! counter for all the frames a batch carries.

use tokio::time::Instant;

use super::connection::Connection;
use super::context::Context;
use super::outbox::{Batch, Outbox, Verdict};
use super::transport::{FrameWriter, WriteError};
use crate::prometheus;
use crate::protocol::CloseReason;

pub(super) async fn write_loop<W: FrameWriter>(
    transport: &mut W,
    connection: &Connection,
    context: &Context,
    expiry: Option<Instant>,
) {
    let mut outbox = Outbox::new(context.limits.send_queue_frames);
    let patience = context.server.ping_interval;
    let idle_timeout = context.server.idle_timeout;
    let mut next_ping = Instant::now() + patience;
    let timer = tokio::time::sleep_until(next_ping);
    tokio::pin!(timer);
    let counters = FrameCounters::shared();
    let mut batch = Batch::default();
    loop {
        if connection.is_ending() {
            break;
        }
        tokio::select! {
            biased;
            _ = connection.ready() => {
                if absorb(connection, &mut outbox, &mut batch) == Verdict::Overflow {
                    connection.close(CloseReason::SlowConsumer);
                    break;
                }
            }
            _ = &mut timer => {
                let now = Instant::now();
                let idle_at = connection.last_heard() + idle_timeout;
                if expiry.is_some_and(|at| at <= now) {
                    connection.close(CloseReason::TokenExpired);
                    break;
                }
                if idle_at <= now {
                    connection.close(CloseReason::IdleTimeout);
                    break;
                }
                if next_ping <= now {
                    batch.ping = true;
                    next_ping = now + patience;
                }
                let next = expiry.map_or(next_ping, |at| at.min(next_ping)).min(idle_at);
                timer.as_mut().reset(next);
            }
        }
        if batch.is_empty() {
            connection.release(std::mem::take(&mut batch.release));
            continue;
        }
        let written = {
            let write = write_counted(transport, &mut batch, counters);
            tokio::pin!(write);
            // Most batches go straight into the socket: only one that has to
            // wait is raced against the connection's end.
            match futures::poll!(&mut write) {
                std::task::Poll::Ready(written) => written,
                std::task::Poll::Pending => {
                    tokio::select! {
                        biased;
                        written = &mut write => written,
                        _ = connection.ending() => match connection.close_reason() {
                            // Shutting down: a batch begun (it may hold acks)
                            // is finished, within the close's own wait.
                            Some(CloseReason::GoingAway) => {
                                Box::pin(tokio::time::timeout(patience, write)).await.unwrap_or(Err(WriteError::Gone))
                            }
                            _ => Err(WriteError::Gone),
                        },
                    }
                }
            }
        };
        match written {
            Ok(()) => connection.release(std::mem::take(&mut batch.release)),
            Err(WriteError::Stalled) => {
                connection.close(CloseReason::SlowConsumer);
                break;
            }
            Err(WriteError::Gone) => break,
        }
    }
    // Boxed: it runs once, and its state would sit in every idle task.
    Box::pin(goodbye(transport, connection, outbox, batch, patience)).await;
}

/// Ends the conversation: when shutting down, what was queued before (acks
/// of in-flight sends among it) still goes out first; then the transport
/// says goodbye with the connection's reason.
async fn goodbye<W: FrameWriter>(
    transport: &mut W,
    connection: &Connection,
    mut outbox: Outbox,
    mut batch: Batch,
    patience: std::time::Duration,
) {
    if connection.close_reason() == Some(CloseReason::GoingAway) {
        absorb(connection, &mut outbox, &mut batch);
        let counters = FrameCounters::shared();
        let _ = tokio::time::timeout(patience, write_counted(transport, &mut batch, counters)).await;
    }
    connection.close_queue();
    let _ = tokio::time::timeout(patience, transport.close(connection.close_reason())).await;
}

/// Moves everything queued into the batch, in order.
fn absorb(connection: &Connection, outbox: &mut Outbox, batch: &mut Batch) -> Verdict {
    for item in connection.take_queued() {
        if outbox.absorb(item, batch) == Verdict::Overflow {
            return Verdict::Overflow;
        }
    }
    Verdict::Continue
}

async fn write_counted<W: FrameWriter>(
    transport: &mut W,
    batch: &mut Batch,
    counters: &FrameCounters,
) -> Result<(), WriteError> {
    transport.write(batch).await?;
    counters.count(batch);
    Ok(())
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

    /// Counts a written batch, and empties it.
    fn count(&self, batch: &mut Batch) {
        let mut by_type = [0u64; prometheus::FRAME_TYPES.len()];
        let mut bytes = 0;
        for frame in batch.frames.drain(..) {
            by_type[frame.kind()] += 1;
            bytes += frame.len() as u64;
        }
        for (counter, count) in self.by_type.iter().zip(by_type) {
            if count > 0 {
                counter.increment(count);
            }
        }
        self.bytes.increment(bytes);
        // The batch is now in the network's hands: the relay's own delay for
        // its oldest live frame ends here.
        if let Some(received) = batch.oldest_received.take() {
            self.overhead.record(received.elapsed().as_secs_f64());
        }
        batch.ping = false;
        batch.pong = None;
        // An idle connection keeps no frame list.
        batch.frames = Vec::new();
    }
}
