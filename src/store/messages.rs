//! Message reads (the room's current seq, history) and the author's own
//! edits and soft deletes. Sends are written by `group_commit`: inserts at
//! the room's last seq + 1, arbitrated by the unique (room, seq) index, so a
//! writer that dies at any instant holds nothing open and leaves no gap.

use bson::{doc, Bson, DateTime, Document};
use mongodb::options::ReturnDocument;

use super::lookups::{ack_from, max_seq, run, DocumentCursor};
use super::queries::{self, Order};
use super::{Store, StoreError};
use crate::collections::{parse_id, MESSAGES};
use crate::protocol::Ack;

/// Documents fetched per round trip by the message reads: with documents
/// bounded by `limits.max_document_bytes`, a batch stays a few MiB at most.
const READ_BATCH: u32 = 16;

impl Store {
    /// The room's highest committed seq, 0 for an empty room; looked for at
    /// `at_least` and above first, a lower bound the caller believes holds
    /// (`i64::MIN` for none).
    #[tracing::instrument(skip(self))]
    pub async fn current_seq(&self, room: &str, at_least: i64) -> Result<i64, StoreError> {
        max_seq(&self.messages, room, self.newest_at_least(room, at_least), self.query_timeout).await
    }

    /// Committed messages with `after < seq <= upto`, oldest or newest
    /// first, at most `limit`, read a batch at a time. A document over
    /// `max_document_bytes` arrives without its body and with `too_large:
    /// true`: the database measures it and leaves the body behind, so no
    /// read ever carries a document too large to relay.
    #[tracing::instrument(skip(self))]
    pub async fn messages_in(
        &self,
        room: &str,
        after: i64,
        upto: i64,
        order: Order,
        limit: Option<i64>,
        max_document_bytes: usize,
    ) -> Result<DocumentCursor, StoreError> {
        let find = queries::messages_in(MESSAGES, room, after, upto, order, limit, max_document_bytes);
        run(&self.messages, find, self.query_timeout, READ_BATCH).await
    }

    /// A seq the room's newest message is at or above, when the stream
    /// showed one: where a page of its newest messages starts reading.
    pub fn head(&self, room: &str) -> Option<i64> {
        self.heads.at_least(room)
    }

    /// The room's newest message, if it has one, shaped as `messages_in`
    /// has it; looked for at `at_least` and above first, as `current_seq`.
    #[tracing::instrument(skip(self))]
    pub async fn newest_message(
        &self,
        room: &str,
        at_least: i64,
        max_document_bytes: usize,
    ) -> Result<Option<Document>, StoreError> {
        let at_least = self.newest_at_least(room, at_least);
        let find = queries::newest_message(MESSAGES, room, at_least, max_document_bytes);
        let newest = run(&self.messages, find, self.query_timeout, 1).await?.next().await?;
        if newest.is_some() || at_least == i64::MIN {
            return Ok(newest);
        }
        let find = queries::newest_message(MESSAGES, room, i64::MIN, max_document_bytes);
        run(&self.messages, find, self.query_timeout, 1).await?.next().await
    }

    /// Replaces the body of the author's own, not deleted, message.
    #[tracing::instrument(skip(self, body), err(level = "debug"))]
    pub async fn edit_message(&self, room: &str, id: &str, author: &str, body: Bson) -> Result<Ack, StoreError> {
        // A pipeline update with $literal stores the body verbatim: keys with `$`
        // or `.` and strings like "$field" are data here, never operators or paths.
        let update = vec![doc! { "$set": { "body": { "$literal": body }, "edited_at": DateTime::now() } }];
        self.change_own(room, id, author, update).await
    }

    /// Soft delete: removes the body and sets `deleted_at`. Deleting twice is a no-op.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    pub async fn delete_message(&self, room: &str, id: &str, author: &str) -> Result<Ack, StoreError> {
        let update = vec![doc! { "$set": { "deleted_at": DateTime::now() } }, doc! { "$unset": "body" }];
        match self.change_own(room, id, author, update).await {
            Err(StoreError::NotFound) => match self.find_message(room, id).await? {
                Some(doc) if doc.get_str("author") == Ok(author) && doc.contains_key("deleted_at") => ack_from(&doc),
                _ => Err(StoreError::NotFound),
            },
            other => other,
        }
    }

    async fn change_own(&self, room: &str, id: &str, author: &str, update: Vec<Document>) -> Result<Ack, StoreError> {
        let filter = doc! { "_id": parse_id(id), "room": room, "author": author, "deleted_at": { "$exists": false } };
        let changed = self
            .messages
            .find_one_and_update(filter, update)
            .max_time(self.query_timeout)
            .projection(doc! { "room": 1, "seq": 1 })
            .return_document(ReturnDocument::After)
            .await
            .map_err(StoreError::from_driver)?;
        match changed {
            Some(doc) => ack_from(&doc),
            None => match self.find_message(room, id).await? {
                Some(doc) if doc.get_str("author") != Ok(author) => Err(StoreError::Forbidden),
                _ => Err(StoreError::NotFound),
            },
        }
    }

    async fn find_message(&self, room: &str, id: &str) -> Result<Option<Document>, StoreError> {
        self.messages
            .find_one(doc! { "_id": parse_id(id), "room": room })
            .max_time(self.query_timeout)
            .projection(doc! { "room": 1, "seq": 1, "author": 1, "deleted_at": 1 })
            .await
            .map_err(StoreError::from_driver)
    }
}
