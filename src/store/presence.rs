//! Presence and typing in MongoDB. `presence` holds one document per (room,
//! user, replica) while that user has a connection in the room on that
//! replica; `presence_replicas` one per running replica, whose `beats`
//! counter it raises every few seconds; `typing` one per (room, user),
//! raised at most once per typing interval. Everything is keyed so that a
//! change event's `documentKey` alone says what changed.

use bson::{doc, DateTime, Document};
use futures::TryStreamExt;

use super::error::{duplicate_index, only_duplicates, StoreError};
use super::Store;
use crate::protocol::as_i64;

fn presence_key(room: &str, user: &str, replica: &str) -> Document {
    doc! { "room": room, "user": user, "replica": replica }
}

impl Store {
    /// Each `(room, user)` of `pairs` has a connection on `replica`: one
    /// unordered insert, where a pair already written is not an error.
    pub async fn arrive(&self, pairs: &[(String, String)], replica: &str) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let now = DateTime::now();
        let documents = pairs.iter().map(|(room, user)| {
            doc! { "_id": presence_key(room, user, replica), "room": room, "user": user, "replica": replica, "at": now }
        });
        match self.presence.insert_many(documents).ordered(false).await {
            Ok(_) => Ok(()),
            // Only duplicates refused: a departure and a new arrival raced, or a re-assertion.
            Err(error) if only_duplicates(&error) => Ok(()),
            Err(error) => Err(StoreError::from_driver(error)),
        }
    }

    /// No `(room, user)` of `pairs` has a connection left on `replica`: one
    /// delete, bounded to this replica's documents by its index.
    pub async fn depart(&self, pairs: &[(String, String)], replica: &str) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let keys: Vec<Document> = pairs.iter().map(|(room, user)| presence_key(room, user, replica)).collect();
        let filter = doc! { "_id": { "$in": keys }, "replica": replica };
        self.presence.delete_many(filter).await.map(|_| ()).map_err(StoreError::from_driver)
    }

    /// Every `(user, replica)` present in `room`.
    pub async fn present(&self, room: &str) -> Result<Vec<(String, String)>, StoreError> {
        let cursor = self
            .presence
            .find(doc! { "room": room })
            .max_time(self.query_timeout)
            .projection(doc! { "user": 1, "replica": 1 })
            .await
            .map_err(StoreError::from_driver)?;
        let found: Vec<Document> = cursor.try_collect().await.map_err(StoreError::from_driver)?;
        Ok(found
            .iter()
            .filter_map(|d| Some((d.get_str("user").ok()?.to_string(), d.get_str("replica").ok()?.to_string())))
            .collect())
    }

    /// Raises this replica's heartbeat; false if its document was gone (a
    /// sweep took it for dead), so its presence must be written again.
    pub async fn beat(&self, replica: &str) -> Result<bool, StoreError> {
        let update = doc! { "$inc": { "beats": 1_i64 }, "$set": { "at": DateTime::now() } };
        let outcome = self.replicas.update_one(doc! { "_id": replica }, update).upsert(true).await;
        outcome.map(|result| result.upserted_id.is_none()).map_err(StoreError::from_driver)
    }

    /// Every replica's heartbeat counter.
    pub async fn beats(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let cursor = self.replicas.find(doc! {}).await.map_err(StoreError::from_driver)?;
        let found: Vec<Document> = cursor.try_collect().await.map_err(StoreError::from_driver)?;
        Ok(found
            .iter()
            .filter_map(|d| Some((d.get_str("_id").ok()?.to_string(), d.get("beats").and_then(as_i64)?)))
            .collect())
    }

    /// Removes a replica and everything it said was present.
    pub async fn forget_replica(&self, replica: &str) -> Result<u64, StoreError> {
        let removed =
            self.swept_presence.delete_many(doc! { "replica": replica }).await.map_err(StoreError::from_driver)?;
        self.replicas.delete_one(doc! { "_id": replica }).await.map_err(StoreError::from_driver)?;
        Ok(removed.deleted_count)
    }

    /// `user` is typing in `room`, unless that was already written less than
    /// `interval` ago: at most one write per (room, user) per interval,
    /// whichever replica takes it.
    pub async fn typing(&self, room: &str, user: &str, interval: std::time::Duration) -> Result<(), StoreError> {
        let now = DateTime::now();
        let stale = DateTime::from_millis(now.timestamp_millis() - interval.as_millis() as i64);
        let key = doc! { "room": room, "user": user };
        let filter = doc! { "_id": &key, "at": { "$lte": stale } };
        let raised = self.typing.update_one(filter, doc! { "$set": { "at": now } }).await;
        if raised.map_err(StoreError::from_driver)?.matched_count == 1 {
            return Ok(());
        }
        match self.typing.insert_one(doc! { "_id": key, "room": room, "user": user, "at": now }).await {
            Ok(_) => Ok(()),
            // Written less than an interval ago: this one is dropped, silently.
            Err(error) if duplicate_index(&error).is_some() => Ok(()),
            Err(error) => Err(StoreError::from_driver(error)),
        }
    }
}
