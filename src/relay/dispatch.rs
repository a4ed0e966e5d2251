//! Turns one change event into one frame and hands it to the registry. The
//! frame is built only if someone in this process listens, and built once
//! for all listeners.

use std::sync::Arc;

use bson::{Bson, Document};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};

use crate::gateway::frames;
use crate::registry::{Change, Registry, RoomEvent};
use crate::settings::{Channel, RouteSettings};
use crate::store::{MessageDoc, Store};

pub struct Dispatcher {
    route: String,
    channel: Channel,
    key: String,
    store: Store,
    registry: Arc<Registry>,
}

impl Dispatcher {
    pub fn new(settings: &RouteSettings, store: Store, registry: Arc<Registry>) -> Self {
        Dispatcher {
            route: settings.name.clone(),
            channel: settings.channel,
            key: settings.key.clone(),
            store,
            registry,
        }
    }

    pub fn dispatch(&self, event: ChangeStreamEvent<Document>) {
        let Some(document) = event.full_document else {
            // updateLookup finds nothing when the document was deleted since.
            tracing::debug!(route = %self.route, "event without a full document; nothing to relay");
            return;
        };
        match self.channel {
            Channel::Room => self.to_room(event.operation_type, &document),
            Channel::User => self.to_user(document),
        }
    }

    fn to_room(&self, operation: OperationType, document: &Document) {
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
        let change = if operation == OperationType::Insert { Change::Insert } else { Change::Update };
        let event = RoomEvent { room: message.room.clone(), seq: message.seq, change, frame: frames::message(message) };
        self.registry.publish_room(Arc::new(event));
    }

    fn to_user(&self, document: Document) {
        let user = match document.get(&self.key) {
            Some(Bson::String(user)) => user.clone(),
            Some(Bson::ObjectId(oid)) => oid.to_hex(),
            _ => {
                tracing::warn!(route = %self.route, key = %self.key, "document has no string user key; not relayed");
                return;
            }
        };
        if !self.registry.has_user(&user) {
            return;
        }
        let frame = frames::notification(&self.route, document);
        self.registry.publish_user(&user, &frame);
    }
}
