//! A connection's pipelined sends, oldest first. A send is queued for its
//! room's group commit as soon as it is read, and the connection's next
//! frames are read meanwhile; at most `MAX_PENDING_SENDS` wait at once.
//! Their replies go out in the order of the frames they answer: a send
//! refused before it could be queued keeps its place in line.

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::Value;

use crate::protocol::{Ack, Refusal};
use crate::store::PendingAck;

/// Sends one connection may have waiting for their commit; at this many its
/// frames are not read until the oldest is answered.
pub(super) const MAX_PENDING_SENDS: usize = 32;

/// A send whose reply is still owed: its commit, or the refusal it got
/// before it could be queued.
pub(super) struct PendingSend {
    pub client_id: String,
    /// The `ref` of its error reply.
    pub reference: Option<Value>,
    pub started: Instant,
    answer: Result<PendingAck, Refusal>,
}

/// The sends of one connection whose replies are owed, oldest first.
#[derive(Default)]
pub(super) struct PendingSends {
    queue: VecDeque<PendingSend>,
}

impl PendingSends {
    pub fn push(&mut self, client_id: String, reference: Option<Value>, answer: Result<PendingAck, Refusal>) {
        self.queue.push_back(PendingSend { client_id, reference, started: Instant::now(), answer });
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The oldest send's outcome; never ready while nothing is pending.
    pub async fn oldest_outcome(&mut self) -> Result<Ack, Refusal> {
        match self.queue.front_mut() {
            Some(PendingSend { answer: Ok(answer), .. }) => answer.await.map_err(Refusal::from),
            Some(PendingSend { answer: Err(refusal), .. }) => Err(refusal.clone()),
            None => std::future::pending().await,
        }
    }

    /// Removes the oldest send, once its outcome is known.
    pub fn pop_oldest(&mut self) -> PendingSend {
        self.queue.pop_front().expect("an outcome belongs to the oldest pending send")
    }
}
