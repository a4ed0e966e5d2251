//! Seqs that other programs' hard deletes freed, waiting for the task that
//! keeps them from being taken again (`Store::hold_removed_seq`). Only a
//! room's highest removed seq can have been its newest, so each room is one
//! entry however many of its messages go: a retention job deleting a room's
//! whole history costs one check. The rooms waiting are capped; beyond the
//! cap a removal is counted and left unchecked.

use foldhash::HashMap;
use std::sync::Mutex;

use bson::Bson;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::prometheus;
use crate::store::removals::Removed;
use crate::store::Store;

/// Rooms whose removals may wait at once: a few hundred KiB at most.
const MAX_ROOMS: usize = 4096;

/// The highest seq removed from a room, with what its tombstone keeps.
struct Removal {
    seq: i64,
    id: Bson,
    author: String,
}

/// Removals waiting to be checked, by room.
#[derive(Default)]
pub struct RemovedSeqs {
    rooms: Mutex<HashMap<String, Removal>>,
    wake: Notify,
}

impl RemovedSeqs {
    /// `seq` (document `id`, by `author`) was removed from `room`.
    pub fn note(&self, room: &str, seq: i64, id: Bson, author: &str) {
        let mut rooms = self.rooms.lock().expect("removed seqs poisoned");
        let full = rooms.len() >= MAX_ROOMS;
        match rooms.get_mut(room) {
            Some(waiting) if waiting.seq >= seq => return,
            Some(waiting) => *waiting = Removal { seq, id, author: author.to_string() },
            None if full => {
                ::metrics::counter!(prometheus::REMOVALS_UNCHECKED).increment(1);
                tracing::warn!(room, seq, "too many removals waiting; this one's seq is not held");
                return;
            }
            None => {
                rooms.insert(room.to_string(), Removal { seq, id, author: author.to_string() });
            }
        }
        self.wake.notify_one();
    }

    fn take(&self) -> HashMap<String, Removal> {
        std::mem::take(&mut *self.rooms.lock().expect("removed seqs poisoned"))
    }
}

/// Holds each room's removed newest seq with a tombstone, until shutdown.
pub async fn hold(store: Store, removed: std::sync::Arc<RemovedSeqs>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = removed.wake.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        for (room, Removal { seq, id, author }) in removed.take() {
            match store.hold_removed_seq(id.clone(), &room, seq, &author).await {
                Ok(Removed::Hole) => {}
                Ok(Removed::Held) => {
                    tracing::info!(room, seq, "the room's newest message was removed; a tombstone holds its seq")
                }
                Ok(Removed::Reused) => {
                    ::metrics::counter!(prometheus::SEQS_REUSED).increment(1);
                    tracing::warn!(room, seq, "a send took the seq of a removed newest message before its tombstone");
                }
                Err(error) => {
                    tracing::warn!(room, seq, %error, "cannot check a removed seq; trying again");
                    removed.note(&room, seq, id, &author);
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }
}
