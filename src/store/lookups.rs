//! What the write path and the message reads share: a room's highest seq,
//! the ack of a stored message, and the order of a read.

use bson::{doc, Document};
use mongodb::Collection;

use super::error::StoreError;
use crate::protocol::{as_i64, Ack};

/// Which end of a room's history a read starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

impl Order {
    pub(super) fn direction(self) -> i32 {
        match self {
            Order::OldestFirst => 1,
            Order::NewestFirst => -1,
        }
    }
}

/// The ack of a stored message, or why it cannot be one.
pub(super) fn ack_from(doc: &Document) -> Result<Ack, StoreError> {
    Ack::from_document(doc).ok_or_else(|| StoreError::Invalid("stored message lacks room, seq or _id".to_string()))
}

/// The room's highest seq in `collection` (with its read concern), 0 for an empty room.
pub(super) async fn max_seq(collection: &Collection<Document>, room: &str) -> Result<i64, StoreError> {
    let newest = collection
        .find_one(doc! { "room": room })
        .sort(doc! { "seq": -1 })
        .projection(doc! { "seq": 1, "_id": 0 })
        .await
        .map_err(StoreError::from_driver)?;
    Ok(newest.and_then(|d| d.get("seq").and_then(as_i64)).unwrap_or(0))
}
