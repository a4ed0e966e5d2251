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
    pub fn encode(&self) -> Frame {
        encode(self)
    }
}

fn encode(frame: &impl Serialize) -> Frame {
    Frame::from(serde_json::to_string(frame).expect("server frames always serialize"))
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
    cursor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    too_large: bool,
}

/// The `notification` frame of a document: relaxed Extended JSON, `_id` as
/// a string. A frame over `max_bytes` is replaced by a stub without `data`;
/// the flag says whether the frame is a stub.
pub fn notification(route: &str, cursor: &str, mut document: Document, max_bytes: usize) -> (Frame, bool) {
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
pub fn notification_stub(route: &str, cursor: &str, id: &str) -> Frame {
    encode(&NotificationFrame { kind: "notification", route, id, cursor, data: None, too_large: true })
}
