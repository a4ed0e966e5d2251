//! Read markers. Each insert or raise of a `read_markers` document becomes
//! one `read_marker` frame for every connection of its user in this process,
//! on every replica alike: the marker itself lives only in MongoDB.

use std::sync::Arc;
use std::time::Instant;

use bson::Timestamp;

use super::event::{scan, Event, Operation};
use crate::collections::READ_MARKERS_ROUTE;
use crate::fanout::{Registry, UserEvent};
use crate::protocol::{self, ServerFrame};
use crate::recovery::Positions;

/// Relays raised read markers to their users.
pub struct MarkerRelay {
    registry: Arc<Registry>,
    positions: Positions,
}

impl MarkerRelay {
    pub fn new(registry: Arc<Registry>) -> Self {
        MarkerRelay { registry, positions: Positions::default() }
    }

    pub fn relay(&mut self, event: &Event<'_>, received: Instant) {
        let Some(key) = event.key_document() else { return };
        let (Ok(user), Ok(room)) = (key.get_str("user"), key.get_str("room")) else { return };
        if !self.registry.has_user(user) {
            return;
        }
        let seq = match event.operation() {
            Operation::Update => event.updated("seq"),
            _ => event.full_document().and_then(|raw| scan(raw.as_bytes(), [b"seq"])[0]?.integer()),
        };
        let (Some(seq), Some(cluster_time)) = (seq, event.cluster_time()) else { return };
        let frame = ServerFrame::ReadMarker { room, seq }.encode();
        let position = self.positions.next(cluster_time);
        let event = UserEvent { route: READ_MARKERS_ROUTE.to_string(), position, frame, received };
        self.registry.publish_user(user, Arc::new(event));
    }

    /// After a lost history, raised markers may have been missed: every
    /// connection is told to resync them (ask for `rooms` again).
    pub fn restart(&mut self, _start: Timestamp, after_loss: bool) {
        self.positions = Positions::default();
        if after_loss {
            tracing::warn!(
                route = READ_MARKERS_ROUTE,
                "read markers may have been missed; telling every connection to resync"
            );
            self.registry.publish_everyone(&protocol::resync(READ_MARKERS_ROUTE));
        }
    }
}
