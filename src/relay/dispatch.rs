//! Turns one change event into one frame and hands it to the registry. Room
//! frames are built only if someone in this process listens, and built once
//! for all listeners. User-route frames are always built, because the
//! recovery ring keeps them for users who are away.

use std::sync::Arc;
use std::time::Instant;

use bson::{Bson, Document, Timestamp};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType};

use crate::error::StoreError;
use crate::gateway::frames;
use crate::membership::Memberships;
use crate::recovery::{Positions, Ring};
use crate::registry::{Change, Registry, RoomEvent, UserEvent};
use crate::settings::{Channel, RouteSettings};
use crate::store::{MessageDoc, Store};

pub struct Dispatcher {
    route: String,
    channel: Channel,
    key: String,
    store: Store,
    registry: Arc<Registry>,
    ring: Option<Arc<Ring>>,
    memberships: Arc<Memberships>,
    positions: Positions,
}

impl Dispatcher {
    pub fn new(
        settings: &RouteSettings,
        store: Store,
        registry: Arc<Registry>,
        ring: Option<Arc<Ring>>,
        memberships: Arc<Memberships>,
    ) -> Self {
        Dispatcher {
            route: settings.name.clone(),
            channel: settings.channel,
            key: settings.key.clone(),
            store,
            registry,
            ring,
            memberships,
            positions: Positions::default(),
        }
    }

    pub fn dispatch(&mut self, event: ChangeStreamEvent<Document>, received: Instant) {
        if self.channel == Channel::Membership {
            return self.membership_changed(event);
        }
        let Some(document) = event.full_document else {
            // updateLookup finds nothing when the document was deleted since.
            tracing::debug!(route = %self.route, "event without a full document; nothing to relay");
            return;
        };
        match self.channel {
            Channel::Room => self.relay_to_room(event.operation_type, &document, received),
            Channel::User => self.relay_to_user(event.cluster_time, document, received),
            Channel::Membership => unreachable!("handled above"),
        }
    }

    /// A `room_members` document was deleted or changed: revoke the joins it backed.
    fn membership_changed(&self, event: ChangeStreamEvent<Document>) {
        let Some(id) = event.document_key.as_ref().and_then(|key| key.get("_id")) else { return };
        let still = event.full_document.as_ref().and_then(|d| Some((d.get_str("room").ok()?, d.get_str("user").ok()?)));
        let still = if event.operation_type == OperationType::Delete { None } else { still };
        self.memberships.revoke(&crate::store::id_string(id), still, &self.registry);
    }

    async fn recheck_memberships(&self) -> Result<(), StoreError> {
        for (key, id) in self.memberships.all() {
            if !self.store.membership_exists(&id).await? {
                self.memberships.revoke(&key, None, &self.registry);
            }
        }
        Ok(())
    }

    /// The stream (re)started at `start` with nothing before it. After a lost
    /// history, rooms are re-filled from the database and user channels are
    /// told to resync, so nothing is skipped silently.
    pub async fn started_at(&mut self, start: Timestamp, after_loss: bool) -> Result<(), StoreError> {
        self.positions = Positions::default();
        if let Some(ring) = &self.ring {
            ring.restart(start);
        }
        if !after_loss {
            return Ok(());
        }
        match self.channel {
            Channel::Room => self.refill_rooms().await,
            Channel::User => {
                tracing::warn!(route = %self.route, "notifications may have been lost; telling every connection to resync");
                self.registry.publish_everyone(&frames::resync(&self.route));
                Ok(())
            }
            Channel::Membership => self.recheck_memberships().await,
        }
    }

    async fn refill_rooms(&mut self) -> Result<(), StoreError> {
        for (room, after) in self.registry.rooms_to_refill() {
            let missed = self.store.history(&room, after, i64::MAX).await?;
            tracing::warn!(route = %self.route, room, after, count = missed.len(), "re-filling room after lost history");
            for document in missed {
                self.relay_to_room(OperationType::Insert, &document, Instant::now());
            }
        }
        Ok(())
    }

    fn relay_to_room(&self, operation: OperationType, document: &Document, received: Instant) {
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
        let event = RoomEvent {
            room: message.room.clone(),
            seq: message.seq,
            change,
            frame: frames::message(message),
            received,
        };
        self.registry.publish_room(Arc::new(event));
    }

    fn relay_to_user(&mut self, cluster_time: Option<Timestamp>, document: Document, received: Instant) {
        let user = match document.get(&self.key) {
            Some(Bson::String(user)) => user.clone(),
            Some(Bson::ObjectId(oid)) => oid.to_hex(),
            _ => {
                tracing::warn!(route = %self.route, key = %self.key, "document has no string user key; not relayed");
                return;
            }
        };
        let Some(cluster_time) = cluster_time else {
            tracing::warn!(route = %self.route, "event without clusterTime; not relayed");
            return;
        };
        let position = self.positions.next(cluster_time);
        let frame = frames::notification(&self.route, &position.cursor(&self.route), document);
        if let Some(ring) = &self.ring {
            ring.push(position, &user, &frame);
        }
        if self.registry.has_user(&user) {
            let event = UserEvent { route: self.route.clone(), position, frame, received };
            self.registry.publish_user(&user, Arc::new(event));
        }
    }
}
