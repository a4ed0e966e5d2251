//! What the server sends: every frame type, encoded once into a shared
//! `Frame`. Frames built from documents (`message`, `notification`) show BSON
//! as relaxed Extended JSON.

use bson::{Bson, DateTime, Document};
use serde::Serialize;
use serde_json::Value;

use super::codes::Refusal;
use super::frame::Frame;
use super::message::{Ack, MessageDoc};
use crate::collections::id_string;

/// Frames the server sends that are not built from database documents.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Joined {
        room: &'a str,
        seq: i64,
        recovered: bool,
        /// The user's read marker for the room, 0 without one.
        last_read: i64,
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
    /// The user's read marker for a room rose.
    ReadMarker {
        room: &'a str,
        seq: i64,
    },
    /// Who is present in a room, each user once; `users` is left out of a
    /// room with more present than `limits.presence_max_listed`.
    Presence {
        room: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        users: Option<Vec<&'a str>>,
        count: usize,
    },
    /// A user's first connection in the room, on any replica.
    PresenceJoin {
        room: &'a str,
        user: &'a str,
    },
    /// A user's last connection in the room left, on every replica.
    PresenceLeave {
        room: &'a str,
        user: &'a str,
    },
    /// How many are present in a large room.
    Occupancy {
        room: &'a str,
        count: usize,
    },
    /// Another member is typing.
    Typing {
        room: &'a str,
        user: &'a str,
    },
}

impl ServerFrame<'_> {
    pub fn encode(&self) -> Frame {
        encode(self)
    }
}

fn encode(frame: &impl Serialize) -> Frame {
    use bytes::BufMut;
    Frame::encode(|buffer| serde_json::to_writer(buffer.writer(), frame).expect("server frames always serialize"))
}

pub fn ack(client_id: Option<&str>, ack: &Ack) -> Frame {
    ServerFrame::Ack { client_id, room: &ack.room, seq: ack.seq, id: &ack.id }.encode()
}

pub fn resync(route: &str) -> Frame {
    ServerFrame::Resync { route }.encode()
}

pub fn error(refusal: &Refusal, reference: Option<&Value>) -> Frame {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
    sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    too_large: bool,
}

/// The `message` frame of a stored message: inserts, edits and deletions
/// alike. A frame over `max_bytes` is replaced by the message's stub; the
/// flag says whether the frame is a stub.
pub fn message(mut message: MessageDoc, max_bytes: usize) -> (Frame, bool) {
    let body = (!message.too_large).then(|| std::mem::replace(&mut message.body, Bson::Null).into_relaxed_extjson());
    let frame = message_frame(&message, body);
    if frame.len() <= max_bytes || message.too_large {
        return (frame, message.too_large);
    }
    message.too_large = true;
    (message_frame(&message, None), true)
}

fn message_frame(message: &MessageDoc, body: Option<Value>) -> Frame {
    encode(&MessageFrame {
        kind: "message",
        room: &message.room,
        seq: message.seq,
        id: &message.id,
        author: &message.author,
        body,
        sent_at: message.sent_at.map(timestamp),
        edited_at: message.edited_at.map(timestamp),
        deleted: message.deleted,
        too_large: message.too_large,
    })
}

#[derive(Serialize)]
struct NotificationFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    route: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    too_large: bool,
}

/// The `notification` frame of a document: relaxed Extended JSON, `_id` as
/// a string, and the cursor of its place in the stream (none for a page
/// read from the collection). A frame over `max_bytes` is replaced by a stub
/// without `data`; the flag says whether the frame is a stub.
pub fn notification(route: &str, cursor: Option<&str>, mut document: Document, max_bytes: usize) -> (Frame, bool) {
    let id = document.get("_id").map(id_string).unwrap_or_default();
    document.insert("_id", id.clone());
    let data = Some(Bson::Document(document).into_relaxed_extjson());
    let frame = encode(&NotificationFrame { kind: "notification", route, id: &id, cursor, data, too_large: false });
    if frame.len() <= max_bytes {
        return (frame, false);
    }
    (notification_stub(route, cursor, &id), true)
}

/// The stub of a notification too large to relay: its id and cursor, no data.
pub fn notification_stub(route: &str, cursor: Option<&str>, id: &str) -> Frame {
    encode(&NotificationFrame { kind: "notification", route, id, cursor, data: None, too_large: true })
}

/// A JSON string, quoted and escaped.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("strings always serialize")
}

/// `frames` as a JSON array: each is already encoded, and is copied, not
/// encoded again.
fn array(frames: &[Frame]) -> String {
    let mut out = String::with_capacity(2 + frames.iter().map(|f| f.len() + 1).sum::<usize>());
    out.push('[');
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(frame.text());
    }
    out.push(']');
    out
}

/// The `history` frame: a page of `message` frames, oldest first.
pub fn history(room: &str, messages: &[Frame], more: bool) -> Frame {
    Frame::from(format!(r#"{{"type":"history","room":{},"messages":{},"more":{more}}}"#, quoted(room), array(messages)))
}

/// The body of `GET /v1/rooms/{room}/messages`: the `history` frame's page.
pub fn history_body(room: &str, messages: &[Frame], more: bool) -> Frame {
    Frame::from(format!(r#"{{"room":{},"messages":{},"more":{more}}}"#, quoted(room), array(messages)))
}

/// The `notifications` frame: a page of a user's documents, newest first.
pub fn notifications_page(route: &str, items: &[Frame], more: bool) -> Frame {
    Frame::from(format!(
        r#"{{"type":"notifications","route":{},"items":{},"more":{more}}}"#,
        quoted(route),
        array(items)
    ))
}

/// One room of a `rooms` answer.
pub struct RoomEntry {
    pub room: String,
    pub seq: i64,
    pub last_read: i64,
    /// The newest message's `message` frame, if the room has one.
    pub last_message: Option<Frame>,
}

/// The `rooms` frame.
pub fn rooms(entries: &[RoomEntry]) -> Frame {
    let mut out = String::from(r#"{"type":"rooms","rooms":["#);
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let unread = (entry.seq - entry.last_read).max(0);
        out.push_str(&format!(
            r#"{{"room":{},"seq":{},"last_read":{},"unread":{unread}"#,
            quoted(&entry.room),
            entry.seq,
            entry.last_read
        ));
        if let Some(message) = &entry.last_message {
            out.push_str(r#","last_message":"#);
            out.push_str(message.text());
        }
        out.push('}');
    }
    out.push_str("]}");
    Frame::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_their_frames_as_they_were_encoded() {
        let frames = [Frame::from(r#"{"type":"message","seq":1}"#), Frame::from(r#"{"type":"message","seq":2}"#)];
        let page: Value = serde_json::from_str(history("a\"b", &frames, true).text()).unwrap();
        assert_eq!(
            page,
            serde_json::json!({"type": "history", "room": "a\"b", "more": true,
                "messages": [{"type": "message", "seq": 1}, {"type": "message", "seq": 2}]})
        );
        let empty: Value = serde_json::from_str(notifications_page("n", &[], false).text()).unwrap();
        assert_eq!(empty, serde_json::json!({"type": "notifications", "route": "n", "items": [], "more": false}));
        let entries = [
            RoomEntry { room: "x".into(), seq: 5, last_read: 7, last_message: Some(frames[0].clone()) },
            RoomEntry { room: "y".into(), seq: 0, last_read: 0, last_message: None },
        ];
        let listed: Value = serde_json::from_str(rooms(&entries).text()).unwrap();
        assert_eq!(
            listed,
            serde_json::json!({"type": "rooms", "rooms": [
                {"room": "x", "seq": 5, "last_read": 7, "unread": 0, "last_message": {"type": "message", "seq": 1}},
                {"room": "y", "seq": 0, "last_read": 0, "unread": 0}]})
        );
    }
}
