//! Pages of a user's own documents of a user route, newest first by `_id`,
//! served by the `{key: 1, _id: -1}` index the schema lists for each user
//! route.

use bson::raw::RawDocumentBuf;
use bson::{doc, Bson, Document};

use super::lookups::DocumentCursor;
use super::queries;
use super::{Store, StoreError};

/// Documents fetched per round trip by a page.
const PAGE_BATCH: u32 = 16;

impl Store {
    /// The user's documents in `collection` (whose `key` is `user`) with an
    /// `_id` below `before`, newest first, at most `limit`. A document over
    /// `max_document_bytes` arrives as `{_id, too_large: true}`: the database
    /// measures it and leaves the rest behind.
    #[tracing::instrument(skip(self))]
    pub async fn user_documents(
        &self,
        collection: &str,
        key: &str,
        user: Bson,
        before: Option<Bson>,
        limit: i64,
        max_document_bytes: usize,
    ) -> Result<DocumentCursor, StoreError> {
        let pipeline = queries::user_documents(key, user, before, limit, max_document_bytes);
        let collection = self.database.collection::<Document>(collection);
        let cursor = collection.aggregate(pipeline).batch_size(PAGE_BATCH).with_type::<RawDocumentBuf>().await;
        cursor.map(DocumentCursor).map_err(StoreError::from_driver)
    }
}
