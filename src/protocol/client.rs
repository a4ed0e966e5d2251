//! What clients send: decoding one text frame into a `ClientFrame` and
//! checking every field that can be checked without the database. A frame
//! that fails gets a stable code and, where the frame named them, its `room`
//! and `client_id` echoed back in `ref`. Unknown fields are ignored, so
//! clients can be newer than servers.

use serde::Deserialize;
use serde_json::Value;

use super::codes::{ErrorCode, Refusal};

/// Longest `client_id` or message `id`, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Every client frame type, as `kind()` names them: docs/protocol.md's
/// input table has a row for each, and a test holds it to that.
pub const FRAME_TYPES: [&str; 11] =
    ["join", "leave", "send", "edit", "delete", "history", "read", "rooms", "notifications", "typing", "ping"];

/// A decoded, validated client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Join {
        room: String,
        since: Option<i64>,
    },
    Leave {
        room: String,
    },
    Send {
        room: String,
        client_id: String,
        body: Value,
    },
    Edit {
        room: String,
        id: String,
        body: Value,
        client_id: Option<String>,
    },
    Delete {
        room: String,
        id: String,
        client_id: Option<String>,
    },
    /// A page of the room's messages with `seq < before`, newest `limit`.
    History {
        room: String,
        before: Option<i64>,
        limit: Option<i64>,
    },
    /// The user has read the room up to `seq`.
    Read {
        room: String,
        seq: i64,
    },
    /// The user's rooms with their unread counts.
    Rooms,
    /// A page of the user's documents of a user route, before the id `before`.
    Notifications {
        route: String,
        before: Option<String>,
        limit: Option<i64>,
    },
    /// The user is typing in a room it joined.
    Typing {
        room: String,
    },
    Ping,
}

impl ClientFrame {
    /// The frame's `type`, as a metric label.
    pub fn kind(&self) -> &'static str {
        // An index into the one list, so a new frame type cannot be named
        // without being listed there.
        let index = match self {
            ClientFrame::Join { .. } => 0,
            ClientFrame::Leave { .. } => 1,
            ClientFrame::Send { .. } => 2,
            ClientFrame::Edit { .. } => 3,
            ClientFrame::Delete { .. } => 4,
            ClientFrame::History { .. } => 5,
            ClientFrame::Read { .. } => 6,
            ClientFrame::Rooms => 7,
            ClientFrame::Notifications { .. } => 8,
            ClientFrame::Typing { .. } => 9,
            ClientFrame::Ping => 10,
        };
        FRAME_TYPES[index]
    }

    /// The `ref` an error answering this frame carries.
    pub fn reference(&self) -> Option<Value> {
        match self {
            ClientFrame::Ping | ClientFrame::Rooms | ClientFrame::Notifications { .. } => None,
            ClientFrame::Join { room, .. }
            | ClientFrame::Leave { room }
            | ClientFrame::History { room, .. }
            | ClientFrame::Read { room, .. }
            | ClientFrame::Typing { room } => reference(Some(room), None),
            ClientFrame::Send { room, client_id, .. } => reference(Some(room), Some(client_id)),
            ClientFrame::Edit { room, client_id, .. } | ClientFrame::Delete { room, client_id, .. } => {
                reference(Some(room), client_id.as_deref())
            }
        }
    }
}

/// The `ref` of an error frame: the offending frame's `room` and `client_id`,
/// where present, cut to the longest valid length.
pub fn reference(room: Option<&str>, client_id: Option<&str>) -> Option<Value> {
    let mut reference = serde_json::Map::new();
    for (key, value) in [("client_id", client_id), ("room", room)] {
        if let Some(value) = value {
            reference.insert(key.to_string(), Value::String(value.chars().take(MAX_ID_LEN).collect()));
        }
    }
    (!reference.is_empty()).then_some(Value::Object(reference))
}

/// A frame that could not be decoded, with the `ref` its error echoes back.
#[derive(Debug, Clone)]
pub struct Undecodable {
    pub refusal: Refusal,
    pub reference: Option<Value>,
}

/// Whether `name` is 1 to 128 ASCII letters, digits and the given `extra`
/// punctuation: a plain token, so it can never act as a regex or an operator.
pub fn is_plain_name(name: &str, extra: &[u8]) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// Room names: letters, digits and `. _ : -`.
pub fn valid_room(room: &str) -> bool {
    is_plain_name(room, b"._:-")
}

#[derive(Deserialize)]
struct JoinArgs {
    room: String,
    #[serde(default)]
    since: Option<i64>,
}

#[derive(Deserialize)]
struct RoomArgs {
    room: String,
}

#[derive(Deserialize)]
struct SendArgs {
    room: String,
    client_id: String,
    body: Value,
}

#[derive(Deserialize)]
struct EditArgs {
    room: String,
    id: String,
    body: Value,
    #[serde(default)]
    client_id: Option<String>,
}

#[derive(Deserialize)]
struct HistoryArgs {
    room: String,
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Deserialize)]
struct ReadArgs {
    room: String,
    seq: i64,
}

#[derive(Deserialize)]
struct NotificationsArgs {
    route: String,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Deserialize)]
struct DeleteArgs {
    room: String,
    id: String,
    #[serde(default)]
    client_id: Option<String>,
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<ClientFrame, Undecodable> {
    let value: Value = serde_json::from_str(text).map_err(|e| Undecodable {
        refusal: Refusal::new(ErrorCode::MalformedJson, format!("not valid JSON: {e}")),
        reference: None,
    })?;
    let field = |key: &str| match value.get(key) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let reference = reference(field("room"), field("client_id"));
    let reject =
        |code, message: String| Undecodable { refusal: Refusal::new(code, message), reference: reference.clone() };
    let kind = match value.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(reject(ErrorCode::InvalidField, "`type` must be a string".to_string())),
        None if value.is_object() => return Err(reject(ErrorCode::InvalidField, "missing field `type`".to_string())),
        None => return Err(reject(ErrorCode::InvalidField, "a frame must be a JSON object".to_string())),
    };
    let args = |e: serde_json::Error| reject(ErrorCode::InvalidField, e.to_string());
    let frame = match kind.as_str() {
        "join" => {
            let a: JoinArgs = serde_json::from_value(value).map_err(args)?;
            ClientFrame::Join { room: a.room, since: a.since }
        }
        "leave" => ClientFrame::Leave { room: serde_json::from_value::<RoomArgs>(value).map_err(args)?.room },
        "send" => {
            let a: SendArgs = serde_json::from_value(value).map_err(args)?;
            ClientFrame::Send { room: a.room, client_id: a.client_id, body: a.body }
        }
        "edit" => {
            let a: EditArgs = serde_json::from_value(value).map_err(args)?;
            ClientFrame::Edit { room: a.room, id: a.id, body: a.body, client_id: a.client_id }
        }
        "delete" => {
            let a: DeleteArgs = serde_json::from_value(value).map_err(args)?;
            ClientFrame::Delete { room: a.room, id: a.id, client_id: a.client_id }
        }
        "history" => {
            let a: HistoryArgs = serde_json::from_value(value).map_err(args)?;
            ClientFrame::History { room: a.room, before: a.before, limit: a.limit }
        }
        "read" => {
            let a: ReadArgs = serde_json::from_value(value).map_err(args)?;
            ClientFrame::Read { room: a.room, seq: a.seq }
        }
        "rooms" => ClientFrame::Rooms,
        "typing" => ClientFrame::Typing { room: serde_json::from_value::<RoomArgs>(value).map_err(args)?.room },
        "notifications" => {
            let a: NotificationsArgs = serde_json::from_value(value).map_err(args)?;
            ClientFrame::Notifications { route: a.route, before: a.before, limit: a.limit }
        }
        "ping" => ClientFrame::Ping,
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(reject(ErrorCode::UnknownType, format!("unknown frame type `{shown}`")));
        }
    };
    validate(&frame).map_err(|refusal| Undecodable { refusal, reference })?;
    Ok(frame)
}

fn validate(frame: &ClientFrame) -> Result<(), Refusal> {
    let positive = |field: &str, value: &Option<i64>| match value {
        Some(value) if *value < 1 => {
            Err(Refusal::new(ErrorCode::InvalidField, format!("`{field}` must be at least 1")))
        }
        _ => Ok(()),
    };
    let (room, ids, since) = match frame {
        ClientFrame::Ping | ClientFrame::Rooms => return Ok(()),
        ClientFrame::Notifications { route, before, limit } => {
            positive("limit", limit)?;
            if route.is_empty() || route.len() > MAX_ID_LEN {
                return Err(Refusal::new(ErrorCode::InvalidField, "`route` must be 1 to 128 bytes"));
            }
            if before.as_ref().is_some_and(|id| id.is_empty() || id.len() > MAX_ID_LEN) {
                return Err(Refusal::new(ErrorCode::InvalidField, "`before` must be 1 to 128 bytes"));
            }
            return Ok(());
        }
        ClientFrame::History { room, before, limit } => {
            positive("before", before)?;
            positive("limit", limit)?;
            (room, vec![], None)
        }
        ClientFrame::Read { room, seq } => {
            if *seq < 0 {
                return Err(Refusal::new(ErrorCode::InvalidField, "`seq` must not be negative"));
            }
            (room, vec![], None)
        }
        ClientFrame::Join { room, since } => (room, vec![], *since),
        ClientFrame::Leave { room } | ClientFrame::Typing { room } => (room, vec![], None),
        ClientFrame::Send { room, client_id, .. } => (room, vec![("client_id", Some(client_id))], None),
        ClientFrame::Edit { room, id, client_id, .. } | ClientFrame::Delete { room, id, client_id } => {
            (room, vec![("id", Some(id)), ("client_id", client_id.as_ref())], None)
        }
    };
    if !valid_room(room) {
        return Err(Refusal::new(ErrorCode::InvalidRoom, "room names are 1 to 128 characters of A-Z a-z 0-9 . _ : -"));
    }
    for (field, value) in ids {
        if let Some(value) = value {
            if value.is_empty() || value.len() > MAX_ID_LEN {
                return Err(Refusal::new(ErrorCode::InvalidField, format!("`{field}` must be 1 to 128 bytes")));
            }
        }
    }
    if since.is_some_and(|s| s < 0) {
        return Err(Refusal::new(ErrorCode::InvalidField, "`since` must not be negative"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::body::body_to_bson;
    use crate::protocol::body::tests::{json_value, limits};
    use proptest::prelude::*;

    /// Frames shaped like the protocol's, with any values in any field.
    fn frame() -> impl Strategy<Value = String> {
        let kind = prop_oneof![prop::sample::select(FRAME_TYPES.to_vec()), Just("other")];
        let fields = prop::collection::btree_map(
            prop_oneof![
                Just("room"),
                Just("since"),
                Just("client_id"),
                Just("body"),
                Just("id"),
                Just("before"),
                Just("limit"),
                Just("seq"),
                Just("route"),
                Just("x")
            ],
            json_value(),
            0..6,
        );
        (kind, fields).prop_map(|(kind, fields)| {
            let mut object: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            object.insert("type".into(), Value::from(kind));
            Value::Object(object).to_string()
        })
    }

    proptest! {
        // A fixed case count keeps CI deterministic in time; `fuzz/` runs longer.
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_text_decodes_or_is_refused_without_panicking(text in any::<String>()) {
            let _ = decode(&text);
        }

        #[test]
        fn decoded_frames_always_hold_valid_fields(text in frame()) {
            let decoded = decode(&text);
            if let Ok(frame) = &decoded {
                let sent: Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(Value::from(frame.kind()), sent["type"].clone());
            }
            match decoded {
                Ok(ClientFrame::Ping) => {}
                Ok(ClientFrame::Join { room, since }) => {
                    prop_assert!(valid_room(&room));
                    prop_assert!(since.is_none_or(|s| s >= 0));
                }
                Ok(ClientFrame::Leave { room }) => prop_assert!(valid_room(&room)),
                Ok(ClientFrame::Send { room, client_id, body }) => {
                    prop_assert!(valid_room(&room));
                    prop_assert!((1..=MAX_ID_LEN).contains(&client_id.len()));
                    let _ = body_to_bson(&body, limits());
                }
                Ok(ClientFrame::Edit { room, id, body, .. }) => {
                    prop_assert!(valid_room(&room) && !id.is_empty());
                    let _ = body_to_bson(&body, limits());
                }
                Ok(ClientFrame::Delete { room, id, .. }) => prop_assert!(valid_room(&room) && !id.is_empty()),
                Ok(ClientFrame::History { room, before, limit }) => {
                    prop_assert!(valid_room(&room));
                    prop_assert!(before.is_none_or(|b| b >= 1) && limit.is_none_or(|l| l >= 1));
                }
                Ok(ClientFrame::Read { room, seq }) => prop_assert!(valid_room(&room) && seq >= 0),
                Ok(ClientFrame::Rooms) => {}
                Ok(ClientFrame::Typing { room }) => prop_assert!(valid_room(&room)),
                Ok(ClientFrame::Notifications { route, limit, .. }) => {
                    prop_assert!(!route.is_empty() && limit.is_none_or(|l| l >= 1));
                }
                Err(undecodable) => prop_assert!(!undecodable.refusal.message.is_empty()),
            }
        }
    }

    #[test]
    fn every_listed_frame_type_is_decoded() {
        for kind in FRAME_TYPES {
            let refused = decode(&format!(r#"{{"type":"{kind}"}}"#)).err().map(|u| u.refusal.code);
            assert_ne!(refused, Some(ErrorCode::UnknownType), "{kind}");
        }
    }

    #[test]
    fn room_names_are_plain_tokens() {
        assert!(valid_room("lobby"));
        assert!(valid_room("team:42.general_x-y"));
        for bad in ["", "a b", "a.*", "$where", "{\"$gt\":\"\"}", "ä", &"x".repeat(129)] {
            assert!(!valid_room(bad), "{bad} accepted");
        }
    }

    #[test]
    fn decode_reports_stable_codes() {
        let code = |text: &str| decode(text).unwrap_err().refusal.code;
        assert_eq!(code("{"), ErrorCode::MalformedJson);
        assert_eq!(code("[1]"), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type":"shout"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"join"}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type":"join","room":5}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type":"join","room":"a","since":-1}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type":"join","room":"a|b"}"#), ErrorCode::InvalidRoom);
        assert_eq!(code(r#"{"type":"send","room":"a","client_id":"","body":1}"#), ErrorCode::InvalidField);
        assert_eq!(code(r#"{"type":"send","room":"a","client_id":"c"}"#), ErrorCode::InvalidField);
    }

    #[test]
    fn decode_ignores_unknown_fields_and_echoes_reference() {
        let frame = decode(r#"{"type":"send","room":"a","client_id":"c","body":null,"extra":1}"#).unwrap();
        assert_eq!(frame, ClientFrame::Send { room: "a".into(), client_id: "c".into(), body: Value::Null });
        let undecodable = decode(r#"{"type":"send","room":"a b","client_id":"c","body":1}"#).unwrap_err();
        assert_eq!(undecodable.reference, Some(serde_json::json!({"client_id":"c","room":"a b"})));
    }
}
