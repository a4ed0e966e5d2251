//! The indexes roomcast relies on, and the pre-images of `messages`,
//! created at start-up (idempotently).

use bson::doc;
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

use super::Store;
use crate::collections::{CLIENT_ID_INDEX, MESSAGES, ROOM_SEQ_INDEX};

/// The server's code for a command the user is not allowed to run.
const UNAUTHORIZED: i32 = 13;

impl Store {
    /// Creates the indexes of `messages` the write path depends on.
    #[tracing::instrument(skip_all)]
    pub async fn ensure_indexes(&self) -> Result<(), mongodb::error::Error> {
        let room_seq = IndexModel::builder()
            .keys(doc! { "room": 1, "seq": 1 })
            .options(IndexOptions::builder().name(ROOM_SEQ_INDEX.to_string()).unique(true).build())
            .build();
        // Partial, so documents written by other producers without a client_id
        // never collide with each other on (author, null).
        let author_client_id = IndexModel::builder()
            .keys(doc! { "author": 1, "client_id": 1 })
            .options(
                IndexOptions::builder()
                    .name(CLIENT_ID_INDEX.to_string())
                    .unique(true)
                    .partial_filter_expression(doc! { "client_id": { "$type": "string" } })
                    .build(),
            )
            .build();
        self.messages.create_indexes([room_seq, author_client_id]).await?;
        Ok(())
    }

    /// The index of `read_markers` the room list reads: a user's markers,
    /// most recently raised first. The `_id` `{user, room}` makes each marker
    /// unique.
    pub async fn ensure_marker_index(&self) -> Result<(), mongodb::error::Error> {
        let recent = IndexModel::builder()
            .keys(doc! { "user": 1, "at": -1 })
            .options(IndexOptions::builder().name("user_at".to_string()).build())
            .build();
        self.markers.create_index(recent).await?;
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

    /// Turns on `changeStreamPreAndPostImages` for `messages`, so a delete
    /// event carries the room and seq it removed. False, with a warning, if
    /// the relay's user may not (`collMod` needs more than `readWrite`): an
    /// operator then runs it, and until then hard deletes are counted, not
    /// relayed.
    pub async fn ensure_pre_images(&self) -> Result<bool, mongodb::error::Error> {
        let command = doc! { "collMod": MESSAGES, "changeStreamPreAndPostImages": { "enabled": true } };
        match self.database.run_command(command).await {
            Ok(_) => Ok(true),
            Err(error) if matches!(&*error.kind, mongodb::error::ErrorKind::Command(e) if e.code == UNAUTHORIZED) => {
                tracing::warn!(%error, "cannot turn on pre-images of messages; hard deletes will not be relayed");
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }
}
