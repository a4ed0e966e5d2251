//! Pages of a user's own documents of a user route, newest first by `_id`,
//! served by the `{key: 1, _id: -1}` index the schema lists for each user
//! route.

use bson::{Bson, Document};
use mongodb::options::{CollectionOptions, ReadConcern};

use super::lookups::{run, DocumentCursor};
use super::queries;
use super::{Store, StoreError};

/// Documents fetched per round trip by a page.
const PAGE_BATCH: u32 = 16;

impl Store {
    /// The user's documents in `collection` (whose `key` is `user`) with an
    /// `_id` below `before`, newest first, at most `limit`, each as
    /// `{_id, too_large, document}`: a document over `max_document_bytes`
    /// comes without `document`, since the database measures it and leaves
    /// the rest behind.
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
        let find = queries::user_documents(collection, key, user, before, limit, max_document_bytes);
        let options = CollectionOptions::builder().read_concern(ReadConcern::majority()).build();
        let collection = self.database.collection_with_options::<Document>(collection, options);
        run(&collection, find, self.query_timeout, PAGE_BATCH).await
    }
}
