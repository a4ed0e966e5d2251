//! MongoDB access: the client, the collections roomcast writes, what it
//! needs of the database (`schema`), created (`provision`) or only checked
//! (`inspection`) at start-up, message reads, edits and deletes (`messages`), sends
//! committed in groups (`group_commit`), membership lookups (`members`), read
//! markers (`markers`), pages of user-route documents (`notifications`),
//! seqs freed by other programs' deletes (`removals`), and how driver errors
//! are sorted (`error`).
//! Every write uses write concern majority, so a success here means the
//! change is committed and will reach the change streams.

mod error;
mod group_commit;
mod inspection;
mod lookups;
mod markers;
mod members;
mod messages;
mod notifications;
mod presence;
mod provision;
pub mod queries;
pub mod removals;
mod schema;

use std::time::Duration;

use bson::raw::RawBson;
use bson::{doc, Document};
use mongodb::options::{Acknowledgment, ClientOptions, CollectionOptions, ReadConcern, WriteConcern};
use mongodb::{Client, Collection, Database};

pub use error::StoreError;
pub use group_commit::{Lease, PendingAck};
pub use lookups::DocumentCursor;
pub use queries::{resend_filter, Order};
pub use schema::{IndexSpec, Schema, SchemaError};

use group_commit::GroupCommit;

use crate::collections::{MESSAGES, PRESENCE, PRESENCE_REPLICAS, READ_MARKERS, ROOM_MEMBERS, TYPING};
use crate::settings::MongoSettings;

/// Handle on the database shared by every connection.
#[derive(Clone)]
pub struct Store {
    database: Database,
    messages: Collection<Document>,
    members: Collection<Document>,
    markers: Collection<Document>,
    presence: Collection<Document>,
    replicas: Collection<Document>,
    typing: Collection<Document>,
    commits: GroupCommit,
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
        let majority = WriteConcern::builder().w(Acknowledgment::Majority).w_timeout(Duration::from_secs(10)).build();
        let with = |name: &str, read_concern: ReadConcern| {
            database.collection_with_options::<Document>(
                name,
                CollectionOptions::builder().write_concern(majority.clone()).read_concern(read_concern).build(),
            )
        };
        let messages = with(MESSAGES, ReadConcern::majority());
        Store {
            commits: GroupCommit::new(messages.clone(), with(MESSAGES, ReadConcern::local()), timeout),
            markers: with(READ_MARKERS, ReadConcern::majority()),
            presence: with(PRESENCE, ReadConcern::majority()),
            replicas: with(PRESENCE_REPLICAS, ReadConcern::majority()),
            typing: with(TYPING, ReadConcern::majority()),
            messages,
            members: database.collection_with_options(
                ROOM_MEMBERS,
                CollectionOptions::builder().read_concern(ReadConcern::majority()).build(),
            ),
            database,
        }
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Records a seq the change stream reported, so the next send to that room
    /// usually needs no lookup.
    pub fn observe_seq(&self, room: &str, seq: i64) {
        self.commits.observe(room, seq);
    }

    /// Another program removed `seq` from `room`: sends from this process
    /// go above it even if it was the room's newest (`removals`).
    pub fn observe_removed_seq(&self, room: &str, seq: i64) {
        self.commits.hold(room, seq);
    }

    /// Queues a message for the room's next group commit, at the room's next
    /// seq (see `group_commit`), and returns its pending ack. `lease` is
    /// dropped once the send is answered.
    pub fn queue_message(&self, room: &str, author: &str, client_id: &str, body: RawBson, lease: Lease) -> PendingAck {
        self.commits.queue(room, author, client_id, body, lease)
    }
}
