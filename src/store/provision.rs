//! Creating what the schema lists, at start-up with
//! `mongo.create_indexes: true` (the default): every index
//! (`createIndexes`, which does nothing for an index that exists), the
//! pre-images where the relay's user may (`collMod`), and last, once its
//! replacement is listed, each obsolete index dropped. Several replicas may
//! run it at the same moment: an index another one just created, or an
//! obsolete one it just dropped, is not an error.

use bson::{doc, Document};
use mongodb::options::{CollectionOptions, WriteConcern};
use mongodb::Collection;

use super::error::StoreError;
use super::inspection::indexes_of;
use super::schema::{Found, IndexSpec, ObsoleteIndex, Schema, SchemaError};
use super::Store;

/// The server's code for a command the user is not allowed to run.
const UNAUTHORIZED: i32 = 13;
/// The server's codes for dropping what is already gone.
const GONE: [i32; 2] = [26, 27];

impl Store {
    /// Creates every index of `schema`, turns on its pre-images, then drops
    /// its obsolete indexes, each only once its replacement is listed.
    #[tracing::instrument(skip_all)]
    pub async fn provision(&self, schema: &Schema) -> Result<(), SchemaError> {
        for (collection, indexes) in schema.by_collection() {
            let models = indexes.iter().map(|index| index.model());
            if let Err(error) = self.with_majority(collection).create_indexes(models).await {
                self.settle(collection, &indexes, error).await?;
            }
        }
        for collection in &schema.pre_images {
            self.turn_on_pre_images(collection).await?;
        }
        for obsolete in &schema.obsolete {
            self.drop_obsolete(obsolete).await?;
        }
        Ok(())
    }

    /// After a refused `createIndexes`: fine if every index is there after
    /// all (another replica built it meanwhile), else the first one missing
    /// is the error.
    async fn settle(
        &self,
        collection: &str,
        indexes: &[&IndexSpec],
        error: mongodb::error::Error,
    ) -> Result<(), SchemaError> {
        if let StoreError::Unavailable(error) = StoreError::from_driver(error.clone()) {
            return Err(SchemaError::Database(error));
        }
        let found = indexes_of(&self.database, collection).await?;
        match indexes.iter().find(|index| index.find_in(&found) != Found::Same) {
            None => Ok(()),
            Some(index) => Err(SchemaError::Refused {
                index: index.to_string(),
                namespace: self.namespace(collection),
                source: error,
            }),
        }
    }

    /// Turns on `changeStreamPreAndPostImages`, so a delete event carries
    /// the document it removed. A warning, not an error, if the relay's
    /// user may not (`collMod` needs more than `readWrite`): an operator
    /// then runs deploy/mongodb/setup.js, and until then hard deletes are
    /// counted, not relayed.
    async fn turn_on_pre_images(&self, collection: &str) -> Result<(), SchemaError> {
        let command = doc! { "collMod": collection, "changeStreamPreAndPostImages": { "enabled": true } };
        match self.database.run_command(command).await {
            Ok(_) => Ok(()),
            Err(error) if matches!(&*error.kind, mongodb::error::ErrorKind::Command(e) if e.code == UNAUTHORIZED) => {
                let namespace = self.namespace(collection);
                tracing::warn!(%error, %namespace, "cannot turn on pre-images; hard deletes will not be relayed");
                Ok(())
            }
            Err(error) => Err(SchemaError::Database(error)),
        }
    }

    /// Drops an obsolete index if it is there, and only once the index that
    /// replaced it is listed: the two never both go missing, so what the
    /// old one kept unique stays unique throughout.
    async fn drop_obsolete(&self, obsolete: &ObsoleteIndex) -> Result<(), SchemaError> {
        let found = indexes_of(&self.database, obsolete.collection).await?;
        let listed = |name: &str| found.iter().any(|index| index.get_str("name") == Ok(name));
        if !listed(obsolete.name) {
            return Ok(());
        }
        if !listed(obsolete.replaced_by) {
            return Err(SchemaError::MissingIndex {
                index: obsolete.replaced_by.to_string(),
                namespace: self.namespace(obsolete.collection),
                conflict: None,
            });
        }
        match self.with_majority(obsolete.collection).drop_index(obsolete.name).await {
            Ok(()) => {
                tracing::info!(index = obsolete.name, namespace = %self.namespace(obsolete.collection), "dropped an obsolete index");
                Ok(())
            }
            // Another replica dropped it first.
            Err(error) if matches!(&*error.kind, mongodb::error::ErrorKind::Command(e) if GONE.contains(&e.code)) => {
                Ok(())
            }
            Err(error) => Err(SchemaError::Database(error)),
        }
    }

    fn with_majority(&self, collection: &str) -> Collection<Document> {
        let options = CollectionOptions::builder().write_concern(WriteConcern::majority()).build();
        self.database.collection_with_options(collection, options)
    }
}
