//! One client's session, whatever transport carries it (`transport`: the
//! client's frames in, batches of server frames out). Its two halves run
//! in one task: the reader (`reader`, with `joins`, `pending` sends,
//! `reads`, `presence` and notification `recover`y) decodes client frames
//! and runs them against the store; the writer (`writer`) empties the
//! connection's bounded queue (`connection`, items of `outbound`) in the
//! order the `outbox` keeps and hands each batch to the transport. Live
//! frames reach the queue from the fan-out only; a send is never echoed
//! here.

mod buckets;
mod connection;
mod context;
mod joins;
pub mod keepalive;
mod outbound;
mod outbox;
pub mod pages;
mod pending;
pub mod policy;
mod presence;
mod reader;
mod reads;
mod recover;
mod refusals;
mod transport;
mod writer;

use std::future::Future;
use std::sync::Arc;

use futures_concurrency::future::Join;

pub use self::buckets::{quota, Bucket, UserBuckets};
pub use self::connection::{Connection, Liveness, Reservation};
pub use self::context::{Context, RelayView, Slot, Slots};
pub use self::outbox::Batch;
use self::pending::PendingSends;
pub use self::transport::{ClientFrames, FrameWriter, Inbound, WriteError};
use crate::auth::Identity;
use crate::fanout::{Budget, Listener};
use crate::prometheus;

/// What a session starts from: the request that opened it.
pub struct Opening {
    pub identity: Identity,
    /// `since_cursor` values: the last notification cursor seen, per user route.
    pub cursors: Vec<String>,
    /// Its place among the replica's connections, held until it ends.
    pub slot: Slot,
}

/// Serves one client until either side ends the conversation: the reader
/// and the writer run side by side in the caller's task, each polled only
/// when it was woken.
///
/// Every connection's task holds this future for its whole life, so its
/// size is part of what an idle connection costs: the transport's halves
/// are borrowed from the caller, the opening comes boxed, and nothing
/// large is moved once named (a moved future keeps its old place too).
#[allow(clippy::manual_async_fn)] // an `async fn` would hold its arguments twice
pub fn serve<'a, R: ClientFrames, W: FrameWriter>(
    frames: &'a mut R,
    writer: &'a mut W,
    context: &'a Arc<Context>,
    mut opening: Box<Opening>,
) -> impl Future<Output = ()> + Send + 'a {
    async move {
        let limits = &context.limits;
        let user = &opening.identity.user;
        let budget = Budget::new(limits.connection_reserve_bytes, limits.send_queue_bytes, context.pool.share(user));
        let id = context.next_connection_id();
        let liveness = Liveness {
            idle_timeout: context.server.idle_timeout,
            ping_interval: context.server.ping_interval,
            expires: opening.identity.expires_at.map(|at| {
                tokio::time::Instant::now() + at.duration_since(std::time::SystemTime::now()).unwrap_or_default()
            }),
        };
        let connection = Connection::new(id, user.clone(), limits.send_queue_frames, budget, liveness);
        ::metrics::gauge!(prometheus::CONNECTIONS_OPEN).increment(1.0);
        // Moved straight in: a named copy would keep a place in this future.
        let mut session = Session::new(context.clone(), connection.clone(), std::mem::take(&mut opening.identity));
        (
            async {
                // Boxed: it runs once, and its state would sit in every task.
                Box::pin(session.recover_notifications(&opening.cursors)).await;
                opening.cursors = Vec::new();
                session.read_loop(frames).await;
                session.leave_everything();
                // Wakes the writer if the client ended the conversation.
                session.connection.end();
            },
            writer::write_loop(writer, &connection, context),
        )
            .join()
            .await;
        // The connection leaves the replica's count (its slot) here.
        drop(opening);
        ::metrics::gauge!(prometheus::CONNECTIONS_OPEN).decrement(1.0);
        let code = connection.close_reason().map_or("client", |reason| reason.code_text());
        ::metrics::counter!(prometheus::CLOSES, "code" => code).increment(1);
        tracing::debug!(id, reason = ?connection.close_reason(), "disconnected");
    }
}

/// The reader's state for one connection.
pub(crate) struct Session {
    context: Arc<Context>,
    connection: Arc<Connection>,
    identity: Identity,
    /// When this connection last wrote `typing`, per room, within the interval.
    /// (A sorted vector: at most a few rooms at once, and 24 bytes in every
    /// session where an empty hash map takes 48.)
    typed: litemap::LiteMap<String, std::time::Instant>,
    /// Sends queued for their rooms' group commits, oldest first; their
    /// replies go out in this order.
    pending: PendingSends,
}

impl Session {
    fn new(context: Arc<Context>, connection: Arc<Connection>, identity: Identity) -> Session {
        let typed = litemap::LiteMap::new();
        Session { context, connection, identity, typed, pending: PendingSends::default() }
    }

    /// The connection, as the fan-out registers it.
    fn listener(&self) -> Arc<dyn Listener> {
        self.connection.clone()
    }
}
