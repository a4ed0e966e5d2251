//! The events the relay fans out: one change-stream event each, encoded once
//! and shared by every recipient.

use std::time::Instant;

use crate::protocol::Frame;
use crate::recovery::Position;

/// Whether a room event adds a message, changes one already sent, or says
/// something about the room that is not a message (presence, typing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Insert,
    Update,
    /// Not part of the room's seq: delivered in order, never replayed.
    Ephemeral,
}

/// One change-stream event of a room, serialized once for all its recipients.
#[derive(Debug)]
pub struct RoomEvent {
    pub room: String,
    pub seq: i64,
    pub change: Change,
    pub frame: Frame,
    /// When the change stream delivered it: the start of the relay's overhead.
    pub received: Instant,
}

/// One change-stream event of a user route, serialized once for all its recipients.
#[derive(Debug)]
pub struct UserEvent {
    pub route: String,
    pub position: Position,
    pub frame: Frame,
    /// When the change stream delivered it: the start of the relay's overhead.
    pub received: Instant,
}

/// What the fan-out hands a listener, without waiting.
#[derive(Debug)]
pub enum Delivery {
    /// A live room event.
    Room(std::sync::Arc<RoomEvent>),
    /// A live user-route event.
    User(std::sync::Arc<UserEvent>),
    /// A frame every connection gets (a `resync`).
    Notice(Frame),
    /// The right to the room was revoked: the listener was taken out of it.
    Revoked(String),
}
