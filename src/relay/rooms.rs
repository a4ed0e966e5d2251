//! Room messages. Each change event of `messages` is routed on its `room`
//! and `seq`, read straight from the encoded document; only for a room that
//! someone in this process listens to is the document decoded into a
//! message and encoded into one `message` frame, which the room's members
//! share. A document over `limits.max_document_bytes` is relayed as a stub.

use std::sync::Arc;
use std::time::Instant;

use bson::raw::{RawBsonRef, RawDocument};
use mongodb::change_stream::event::OperationType;

use super::route::Event;
use crate::fanout::{Change, Registry, RoomEvent};
use crate::prometheus;
use crate::protocol::{self, MessageDoc};
use crate::store::{Order, Store, StoreError};

/// Relays `messages` events to rooms.
pub struct RoomRelay {
    route: String,
    store: Store,
    registry: Arc<Registry>,
    max_document_bytes: usize,
    too_large: ::metrics::Counter,
}

impl RoomRelay {
    pub fn new(route: &str, store: Store, registry: Arc<Registry>, max_document_bytes: usize) -> Self {
        let too_large = ::metrics::counter!(prometheus::DOCUMENTS_TOO_LARGE, "route" => route.to_string());
        RoomRelay { route: route.to_string(), store, registry, max_document_bytes, too_large }
    }

    pub fn relay(&self, event: Event, received: Instant) {
        let Some(raw) = event.full_document else {
            // updateLookup finds nothing when the document was deleted since.
            tracing::debug!(route = %self.route, "event without a full document; nothing to relay");
            return;
        };
        let Some((room, seq)) = room_and_seq(&raw) else {
            tracing::warn!(route = %self.route, "document has no string room or integer seq; not relayed");
            return;
        };
        self.store.observe_seq(room, seq);
        if !self.registry.has_room(room) {
            return;
        }
        let change = if event.operation_type == OperationType::Insert { Change::Insert } else { Change::Update };
        match MessageDoc::from_raw(&raw, self.max_document_bytes) {
            Ok(message) => self.publish(change, message, received),
            Err(why) => tracing::warn!(route = %self.route, why, "document is not a message; not relayed"),
        }
    }

    /// After a lost history: every room with listeners gets what it may have
    /// missed, read a batch at a time from the collection, as inserts.
    pub async fn refill(&self) -> Result<(), StoreError> {
        for (room, after) in self.registry.rooms_to_refill() {
            tracing::warn!(route = %self.route, room, after, "re-filling room after lost history");
            let order = Order::OldestFirst;
            let max = self.max_document_bytes;
            let mut missed = self.store.messages_between(&room, after, i64::MAX, order, None, max).await?;
            while let Some(document) = missed.next().await? {
                match MessageDoc::from_document(&document) {
                    Ok(message) => {
                        let too_large = document.get_bool("too_large").unwrap_or(false);
                        self.publish(Change::Insert, MessageDoc { too_large, ..message }, Instant::now());
                    }
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

/// The two fields a room event is routed on, read without decoding the rest.
fn room_and_seq(raw: &RawDocument) -> Option<(&str, i64)> {
    let room = raw.get_str("room").ok()?;
    let seq = match raw.get("seq").ok()?? {
        RawBsonRef::Int32(seq) => i64::from(seq),
        RawBsonRef::Int64(seq) => seq,
        RawBsonRef::Double(seq) => protocol::as_i64(&bson::Bson::Double(seq))?,
        _ => return None,
    };
    Some((room, seq))
}
