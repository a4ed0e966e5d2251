//! The room policy, asked the same way by a join, a history page, a read
//! marker and the HTTP history: would this user be let into this room?

use bson::Bson;

use super::refusals::forbidden_room;
use super::Context;
use crate::auth::{claim_allows, Identity};
use crate::protocol::Refusal;
use crate::settings::RoomPolicy;

/// Whether the room policy lets `identity` into `room`: under `membership`,
/// the `_id` of the membership that does.
pub(super) async fn admit(context: &Context, identity: &Identity, room: &str) -> Result<Option<Bson>, Refusal> {
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
