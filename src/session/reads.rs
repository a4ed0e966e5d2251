//! The frames that read what MongoDB holds for a client, and the read
//! marker it writes: `history`, `notifications`, `rooms` and `read`. Each is
//! answered by the session's reader, in frame order; the pages are charged
//! to the connection's budget as they are read.

use std::collections::HashMap;

use super::buckets::Bucket;
use super::connection::Reservation;
use super::outbound::Outbound;
use super::pages::{self, Page};
use super::policy::{admit, admitted};
use super::Session;
use crate::protocol::{self, ErrorCode, Frame, MessageDoc, Refusal, RoomEntry};
use crate::settings::RoomPolicy;

/// Newest-message reads of one room list in flight at once.
const LOOKUPS_AT_ONCE: usize = 8;

impl Session {
    /// A page of the room's history, where the room policy lets the user in.
    pub(super) async fn history(
        &mut self,
        room: String,
        before: Option<i64>,
        limit: Option<i64>,
    ) -> Result<(), Refusal> {
        self.take(Bucket::Joins, "history requests")?;
        admit(&self.context, &self.identity, &room).await?;
        let mut reservation = self.connection.empty_reservation();
        let Page { frames, more } =
            pages::history(&self.context, &room, before, limit, |bytes| reservation.try_grow(bytes)).await?;
        self.answer(protocol::history(&room, &frames, more), reservation).await;
        Ok(())
    }

    /// A page of the user's own documents of a user route.
    pub(super) async fn notifications(
        &mut self,
        route: String,
        before: Option<String>,
        limit: Option<i64>,
    ) -> Result<(), Refusal> {
        self.take(Bucket::Joins, "notification requests")?;
        let user = self.connection.user.clone();
        let mut reservation = self.connection.empty_reservation();
        let take = |bytes| reservation.try_grow(bytes);
        let Page { frames, more } =
            pages::user_documents(&self.context, &route, &user, before.as_deref(), limit, take).await?;
        self.answer(protocol::notifications_page(&route, &frames, more), reservation).await;
        Ok(())
    }

    /// The user's rooms that the room policy lets them into now: those
    /// with a read marker, most recently read first, then, under
    /// `membership`, the user's other memberships; at most
    /// `limits.max_rooms_listed`, listed newest activity first. Each costs
    /// one read of the `(room, seq)` index, its newest message, whatever
    /// the room's size.
    pub(super) async fn rooms(&mut self) -> Result<(), Refusal> {
        self.take(Bucket::Joins, "room lists")?;
        let (store, limits) = (&self.context.store, &self.context.limits);
        let user = &self.connection.user;
        let max = limits.max_rooms_listed;
        let marked = store.read_markers(user, max).await?;
        let markers: HashMap<String, i64> = marked.iter().cloned().collect();
        let marked = marked.into_iter().map(|(room, _)| room).collect();
        let mut rooms = admitted(&self.context, &self.identity, marked).await?;
        if self.context.auth.room_policy == RoomPolicy::Membership && rooms.len() < max {
            for room in store.member_rooms(user, None, max).await? {
                if !markers.contains_key(&room) {
                    rooms.push(room);
                }
            }
        }
        rooms.truncate(max);
        // Each newest message gets an equal share of one replay's budget.
        let share = limits.max_replay_bytes / max;
        let mut newest = Vec::with_capacity(rooms.len());
        for some in rooms.chunks(LOOKUPS_AT_ONCE) {
            // The user read up to their marker, so the newest seq is at least that.
            let lookups: Vec<_> = some
                .iter()
                .map(|room| store.newest_message(room, markers.get(room).copied().unwrap_or(i64::MIN), share))
                .collect();
            newest.extend(futures::future::try_join_all(lookups).await?);
        }
        let mut listed: Vec<(Option<bson::DateTime>, RoomEntry)> = rooms
            .into_iter()
            .zip(newest)
            .map(|(room, document)| {
                let last_read = markers.get(&room).copied().unwrap_or(0);
                let message = document.and_then(|document| MessageDoc::from_read(&document).ok());
                let activity = message.as_ref().and_then(|m| m.sent_at);
                let seq = message.as_ref().map_or(0, |m| m.seq);
                let last_message = message.map(|m| protocol::message(m, share).0);
                (activity, RoomEntry { room, seq, last_read, last_message })
            })
            .collect();
        listed.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.room.cmp(&y.room)));
        let entries: Vec<RoomEntry> = listed.into_iter().map(|(_, entry)| entry).collect();
        self.reply(protocol::rooms(&entries)).await;
        Ok(())
    }

    /// Raises the user's read marker for the room; the answer is the
    /// `read_marker` the change stream brings, when the marker rose.
    pub(super) async fn read(&mut self, room: String, seq: i64) -> Result<(), Refusal> {
        self.take(Bucket::Reads, "read markers")?;
        admit(&self.context, &self.identity, &room).await?;
        // A marker is only ever at or below the newest seq: look there first.
        let newest = self.context.store.current_seq(&room, seq).await?;
        if seq > newest {
            let message = format!("seq {seq} is beyond room {room}'s newest message, {newest}");
            return Err(Refusal::new(ErrorCode::InvalidField, message));
        }
        self.context.store.raise_read_marker(&self.connection.user, &room, seq).await?;
        Ok(())
    }

    /// Queues a page whose frames `reservation` already holds, once the
    /// rest of its bytes are charged too.
    async fn answer(&self, page: Frame, mut reservation: Reservation) {
        let envelope = page.len().saturating_sub(reservation.bytes());
        let Some(rest) = self.connection.reserve(envelope).await else { return };
        reservation.absorb(rest);
        self.connection.queue_reserved(Outbound::Reply(page), reservation).await;
    }
}
