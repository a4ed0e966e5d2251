//! Read markers, one document per (user, room) in `read_markers`, keyed by
//! `_id: {user, room}`. A marker only ever rises: the update matches only a
//! lower stored seq, so a lower or equal one writes nothing, and nothing
//! reaches the change stream.

use bson::{doc, DateTime, Document};
use mongodb::options::Hint;

use super::error::{duplicate_index, StoreError};
use super::lookups::run;
use super::queries;
use super::Store;
use crate::protocol::as_i64;

fn key(user: &str, room: &str) -> Document {
    doc! { "user": user, "room": room }
}

impl Store {
    /// Raises the user's marker for the room to `seq`; a lower or equal
    /// `seq` changes nothing. Committed with write concern majority.
    #[tracing::instrument(skip(self))]
    pub async fn raise_read_marker(&self, user: &str, room: &str, seq: i64) -> Result<(), StoreError> {
        let raise = || async {
            let filter = doc! { "_id": key(user, room), "seq": { "$lt": seq } };
            let update = doc! { "$set": { "seq": seq, "at": DateTime::now() } };
            self.markers.update_one(filter, update).await.map(|r| r.matched_count == 1).map_err(StoreError::from_driver)
        };
        if raise().await? {
            return Ok(());
        }
        let marker = doc! { "_id": key(user, room), "user": user, "room": room, "seq": seq, "at": DateTime::now() };
        match self.markers.insert_one(marker).await {
            Ok(_) => Ok(()),
            // It exists: raise it, if another write did not raise it further meanwhile.
            Err(error) if duplicate_index(&error).is_some() => raise().await.map(|_| ()),
            Err(error) => Err(StoreError::from_driver(error)),
        }
    }

    /// The user's marker for the room, 0 without one.
    pub async fn read_marker(&self, user: &str, room: &str) -> Result<i64, StoreError> {
        let found = self
            .markers
            .find_one(doc! { "_id": key(user, room) })
            // The `_id` index: a planner may otherwise scan for a document `_id`.
            .hint(Hint::Name("_id_".to_string()))
            .max_time(self.query_timeout)
            .projection(doc! { "seq": 1 })
            .await
            .map_err(StoreError::from_driver)?;
        Ok(found.and_then(|d| d.get("seq").and_then(as_i64)).unwrap_or(0))
    }

    /// The user's markers, most recently raised first, at most `limit`.
    pub async fn read_markers(&self, user: &str, limit: usize) -> Result<Vec<(String, i64)>, StoreError> {
        let find = queries::read_markers_of(user, limit);
        let mut cursor = run(&self.markers, find, self.query_timeout, limit.min(256) as u32).await?;
        let mut markers = Vec::new();
        while let Some(marker) = cursor.next().await? {
            if let (Ok(room), Some(seq)) = (marker.get_str("room"), marker.get("seq").and_then(as_i64)) {
                markers.push((room.to_string(), seq));
            }
        }
        Ok(markers)
    }
}
