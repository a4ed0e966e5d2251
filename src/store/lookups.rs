//! What the write path and the reads share: a room's highest seq, the ack
//! of a stored message, and the cursor of a read.

use bson::raw::RawDocumentBuf;
use bson::{doc, Document};
use futures::TryStreamExt;
use mongodb::{Collection, Cursor};

use super::error::StoreError;
use crate::protocol::{as_i64, Ack};

/// Documents read a batch at a time, decoded from their raw BSON field by
/// field: the driver's own decoding would read a body such as
/// `{"$date": 0}` as a date, and a document must come back exactly as stored.
pub struct DocumentCursor(pub(super) Cursor<RawDocumentBuf>);

impl DocumentCursor {
    pub async fn next(&mut self) -> Result<Option<Document>, StoreError> {
        let Some(raw) = self.0.try_next().await.map_err(StoreError::from_driver)? else { return Ok(None) };
        Document::try_from(raw)
            .map(Some)
            .map_err(|e| StoreError::Invalid(format!("a stored document is not valid BSON: {e}")))
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
