//! Hands each change event of a route to what its audience needs: room
//! messages to `rooms`, user-channel documents to `users`, membership changes
//! to `members`. Also what a route does when its stream starts over with
//! nothing before it (re-fill, resync, re-check).

use std::time::Instant;

use bson::Timestamp;

use super::event::Event;
use super::markers::MarkerRelay;
use super::members::MembershipWatch;
use super::presence::PresenceRelay;
use super::rooms::RoomRelay;
use super::typing::TypingRelay;
use super::users::UserRelay;
use crate::store::StoreError;

/// The per-audience handling of one route's events.
pub enum Dispatcher {
    Room(RoomRelay),
    User(UserRelay),
    Membership(MembershipWatch),
    ReadMarkers(MarkerRelay),
    Presence(PresenceRelay),
    Typing(TypingRelay),
}

impl Dispatcher {
    pub fn dispatch(&mut self, event: &Event<'_>, received: Instant) {
        match self {
            Dispatcher::Room(rooms) => rooms.relay(event, received),
            Dispatcher::User(users) => users.relay(event, received),
            Dispatcher::Membership(members) => members.changed(event),
            Dispatcher::ReadMarkers(markers) => markers.relay(event, received),
            Dispatcher::Presence(presence) => presence.relay(event),
            Dispatcher::Typing(typing) => typing.relay(event, received),
        }
    }

    /// The stream (re)started at `start` with nothing before it. After a lost
    /// history, rooms are re-filled from the database, user channels are told
    /// to resync and memberships are re-checked, so nothing is skipped silently.
    pub async fn started_at(&mut self, start: Timestamp, after_loss: bool) -> Result<(), StoreError> {
        match self {
            Dispatcher::Room(rooms) if after_loss => rooms.refill().await,
            Dispatcher::Room(_) => Ok(()),
            Dispatcher::User(users) => {
                users.restart(start, after_loss);
                Ok(())
            }
            Dispatcher::Membership(members) if after_loss => members.recheck().await,
            Dispatcher::Membership(_) => Ok(()),
            Dispatcher::ReadMarkers(markers) => {
                markers.restart(start, after_loss);
                Ok(())
            }
            Dispatcher::Presence(presence) if after_loss => presence.reload().await,
            // Typing is a few seconds' worth: what was missed is over.
            Dispatcher::Presence(_) | Dispatcher::Typing(_) => Ok(()),
        }
    }
}
