//! A chat message as frames show it, read from a `messages` document written
//! by roomcast or by any other program that follows the same schema, and the
//! ack its author gets once it is committed.

use bson::raw::RawDocument;
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
    /// The document is over `limits.max_document_bytes`: its frame is a
    /// stub without the body.
    pub too_large: bool,
}

/// The fields a message frame shows besides its body, read from a document
/// too large to relay whole.
const METADATA: [&str; 7] = ["_id", "room", "seq", "author", "sent_at", "edited_at", "deleted_at"];

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
            too_large: false,
        })
    }

    /// Reads a message as the store's reads shape it (`store::queries`):
    /// the database measured it, and left the body of one too large to
    /// relay out, saying so in `too_large`.
    pub fn from_read(doc: &Document) -> Result<MessageDoc, &'static str> {
        let too_large = doc.get_bool("too_large").unwrap_or(false);
        MessageDoc::from_document(doc).map(|message| MessageDoc { too_large, ..message })
    }

    /// Reads a document as the change stream delivered it: one over
    /// `max_bytes` becomes a stub without its body, and only its metadata
    /// fields are ever decoded.
    pub fn from_raw(raw: &RawDocument, max_bytes: usize) -> Result<MessageDoc, &'static str> {
        if raw.as_bytes().len() <= max_bytes {
            let document = Document::try_from(raw).map_err(|_| "the document is not valid BSON")?;
            return MessageDoc::from_document(&document);
        }
        let mut metadata = Document::new();
        for key in METADATA {
            if let Ok(Some(value)) = raw.get(key) {
                let value = Bson::try_from(value.to_raw_bson()).map_err(|_| "the document is not valid BSON")?;
                metadata.insert(key, value);
            }
        }
        let mut message = MessageDoc::from_document(&metadata)?;
        message.too_large = true;
        Ok(message)
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
