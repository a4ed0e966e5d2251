//! The collections roomcast reads and writes, their indexes' names, and how
//! document ids are shown to clients. A leaf: the store, the settings, the relay and the protocol
//! all name collections and ids the same way through here.

use bson::oid::ObjectId;
use bson::Bson;

/// The collection that sends are written to and history is read from.
pub const MESSAGES: &str = "messages";

/// The unique `(room, seq)` index of `messages`, which arbitrates every seq.
pub const ROOM_SEQ_INDEX: &str = "room_seq";

/// The unique index of `messages` that makes a resend with the same
/// `client_id` to the same room idempotent: `{room, author, client_id}`,
/// which starts with `room` so that `messages` can be sharded by room.
pub const CLIENT_ID_INDEX: &str = "room_author_client_id";

/// The `{author, client_id}` index that `CLIENT_ID_INDEX` replaced. Start-up
/// drops it once its replacement exists.
pub const LEGACY_CLIENT_ID_INDEX: &str = "author_client_id";

/// The users' read markers: one document per (user, room), `_id: {user, room}`.
pub const READ_MARKERS: &str = "read_markers";

/// The name of the internal route that watches `READ_MARKERS`.
pub const READ_MARKERS_ROUTE: &str = "read_markers";

/// Who is present where: one document per (room, user, replica).
pub const PRESENCE: &str = "presence";

/// The running replicas and their heartbeats.
pub const PRESENCE_REPLICAS: &str = "presence_replicas";

/// Who is typing where: one document per (room, user).
pub const TYPING: &str = "typing";

/// The memberships of `room_policy: membership`, one `{room, user}` document each.
pub const ROOM_MEMBERS: &str = "room_members";

/// The `{user, room}` index of `ROOM_MEMBERS`: a user's memberships, for the room list.
pub const MEMBER_ROOMS_INDEX: &str = "user_room";

/// `_id` as clients see it: ObjectId hex, a string as is, anything else as Extended JSON.
pub fn id_string(value: &Bson) -> String {
    match value {
        Bson::ObjectId(oid) => oid.to_hex(),
        Bson::String(s) => s.clone(),
        other => other.clone().into_relaxed_extjson().to_string(),
    }
}

/// The inverse of `id_string` for ids that clients send back.
pub fn parse_id(id: &str) -> Bson {
    ObjectId::parse_str(id).map(Bson::ObjectId).unwrap_or_else(|_| Bson::String(id.to_string()))
}
