//! The reading half of a session: the socket's frames are decoded and
//! validated (`protocol`), and each is answered in order: sends are queued
//! for their room's group commit and answered in order (`pending`), joins
//! and leaves go to
//! `joins`, edits and deletes to the store. The loop also ends the
//! connection on idleness, token expiry and shutdown.

use bson::raw::RawBson;
use serde_json::Value;

use super::buckets::Bucket;
use super::outbound::Outbound;
use super::pending::MAX_PENDING_SENDS;
use super::refusals::not_joined;
use super::transport::{ClientFrames, Inbound};
use super::Session;
use crate::prometheus;
use crate::protocol::{self, Ack, ClientFrame, CloseReason, ErrorCode, Frame, Refusal, ServerFrame};

impl Session {
    /// Reads and answers the client's frames until the connection ends: the
    /// client leaves or breaks the rules, the writer closes it (idleness, a
    /// token that expired, a slow consumer) or the replica shuts down.
    /// Everything it waits on while idle sits in every connection's task,
    /// so it waits on as little as it can: the connection's stop, the
    /// oldest pending send, the transport.
    /// (A function returning a future rather than an `async fn`: an `async
    /// fn` keeps a second copy of its arguments in its state, which every
    /// idle connection's task holds.)
    #[allow(clippy::manual_async_fn)] // see the comment above
    pub(super) fn read_loop<'a, R: ClientFrames>(
        &'a mut self,
        frames: &'a mut R,
    ) -> impl std::future::Future<Output = ()> + Send + 'a {
        async move {
            // What the transport holds of frames not read whole yet.
            let mut held = self.connection.empty_reservation();
            // Its own handle: the stop signal borrows it while `self` is busy.
            let connection = self.connection.clone();
            loop {
                // Registered before looking, so a stop in between is not missed.
                let stop = connection.stop_signal();
                tokio::pin!(stop);
                stop.as_mut().enable();
                if connection.is_stopping() {
                    return self.stop().await;
                }
                let incoming = tokio::select! {
                    biased;
                    _ = stop => return self.stop().await,
                    outcome = self.pending.oldest_outcome(), if !self.pending.is_empty() => {
                        Box::pin(self.finish_send(outcome)).await;
                        continue;
                    }
                    incoming = frames.next(&mut held), if self.pending.len() < MAX_PENDING_SENDS => incoming,
                };
                let message = match incoming {
                    None => return,
                    Some(Err(reason)) => return self.connection.close(reason),
                    Some(Ok(message)) => message,
                };
                self.connection.heard();
                match message {
                    Inbound::Close => return,
                    Inbound::Pong => {}
                    Inbound::Ping(payload) => Box::pin(self.connection.reply(Outbound::Pong(payload))).await,
                    // Boxed: handling a frame awaits the database, and that state
                    // would otherwise sit in every idle connection's task.
                    Inbound::Text(text) => Box::pin(self.handle_text(&text)).await,
                    Inbound::Binary => Box::pin(self.refuse_binary()).await,
                }
            }
        }
    }

    /// The connection ends, or the replica goes away: then every send
    /// already read is answered before the close, as its group commit goes
    /// on regardless, and a send stored without its ack leaves its client
    /// unsure it was.
    async fn stop(&mut self) {
        if !self.connection.is_ending() {
            Box::pin(self.drain_pending()).await;
            self.connection.close(CloseReason::GoingAway);
        }
    }

    async fn refuse_binary(&mut self) {
        ::metrics::counter!(prometheus::FRAMES_IN, "type" => "binary").increment(1);
        self.drain_pending().await;
        let refusal = Refusal::new(ErrorCode::UnsupportedFrame, "binary frames are not supported; send JSON text");
        self.reply(protocol::error(&refusal, None)).await;
    }

    async fn handle_text(&mut self, text: &str) {
        let frame = match protocol::decode(text) {
            Ok(frame) => frame,
            Err(undecodable) => {
                ::metrics::counter!(prometheus::FRAMES_IN, "type" => "invalid").increment(1);
                self.drain_pending().await;
                return self.reply(protocol::error(&undecodable.refusal, undecodable.reference.as_ref())).await;
            }
        };
        let reference = frame.reference();
        ::metrics::counter!(prometheus::FRAMES_IN, "type" => frame.kind()).increment(1);
        if let Err(refusal) = self.handle(frame, &reference).await {
            self.reply(protocol::error(&refusal, reference.as_ref())).await;
        }
    }

    /// `reference` names the frame in its error reply.
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
            ClientFrame::Send { room, client_id, body } => {
                self.queue_send(room, client_id, &body, reference.clone()).await
            }
            ClientFrame::Edit { room, id, body, client_id } => {
                self.require_send_right(&room)?;
                let body = protocol::body_to_bson(&body, self.context.body_limits())?;
                let ack = self.context.store.edit_message(&room, &id, &self.connection.user, body).await?;
                self.reply(protocol::ack(client_id.as_deref(), &ack)).await;
            }
            ClientFrame::History { room, before, limit } => self.history(room, before, limit).await?,
            ClientFrame::Notifications { route, before, limit } => self.notifications(route, before, limit).await?,
            ClientFrame::Rooms => self.rooms().await?,
            ClientFrame::Read { room, seq } => self.read(room, seq).await?,
            ClientFrame::Typing { room } => self.typing(room).await?,
            ClientFrame::Delete { room, id, client_id } => {
                self.require_send_right(&room)?;
                let ack = self.context.store.delete_message(&room, &id, &self.connection.user).await?;
                self.reply(protocol::ack(client_id.as_deref(), &ack)).await;
            }
        }
        Ok(())
    }

    /// Checks a send and queues it for its room's group commit without
    /// waiting for the commit; the reply goes out when `finish_send` gets the
    /// outcome. The body's bytes are charged to the connection until then.
    async fn queue_send(&mut self, room: String, client_id: String, body: &Value, reference: Option<Value>) {
        let checked = self.require_send_right(&room).and_then(|()| {
            let body = protocol::body_to_bson(body, self.context.body_limits())?;
            // Encoded here, once: a body that cannot be encoded never joins a group.
            RawBson::try_from(body)
                .map_err(|e| Refusal::new(ErrorCode::InvalidField, format!("body cannot be stored as BSON: {e}")))
        });
        let answer = match checked {
            Ok(body) => {
                let Some(lease) = self.connection.reserve(raw_size(&body)).await else { return };
                let user = &self.connection.user;
                Ok(self.context.store.queue_message(&room, user, &client_id, body, Box::new(lease)))
            }
            Err(refusal) => Err(refusal),
        };
        self.pending.push(client_id, reference, answer);
    }

    /// Replies to the oldest pending send with its outcome.
    async fn finish_send(&mut self, outcome: Result<Ack, Refusal>) {
        let sent = self.pending.pop_oldest();
        let result = outcome.as_ref().map_or_else(|refusal| refusal.code.as_str(), |_| "accepted");
        ::metrics::counter!(prometheus::SENDS, "result" => result).increment(1);
        match outcome {
            Ok(ack) => {
                ::metrics::histogram!(prometheus::WRITE_SECONDS).record(sent.started.elapsed().as_secs_f64());
                self.reply(protocol::ack(Some(&sent.client_id), &ack)).await;
            }
            Err(refusal) => self.reply(protocol::error(&refusal, sent.reference.as_ref())).await,
        }
    }

    /// Answers every pending send, oldest first: anything but a send waits
    /// for the sends before it.
    async fn drain_pending(&mut self) {
        while !self.pending.is_empty() {
            let outcome = self.pending.oldest_outcome().await;
            self.finish_send(outcome).await;
        }
    }

    /// A send, edit or delete needs the room joined (which authorized it) and a token.
    pub(super) fn require_send_right(&self, room: &str) -> Result<(), Refusal> {
        self.take(Bucket::Sends, "sends")?;
        if !self.connection.has_joined(room) {
            return Err(not_joined(&format!("join room {room} first")));
        }
        Ok(())
    }

    /// Takes a token of the user's `bucket`, or refuses naming `what`.
    pub(super) fn take(&self, bucket: Bucket, what: &str) -> Result<(), Refusal> {
        self.context.buckets.take(bucket, &self.identity, what)
    }

    pub(super) async fn reply(&self, frame: Frame) {
        self.connection.reply(Outbound::Reply(frame)).await;
    }
}

/// The bytes a body holds while its send waits for its commit.
fn raw_size(body: &RawBson) -> usize {
    match body {
        RawBson::Document(document) => document.as_bytes().len(),
        RawBson::Array(array) => array.as_bytes().len(),
        RawBson::String(text) => text.len(),
        _ => std::mem::size_of::<RawBson>(),
    }
}
