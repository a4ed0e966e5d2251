//! One WebSocket connection. The reader task decodes client frames and runs
//! them against the store; the writer task owns the socket and drains the
//! connection's bounded queue, batching frames (feed, then one flush). Live
//! frames reach the queue from the relay only; a send is never echoed here.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as SocketError, Message};
use tracing::Instrument;

use super::frames::{self, ClientFrame, ServerFrame};
use super::outbox::{Batch, Outbox, Verdict};
use super::upgrade::WebSocket;
use super::Context;
use crate::auth::{claim_allows, Identity};
use crate::error::{ErrorCode, Refusal};
use crate::metrics;
use crate::recovery::Position;
use crate::registry::{CloseReason, Connection, Outbound};
use crate::settings::RoomPolicy;
use crate::store::{Ack, Answer, MessageDoc};

/// Sends one connection may have waiting for their commit; at this many its
/// frames are not read until the oldest is answered.
const MAX_PENDING_SENDS: usize = 32;

/// Most queued items written before one flush.
const WRITE_BATCH: usize = 64;

/// Bytes read from the socket at a time. tungstenite's default (128 KiB,
/// allocated up front) would be most of an idle connection's memory; client
/// frames are small, and a large one is read in several steps.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Bytes gathered before a write reaches the socket, and so the most a
/// connection's write buffer holds while the socket keeps up.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// The socket's buffers and the largest frame a client may send.
pub fn socket_config(limits: &crate::settings::LimitSettings) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

/// Who connected, and what they ask to recover, from the upgrade request.
pub struct Handshake {
    pub identity: Identity,
    /// `since_cursor` values: the last notification cursor seen, per user route.
    pub cursors: Vec<String>,
    /// Whether the client offered the `roomcast.v1` subprotocol.
    pub subprotocol: bool,
}

/// Serves one upgraded socket until either side closes it.
pub async fn serve(socket: WebSocket, context: Arc<Context>, handshake: Handshake) {
    let (queue, queued) = mpsc::channel(context.limits.send_queue_frames);
    let user = handshake.identity.user.clone();
    let connection = Connection::new(context.next_connection_id(), user, queue, context.limits.send_queue_bytes);
    let span = tracing::info_span!("connection", id = connection.id, user = %connection.user);
    async move {
        tracing::debug!("connected");
        let (sink, stream) = socket.split();
        ::metrics::gauge!(metrics::CONNECTIONS_OPEN).increment(1.0);
        // Not instrumented: the writer logs nothing, and entering a span on
        // every poll showed in the fan-out profile.
        let writer = tokio::spawn(write_loop(sink, queued, connection.clone(), context.clone()));
        let limits = &context.limits;
        let sends = governor::RateLimiter::direct(super::quota(limits.sends_per_second, limits.send_burst));
        let joins = governor::RateLimiter::direct(super::quota(limits.joins_per_second, limits.join_burst));
        let pending = VecDeque::new();
        let mut session = Session { context, connection, identity: handshake.identity, sends, joins, pending };
        session.start(&handshake.cursors).await;
        session.read_loop(stream).await;
        session.leave_everything();
        // Wakes the writer if the client ended the conversation.
        session.connection.closing().cancel();
        let _ = writer.await;
        ::metrics::gauge!(metrics::CONNECTIONS_OPEN).decrement(1.0);
        tracing::debug!(reason = ?session.connection.close_reason(), "disconnected");
    }
    .instrument(span)
    .await
}

struct Session {
    context: Arc<Context>,
    connection: Arc<Connection>,
    identity: Identity,
    /// Token buckets for send/edit/delete frames and for join frames.
    sends: governor::DefaultDirectRateLimiter,
    joins: governor::DefaultDirectRateLimiter,
    /// Sends queued for their rooms' group commits, oldest first; their
    /// replies go out in this order.
    pending: VecDeque<PendingSend>,
}

/// A send whose reply is still owed: its commit, or the refusal it got
/// before it could be queued (kept in line so replies stay in send order).
struct PendingSend {
    client_id: String,
    reference: Option<Value>,
    started: std::time::Instant,
    answer: Result<Answer, Refusal>,
}

/// The oldest pending send's outcome; never ready while nothing is pending.
async fn oldest_outcome(pending: &mut VecDeque<PendingSend>) -> Result<Ack, Refusal> {
    match pending.front_mut() {
        Some(PendingSend { answer: Ok(answer), .. }) => answer.await.map_err(Refusal::from),
        Some(PendingSend { answer: Err(refusal), .. }) => Err(refusal.clone()),
        None => std::future::pending().await,
    }
}

impl Session {
    /// Registers the connection for its user's notifications, recovering what
    /// it missed: the routes to recover are held before the registration and
    /// released after the ring was read, as a join does for a room.
    async fn start(&mut self, cursors: &[String]) {
        let mut recoveries: Vec<(String, Position)> = Vec::new();
        for cursor in cursors {
            match Position::parse_cursor(cursor) {
                Some((route, position)) if self.context.rings.contains_key(route) => {
                    if !recoveries.iter().any(|(known, _)| known == route) {
                        recoveries.push((route.to_string(), position));
                    }
                }
                _ => {
                    let refusal = Refusal::new(ErrorCode::InvalidField, "since_cursor is not a cursor of a user route");
                    self.reply(frames::error(&refusal, Some(&serde_json::json!({ "since_cursor": cursor })))).await;
                }
            }
        }
        for (route, _) in &recoveries {
            self.connection.reply(Outbound::RecoveryStarted(route.clone())).await;
        }
        self.context.registry.add_user(&self.connection);
        for (route, after) in recoveries {
            let replay = self.context.rings[&route].replay(&self.connection.user, after);
            let recovered = replay.frames.is_some();
            let mut frames = vec![ServerFrame::Recovery { route: &route, recovered }.encode()];
            frames.extend(replay.frames.unwrap_or_default());
            self.connection.reply(Outbound::RecoveryReady { route, frames, high_water: replay.high_water }).await;
        }
    }

    async fn read_loop(&mut self, mut stream: SplitStream<WebSocket>) {
        let idle_timeout = self.context.server.idle_timeout;
        let mut deadline = Instant::now() + idle_timeout;
        let closing = self.connection.closing().clone();
        let shutdown = self.context.shutdown.clone();
        let expiry = self.identity.expires_at.map(|at| {
            let left = at.duration_since(std::time::SystemTime::now()).unwrap_or_default();
            Instant::now() + left
        });
        loop {
            let incoming = tokio::select! {
                biased;
                _ = closing.cancelled() => return,
                _ = shutdown.cancelled() => return self.connection.close(CloseReason::GoingAway),
                _ = tokio::time::sleep_until(expiry.unwrap_or(deadline)), if expiry.is_some() => {
                    return self.connection.close(CloseReason::TokenExpired)
                }
                _ = tokio::time::sleep_until(deadline) => return self.connection.close(CloseReason::IdleTimeout),
                outcome = oldest_outcome(&mut self.pending), if !self.pending.is_empty() => {
                    self.finish_send(outcome).await;
                    continue;
                }
                incoming = stream.next(), if self.pending.len() < MAX_PENDING_SENDS => incoming,
            };
            let message = match incoming {
                None => return,
                Some(Err(error)) => {
                    if let Some(reason) = close_reason_for(&error) {
                        self.connection.close(reason);
                    }
                    return;
                }
                Some(Ok(message)) => message,
            };
            deadline = Instant::now() + idle_timeout;
            if message.is_close() {
                return;
            }
            if let Message::Text(text) = &message {
                // Boxed: handling a frame awaits the database, and that state
                // would otherwise sit in every idle connection's task.
                Box::pin(self.handle_text(text.as_str())).await;
            } else if message.is_binary() {
                ::metrics::counter!(metrics::FRAMES_IN, "type" => "binary").increment(1);
                self.drain_pending().await;
                let refusal =
                    Refusal::new(ErrorCode::UnsupportedFrame, "binary frames are not supported; send JSON text");
                self.reply(frames::error(&refusal, None)).await;
            }
        }
    }

    async fn handle_text(&mut self, text: &str) {
        let frame = match frames::decode(text) {
            Ok(frame) => frame,
            Err(rejected) => {
                ::metrics::counter!(metrics::FRAMES_IN, "type" => "invalid").increment(1);
                self.drain_pending().await;
                return self.reply(frames::error(&rejected.refusal, rejected.reference.as_ref())).await;
            }
        };
        let reference = reference_of(&frame);
        ::metrics::counter!(metrics::FRAMES_IN, "type" => frame.kind()).increment(1);
        if let Err(refusal) = self.handle(frame, &reference).await {
            self.reply(frames::error(&refusal, reference.as_ref())).await;
        }
    }

    /// `reference` names the frame in its error reply (`reference_of`).
    async fn handle(&mut self, frame: ClientFrame, reference: &Option<Value>) -> Result<(), Refusal> {
        if !matches!(frame, ClientFrame::Send { .. }) {
            // Anything but a send waits for the sends before it, so every
            // reply keeps the order of the frames it answers.
            self.drain_pending().await;
        }
        match frame {
            ClientFrame::Ping => self.reply(ServerFrame::Pong.encode()).await,
            ClientFrame::Join { room, since } => self.join(room, since).await?,
            ClientFrame::Leave { room } => self.leave(room).await?,
            ClientFrame::Send { room, client_id, body } => self.queue_send(room, client_id, &body, reference.clone()),
            ClientFrame::Edit { room, id, body, client_id } => {
                self.require_send_right(&room)?;
                let body = frames::body_to_bson(&body, &self.context.limits)?;
                let ack = self.context.store.edit_message(&room, &id, &self.connection.user, body).await?;
                self.reply(frames::ack(client_id.as_deref(), &ack)).await;
            }
            ClientFrame::Delete { room, id, client_id } => {
                self.require_send_right(&room)?;
                let ack = self.context.store.delete_message(&room, &id, &self.connection.user).await?;
                self.reply(frames::ack(client_id.as_deref(), &ack)).await;
            }
        }
        Ok(())
    }

    /// Checks a send and queues it for its room's group commit without
    /// waiting: the connection's next frames are read meanwhile, and the
    /// reply goes out when `finish_send` gets the outcome.
    fn queue_send(&mut self, room: String, client_id: String, body: &Value, reference: Option<Value>) {
        let answer = self.require_send_right(&room).and_then(|()| {
            let body = frames::body_to_bson(body, &self.context.limits)?;
            Ok(self.context.store.queue_message(&room, &self.connection.user, &client_id, body))
        });
        let started = std::time::Instant::now();
        self.pending.push_back(PendingSend { client_id, reference, started, answer });
    }

    /// Replies to the oldest pending send with its outcome.
    async fn finish_send(&mut self, outcome: Result<Ack, Refusal>) {
        let sent = self.pending.pop_front().expect("an outcome belongs to the oldest pending send");
        let result = outcome.as_ref().map_or_else(|refusal| refusal.code.as_str(), |_| "accepted");
        ::metrics::counter!(metrics::SENDS, "result" => result).increment(1);
        match outcome {
            Ok(ack) => {
                ::metrics::histogram!(metrics::WRITE_SECONDS).record(sent.started.elapsed().as_secs_f64());
                self.reply(frames::ack(Some(&sent.client_id), &ack)).await;
            }
            Err(refusal) => self.reply(frames::error(&refusal, sent.reference.as_ref())).await,
        }
    }

    async fn drain_pending(&mut self) {
        while !self.pending.is_empty() {
            let outcome = oldest_outcome(&mut self.pending).await;
            self.finish_send(outcome).await;
        }
    }

    fn require_joined(&self, room: &str) -> Result<(), Refusal> {
        if self.connection.has_joined(room) {
            Ok(())
        } else {
            Err(Refusal::new(ErrorCode::NotJoined, format!("join room {room} first")))
        }
    }

    /// A send, edit or delete needs the room joined (which authorized it) and a token.
    fn require_send_right(&self, room: &str) -> Result<(), Refusal> {
        if self.sends.check().is_err() {
            return Err(rate_limited("sends"));
        }
        self.require_joined(room)
    }

    /// Whether the room policy lets this user into the room.
    async fn authorize(&self, room: &str) -> Result<(), Refusal> {
        let forbidden = || Refusal::new(ErrorCode::Forbidden, format!("you may not join room {room}"));
        match self.context.auth.room_policy {
            RoomPolicy::Open => Ok(()),
            RoomPolicy::Claim if claim_allows(&self.identity, room) => Ok(()),
            RoomPolicy::Claim => Err(forbidden()),
            RoomPolicy::Membership => {
                let user = &self.connection.user;
                let id = self.context.store.membership(room, user).await?.ok_or_else(forbidden)?;
                self.context.memberships.remember(id, room, user, &self.context.registry);
                Ok(())
            }
        }
    }

    /// Subscribes before reading the replay, so nothing committed in between is missed;
    /// the writer drops what the replay already covered.
    async fn join(&mut self, room: String, since: Option<i64>) -> Result<(), Refusal> {
        if self.joins.check().is_err() {
            return Err(rate_limited("joins"));
        }
        let rejoin = self.connection.has_joined(&room);
        if !rejoin && self.connection.joined_count() >= self.context.limits.max_rooms_per_connection {
            let limit = self.context.limits.max_rooms_per_connection;
            return Err(Refusal::new(ErrorCode::TooManyRooms, format!("a connection may join at most {limit} rooms")));
        }
        self.authorize(&room).await?;
        self.connection.reply(Outbound::JoinStarted(room.clone())).await;
        self.context.registry.join_room(&room, &self.connection);
        if self.context.auth.room_policy == RoomPolicy::Membership {
            // A removal committed between the check and the registration found
            // nobody to revoke: look once more now that a removal would.
            let still = self.context.store.membership(&room, &self.connection.user).await;
            if !matches!(still, Ok(Some(_))) {
                self.context.registry.leave_room(&room, &self.connection);
                let error = frames::error(
                    &Refusal::new(ErrorCode::Forbidden, format!("you may not join room {room}")),
                    Some(&serde_json::json!({ "room": room })),
                );
                self.connection.reply(Outbound::JoinFailed { room, error }).await;
                return Ok(());
            }
        }
        match self.replay(&room, since).await {
            Ok((frames, high_water)) => {
                self.context.registry.joined_at(&room, high_water);
                self.connection.reply(Outbound::JoinReady { room, frames, high_water }).await;
            }
            Err(refusal) => {
                self.context.registry.leave_room(&room, &self.connection);
                let reference = serde_json::json!({ "room": room });
                let error = frames::error(&refusal, Some(&reference));
                self.connection.reply(Outbound::JoinFailed { room, error }).await;
            }
        }
        Ok(())
    }

    async fn replay(&self, room: &str, since: Option<i64>) -> Result<(Vec<Message>, i64), Refusal> {
        let store = &self.context.store;
        let current = store.current_seq(room).await?;
        let cap = self.context.limits.max_replay;
        let (after, recovered) = match since {
            None => (current, false),
            Some(since) if since > current => (current, false),
            Some(since) if current - since > cap => (current - cap, false),
            Some(since) => (since, true),
        };
        let mut frames = vec![ServerFrame::Joined { room, seq: current, recovered }.encode()];
        if after < current {
            for document in store.history(room, after, current).await? {
                match MessageDoc::from_document(&document) {
                    Ok(message) => frames.push(frames::message(message)),
                    Err(why) => tracing::warn!(room, why, "stored document is not a message; not replayed"),
                }
            }
        }
        Ok((frames, current))
    }

    async fn leave(&mut self, room: String) -> Result<(), Refusal> {
        if !self.context.registry.leave_room(&room, &self.connection) {
            return Err(Refusal::new(ErrorCode::NotJoined, format!("room {room} is not joined")));
        }
        let frame = ServerFrame::Left { room: &room, reason: None }.encode();
        self.connection.reply(Outbound::Left { room, frame }).await;
        Ok(())
    }

    fn leave_everything(&mut self) {
        self.context.registry.disconnect(&self.connection);
    }

    async fn reply(&self, frame: Message) {
        self.connection.reply(Outbound::Reply(frame)).await;
    }
}

fn rate_limited(what: &str) -> Refusal {
    Refusal::new(ErrorCode::RateLimited, format!("too many {what}; slow down"))
}

fn reference_of(frame: &ClientFrame) -> Option<Value> {
    let (room, client_id) = match frame {
        ClientFrame::Ping => return None,
        ClientFrame::Join { room, .. } | ClientFrame::Leave { room } => (room, None),
        ClientFrame::Send { room, client_id, .. } => (room, Some(client_id)),
        ClientFrame::Edit { room, client_id, .. } | ClientFrame::Delete { room, client_id, .. } => {
            (room, client_id.as_ref())
        }
    };
    let mut reference = serde_json::json!({ "room": room });
    if let Some(client_id) = client_id {
        reference["client_id"] = Value::String(client_id.clone());
    }
    Some(reference)
}

/// Which close code a read error deserves; `None` when the peer is simply gone.
fn close_reason_for(error: &SocketError) -> Option<CloseReason> {
    match error {
        SocketError::Capacity(_) => Some(CloseReason::TooBig),
        SocketError::Utf8(_) => Some(CloseReason::InvalidUtf8),
        SocketError::Protocol(_) => Some(CloseReason::ProtocolError),
        _ => None,
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Outbound>,
    connection: Arc<Connection>,
    context: Arc<Context>,
) {
    let mut outbox = Outbox::new(context.limits.send_queue_frames);
    let mut ping =
        tokio::time::interval_at(Instant::now() + context.server.ping_interval, context.server.ping_interval);
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
                connection.dequeued(&item);
                let mut verdict = outbox.absorb(item, &mut batch);
                for _ in 1..WRITE_BATCH {
                    match queued.try_recv() {
                        Ok(item) if verdict == Verdict::Continue => {
                            connection.dequeued(&item);
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
            _ = ping.tick() => batch.push(Message::Ping(Default::default())),
        }
        let written = tokio::select! {
            biased;
            // A client that stopped reading must not pin this task on a full socket.
            _ = &mut closed => break,
            written = write_all(&mut sink, &mut batch, counters) => written,
        };
        if written.is_err() {
            return;
        }
    }
    if connection.close_reason() == Some(CloseReason::GoingAway) {
        // Shutting down: what was queued before (acks of in-flight sends among
        // it) still goes out before the close frame.
        while let Ok(item) = queued.try_recv() {
            connection.dequeued(&item);
            outbox.absorb(item, &mut batch);
        }
        let _ = tokio::time::timeout(context.server.ping_interval, write_all(&mut sink, &mut batch, counters)).await;
    }
    if let Some(reason) = connection.close_reason() {
        let close = Message::Close(Some(CloseFrame { code: reason.code().into(), reason: reason.text().into() }));
        let _ = tokio::time::timeout(context.server.ping_interval, sink.send(close)).await;
    }
    let _ = tokio::time::timeout(context.server.ping_interval, sink.close()).await;
}

/// Counters of written frames and the relay-overhead histogram, looked up
/// once per process (after `metrics::install`), not per connection or frame.
struct FrameCounters {
    by_type: [::metrics::Counter; metrics::FRAME_TYPES.len()],
    bytes: ::metrics::Counter,
    overhead: ::metrics::Histogram,
}

impl FrameCounters {
    fn shared() -> &'static FrameCounters {
        static SHARED: std::sync::OnceLock<FrameCounters> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| FrameCounters {
            by_type: metrics::FRAME_TYPES.map(|t| ::metrics::counter!(metrics::FRAMES_OUT, "type" => t)),
            bytes: ::metrics::counter!(metrics::BYTES_OUT),
            overhead: ::metrics::histogram!(metrics::RELAY_OVERHEAD_SECONDS),
        })
    }

    fn count(&self, frame: &Message) {
        let Message::Text(text) = frame else { return };
        let bytes = text.as_bytes();
        self.by_type[metrics::frame_type(bytes)].increment(1);
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
