//! What this replica says in MongoDB about presence: a document per (room,
//! user) while the user has a local connection in the room, and a
//! heartbeat. Two tasks keep it. The writer writes the pairs the registry
//! marked as changed, as the registry holds them when it looks, a bounded
//! batch per round trip, so churn between two looks costs nothing and a
//! slow MongoDB makes nothing pile up. The heartbeat, a task of its own on
//! the background pool, raises this replica's counter and watches the other
//! replicas'; no amount of client work can delay it, so a replica is never
//! taken for dead while it runs. When a replica has not beaten for the
//! replica timeout, the heartbeat removes what it said: a replica killed
//! outright loses its users within the timeout plus two heartbeats (the last
//! beat may have been seen a heartbeat late, and the sweep that finds it
//! dead runs a heartbeat after the timeout at worst). Timing is each
//! replica's own monotonic clock watching a counter, so clocks that
//! disagree do not matter.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::tracker::Tracker;
use crate::fanout::{ChangedPresence, Registry};
use crate::prometheus;
use crate::store::{Store, StoreError};

/// How long to wait before trying a failed write again.
const RETRY: Duration = Duration::from_millis(500);

/// Pairs written per round trip at most: one insert and one delete of this
/// many documents take a few milliseconds, whatever the backlog.
const BATCH: usize = 256;

/// The timings of presence (`presence.heartbeat_interval`, `presence.replica_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    pub replica_timeout: Duration,
    /// Longest a batch of writes may take before it is tried again.
    pub write_timeout: Duration,
}

/// The other replicas' heartbeat counters, and since when each is unchanged.
#[derive(Default)]
struct Watch {
    seen: HashMap<String, (i64, Instant)>,
}

impl Watch {
    /// The replicas whose counter has not moved for `timeout`.
    fn dead(&mut self, beats: Vec<(String, i64)>, me: &str, timeout: Duration) -> Vec<String> {
        let now = Instant::now();
        let mut dead = Vec::new();
        let mut seen = HashMap::new();
        for (replica, count) in beats.into_iter().filter(|(replica, _)| replica != me) {
            let since = match self.seen.get(&replica) {
                Some((last, since)) if *last == count => *since,
                _ => now,
            };
            if now.duration_since(since) >= timeout {
                dead.push(replica.clone());
            }
            seen.insert(replica, (count, since));
        }
        self.seen = seen;
        dead
    }
}

/// Where this replica's presence is read from and written to.
pub struct Keeper {
    store: Store,
    registry: Arc<Registry>,
    changed: Arc<ChangedPresence>,
    tracker: Arc<Tracker>,
    replica: String,
    /// The pairs written as present, and not removed since.
    written: HashSet<(String, String)>,
    /// Set by the heartbeat when a sweep had taken this replica for dead
    /// and removed what it said: everything must be written again.
    forgotten: Arc<AtomicBool>,
}

impl Keeper {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        changed: Arc<ChangedPresence>,
        tracker: Arc<Tracker>,
        replica: String,
    ) -> Keeper {
        let forgotten = Arc::new(AtomicBool::new(false));
        Keeper { store, registry, changed, tracker, replica, written: HashSet::new(), forgotten }
    }

    /// Runs until shutdown, then removes everything this replica said.
    pub async fn keep(mut self, timing: Timing, shutdown: CancellationToken) {
        let heartbeat = Heartbeat {
            store: self.store.clone(),
            registry: self.registry.clone(),
            changed: self.changed.clone(),
            tracker: self.tracker.clone(),
            replica: self.replica.clone(),
            forgotten: self.forgotten.clone(),
        };
        let beating = tokio::spawn(heartbeat.run(timing, shutdown.clone()));
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = self.changed.changed() => {}
            }
            if self.write_changes(timing.write_timeout).await.is_err() {
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
        let _ = beating.await;
        // The sessions are closed by now; whatever is left is removed at once,
        // so other replicas' members see these users leave without waiting.
        let replica = &self.replica;
        match self.store.forget_replica(replica).await {
            Ok(removed) => tracing::info!(replica, removed, "presence removed"),
            Err(error) => tracing::warn!(replica, %error, "cannot remove presence; other replicas will time it out"),
        }
    }

    /// Writes the presence of every marked pair as the registry holds it
    /// now, a batch at a time. On a failure, what is left unwritten is
    /// marked again: only pairs whose written state differs from the
    /// registry's are kept.
    async fn write_changes(&mut self, write_timeout: Duration) -> Result<(), StoreError> {
        loop {
            if self.forgotten.swap(false, Ordering::AcqRel) {
                self.written.clear();
            }
            let marked = self.changed.take(BATCH);
            if marked.is_empty() {
                return Ok(());
            }
            let (mut arrived, mut departed) = (Vec::new(), Vec::new());
            for pair in marked {
                let present = self.registry.is_present(&pair.0, &pair.1);
                if present != self.written.contains(&pair) {
                    if present {
                        arrived.push(pair)
                    } else {
                        departed.push(pair)
                    }
                }
            }
            let (store, replica) = (&self.store, self.replica.as_str());
            let writes = async {
                store.arrive(&arrived, replica).await?;
                store.depart(&departed, replica).await
            };
            let outcome = match tokio::time::timeout(write_timeout, writes).await {
                Ok(outcome) => outcome,
                Err(_) => Err(StoreError::Busy("presence".to_string())),
            };
            if let Err(error) = outcome {
                tracing::warn!(replica, %error, "cannot write presence; retrying");
                // Either write may have happened; `written` still says what
                // was before, so each pair is written again as the registry
                // holds it then (an arrival twice is not an error).
                self.changed.mark_all(arrived.into_iter().chain(departed));
                return Err(error);
            }
            ::metrics::counter!(prometheus::PRESENCE_WRITES, "kind" => "arrive").increment(arrived.len() as u64);
            ::metrics::counter!(prometheus::PRESENCE_WRITES, "kind" => "depart").increment(departed.len() as u64);
            for pair in &departed {
                self.written.remove(pair);
            }
            self.written.extend(arrived);
        }
    }
}

/// The heartbeat: this replica's counter, the sweep of dead replicas, and
/// the tracker's periodic work.
struct Heartbeat {
    store: Store,
    registry: Arc<Registry>,
    changed: Arc<ChangedPresence>,
    tracker: Arc<Tracker>,
    replica: String,
    forgotten: Arc<AtomicBool>,
}

impl Heartbeat {
    async fn run(self, timing: Timing, shutdown: CancellationToken) {
        let mut beat = tokio::time::interval(timing.heartbeat);
        // A beat that took long is not made up for with a burst.
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watch = Watch::default();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = beat.tick() => {}
            }
            self.beat().await;
            sweep(&self.store, &mut watch, &self.replica, timing.replica_timeout).await;
            self.tracker.tell_occupancy();
            self.tracker.forget_idle();
        }
    }

    /// Raises this replica's heartbeat; if a sweep had taken it for dead,
    /// its presence is written again.
    async fn beat(&self) {
        let replica = &self.replica;
        match self.store.beat(replica).await {
            Ok(true) => {}
            Ok(false) => {
                let local = self.registry.local_presence();
                if !local.is_empty() {
                    tracing::warn!(replica, "this replica was taken for dead; writing its presence again");
                }
                self.forgotten.store(true, Ordering::Release);
                self.changed.mark_all(local);
            }
            Err(error) => tracing::warn!(replica, %error, "cannot beat; presence may be timed out by other replicas"),
        }
    }
}

/// Removes what replicas that stopped beating said.
async fn sweep(store: &Store, watch: &mut Watch, replica: &str, timeout: Duration) {
    let beats = match store.beats().await {
        Ok(beats) => beats,
        Err(error) => return tracing::warn!(%error, "cannot read heartbeats"),
    };
    for dead in watch.dead(beats, replica, timeout) {
        match store.forget_replica(&dead).await {
            Ok(removed) => {
                ::metrics::counter!(prometheus::PRESENCE_REPLICAS_REMOVED).increment(1);
                tracing::warn!(replica = dead, removed, "a replica stopped beating; its presence is removed")
            }
            Err(error) => tracing::warn!(replica = dead, %error, "cannot remove a dead replica's presence"),
        }
    }
}

/// Reads a room's presence for the tracker.
pub async fn load(store: &Store, tracker: &Tracker, room: &str) -> Result<(), StoreError> {
    match store.present(room).await {
        Ok(pairs) => {
            tracker.loaded(room, pairs);
            Ok(())
        }
        Err(error) => {
            tracker.failed(room);
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_replica_is_dead_once_its_counter_stood_still_for_the_timeout() {
        let mut watch = Watch::default();
        let timeout = Duration::from_secs(15);
        let beats = |a: i64, b: i64| vec![("me".to_string(), 1), ("a".to_string(), a), ("b".to_string(), b)];
        assert!(watch.dead(beats(1, 1), "me", timeout).is_empty(), "first seen now");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(watch.dead(beats(1, 2), "me", timeout).is_empty());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(watch.dead(beats(1, 2), "me", timeout), ["a"], "a stood still 16 s, b only 6 s");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(watch.dead(beats(1, 2), "me", timeout), ["a", "b"]);
    }
}
