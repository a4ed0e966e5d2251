//! Joining and leaving rooms. A join is authorized by the room policy,
//! subscribes the connection before the replay is read (so nothing committed
//! in between is missed), then queues `joined` and the replay; the writer
//! holds the room's live events meanwhile and drops what the replay covered
//! (see `outbox`).

use super::refusals::{forbidden_room, not_joined, rate_limited};
use super::session::Session;
use crate::auth::claim_allows;
use crate::fanout::Outbound;
use crate::protocol::{self, ErrorCode, Frame, MessageDoc, Refusal, ServerFrame};
use crate::settings::RoomPolicy;

impl Session {
    /// Subscribes before reading the replay, so nothing committed in between is missed;
    /// the writer drops what the replay already covered.
    pub(super) async fn join(&mut self, room: String, since: Option<i64>) -> Result<(), Refusal> {
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
                let refusal = forbidden_room(&room);
                return self.fail_join(room, refusal).await;
            }
        }
        match self.replay(&room, since).await {
            Ok((frames, high_water)) => {
                self.context.registry.joined_at(&room, high_water);
                self.connection.reply(Outbound::JoinReady { room, frames, high_water }).await;
                Ok(())
            }
            Err(refusal) => self.fail_join(room, refusal).await,
        }
    }

    /// Undoes a join's registration and answers it with `refusal`.
    async fn fail_join(&mut self, room: String, refusal: Refusal) -> Result<(), Refusal> {
        self.context.registry.leave_room(&room, &self.connection);
        let error = protocol::error(&refusal, protocol::reference(Some(&room), None).as_ref());
        self.connection.reply(Outbound::JoinFailed { room, error }).await;
        Ok(())
    }

    /// Whether the room policy lets this user into the room.
    async fn authorize(&self, room: &str) -> Result<(), Refusal> {
        match self.context.auth.room_policy {
            RoomPolicy::Open => Ok(()),
            RoomPolicy::Claim if claim_allows(&self.identity, room) => Ok(()),
            RoomPolicy::Claim => Err(forbidden_room(room)),
            RoomPolicy::Membership => {
                let user = &self.connection.user;
                let id = self.context.store.membership(room, user).await?.ok_or_else(|| forbidden_room(room))?;
                self.context.memberships.remember(id, room, user, &self.context.registry);
                Ok(())
            }
        }
    }

    /// `joined` and the messages after `since`, capped at `limits.max_replay`;
    /// also the room's current seq, the replay's high-water mark.
    async fn replay(&self, room: &str, since: Option<i64>) -> Result<(Vec<Frame>, i64), Refusal> {
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
                    Ok(message) => frames.push(protocol::message(message)),
                    Err(why) => tracing::warn!(room, why, "stored document is not a message; not replayed"),
                }
            }
        }
        Ok((frames, current))
    }

    pub(super) async fn leave(&mut self, room: String) -> Result<(), Refusal> {
        if !self.context.registry.leave_room(&room, &self.connection) {
            return Err(not_joined(&format!("room {room} is not joined")));
        }
        let frame = ServerFrame::Left { room: &room, reason: None }.encode();
        self.connection.reply(Outbound::Left { room, frame }).await;
        Ok(())
    }

    pub(super) fn leave_everything(&mut self) {
        self.context.registry.disconnect(&self.connection);
    }
}
