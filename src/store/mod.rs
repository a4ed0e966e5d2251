//! MongoDB access: the client, the collections roomcast writes, what it
//! needs of the database (`schema`), created (`provision`) or only checked
//! (`inspection`) at start-up, message reads, edits and deletes (`messages`), sends
//! committed in groups (`group_commit`), membership lookups (`members`), read
//! markers (`markers`), pages of user-route documents (`notifications`),
//! seqs freed by other programs' deletes (`removals`), and how driver errors
//! are sorted (`error`).
//! Every write uses write concern majority, so a success here means the
//! change is committed and will reach the change streams.
//!
//! Two connection pools: one for what clients ask (`mongo.max_pool_size`),
//! and a small one of its own for the change streams, the presence
//! heartbeat and its sweeps, so that no amount of client work can queue
//! the relay's background work behind it. Every read a client's request
//! causes is a `find` of `queries`, with `mongo.query_timeout` as its
//! `maxTimeMS`.

mod error;
mod group_commit;
mod heads;
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

/// Connections for the change streams (one each, waiting in `getMore`),
/// the heartbeat, the sweep of dead replicas, and a spare.
const BACKGROUND_POOL: u32 = 16;
/// How long shutdown waits for MongoDB to end the relay's sessions.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Handle on the database shared by every connection.
#[derive(Clone)]
pub struct Store {
    /// Through the pool for client requests.
    database: Database,
    /// Through the background pool.
    background: Database,
    /// Presence of dead replicas, swept through the background pool.
    swept_presence: Collection<Document>,
    messages: Collection<Document>,
    members: Collection<Document>,
    markers: Collection<Document>,
    presence: Collection<Document>,
    replicas: Collection<Document>,
    typing: Collection<Document>,
    commits: GroupCommit,
    /// The newest seq the stream showed per room: where reads of a room's
    /// newest messages start.
    heads: std::sync::Arc<heads::Heads>,
    /// `maxTimeMS` of the reads clients cause (`mongo.query_timeout`).
    query_timeout: Duration,
}

impl Store {
    /// Connects and checks that the server answers within `mongo.timeout`.
    #[tracing::instrument(name = "store_connect", skip_all, fields(database = %settings.database))]
    pub async fn connect(settings: &MongoSettings) -> Result<Store, mongodb::error::Error> {
        let mut options = ClientOptions::parse(&settings.uri).await?;
        options.app_name.get_or_insert_with(|| "roomcast".to_string());
        options.server_selection_timeout = Some(settings.timeout);
        options.connect_timeout.get_or_insert(settings.timeout);
        let mut background = options.clone();
        options.max_pool_size = Some(settings.max_pool_size);
        background.max_pool_size = Some(BACKGROUND_POOL);
        let database = Client::with_options(options)?.database(&settings.database);
        let background = Client::with_options(background)?.database(&settings.database);
        database.run_command(doc! { "ping": 1 }).await?;
        Ok(Store::from_databases(database, background, settings.timeout, settings.query_timeout))
    }

    fn from_databases(database: Database, background: Database, timeout: Duration, query_timeout: Duration) -> Store {
        let majority = WriteConcern::builder().w(Acknowledgment::Majority).w_timeout(Duration::from_secs(10)).build();
        let options = |read_concern: ReadConcern| {
            CollectionOptions::builder().write_concern(majority.clone()).read_concern(read_concern).build()
        };
        let with = |name: &str, read_concern: ReadConcern| {
            database.collection_with_options::<Document>(name, options(read_concern))
        };
        let messages = with(MESSAGES, ReadConcern::majority());
        let heads = std::sync::Arc::new(heads::Heads::default());
        Store {
            commits: GroupCommit::new(messages.clone(), with(MESSAGES, ReadConcern::local()), heads.clone(), timeout),
            markers: with(READ_MARKERS, ReadConcern::majority()),
            presence: with(PRESENCE, ReadConcern::majority()),
            replicas: background.collection_with_options(PRESENCE_REPLICAS, options(ReadConcern::majority())),
            swept_presence: background.collection_with_options(PRESENCE, options(ReadConcern::majority())),
            typing: with(TYPING, ReadConcern::majority()),
            messages,
            members: database.collection_with_options(
                ROOM_MEMBERS,
                CollectionOptions::builder().read_concern(ReadConcern::majority()).build(),
            ),
            database,
            background,
            heads,
            query_timeout,
        }
    }

    /// Ends the server sessions and closes both pools, once the relay has
    /// stopped using them. Left to the last handle's drop, the driver ends
    /// the sessions from a task of its own, which can run after its pool's
    /// worker has gone and panic there, printing a backtrace on every
    /// shutdown where it loses that race.
    pub async fn close(&self) {
        let closing = async {
            for database in [&self.database, &self.background] {
                database.client().clone().shutdown().immediate(true).await;
            }
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
            tracing::warn!("MongoDB's sessions were not ended within {CLOSE_TIMEOUT:?}; its server times them out");
        }
    }

    /// The database, through the pool for client requests.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The database, through the background pool: for change streams and
    /// health checks, which client work must never queue.
    pub fn background(&self) -> &Database {
        &self.background
    }

    /// Records a seq the change stream reported, so the next send to that room
    /// usually needs no lookup.
    pub fn observe_seq(&self, room: &[u8], seq: i64) {
        self.heads.observe(room, seq);
        self.commits.observe(room, seq);
    }

    /// Another program removed `seq` from `room`: sends from this process
    /// go above it even if it was the room's newest (`removals`).
    pub fn observe_removed_seq(&self, room: &str, seq: i64) {
        self.commits.hold(room, seq);
    }

    /// A seq the room's newest is at or above: `at_least`, or higher where
    /// the stream showed a higher one.
    fn newest_at_least(&self, room: &str, at_least: i64) -> i64 {
        self.heads.at_least(room).map_or(at_least, |head| head.max(at_least))
    }

    /// Queues a message for the room's next group commit, at the room's next
    /// seq (see `group_commit`), and returns its pending ack. `lease` is
    /// dropped once the send is answered.
    pub fn queue_message(&self, room: &str, author: &str, client_id: &str, body: RawBson, lease: Lease) -> PendingAck {
        self.commits.queue(room, author, client_id, body, lease)
    }
}
