//! The writing half of a session: it waits for the connection's queue,
//! takes everything queued at once, lets the outbox put it in order (held
//! events, replays) and hands the batch to the transport, with a
//! keep-alive when the replica's keep-alive clock says one is due. It says
//! goodbye with the connection's close reason. Counting is per batch: one clock read and one update per
//! counter for all the frames a batch carries.

use super::connection::Connection;
use super::context::Context;
use super::outbox::{Batch, Outbox, Verdict};
use super::transport::{FrameWriter, WriteError};
use crate::prometheus;
use crate::protocol::CloseReason;

/// (A function returning a future rather than an `async fn`: an `async fn`
/// keeps a second copy of its arguments in its state, which every idle
/// connection's task holds.)
#[allow(clippy::manual_async_fn)] // see the comment above
pub(super) fn write_loop<'a, W: FrameWriter>(
    transport: &'a mut W,
    connection: &'a Connection,
    context: &'a Context,
) -> impl std::future::Future<Output = ()> + Send + 'a {
    async move {
        let mut state = Writer { outbox: Outbox::new(context.limits.send_queue_frames), batch: Batch::default() };
        let patience = context.server.ping_interval;
        loop {
            if connection.is_ending() {
                break;
            }
            // The one thing an idle writer waits on: its queue (the keep-alive
            // clock wakes it through the queue's signal too).
            connection.ready().await;
            if connection.take_ping() {
                state.batch.ping = true;
            }
            if absorb(connection, &mut state.outbox, &mut state.batch) == Verdict::Overflow {
                connection.close(CloseReason::SlowConsumer);
                break;
            }
            if state.batch.is_empty() {
                connection.release(std::mem::take(&mut state.batch.release));
                continue;
            }
            match write_batch(transport, &mut state.batch, connection, patience).await {
                Ok(()) => connection.release(std::mem::take(&mut state.batch.release)),
                Err(WriteError::Stalled) => {
                    connection.close(CloseReason::SlowConsumer);
                    break;
                }
                Err(WriteError::Gone) => break,
            }
        }
        // Boxed: it runs once, and its state would sit in every idle task.
        Box::pin(goodbye(transport, connection, state, patience)).await;
    }
}

/// What the writer keeps between batches.
struct Writer {
    outbox: Outbox,
    batch: Batch,
}

/// Writes a batch, and counts it. Most go straight into the socket; only
/// one that has to wait gets a (boxed) future, raced against the
/// connection's end.
async fn write_batch<W: FrameWriter>(
    transport: &mut W,
    batch: &mut Batch,
    connection: &Connection,
    patience: std::time::Duration,
) -> Result<(), WriteError> {
    if !transport.write_now(batch)? {
        Box::pin(finish_or_end(transport, batch, connection, patience)).await?;
    }
    FrameCounters::shared().count(batch);
    Ok(())
}

async fn finish_or_end<W: FrameWriter>(
    transport: &mut W,
    batch: &mut Batch,
    connection: &Connection,
    patience: std::time::Duration,
) -> Result<(), WriteError> {
    let finish = transport.finish(batch);
    tokio::pin!(finish);
    tokio::select! {
        biased;
        finished = &mut finish => finished,
        _ = connection.ending() => match connection.close_reason() {
            // Shutting down: a batch begun (it may hold acks) is finished,
            // within the close's own wait.
            Some(CloseReason::GoingAway) => {
                tokio::time::timeout(patience, finish).await.unwrap_or(Err(WriteError::Gone))
            }
            _ => Err(WriteError::Gone),
        },
    }
}

/// Ends the conversation: when shutting down, what was queued before (acks
/// of in-flight sends among it) still goes out first; then the transport
/// says goodbye with the connection's reason.
async fn goodbye<W: FrameWriter>(
    transport: &mut W,
    connection: &Connection,
    mut state: Writer,
    patience: std::time::Duration,
) {
    if connection.close_reason() == Some(CloseReason::GoingAway) {
        absorb(connection, &mut state.outbox, &mut state.batch);
        let _ = tokio::time::timeout(patience, write_batch(transport, &mut state.batch, connection, patience)).await;
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
