//! Checking the database against the schema, at start-up with
//! `mongo.create_indexes: false`: nothing is created or changed, only read
//! (`listIndexes`, `listCollections`, which `readWrite` allows), and the
//! first thing missing stops start-up with a line naming it.

use std::collections::HashMap;

use bson::{doc, Document};

use super::schema::{Found, Schema, SchemaError};
use super::Store;

/// The server's code for a collection that does not exist.
const NAMESPACE_NOT_FOUND: i32 = 26;

impl Store {
    /// Checks that every index `schema` lists exists as described, that
    /// pre-images are on where it needs them, and that no obsolete index is
    /// left; the error names the first thing that is not so.
    #[tracing::instrument(skip_all)]
    pub async fn check_schema(&self, schema: &Schema) -> Result<(), SchemaError> {
        let mut listed: HashMap<String, Vec<Document>> = HashMap::new();
        for index in &schema.indexes {
            if !listed.contains_key(&index.collection) {
                let found = indexes_of(&self.database, &index.collection).await?;
                listed.insert(index.collection.clone(), found);
            }
            let conflict = match index.find_in(&listed[&index.collection]) {
                Found::Same => continue,
                Found::Absent => None,
                Found::Conflict(found) => Some(found),
            };
            return Err(SchemaError::MissingIndex {
                index: index.to_string(),
                namespace: self.namespace(&index.collection),
                conflict,
            });
        }
        for collection in &schema.pre_images {
            if !pre_images_on(&self.database, collection).await? {
                return Err(SchemaError::PreImagesOff { namespace: self.namespace(collection) });
            }
        }
        for obsolete in &schema.obsolete {
            let found = match listed.remove(obsolete.collection) {
                Some(found) => found,
                None => indexes_of(&self.database, obsolete.collection).await?,
            };
            if found.iter().any(|index| index.get_str("name") == Ok(obsolete.name)) {
                return Err(SchemaError::ObsoleteIndex {
                    index: obsolete.name.to_string(),
                    namespace: self.namespace(obsolete.collection),
                    reason: obsolete.reason,
                });
            }
        }
        Ok(())
    }

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

/// Whether `collection` exists with `changeStreamPreAndPostImages` enabled.
async fn pre_images_on(database: &mongodb::Database, collection: &str) -> Result<bool, mongodb::error::Error> {
    let command = doc! { "listCollections": 1, "filter": { "name": collection }, "cursor": {} };
    let reply = database.run_command(command).await?;
    let enabled = first_batch(&reply).first().and_then(|info| {
        let options = info.get_document("options").ok()?;
        options.get_document("changeStreamPreAndPostImages").ok()?.get_bool("enabled").ok()
    });
    Ok(enabled == Some(true))
}

fn first_batch(reply: &Document) -> Vec<Document> {
    let batch = reply.get_document("cursor").and_then(|cursor| cursor.get_array("firstBatch"));
    batch.map(|batch| batch.iter().filter_map(|entry| entry.as_document().cloned()).collect()).unwrap_or_default()
}
