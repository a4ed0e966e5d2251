//! What the write path and the reads share: running a `find` of
//! `queries` within its time limit, a room's highest seq, the ack of a
//! stored message, and the cursor of a read.

use std::time::Duration;

use bson::raw::RawDocumentBuf;
use bson::Document;
use futures::TryStreamExt;
use mongodb::options::Hint;
use mongodb::{Collection, Cursor};

use super::error::StoreError;
use super::queries::{self, Find};
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

/// Runs `find` on `collection` (whose read concern it keeps), at most
/// `max_time` in the database, `batch` documents per round trip.
pub(super) async fn run<T: Send + Sync>(
    collection: &Collection<T>,
    find: Find,
    max_time: Duration,
    batch: u32,
) -> Result<DocumentCursor, StoreError> {
    debug_assert_eq!(collection.name(), find.collection, "a query runs on its own collection");
    let collection = collection.clone_with_type::<RawDocumentBuf>();
    let mut action = collection.find(find.filter).max_time(max_time).batch_size(batch);
    if let Some(sort) = find.sort {
        action = action.sort(sort);
    }
    if let Some(limit) = find.limit {
        action = action.limit(limit);
    }
    if let Some(projection) = find.projection {
        action = action.projection(projection);
    }
    if let Some(hint) = find.hint {
        action = action.hint(Hint::Name(hint.to_string()));
    }
    action.await.map(DocumentCursor).map_err(StoreError::from_driver)
}

/// The ack of a stored message, or why it cannot be one.
pub(super) fn ack_from(doc: &Document) -> Result<Ack, StoreError> {
    Ack::from_document(doc).ok_or_else(|| StoreError::Invalid("stored message lacks room, seq or _id".to_string()))
}

/// The room's highest seq in `collection` (with its read concern), 0 for an
/// empty room, within `max_time`. It is looked for at `at_least` and above
/// first (see `queries::newest_seq`), and below only if none is there.
pub(super) async fn max_seq(
    collection: &Collection<Document>,
    room: &str,
    at_least: i64,
    max_time: Duration,
) -> Result<i64, StoreError> {
    if let Some(seq) = max_seq_from(collection, room, at_least, max_time).await? {
        return Ok(seq);
    }
    if at_least == i64::MIN {
        return Ok(0);
    }
    Ok(max_seq_from(collection, room, i64::MIN, max_time).await?.unwrap_or(0))
}

/// The room's highest seq, if it is at least `at_least`.
pub(super) async fn max_seq_from(
    collection: &Collection<Document>,
    room: &str,
    at_least: i64,
    max_time: Duration,
) -> Result<Option<i64>, StoreError> {
    let find = queries::newest_seq(collection.name(), room, at_least);
    let newest = run(collection, find, max_time, 1).await?.next().await?;
    Ok(newest.and_then(|d| d.get("seq").and_then(as_i64)))
}
