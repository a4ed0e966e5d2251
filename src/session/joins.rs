//! Joining and leaving rooms. A join is authorized by the room policy,
//! subscribes the connection before the replay is read (so nothing committed
//! in between is missed), then queues `joined` and the replay; the writer
//! holds the room's live events meanwhile and drops what the replay covered
//! (see `outbox`).

use super::buckets::Bucket;
use super::connection::Reservation;
use super::outbound::Outbound;
use super::policy::admit;
use super::refusals::{forbidden_room, not_joined};
use super::Session;
use crate::fanout::Subscribed;
use crate::protocol::{self, ErrorCode, Frame, MessageDoc, Refusal, ServerFrame};
use crate::settings::RoomPolicy;
use crate::store::Order;

/// A join's frames, `joined` first, and the seq they reach.
struct Replay {
    frames: Vec<Frame>,
    high_water: i64,
}

impl Session {
    /// Subscribes before reading the replay, so nothing committed in between is missed;
    /// the writer drops what the replay already covered.
    pub(super) async fn join(&mut self, room: String, since: Option<i64>) -> Result<(), Refusal> {
        self.take(Bucket::Joins, "joins")?;
        if self.connection.replay_queued(&room) {
            // A client re-joining faster than it reads would otherwise stack
            // replays of the same room in its queue.
            let message = format!("the replay of room {room} is still on its way; join again once it arrived");
            return Err(Refusal::new(ErrorCode::RateLimited, message));
        }
        let rejoin = self.connection.has_joined(&room);
        if !rejoin && self.connection.joined_count() >= self.context.limits.max_rooms_per_connection {
            let limit = self.context.limits.max_rooms_per_connection;
            return Err(Refusal::new(ErrorCode::TooManyRooms, format!("a connection may join at most {limit} rooms")));
        }
        self.authorize(&room).await?;
        self.connection.reply(Outbound::JoinStarted(room.clone())).await;
        if self.context.registry.join_room(&room, &self.listener()) == Subscribed::Full {
            let limit = self.context.limits.max_joined_rooms;
            let message = format!("this server holds all the joined rooms it may ({limit}); try again later");
            return self.fail_join(room, Refusal::new(ErrorCode::TooManyRooms, message)).await;
        }
        if self.context.auth.room_policy == RoomPolicy::Membership {
            // A removal committed between the check and the registration found
            // nobody to revoke: look once more now that a removal would.
            let still = self.context.store.membership(&room, &self.connection.user).await;
            if !matches!(still, Ok(Some(_))) {
                let refusal = forbidden_room(&room);
                return self.fail_join(room, refusal).await;
            }
        }
        // A re-join keeps the presence it has: the changes kept coming.
        if !rejoin {
            if let Err(refusal) = self.send_presence(&room).await {
                return self.fail_join(room, refusal).await;
            }
        }
        match self.replay(&room, since).await {
            Ok(Some((replay, reservation))) => {
                self.context.registry.joined_at(&room, replay.high_water);
                let item = Outbound::JoinReady { room, frames: replay.frames, high_water: replay.high_water };
                self.connection.queue_reserved(item, reservation).await;
                Ok(())
            }
            // The connection is closing.
            Ok(None) => Ok(()),
            Err(refusal) => self.fail_join(room, refusal).await,
        }
    }

    /// Undoes a join's registration and answers it with `refusal`.
    async fn fail_join(&mut self, room: String, refusal: Refusal) -> Result<(), Refusal> {
        self.left(&room);
        let error = protocol::error(&refusal, protocol::reference(Some(&room), None).as_ref());
        self.connection.reply(Outbound::JoinFailed { room, error }).await;
        Ok(())
    }

    /// Whether the room policy lets this user into the room; a membership
    /// that does is remembered, so its removal revokes the join.
    async fn authorize(&self, room: &str) -> Result<(), Refusal> {
        if let Some(id) = admit(&self.context, &self.identity, room).await? {
            self.context.memberships.remember(id, room, &self.connection.user, self.connection.id);
        }
        Ok(())
    }

    /// `joined` and the messages after `since` among the room's newest
    /// `limits.max_replay` seqs, as many as fit `limits.max_replay_bytes`,
    /// with the bytes they hold charged to the connection. The read is that
    /// range of seqs, which holds no more keys than the replay, so it costs
    /// the database no more than the replay whatever the room's size. Messages
    /// are read newest first, and each is charged as it is read, so a replay
    /// never holds more than the connection may; one that stops short, or a
    /// `since` older than the range, says `recovered: false`. `None` when the
    /// connection closes meanwhile.
    async fn replay(&self, room: &str, since: Option<i64>) -> Result<Option<(Replay, Reservation)>, Refusal> {
        let store = &self.context.store;
        let limits = &self.context.limits;
        // What the client holds is committed: the newest seq is at least that.
        let current = store.current_seq(room, since.unwrap_or(i64::MIN)).await?;
        let after = since.filter(|since| *since <= current).unwrap_or(current);
        let oldest_replayed = current.saturating_sub(limits.max_replay);
        let mut complete = after >= oldest_replayed;
        let after = after.max(oldest_replayed);
        let mut reservation = self.connection.empty_reservation();
        let mut newest_first = Vec::new();
        if after < current {
            let limit = Some(current - after);
            let order = Order::NewestFirst;
            let mut cursor = store.messages_in(room, after, current, order, limit, limits.max_document_bytes).await?;
            while let Some(document) = cursor.next().await? {
                let message = match MessageDoc::from_read(&document) {
                    Ok(message) => message,
                    Err(why) => {
                        tracing::warn!(room, why, "stored document is not a message; not replayed");
                        continue;
                    }
                };
                let (frame, _) = protocol::message(message, limits.max_document_bytes);
                let fits = reservation.bytes() + frame.len() <= limits.max_replay_bytes;
                if !fits || !reservation.try_grow(frame.len()) {
                    complete = false;
                    break;
                }
                newest_first.push(frame);
            }
        }
        let recovered = since.is_some_and(|since| since <= current) && complete;
        let last_read = store.read_marker(&self.connection.user, room).await?;
        let joined = ServerFrame::Joined { room, seq: current, recovered, last_read }.encode();
        let Some(for_joined) = self.connection.reserve(joined.len()).await else { return Ok(None) };
        reservation.absorb(for_joined);
        let frames = std::iter::once(joined).chain(newest_first.into_iter().rev()).collect();
        Ok(Some((Replay { frames, high_water: current }, reservation)))
    }

    pub(super) async fn leave(&mut self, room: String) -> Result<(), Refusal> {
        if !self.left(&room) {
            return Err(not_joined(&format!("room {room} is not joined")));
        }
        let frame = ServerFrame::Left { room: &room, reason: None }.encode();
        self.connection.reply(Outbound::Left { room, frame }).await;
        Ok(())
    }

    pub(super) fn leave_everything(&mut self) {
        for room in self.connection.joined_rooms() {
            self.context.memberships.forget(&room, &self.connection.user, self.connection.id);
        }
        self.context.registry.disconnect(self.connection.as_ref());
    }

    /// Takes the connection out of the room, and out of the membership that
    /// let it in; false if it was not in.
    fn left(&self, room: &str) -> bool {
        let user = &self.connection.user;
        self.context.memberships.forget(room, user, self.connection.id);
        self.context.registry.leave_room(room, self.connection.as_ref())
    }
}
