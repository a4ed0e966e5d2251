//! Messages as stored, their edits and soft deletes, and the reads (current
//! seq, history). Sends are in `sends.rs`: inserts at the room's last seq + 1,
//! arbitrated by the unique (room, seq) index, so a writer that dies at any
//! instant holds nothing open and leaves no gap.

use bson::oid::ObjectId;
use bson::{doc, Bson, DateTime, Document};
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;
use mongodb::Collection;

use super::Store;
use crate::error::StoreError;

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
    /// Reads a document of the `messages` collection, written by roomcast or
    /// by any other producer that follows the same schema.
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

/// Reads an integer stored by any driver: Int32, Int64, or an integral Double.
fn as_i64(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Some(*v as i64),
        _ => None,
    }
}

/// `_id` as clients see it: ObjectId hex, a string as is, anything else as Extended JSON.
pub fn id_string(value: &Bson) -> String {
    match value {
        Bson::ObjectId(oid) => oid.to_hex(),
        Bson::String(s) => s.clone(),
        other => other.clone().into_relaxed_extjson().to_string(),
    }
}

/// The inverse of `id_string` for ids that clients send back.
fn parse_id(id: &str) -> Bson {
    ObjectId::parse_str(id).map(Bson::ObjectId).unwrap_or_else(|_| Bson::String(id.to_string()))
}

/// The name of the unique index a write collided with, if that is what failed.
pub(super) fn duplicate_index(error: &mongodb::error::Error) -> Option<String> {
    use mongodb::error::{ErrorKind, WriteFailure};
    let message = match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == 11000 => &e.message,
        ErrorKind::Command(e) if e.code == 11000 => &e.message,
        // An ordered insert reports the one document it stopped at.
        ErrorKind::InsertMany(_) => match crate::error::first_refused(error)? {
            first if first.code == 11000 => &first.message,
            _ => return None,
        },
        _ => return None,
    };
    let name = message.split("index: ").nth(1)?.split_whitespace().next()?;
    Some(name.to_string())
}

pub(super) fn ack_from(doc: &Document) -> Result<Ack, StoreError> {
    let seq = doc.get("seq").and_then(as_i64);
    let room = doc.get_str("room").ok();
    match (room, seq, doc.get("_id")) {
        (Some(room), Some(seq), Some(id)) => Ok(Ack { room: room.to_string(), seq, id: id_string(id) }),
        _ => Err(StoreError::Invalid("stored message lacks room, seq or _id".to_string())),
    }
}

impl Store {
    /// The room's highest committed seq, 0 for an empty room.
    #[tracing::instrument(skip(self))]
    pub async fn current_seq(&self, room: &str) -> Result<i64, StoreError> {
        self.max_seq(&self.messages, room).await
    }

    pub(super) async fn max_seq(&self, collection: &Collection<Document>, room: &str) -> Result<i64, StoreError> {
        let newest = collection
            .find_one(doc! { "room": room })
            .sort(doc! { "seq": -1 })
            .projection(doc! { "seq": 1, "_id": 0 })
            .await
            .map_err(StoreError::from_driver)?;
        Ok(newest.and_then(|d| d.get("seq").and_then(as_i64)).unwrap_or(0))
    }

    /// Committed messages with `after < seq <= upto`, in seq order.
    #[tracing::instrument(skip(self))]
    pub async fn history(&self, room: &str, after: i64, upto: i64) -> Result<Vec<Document>, StoreError> {
        self.messages
            .find(doc! { "room": room, "seq": { "$gt": after, "$lte": upto } })
            .sort(doc! { "seq": 1 })
            .await
            .map_err(StoreError::from_driver)?
            .try_collect()
            .await
            .map_err(StoreError::from_driver)
    }

    /// Replaces the body of the author's own, not deleted, message.
    #[tracing::instrument(skip(self, body), err(level = "debug"))]
    pub async fn edit_message(&self, room: &str, id: &str, author: &str, body: Bson) -> Result<Ack, StoreError> {
        // A pipeline update with $literal stores the body verbatim: keys with `$`
        // or `.` and strings like "$field" are data here, never operators or paths.
        let update = vec![doc! { "$set": { "body": { "$literal": body }, "edited_at": DateTime::now() } }];
        self.change_own(room, id, author, update).await
    }

    /// Soft delete: removes the body and sets `deleted_at`. Deleting twice is a no-op.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn delete_message(&self, room: &str, id: &str, author: &str) -> Result<Ack, StoreError> {
        let update = vec![doc! { "$set": { "deleted_at": DateTime::now() } }, doc! { "$unset": "body" }];
        match self.change_own(room, id, author, update).await {
            Err(StoreError::NotFound) => match self.find_message(room, id).await? {
                Some(doc) if doc.get_str("author") == Ok(author) && doc.contains_key("deleted_at") => ack_from(&doc),
                _ => Err(StoreError::NotFound),
            },
            other => other,
        }
    }

    async fn change_own(&self, room: &str, id: &str, author: &str, update: Vec<Document>) -> Result<Ack, StoreError> {
        let filter = doc! { "_id": parse_id(id), "room": room, "author": author, "deleted_at": { "$exists": false } };
        let changed = self
            .messages
            .find_one_and_update(filter, update)
            .projection(doc! { "room": 1, "seq": 1 })
            .return_document(ReturnDocument::After)
            .await
            .map_err(StoreError::from_driver)?;
        match changed {
            Some(doc) => ack_from(&doc),
            None => match self.find_message(room, id).await? {
                Some(doc) if doc.get_str("author") != Ok(author) => Err(StoreError::Forbidden),
                _ => Err(StoreError::NotFound),
            },
        }
    }

    async fn find_message(&self, room: &str, id: &str) -> Result<Option<Document>, StoreError> {
        self.messages
            .find_one(doc! { "_id": parse_id(id), "room": room })
            .projection(doc! { "room": 1, "seq": 1, "author": 1, "deleted_at": 1 })
            .await
            .map_err(StoreError::from_driver)
    }
}
