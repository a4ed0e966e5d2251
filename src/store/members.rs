//! Lookups in `room_members`, for `room_policy: membership`.

use bson::{doc, Bson, Document};
use futures::TryStreamExt;

use super::{Store, StoreError};

impl Store {
    /// The `_id` of the membership that lets `user` into `room`, if any.
    #[tracing::instrument(skip(self))]
    pub async fn membership(&self, room: &str, user: &str) -> Result<Option<Bson>, StoreError> {
        let found = self
            .members
            .find_one(doc! { "room": room, "user": user })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(StoreError::from_driver)?;
        Ok(found.and_then(|d| d.get("_id").cloned()))
    }

    pub async fn membership_exists(&self, id: &Bson) -> Result<bool, StoreError> {
        let found = self.members.find_one(doc! { "_id": id }).await.map_err(StoreError::from_driver)?;
        Ok(found.is_some())
    }

    /// The rooms of the user's `room_members` documents, at most `limit`.
    pub async fn member_rooms(&self, user: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let cursor = self
            .members
            .find(doc! { "user": user })
            .limit(limit as i64)
            .projection(doc! { "room": 1 })
            .await
            .map_err(StoreError::from_driver)?;
        let members: Vec<Document> = cursor.try_collect().await.map_err(StoreError::from_driver)?;
        Ok(members
            .iter()
            .filter_map(|d| match d.get("room") {
                Some(Bson::String(room)) => Some(room.clone()),
                _ => None,
            })
            .collect())
    }
}
