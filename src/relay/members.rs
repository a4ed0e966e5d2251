//! The `room_members` watch of `room_policy: membership`: a membership
//! deleted, or changed to another room or user, revokes the live joins it
//! backed.

use std::sync::Arc;

use super::event::{Event, Operation};
use crate::collections::id_string;
use crate::fanout::Registry;
use crate::membership::Memberships;
use crate::store::{Store, StoreError};

/// Revokes joins whose membership went away.
pub struct MembershipWatch {
    store: Store,
    registry: Arc<Registry>,
    memberships: Arc<Memberships>,
}

impl MembershipWatch {
    pub fn new(store: Store, registry: Arc<Registry>, memberships: Arc<Memberships>) -> Self {
        MembershipWatch { store, registry, memberships }
    }

    /// A `room_members` document was deleted or changed: revoke the joins it backed.
    pub fn changed(&self, event: &Event<'_>) {
        let Some(id) = event.document_key().and_then(|key| key.get("_id").ok().flatten()) else { return };
        let Ok(id) = bson::Bson::try_from(id.to_raw_bson()) else { return };
        let still = match event.operation() {
            Operation::Delete => None,
            _ => event.full_document().and_then(|d| Some((d.get_str("room").ok()?, d.get_str("user").ok()?))),
        };
        self.memberships.revoke(&id_string(&id), still, &self.registry);
    }

    /// After a lost history: every remembered membership is looked up again.
    pub async fn recheck(&self) -> Result<(), StoreError> {
        for (key, id) in self.memberships.all() {
            if !self.store.membership_exists(&id).await? {
                self.memberships.revoke(&key, None, &self.registry);
            }
        }
        Ok(())
    }
}
