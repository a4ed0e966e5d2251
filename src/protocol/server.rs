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
    body: Value,
    sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

/// The `message` frame of a stored message: inserts, edits and deletions alike.
pub fn message(message: MessageDoc) -> Frame {
    encode(&MessageFrame {
        kind: "message",
        room: &message.room,
        seq: message.seq,
        id: &message.id,
        author: &message.author,
        body: message.body.into_relaxed_extjson(),
        sent_at: message.sent_at.map(timestamp),
        edited_at: message.edited_at.map(timestamp),
        deleted: message.deleted,
    })
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
pub fn notification(route: &str, cursor: &str, mut document: Document) -> Frame {
    let id = document.get("_id").map(id_string).unwrap_or_default();
    document.insert("_id", id.clone());
    let data = Bson::Document(document).into_relaxed_extjson();
    encode(&NotificationFrame { kind: "notification", route, id: &id, cursor, data })
}
