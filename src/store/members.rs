//! Lookups in `room_members`, for `room_policy: membership`.

use bson::{doc, Bson};

use super::lookups::run;
use super::queries;
use super::{Store, StoreError};

impl Store {
    /// The `_id` of the membership that lets `user` into `room`, if any.
    #[tracing::instrument(skip(self))]
    pub async fn membership(&self, room: &str, user: &str) -> Result<Option<Bson>, StoreError> {
        let found = run(&self.members, queries::membership(room, user), self.query_timeout, 1).await?.next().await?;
        Ok(found.and_then(|d| d.get("_id").cloned()))
    }

    pub async fn membership_exists(&self, id: &Bson) -> Result<bool, StoreError> {
        let found = self.members.find_one(doc! { "_id": id }).await.map_err(StoreError::from_driver)?;
        Ok(found.is_some())
    }

    /// The rooms of the user's `room_members` documents, at most `limit`;
    /// only those among `among`, when given.
    pub async fn member_rooms(
        &self,
        user: &str,
        among: Option<&[String]>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let find = queries::member_rooms(user, among, limit);
        let mut cursor = run(&self.members, find, self.query_timeout, limit.min(256) as u32).await?;
        let mut rooms = Vec::new();
        while let Some(member) = cursor.next().await? {
            if let Ok(room) = member.get_str("room") {
                rooms.push(room.to_string());
            }
        }
        Ok(rooms)
    }
}
