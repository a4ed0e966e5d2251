//! Room messages. Each change event of `messages` is routed on its `room`
//! and `seq`, read straight from the encoded document; only for a room that
//! someone in this process listens to is the document decoded into a
//! message and encoded into one `message` frame, which the room's members
//! share. A document over `limits.max_document_bytes` is relayed as a stub.
//! A message another program deleted (or replaced by a document in no room)
//! is routed by the document as it was before, and relayed as deleted.

use std::sync::Arc;
use std::time::Instant;

use bson::Bson;

use super::event::{room_and_seq, room_bytes_and_seq, Event, Operation};
use super::removals::RemovedSeqs;
use crate::collections::id_string;
use crate::fanout::{Change, Registry, RoomEvent};
use crate::prometheus;
use crate::protocol::{self, MessageDoc};
use crate::store::{Order, Store, StoreError};

/// Relays `messages` events to rooms.
pub struct RoomRelay {
    route: String,
    store: Store,
    registry: Arc<Registry>,
    removed: Arc<RemovedSeqs>,
    max_document_bytes: usize,
    too_large: ::metrics::Counter,
    unrouted: ::metrics::Counter,
}

impl RoomRelay {
    pub fn new(
        route: &str,
        store: Store,
        registry: Arc<Registry>,
        removed: Arc<RemovedSeqs>,
        max_document_bytes: usize,
    ) -> Self {
        let too_large = ::metrics::counter!(prometheus::DOCUMENTS_TOO_LARGE, "route" => route.to_string());
        let unrouted = ::metrics::counter!(prometheus::DELETES_UNROUTED, "route" => route.to_string());
        RoomRelay { route: route.to_string(), store, registry, removed, max_document_bytes, too_large, unrouted }
    }

    pub fn relay(&self, event: &Event<'_>, received: Instant) {
        let operation = event.operation();
        let raw = match (operation, event.full_document_bytes()) {
            (Operation::Delete, _) | (Operation::Replace, None) => return self.removed(event, received),
            (_, Some(raw)) => raw,
            (_, None) => {
                // updateLookup finds nothing when the document was deleted since.
                tracing::debug!(route = %self.route, "event without a full document; nothing to relay");
                return;
            }
        };
        let Some((room, seq)) = room_bytes_and_seq(raw) else {
            if operation == Operation::Replace {
                // Replaced by a document that is in no room any more: gone from its room.
                return self.removed(event, received);
            }
            tracing::warn!(route = %self.route, "document has no string room or integer seq; not relayed");
            return;
        };
        self.store.observe_seq(room, seq);
        if !self.registry.has_room_named(room) {
            return;
        }
        let change = if operation == Operation::Insert { Change::Insert } else { Change::Update };
        let Some(raw) = event.full_document() else { return };
        match MessageDoc::from_raw(raw, self.max_document_bytes) {
            Ok(message) => self.publish(change, message, received),
            Err(why) => tracing::warn!(route = %self.route, why, "document is not a message; not relayed"),
        }
    }

    /// A message left its room: relayed as deleted, with the seq and room
    /// of the document as it was before (its pre-image, or the document key
    /// where that holds both, as on a collection sharded on room and seq),
    /// and its seq held if it was the newest.
    fn removed(&self, event: &Event<'_>, received: Instant) {
        let key = event.document_key();
        let before = event.before_change();
        let routed =
            before.and_then(|d| room_and_seq(d.as_bytes())).or_else(|| key.and_then(|d| room_and_seq(d.as_bytes())));
        let id = key.and_then(|key| key.get("_id").ok().flatten()).and_then(|id| Bson::try_from(id.to_raw_bson()).ok());
        let (Some(id), Some((room, seq))) = (id, routed) else {
            self.unrouted.increment(1);
            let id = key.and_then(|key| key.get("_id").ok().flatten()).map(|id| format!("{id:?}"));
            tracing::warn!(route = %self.route, ?id, "a message was removed, but not its room (no pre-image): not relayed");
            return;
        };
        let author = before.and_then(|before| before.get_str("author").ok()).unwrap_or("");
        self.store.observe_removed_seq(room, seq);
        self.removed.note(room, seq, id.clone(), author);
        if !self.registry.has_room(room) {
            return;
        }
        let sent_at = before.and_then(|before| before.get_datetime("sent_at").ok());
        let message = MessageDoc {
            room: room.to_string(),
            seq,
            id: id_string(&id),
            author: author.to_string(),
            body: Bson::Null,
            sent_at,
            edited_at: None,
            deleted: true,
            too_large: false,
        };
        self.publish(Change::Update, message, received);
    }

    /// After a lost history: every room with listeners gets what it may have
    /// missed, read a batch at a time from the collection, as inserts.
    pub async fn refill(&self) -> Result<(), StoreError> {
        for (room, after) in self.registry.rooms_to_refill() {
            tracing::warn!(route = %self.route, room, after, "re-filling room after lost history");
            let order = Order::OldestFirst;
            let max = self.max_document_bytes;
            let mut missed = self.store.messages_in(&room, after, i64::MAX, order, None, max).await?;
            while let Some(document) = missed.next().await? {
                match MessageDoc::from_read(&document) {
                    Ok(message) => self.publish(Change::Insert, message, Instant::now()),
                    Err(why) => tracing::warn!(route = %self.route, why, "document is not a message; not relayed"),
                }
            }
        }
        Ok(())
    }

    fn publish(&self, change: Change, message: MessageDoc, received: Instant) {
        let (room, seq) = (message.room.clone(), message.seq);
        let (frame, stub) = protocol::message(message, self.max_document_bytes);
        if stub {
            self.too_large.increment(1);
            tracing::warn!(route = %self.route, room, seq, "message too large to relay; relayed as a stub");
        }
        self.registry.publish_room(Arc::new(RoomEvent { room, seq, change, frame, received }));
    }
}
