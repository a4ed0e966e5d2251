//! Presence and typing for a session. After a join registers the
//! connection, the room's presence is loaded if this process does not
//! follow it yet, and its snapshot is queued: it reaches the client after
//! `joined` and the replay, and every change after it follows in order.
//! `typing` is throttled here per room, then once more in MongoDB across
//! the user's devices and replicas; extra ones are dropped silently, and
//! so is typing in a room too large to list its members.

use std::time::Instant;

use super::buckets::Bucket;
use super::Session;
use crate::presence::{self, Begin};
use crate::protocol::Refusal;

impl Session {
    /// Queues the room's presence for this connection, loading it first if
    /// nobody here follows the room yet.
    pub(super) async fn send_presence(&self, room: &str) -> Result<(), Refusal> {
        let tracker = &self.context.tracker;
        loop {
            match tracker.begin(room) {
                Begin::Ready => break,
                Begin::Load => {
                    presence::load(&self.context.store, tracker, room).await?;
                    break;
                }
                Begin::Wait(loaded) => {
                    let waiting = loaded.notified();
                    // Loaded (or failed) between `begin` and now: look again.
                    if !matches!(tracker.begin(room), Begin::Wait(_)) {
                        continue;
                    }
                    let patience = self.context.store_timeout();
                    let _ = tokio::time::timeout(patience, waiting).await;
                }
            }
        }
        tracker.snapshot_to(room, self.connection.id);
        Ok(())
    }

    /// The user is typing in a joined room: written at most once per
    /// `limits.typing_interval`; anything more is dropped, not refused.
    pub(super) async fn typing(&mut self, room: String) -> Result<(), Refusal> {
        if !self.connection.has_joined(&room) {
            return Err(super::refusals::not_joined(&format!("join room {room} first")));
        }
        let interval = self.context.limits.typing_interval;
        let now = Instant::now();
        let recent = self.typed.get(&room).is_some_and(|at| now.duration_since(*at) < interval);
        // In a room too large to list, typing would be a storm nobody can read.
        if recent
            || self.context.tracker.is_large(&room)
            || !self.context.buckets.has_token(Bucket::Reads, &self.identity)
        {
            return Ok(());
        }
        self.typed.insert(room.clone(), now);
        self.typed.retain(|_, at| now.duration_since(*at) < interval);
        self.context.store.typing(&room, &self.connection.user, interval).await?;
        Ok(())
    }
}
