//! What a connection's writer receives, in order, through its queue: the
//! fan-out's deliveries and the session's own replies and markers (a join
//! or a recovery started, its replay ready). One queue for both is what
//! lets the writer order a join's replay against the room's live events.

use std::sync::Arc;

use crate::fanout::{Delivery, RoomEvent, UserEvent};
use crate::protocol::Frame;
use crate::recovery::Position;

/// One item of a connection's queue.
#[derive(Debug)]
pub enum Outbound {
    /// A live room event from the relay.
    Room(Arc<RoomEvent>),
    /// A live user-route event from the relay.
    User(Arc<UserEvent>),
    /// A frame the relay sends to every connection (a `resync`).
    Notice(Frame),
    /// A direct answer to this connection (ack, error, pong, left).
    Reply(Frame),
    /// A join started: hold the room's live events until `JoinReady`.
    JoinStarted(String),
    /// The join's replay is read: send `joined`, the history, then the held events.
    JoinReady { room: String, frames: Vec<Frame>, high_water: i64 },
    /// The join failed: drop what was held and send the error.
    JoinFailed { room: String, error: Frame },
    /// The room was left: stop sending its events, then send `left`.
    Left { room: String, frame: Frame },
    /// The right to the room was revoked: as `Left`, with reason `revoked`.
    Revoked(String),
    /// A notification recovery started: hold the route's live events.
    RecoveryStarted(String),
    /// The recovery is read: send its frames, then the held events above `high_water`.
    RecoveryReady { route: String, frames: Vec<Frame>, high_water: Position },
    /// The client's WebSocket ping, to be answered with its payload.
    Pong(Vec<u8>),
}

/// What an item costs while it waits in the queue, besides its frames: its
/// place in the queue. Charged too, so a queue of many tiny frames is
/// bounded by the budget as much as one of large ones.
pub const QUEUED_ITEM_BYTES: usize = std::mem::size_of::<Outbound>();

impl Outbound {
    /// Bytes the item's frames occupy, charged to the connection's budget
    /// while it is queued, held or being written.
    pub fn frame_bytes(&self) -> usize {
        match self {
            Outbound::Room(event) => event.frame.len(),
            Outbound::User(event) => event.frame.len(),
            Outbound::Notice(frame) | Outbound::Reply(frame) => frame.len(),
            Outbound::JoinFailed { error: frame, .. } | Outbound::Left { frame, .. } => frame.len(),
            Outbound::JoinReady { frames, .. } | Outbound::RecoveryReady { frames, .. } => {
                frames.iter().map(Frame::len).sum()
            }
            Outbound::Pong(payload) => payload.len(),
            Outbound::JoinStarted(_) | Outbound::Revoked(_) | Outbound::RecoveryStarted(_) => 0,
        }
    }

    /// Everything the item is charged while queued: its frames and its place.
    pub fn bytes(&self) -> usize {
        self.frame_bytes() + QUEUED_ITEM_BYTES
    }
}

impl From<Delivery> for Outbound {
    fn from(delivery: Delivery) -> Self {
        match delivery {
            Delivery::Room(event) => Outbound::Room(event),
            Delivery::User(event) => Outbound::User(event),
            Delivery::Notice(frame) => Outbound::Notice(frame),
            Delivery::Revoked(room) => Outbound::Revoked(room),
        }
    }
}
