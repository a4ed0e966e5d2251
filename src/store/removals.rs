//! Messages removed by other programs. A hard delete frees its seq; when it
//! was the room's newest, the next send would read the maximum one lower and
//! take that seq again, and clients that already hold it would take the new
//! message for the old one. So the seq is held by a tombstone: a document
//! with the removed one's `_id`, room, seq and author, a `deleted_at` and no
//! body, which history and replays show as a deleted message. It has no
//! `sent_at`, so a retention TTL index on `sent_at` never removes it (and
//! this relay never writes it again). Older seqs are left as holes.

use bson::{doc, DateTime, Document};

use super::error::duplicate_index;
use super::lookups::max_seq_from;
use super::{Store, StoreError};

/// What became of a removed seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// Newer messages exist: the seq stays a hole.
    Hole,
    /// It was the newest: a tombstone holds it now (or already did).
    Held,
    /// A send took it before the tombstone could: the seq names two messages.
    Reused,
}

impl Store {
    /// Holds `seq` of `room` with a tombstone if it was the room's newest.
    /// Every replica that sees the removal calls this; the unique indexes
    /// let one tombstone in.
    pub async fn hold_removed_seq(
        &self,
        id: bson::Bson,
        room: &str,
        seq: i64,
        author: &str,
    ) -> Result<Removed, StoreError> {
        if max_seq_from(&self.messages, room, seq, self.query_timeout).await?.is_some() {
            return Ok(Removed::Hole);
        }
        let tombstone = doc! { "_id": id, "room": room, "seq": seq, "author": author, "deleted_at": DateTime::now() };
        match self.messages.insert_one(tombstone).await {
            Ok(_) => Ok(Removed::Held),
            Err(error) if duplicate_index(&error).is_some() => {
                // Another replica's tombstone, or a send that took the seq first.
                let holder = self.messages.find_one(doc! { "room": room, "seq": seq }).await;
                let holder: Option<Document> = holder.map_err(StoreError::from_driver)?;
                let reused = holder.is_some_and(|d| !d.contains_key("deleted_at"));
                Ok(if reused { Removed::Reused } else { Removed::Held })
            }
            Err(error) => Err(StoreError::from_driver(error)),
        }
    }
}
