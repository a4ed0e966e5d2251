//! The `presence` route: every insert or delete of a presence document,
//! anywhere, reaches the tracker, which tells the local members of rooms
//! it follows. After a lost history, each followed room is read again from
//! the collection and its local members get its presence anew.

use std::sync::Arc;

use super::event::{Event, Operation};
use crate::presence::{PresenceChange, Tracker};
use crate::store::{Store, StoreError};

/// Feeds presence changes to the tracker.
pub struct PresenceRelay {
    store: Store,
    tracker: Arc<Tracker>,
}

impl PresenceRelay {
    pub fn new(store: Store, tracker: Arc<Tracker>) -> Self {
        PresenceRelay { store, tracker }
    }

    pub fn relay(&self, event: &Event<'_>) {
        let Some(key) = event.key_document() else { return };
        let (Ok(room), Ok(user), Ok(replica)) = (key.get_str("room"), key.get_str("user"), key.get_str("replica"))
        else {
            return;
        };
        let (room, user, replica) = (room.to_string(), user.to_string(), replica.to_string());
        let change = match event.operation() {
            Operation::Insert => PresenceChange::Present { room, user, replica },
            Operation::Delete => PresenceChange::Gone { room, user, replica },
            _ => return,
        };
        self.tracker.apply(change);
    }

    /// After a lost history: every followed room is read again.
    pub async fn reload(&self) -> Result<(), StoreError> {
        for room in self.tracker.rooms() {
            if self.tracker.reload(&room) {
                tracing::warn!(room, "presence may have been missed; reading it again");
                crate::presence::load(&self.store, &self.tracker, &room).await?;
                self.tracker.resend(&room);
            }
        }
        Ok(())
    }
}
