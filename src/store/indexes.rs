//! The indexes roomcast relies on, created at start-up (idempotently).

use bson::doc;
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

use super::Store;
use crate::collections::{CLIENT_ID_INDEX, ROOM_SEQ_INDEX};

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
}
