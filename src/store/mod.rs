//! MongoDB access: the client, the collections roomcast writes, their indexes
//! and the message writes and reads. Every write uses write concern majority,
//! so a success here means the change is committed and will reach the change
//! streams.

mod messages;
mod sends;
mod seqs;

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::{ClientOptions, CollectionOptions, IndexOptions, ReadConcern, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};

pub use messages::{id_string, Ack, MessageDoc};
pub use sends::Answer;
pub use seqs::SeqWriters;

use crate::error::StoreError;
use crate::settings::MongoSettings;

/// The collection that sends are written to and history is read from.
pub const MESSAGES: &str = "messages";

/// Handle on the database shared by every connection.
#[derive(Clone)]
pub struct Store {
    database: Database,
    messages: Collection<Document>,
    /// Same collection with read concern `local`, for the seq lookup of the
    /// write path: see docs/design.md ("Why local is safe for the seq lookup").
    messages_local: Collection<Document>,
    members: Collection<Document>,
    seqs: SeqWriters,
    /// How long a send may keep retrying a contended seq.
    timeout: Duration,
}

impl Store {
    /// Connects and checks that the server answers within `mongo.timeout`.
    #[tracing::instrument(name = "store_connect", skip_all, fields(database = %settings.database))]
    pub async fn connect(settings: &MongoSettings) -> Result<Store, mongodb::error::Error> {
        let mut options = ClientOptions::parse(&settings.uri).await?;
        options.app_name.get_or_insert_with(|| "roomcast".to_string());
        options.server_selection_timeout = Some(settings.timeout);
        options.connect_timeout.get_or_insert(settings.timeout);
        let client = Client::with_options(options)?;
        let database = client.database(&settings.database);
        database.run_command(doc! { "ping": 1 }).await?;
        Ok(Store::from_database(database, settings.timeout))
    }

    fn from_database(database: Database, timeout: Duration) -> Store {
        let majority = WriteConcern::builder()
            .w(mongodb::options::Acknowledgment::Majority)
            .w_timeout(Duration::from_secs(10))
            .build();
        let with = |read_concern: ReadConcern| {
            database.collection_with_options::<Document>(
                MESSAGES,
                CollectionOptions::builder().write_concern(majority.clone()).read_concern(read_concern).build(),
            )
        };
        Store {
            messages: with(ReadConcern::majority()),
            messages_local: with(ReadConcern::local()),
            members: database.collection_with_options(
                crate::membership::COLLECTION,
                CollectionOptions::builder().read_concern(ReadConcern::majority()).build(),
            ),
            database,
            seqs: SeqWriters::default(),
            timeout,
        }
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Creates the indexes the write path depends on. Idempotent.
    #[tracing::instrument(skip_all)]
    pub async fn ensure_indexes(&self) -> Result<(), mongodb::error::Error> {
        let room_seq = IndexModel::builder()
            .keys(doc! { "room": 1, "seq": 1 })
            .options(IndexOptions::builder().name("room_seq".to_string()).unique(true).build())
            .build();
        // Partial, so documents written by other producers without a client_id
        // never collide with each other on (author, null).
        let author_client_id = IndexModel::builder()
            .keys(doc! { "author": 1, "client_id": 1 })
            .options(
                IndexOptions::builder()
                    .name("author_client_id".to_string())
                    .unique(true)
                    .partial_filter_expression(doc! { "client_id": { "$type": "string" } })
                    .build(),
            )
            .build();
        self.messages.create_indexes([room_seq, author_client_id]).await?;
        Ok(())
    }

    /// The unique (room, user) index of `room_members`, for `room_policy: membership`.
    pub async fn ensure_membership_index(&self) -> Result<(), mongodb::error::Error> {
        let unique = IndexModel::builder()
            .keys(doc! { "room": 1, "user": 1 })
            .options(IndexOptions::builder().name("room_user".to_string()).unique(true).build())
            .build();
        self.members.create_index(unique).await?;
        Ok(())
    }

    /// The `_id` of the membership that lets `user` into `room`, if any.
    #[tracing::instrument(skip(self))]
    pub async fn membership(&self, room: &str, user: &str) -> Result<Option<bson::Bson>, StoreError> {
        let found = self
            .members
            .find_one(doc! { "room": room, "user": user })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(StoreError::from_driver)?;
        Ok(found.and_then(|d| d.get("_id").cloned()))
    }

    pub async fn membership_exists(&self, id: &bson::Bson) -> Result<bool, StoreError> {
        let found = self.members.find_one(doc! { "_id": id }).await.map_err(StoreError::from_driver)?;
        Ok(found.is_some())
    }

    /// Records a seq the change stream reported, so the next send to that room
    /// usually needs no lookup.
    pub fn observe_seq(&self, room: &str, seq: i64) {
        self.seqs.observe(room, seq);
    }
}
