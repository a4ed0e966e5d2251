//! User channels: each document of a user route is encoded into one
//! `notification` frame carrying its cursor, kept in the route's recovery
//! ring (always, for users who are away) and published to every connection
//! of the user named by the route's key.

use std::sync::Arc;
use std::time::Instant;

use bson::{Bson, Document, Timestamp};
use mongodb::change_stream::event::ChangeStreamEvent;

use crate::fanout::{Registry, UserEvent};
use crate::protocol;
use crate::recovery::{Positions, Ring};

/// Relays a user route's documents to their users.
pub struct UserRelay {
    route: String,
    key: String,
    registry: Arc<Registry>,
    ring: Arc<Ring>,
    positions: Positions,
}

impl UserRelay {
    pub fn new(route: &str, key: &str, registry: Arc<Registry>, ring: Arc<Ring>) -> Self {
        UserRelay { route: route.to_string(), key: key.to_string(), registry, ring, positions: Positions::default() }
    }

    pub fn relay(&mut self, event: ChangeStreamEvent<Document>, received: Instant) {
        let Some(document) = event.full_document else {
            tracing::debug!(route = %self.route, "event without a full document; nothing to relay");
            return;
        };
        let user = match document.get(&self.key) {
            Some(Bson::String(user)) => user.clone(),
            Some(Bson::ObjectId(oid)) => oid.to_hex(),
            _ => {
                tracing::warn!(route = %self.route, key = %self.key, "document has no string user key; not relayed");
                return;
            }
        };
        let Some(cluster_time) = event.cluster_time else {
            tracing::warn!(route = %self.route, "event without clusterTime; not relayed");
            return;
        };
        let position = self.positions.next(cluster_time);
        let frame = protocol::notification(&self.route, &position.cursor(&self.route), document);
        self.ring.push(position, &user, &frame);
        if self.registry.has_user(&user) {
            let event = UserEvent { route: self.route.clone(), position, frame, received };
            self.registry.publish_user(&user, Arc::new(event));
        }
    }

    /// The stream starts over at `start`: the ring knows nothing before it,
    /// and after a lost history every connection is told to resync.
    pub fn restart(&mut self, start: Timestamp, after_loss: bool) {
        self.positions = Positions::default();
        self.ring.restart(start);
        if after_loss {
            tracing::warn!(route = %self.route, "notifications may have been lost; telling every connection to resync");
            self.registry.publish_everyone(&protocol::resync(&self.route));
        }
    }
}
