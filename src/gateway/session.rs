//! One WebSocket connection, as two tasks. The reader (`reader`, with
//! `joins` and `recover`) decodes client frames and runs them
//! against the store; the writer (`writer`) owns the socket and drains the
//! connection's bounded queue. Live frames reach the queue from the relay
//! only; a send is never echoed here.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::Instrument;

use super::handshake::Handshake;
use super::pending::PendingSends;
use super::progress::Written;
use super::upgrade::WebSocket;
use super::Context;
use crate::auth::Identity;
use crate::fanout::{Budget, Connection};
use crate::prometheus;
use crate::settings::LimitSettings;

/// Bytes read from the socket at a time. tungstenite's default (128 KiB,
/// allocated up front) would be most of an idle connection's memory; client
/// frames are small, and a large one is read in several steps.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Bytes gathered before a write reaches the socket, and so the most a
/// connection's write buffer holds while the socket keeps up.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// The socket's buffers and the largest frame a client may send.
pub fn socket_config(limits: &LimitSettings) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

/// Serves one upgraded socket until either side closes it.
pub async fn serve(socket: WebSocket, written: Written, context: Arc<Context>, handshake: Handshake) {
    let (queue, queued) = mpsc::channel(context.limits.send_queue_frames);
    let user = handshake.identity.user.clone();
    let limits = &context.limits;
    let share = context.pool.share(&user);
    let budget = Budget::new(limits.connection_reserve_bytes, limits.send_queue_bytes, share);
    let connection = Connection::new(context.next_connection_id(), user, queue, budget, context.server.idle_timeout);
    let span = tracing::info_span!("connection", id = connection.id, user = %connection.user);
    async move {
        tracing::debug!("connected");
        let (sink, stream) = socket.split();
        ::metrics::gauge!(prometheus::CONNECTIONS_OPEN).increment(1.0);
        // Not instrumented: the writer logs nothing, and entering a span on
        // every poll showed in the fan-out profile.
        let writer =
            tokio::spawn(super::writer::write_loop(sink, written, queued, connection.clone(), context.clone()));
        // Held until the session ends: the connection counts against `limits.max_connections`.
        let _slot = handshake.slot;
        let mut session = Session::new(context, connection, handshake.identity);
        session.recover_notifications(&handshake.cursors).await;
        session.read_loop(stream).await;
        session.leave_everything();
        // Wakes the writer if the client ended the conversation.
        session.connection.closing().cancel();
        let _ = writer.await;
        ::metrics::gauge!(prometheus::CONNECTIONS_OPEN).decrement(1.0);
        tracing::debug!(reason = ?session.connection.close_reason(), "disconnected");
    }
    .instrument(span)
    .await
}

/// The reader's state for one connection.
pub(super) struct Session {
    pub(super) context: Arc<Context>,
    pub(super) connection: Arc<Connection>,
    pub(super) identity: Identity,
    /// When this connection last wrote `typing`, per room, within the interval.
    pub(super) typed: std::collections::HashMap<String, std::time::Instant>,
    /// Sends queued for their rooms' group commits, oldest first; their
    /// replies go out in this order.
    pub(super) pending: PendingSends,
}

impl Session {
    fn new(context: Arc<Context>, connection: Arc<Connection>, identity: Identity) -> Session {
        let typed = std::collections::HashMap::new();
        Session { context, connection, identity, typed, pending: PendingSends::default() }
    }
}
