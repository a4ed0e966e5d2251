//! Reading what the database holds of the schema: the indexes of a
//! collection, as `listIndexes` describes them.

use bson::{doc, Document};

use super::Store;

/// The server's code for a collection that does not exist.
const NAMESPACE_NOT_FOUND: i32 = 26;

impl Store {
    /// `database.collection`, as the error lines name a collection.
    pub(super) fn namespace(&self, collection: &str) -> String {
        format!("{}.{collection}", self.database.name())
    }
}

/// The indexes of `collection` as `listIndexes` describes them; none when
/// the collection does not exist. A collection holds at most 64 indexes,
/// so the first batch has them all.
pub(super) async fn indexes_of(
    database: &mongodb::Database,
    collection: &str,
) -> Result<Vec<Document>, mongodb::error::Error> {
    match database.run_command(doc! { "listIndexes": collection, "cursor": {} }).await {
        Ok(reply) => Ok(first_batch(&reply)),
        Err(error) if matches!(&*error.kind, mongodb::error::ErrorKind::Command(e) if e.code == NAMESPACE_NOT_FOUND) => {
            Ok(Vec::new())
        }
        Err(error) => Err(error),
    }
}

fn first_batch(reply: &Document) -> Vec<Document> {
    let batch = reply.get_document("cursor").and_then(|cursor| cursor.get_array("firstBatch"));
    batch.map(|batch| batch.iter().filter_map(|entry| entry.as_document().cloned()).collect()).unwrap_or_default()
}
