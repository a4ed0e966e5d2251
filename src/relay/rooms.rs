//! Room messages: each change event of `messages` is decoded into a message,
//! encoded into one `message` frame (only if someone in this process listens
//! to its room) and published to the room's members.

use std::sync::Arc;
use std::time::Instant;

use bson::Document;
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};

use crate::fanout::{Change, Registry, RoomEvent};
use crate::protocol::{self, MessageDoc};
use crate::store::{Store, StoreError};

/// Relays `messages` events to rooms.
pub struct RoomRelay {
    route: String,
    store: Store,
    registry: Arc<Registry>,
}

impl RoomRelay {
    pub fn new(route: &str, store: Store, registry: Arc<Registry>) -> Self {
        RoomRelay { route: route.to_string(), store, registry }
    }

    pub fn relay(&self, event: ChangeStreamEvent<Document>, received: Instant) {
        let Some(document) = event.full_document else {
            // updateLookup finds nothing when the document was deleted since.
            tracing::debug!(route = %self.route, "event without a full document; nothing to relay");
            return;
        };
        let change = if event.operation_type == OperationType::Insert { Change::Insert } else { Change::Update };
        self.publish(change, &document, received);
    }

    /// After a lost history: every room with listeners gets what it may have
    /// missed, read from the collection, as inserts.
    pub async fn refill(&self) -> Result<(), StoreError> {
        for (room, after) in self.registry.rooms_to_refill() {
            let missed = self.store.history(&room, after, i64::MAX).await?;
            tracing::warn!(route = %self.route, room, after, count = missed.len(), "re-filling room after lost history");
            for document in missed {
                self.publish(Change::Insert, &document, Instant::now());
            }
        }
        Ok(())
    }

    fn publish(&self, change: Change, document: &Document, received: Instant) {
        let message = match MessageDoc::from_document(document) {
            Ok(message) => message,
            Err(why) => {
                tracing::warn!(route = %self.route, why, "document is not a message; not relayed");
                return;
            }
        };
        self.store.observe_seq(&message.room, message.seq);
        if !self.registry.has_room(&message.room) {
            return;
        }
        let event = RoomEvent {
            room: message.room.clone(),
            seq: message.seq,
            change,
            frame: protocol::message(message),
            received,
        };
        self.registry.publish_room(Arc::new(event));
    }
}
