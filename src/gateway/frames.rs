//! Protocol v1 frames: decoding and validating what clients send, and
//! encoding what the server sends. Every refusal carries a stable code from
//! `ErrorCode`; docs/protocol.md is the reference for all of it. Unknown
//! fields in client frames are ignored, so clients can be newer than servers.

use bson::{Bson, DateTime, Document};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::error::{ErrorCode, Refusal};
use crate::settings::LimitSettings;
use crate::store::{id_string, Ack, MessageDoc};

const MAX_ID_LEN: usize = 128;

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Join { room: String, since: Option<i64> },
    Leave { room: String },
    Send { room: String, client_id: String, body: Value },
    Edit { room: String, id: String, body: Value, client_id: Option<String> },
    Delete { room: String, id: String, client_id: Option<String> },
    Ping,
}

impl ClientFrame {
    /// The frame's `type`, as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Join { .. } => "join",
            ClientFrame::Leave { .. } => "leave",
            ClientFrame::Send { .. } => "send",
            ClientFrame::Edit { .. } => "edit",
            ClientFrame::Delete { .. } => "delete",
            ClientFrame::Ping => "ping",
        }
    }
}

/// A frame that could not be decoded, with what the error frame echoes back.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub refusal: Refusal,
    pub reference: Option<Value>,
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
struct DeleteArgs {
    room: String,
    id: String,
    #[serde(default)]
    client_id: Option<String>,
}

/// Room names are plain tokens, so they can never act as a regex or an operator.
pub fn valid_room(room: &str) -> bool {
    (1..=128).contains(&room.len())
        && room.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The `ref` of an error frame: the offending frame's `client_id` and `room`, where present.
pub fn reference_of(value: &Value) -> Option<Value> {
    let mut reference = serde_json::Map::new();
    for key in ["client_id", "room"] {
        if let Some(Value::String(s)) = value.get(key) {
            let echoed: String = s.chars().take(MAX_ID_LEN).collect();
            reference.insert(key.to_string(), Value::String(echoed));
        }
    }
    (!reference.is_empty()).then_some(Value::Object(reference))
}

/// Decodes one text frame.
pub fn decode(text: &str) -> Result<ClientFrame, Rejected> {
    let value: Value = serde_json::from_str(text).map_err(|e| Rejected {
        refusal: Refusal::new(ErrorCode::MalformedJson, format!("not valid JSON: {e}")),
        reference: None,
    })?;
    let reference = reference_of(&value);
    let reject =
        |code, message: String| Rejected { refusal: Refusal::new(code, message), reference: reference.clone() };
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
        "ping" => ClientFrame::Ping,
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(reject(ErrorCode::UnknownType, format!("unknown frame type `{shown}`")));
        }
    };
    validate(&frame).map_err(|refusal| Rejected { refusal, reference })?;
    Ok(frame)
}

fn validate(frame: &ClientFrame) -> Result<(), Refusal> {
    let (room, ids, since) = match frame {
        ClientFrame::Ping => return Ok(()),
        ClientFrame::Join { room, since } => (room, vec![], *since),
        ClientFrame::Leave { room } => (room, vec![], None),
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

/// Nesting depth of a body, or `None` if a key holds a NUL byte, which a
/// BSON field name cannot.
fn depth(value: &Value) -> Option<usize> {
    match value {
        Value::Array(items) => items.iter().try_fold(0, |deepest, item| Some(deepest.max(depth(item)?))).map(|d| d + 1),
        Value::Object(map) => map
            .iter()
            .try_fold(0, |deepest, (key, item)| (!key.contains('\0')).then_some(deepest.max(depth(item)?)))
            .map(|d| d + 1),
        _ => Some(0),
    }
}

/// Checks a body against the limits and converts it for storage, as given.
pub fn body_to_bson(body: &Value, limits: &LimitSettings) -> Result<Bson, Refusal> {
    let size = serde_json::to_vec(body).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > limits.max_body_bytes {
        return Err(Refusal::new(
            ErrorCode::TooLarge,
            format!("body is {size} bytes, the limit is {}", limits.max_body_bytes),
        ));
    }
    let Some(depth) = depth(body) else {
        return Err(Refusal::new(ErrorCode::InvalidField, "body: keys must not contain NUL bytes"));
    };
    if depth > limits.max_body_depth {
        return Err(Refusal::new(
            ErrorCode::TooDeep,
            format!("body nests deeper than {} levels", limits.max_body_depth),
        ));
    }
    bson::to_bson(body).map_err(|e| Refusal::new(ErrorCode::InvalidField, format!("body: {e}")))
}

/// Frames the server sends that are not built from database documents.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Joined {
        room: &'a str,
        seq: i64,
        recovered: bool,
    },
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        room: &'a str,
        seq: i64,
        id: &'a str,
    },
    Left {
        room: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    Error {
        code: &'static str,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a Value>,
    },
    Pong,
    /// Answers a `since_cursor`: whether every notification after it follows.
    Recovery {
        route: &'a str,
        recovered: bool,
    },
    /// The route's notifications may have been lost: refetch them elsewhere.
    Resync {
        route: &'a str,
    },
}

impl ServerFrame<'_> {
    pub fn encode(&self) -> Message {
        Message::text(serde_json::to_string(self).expect("server frames always serialize"))
    }
}

pub fn ack(client_id: Option<&str>, ack: &Ack) -> Message {
    ServerFrame::Ack { client_id, room: &ack.room, seq: ack.seq, id: &ack.id }.encode()
}

pub fn resync(route: &str) -> Message {
    ServerFrame::Resync { route }.encode()
}

pub fn error(refusal: &Refusal, reference: Option<&Value>) -> Message {
    ServerFrame::Error { code: refusal.code.as_str(), message: &refusal.message, reference }.encode()
}

fn timestamp(at: DateTime) -> String {
    at.to_chrono().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[derive(Serialize)]
struct MessageFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a str,
    seq: i64,
    id: &'a str,
    author: &'a str,
    body: Value,
    sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

/// The `message` frame of a stored message: inserts, edits and deletions alike.
pub fn message(message: MessageDoc) -> Message {
    let frame = MessageFrame {
        kind: "message",
        room: &message.room,
        seq: message.seq,
        id: &message.id,
        author: &message.author,
        body: message.body.into_relaxed_extjson(),
        sent_at: message.sent_at.map(timestamp),
        edited_at: message.edited_at.map(timestamp),
        deleted: message.deleted,
    };
    Message::text(serde_json::to_string(&frame).expect("message frames always serialize"))
}

#[derive(Serialize)]
struct NotificationFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    route: &'a str,
    id: &'a str,
    cursor: &'a str,
    data: Value,
}

/// The `notification` frame of a document: relaxed Extended JSON, `_id` as a string.
pub fn notification(route: &str, cursor: &str, mut document: Document) -> Message {
    let id = document.get("_id").map(id_string).unwrap_or_default();
    document.insert("_id", id.clone());
    let data = Bson::Document(document).into_relaxed_extjson();
    let frame = NotificationFrame { kind: "notification", route, id: &id, cursor, data };
    Message::text(serde_json::to_string(&frame).expect("notification frames always serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> LimitSettings {
        LimitSettings {
            max_frame_bytes: 131072,
            max_body_bytes: 65536,
            max_body_depth: 32,
            max_replay: 1000,
            send_queue_frames: 1024,
            send_queue_bytes: 1 << 22,
            max_rooms_per_connection: 100,
            max_connections_per_user: 20,
            sends_per_second: 20,
            send_burst: 40,
            joins_per_second: 10,
            join_burst: 50,
            handshakes_per_second_per_ip: 20,
            handshake_burst_per_ip: 50,
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            prop_oneof![Just("$where"), Just("a.b"), Just("\u{0}"), Just("lobby"), Just("$gt")].prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Frames shaped like the protocol's, with any values in any field.
    fn frame() -> impl Strategy<Value = String> {
        let kind = prop_oneof![
            Just("join"),
            Just("leave"),
            Just("send"),
            Just("edit"),
            Just("delete"),
            Just("ping"),
            Just("other")
        ];
        let fields = prop::collection::btree_map(
            prop_oneof![Just("room"), Just("since"), Just("client_id"), Just("body"), Just("id"), Just("x")],
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
            match decode(&text) {
                Ok(ClientFrame::Ping) => {}
                Ok(ClientFrame::Join { room, since }) => {
                    prop_assert!(valid_room(&room));
                    prop_assert!(since.is_none_or(|s| s >= 0));
                }
                Ok(ClientFrame::Leave { room }) => prop_assert!(valid_room(&room)),
                Ok(ClientFrame::Send { room, client_id, body }) => {
                    prop_assert!(valid_room(&room));
                    prop_assert!((1..=MAX_ID_LEN).contains(&client_id.len()));
                    let _ = body_to_bson(&body, &limits());
                }
                Ok(ClientFrame::Edit { room, id, body, .. }) => {
                    prop_assert!(valid_room(&room) && !id.is_empty());
                    let _ = body_to_bson(&body, &limits());
                }
                Ok(ClientFrame::Delete { room, id, .. }) => prop_assert!(valid_room(&room) && !id.is_empty()),
                Err(rejected) => prop_assert!(!rejected.refusal.message.is_empty()),
            }
        }

        #[test]
        fn bodies_convert_to_bson_or_are_refused(body in json_value()) {
            if let Ok(bson) = body_to_bson(&body, &limits()) {
                // Stored as given: what goes in comes back out (numbers aside, as BSON types them).
                let back = bson.into_relaxed_extjson();
                prop_assert_eq!(depth(&back), depth(&body));
            }
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
        let rejected = decode(r#"{"type":"send","room":"a b","client_id":"c","body":1}"#).unwrap_err();
        assert_eq!(rejected.reference, Some(serde_json::json!({"client_id":"c","room":"a b"})));
    }
}
