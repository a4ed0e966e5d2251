//! The `typing` route: each write of a typing document reaches the local
//! members of its room as `typing`, except the typist's own connections.

use std::sync::Arc;
use std::time::Instant;

use super::event::Event;
use crate::fanout::{Change, Registry, RoomEvent};
use crate::protocol::ServerFrame;

/// Relays typing to rooms.
pub struct TypingRelay {
    registry: Arc<Registry>,
}

impl TypingRelay {
    pub fn new(registry: Arc<Registry>) -> Self {
        TypingRelay { registry }
    }

    pub fn relay(&self, event: &Event<'_>, received: Instant) {
        let Some(key) = event.key_document() else { return };
        let (Ok(room), Ok(user)) = (key.get_str("room"), key.get_str("user")) else { return };
        if !self.registry.has_room(room) {
            return;
        }
        let frame = ServerFrame::Typing { room, user }.encode();
        let event = RoomEvent { room: room.to_string(), seq: 0, change: Change::Ephemeral, frame, received };
        self.registry.publish_room_except(Arc::new(event), user);
    }
}
