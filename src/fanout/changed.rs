//! The (room, user) pairs whose local presence changed since the presence
//! keeper last looked. A set, not a queue: a user who joins and leaves a
//! room a thousand times before the keeper writes is one entry, and the
//! keeper writes only the state the registry holds when it looks. So the
//! set never holds more than the pairs the registry itself could hold,
//! whatever clients do and however slow MongoDB is.

use foldhash::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Pairs to look at again, and the keeper's wake-up.
#[derive(Default)]
pub struct ChangedPresence {
    pairs: Mutex<HashSet<(String, String)>>,
    wake: Notify,
}

impl ChangedPresence {
    /// The user's presence in the room may have changed.
    pub fn mark(&self, room: &str, user: &str) {
        let mut pairs = self.pairs.lock().expect("changed presence poisoned");
        if pairs.insert((room.to_string(), user.to_string())) && pairs.len() == 1 {
            // A permit is kept if the keeper is busy: no change is missed.
            self.wake.notify_one();
        }
    }

    /// Marks many pairs at once (after a sweep took this replica for dead).
    pub fn mark_all(&self, marked: impl IntoIterator<Item = (String, String)>) {
        let mut pairs = self.pairs.lock().expect("changed presence poisoned");
        pairs.extend(marked);
        if !pairs.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Up to `max` of the pairs marked since they were last taken.
    pub fn take(&self, max: usize) -> Vec<(String, String)> {
        let mut pairs = self.pairs.lock().expect("changed presence poisoned");
        if pairs.len() <= max {
            return pairs.drain().collect();
        }
        let taken: Vec<(String, String)> = pairs.iter().take(max).cloned().collect();
        for pair in &taken {
            pairs.remove(pair);
        }
        taken
    }

    /// Completes once something was marked since the last `take`.
    pub async fn changed(&self) {
        self.wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn churn_on_one_pair_is_one_entry_and_wakes_the_keeper() {
        let changed = ChangedPresence::default();
        for _ in 0..1000 {
            changed.mark("lobby", "alice");
        }
        changed.mark("lobby", "bob");
        changed.changed().await;
        assert_eq!(changed.take(1).len(), 1, "a batch at a time");
        assert_eq!(changed.take(10).len(), 1);
        assert!(changed.take(10).is_empty());
    }
}
