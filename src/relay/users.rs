//! User channels. Each document of a user route is routed on its key, read
//! straight from the encoded document and required to have the route's key
//! type (`string` unless the route says `object_id`). It is encoded into one
//! `notification` frame carrying its cursor, kept in the route's recovery
//! ring (always, for users who are away) and published to every connection
//! of that user. A document over `limits.max_document_bytes` is relayed as a
//! stub with its id and no data.

use std::sync::Arc;
use std::time::Instant;

use bson::raw::{RawBsonRef, RawDocument};
use bson::{Document, Timestamp};

use super::event::Event;
use crate::collections::id_string;
use crate::fanout::{Registry, UserEvent};
use crate::prometheus;
use crate::protocol::{self, Frame};
use crate::recovery::{Positions, Ring};
use crate::settings::KeyType;

/// Relays a user route's documents to their users.
pub struct UserRelay {
    route: String,
    key: String,
    key_type: KeyType,
    registry: Arc<Registry>,
    ring: Arc<Ring>,
    positions: Positions,
    max_document_bytes: usize,
    too_large: ::metrics::Counter,
}

impl UserRelay {
    pub fn new(
        route: &str,
        key: &str,
        key_type: KeyType,
        registry: Arc<Registry>,
        ring: Arc<Ring>,
        max_document_bytes: usize,
    ) -> Self {
        UserRelay {
            route: route.to_string(),
            key: key.to_string(),
            key_type,
            registry,
            ring,
            positions: Positions::default(),
            max_document_bytes,
            too_large: ::metrics::counter!(prometheus::DOCUMENTS_TOO_LARGE, "route" => route.to_string()),
        }
    }

    pub fn relay(&mut self, event: &Event<'_>, received: Instant) {
        let Some(raw) = event.full_document() else {
            tracing::debug!(route = %self.route, "event without a full document; nothing to relay");
            return;
        };
        let Some(user) = user_of(raw, &self.key, self.key_type) else {
            tracing::warn!(route = %self.route, key = %self.key, key_type = ?self.key_type, "document has no user key of the route's type; not relayed");
            return;
        };
        let Some(cluster_time) = event.cluster_time() else {
            tracing::warn!(route = %self.route, "event without clusterTime; not relayed");
            return;
        };
        let position = self.positions.next(cluster_time);
        let Some(frame) = self.frame(raw, &position.cursor(&self.route)) else { return };
        self.ring.push(position, &user, &frame);
        if self.registry.has_user(&user) {
            let event = UserEvent { route: self.route.clone(), position, frame, received };
            self.registry.publish_user(&user, Arc::new(event));
        }
    }

    /// The document's frame, or its stub when it is too large to relay.
    fn frame(&self, raw: &RawDocument, cursor: &str) -> Option<Frame> {
        let (frame, stub) = notification_frame(&self.route, raw, cursor, self.max_document_bytes)?;
        if stub {
            self.too_large.increment(1);
            tracing::warn!(route = %self.route, cursor, "notification too large to relay; relayed as a stub");
        }
        Some(frame)
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

/// A route's document as its `notification` frame, and whether that is a
/// stub (the document is too large to relay); `None` for a document that
/// is not valid BSON.
pub fn notification_frame(
    route: &str,
    raw: &RawDocument,
    cursor: &str,
    max_document_bytes: usize,
) -> Option<(Frame, bool)> {
    if raw.as_bytes().len() > max_document_bytes {
        let id = raw.get("_id").ok().flatten().and_then(|id| bson::Bson::try_from(id.to_raw_bson()).ok());
        let id = id.as_ref().map(id_string).unwrap_or_default();
        return Some((protocol::notification_stub(route, Some(cursor), &id), true));
    }
    let document = match Document::try_from(raw) {
        Ok(document) => document,
        Err(error) => {
            tracing::warn!(route, %error, "document is not valid BSON; not relayed");
            return None;
        }
    };
    Some(protocol::notification(route, Some(cursor), document, max_document_bytes))
}

/// The user a document is for: its key, if it has the route's key type.
pub fn user_of(raw: &RawDocument, key: &str, key_type: KeyType) -> Option<String> {
    match (raw.get(key).ok()??, key_type) {
        (RawBsonRef::String(user), KeyType::String) => Some(user.to_string()),
        (RawBsonRef::ObjectId(user), KeyType::ObjectId) => Some(user.to_hex()),
        _ => None,
    }
}
