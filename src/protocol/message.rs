//! A chat message as frames show it, read from a `messages` document written
//! by roomcast or by any other program that follows the same schema, and the
//! ack its author gets once it is committed.

use bson::{Bson, DateTime, Document};

use crate::collections::id_string;

/// What the author is told once a write is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub room: String,
    pub seq: i64,
    pub id: String,
}

/// A stored message, as frames show it.
#[derive(Debug, Clone)]
pub struct MessageDoc {
    pub room: String,
    pub seq: i64,
    pub id: String,
    pub author: String,
    pub body: Bson,
    pub sent_at: Option<DateTime>,
    pub edited_at: Option<DateTime>,
    pub deleted: bool,
}

impl MessageDoc {
    /// Reads a document of the `messages` collection.
    pub fn from_document(doc: &Document) -> Result<MessageDoc, &'static str> {
        let room = doc.get_str("room").map_err(|_| "`room` is not a string")?;
        let seq = doc.get("seq").and_then(as_i64).ok_or("`seq` is not an integer")?;
        let id = doc.get("_id").map(id_string).ok_or("`_id` is missing")?;
        let author = doc.get_str("author").map_err(|_| "`author` is not a string")?;
        let sent_at = doc.get_datetime("sent_at").ok().copied().or_else(|| match doc.get("_id") {
            Some(Bson::ObjectId(oid)) => Some(oid.timestamp()),
            _ => None,
        });
        let deleted = doc.get("deleted_at").is_some_and(|v| !matches!(v, Bson::Null));
        Ok(MessageDoc {
            room: room.to_string(),
            seq,
            id,
            author: author.to_string(),
            body: if deleted { Bson::Null } else { doc.get("body").cloned().unwrap_or(Bson::Null) },
            sent_at,
            edited_at: doc.get_datetime("edited_at").ok().copied(),
            deleted,
        })
    }
}

impl Ack {
    /// The ack of a stored message, from its `room`, `seq` and `_id`.
    pub fn from_document(doc: &Document) -> Option<Ack> {
        let seq = doc.get("seq").and_then(as_i64)?;
        let room = doc.get_str("room").ok()?;
        Some(Ack { room: room.to_string(), seq, id: id_string(doc.get("_id")?) })
    }
}

/// Reads an integer stored by any driver: Int32, Int64, or an integral Double.
pub fn as_i64(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Some(*v as i64),
        _ => None,
    }
}
