//! The room policy, asked the same way by a join, a history page, a read
//! marker, the room list and the HTTP history, each when it answers: would
//! this user be let into this room now?

use std::collections::HashSet;

use bson::Bson;

use super::context::Context;
use super::refusals::forbidden_room;
use crate::auth::{claim_allows, Identity};
use crate::protocol::Refusal;
use crate::settings::RoomPolicy;

/// Whether the room policy lets `identity` into `room`: under `membership`,
/// the `_id` of the membership that does.
pub async fn admit(context: &Context, identity: &Identity, room: &str) -> Result<Option<Bson>, Refusal> {
    match context.auth.room_policy {
        RoomPolicy::Open => Ok(None),
        RoomPolicy::Claim if claim_allows(identity, room) => Ok(None),
        RoomPolicy::Claim => Err(forbidden_room(room)),
        RoomPolicy::Membership => {
            let id = context.store.membership(room, &identity.user).await?.ok_or_else(|| forbidden_room(room))?;
            Ok(Some(id))
        }
    }
}

/// Of `rooms`, those the room policy lets `identity` into now, in their
/// order: the same rule as `admit`, asked once for them all (under
/// `membership`, one read of the user's memberships among them).
pub(super) async fn admitted(
    context: &Context,
    identity: &Identity,
    rooms: Vec<String>,
) -> Result<Vec<String>, Refusal> {
    match context.auth.room_policy {
        RoomPolicy::Open => Ok(rooms),
        RoomPolicy::Claim => Ok(rooms.into_iter().filter(|room| claim_allows(identity, room)).collect()),
        RoomPolicy::Membership => {
            let store = &context.store;
            let members: HashSet<String> =
                store.member_rooms(&identity.user, Some(&rooms), rooms.len()).await?.into_iter().collect();
            Ok(rooms.into_iter().filter(|room| members.contains(room)).collect())
        }
    }
}
