//! What every session shares: the store, the fan-out registry, the
//! settings, the per-user buckets and byte pool, and the replica's
//! connection slots.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::buckets::UserBuckets;
use crate::fanout::{Pool, Registry};
use crate::health::RouteHealth;
use crate::membership::Memberships;
use crate::presence::Tracker;
use crate::protocol::BodyLimits;
use crate::recovery::Ring;
use crate::relay::{Audience, Route};
use crate::settings::{AuthSettings, KeyType, LimitSettings, RecoverySettings, ServerSettings, Settings};
use crate::store::Store;

/// What the relay shares with the sessions: the routes' recovery rings and health.
pub struct RelayView {
    /// The notification recovery ring of each user route.
    pub rings: HashMap<String, Arc<Ring>>,
    /// Each route's stream state, for `/readyz`.
    pub routes: Vec<Arc<RouteHealth>>,
    /// The user routes, by name.
    pub user_routes: HashMap<String, Route>,
    /// The presence of rooms with local listeners.
    pub tracker: Arc<Tracker>,
}

/// What every connection shares.
pub struct Context {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub server: ServerSettings,
    pub limits: LimitSettings,
    pub auth: AuthSettings,
    /// Each user's request buckets on this replica, whatever their connections.
    pub buckets: UserBuckets,
    pub memberships: Arc<Memberships>,
    /// The notification recovery ring of each user route.
    pub rings: HashMap<String, Arc<Ring>>,
    /// Each route's stream state, for `/readyz`.
    pub routes: Vec<Arc<RouteHealth>>,
    /// The user routes, by name, for pages of a user's documents.
    pub user_routes: HashMap<String, Route>,
    /// The presence of rooms with local listeners.
    pub tracker: Arc<Tracker>,
    pub recovery: RecoverySettings,
    /// Recoveries reading MongoDB's history now, against `recovery.max_scans`.
    pub scans: tokio::sync::Semaphore,
    /// The most of them at once so far.
    pub scans_peak: AtomicUsize,
    mongo_timeout: std::time::Duration,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Tracks open sessions, so shutdown can wait for their close frames.
    pub sessions: TaskTracker,
    /// The bytes every connection may borrow beyond its reserve.
    pub pool: Arc<Pool>,
    /// Connections open or being opened, against `limits.max_connections`.
    pub slots: Arc<Slots>,
    next_connection_id: AtomicU64,
}

/// The connections a replica may hold.
#[derive(Debug)]
pub struct Slots {
    taken: AtomicUsize,
    max: usize,
}

/// One connection's place among `Slots`, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Slots {
    /// A place for one more connection, if the replica has one.
    pub fn take(self: &Arc<Self>) -> Option<Slot> {
        let mut taken = self.taken.load(Ordering::Acquire);
        loop {
            if taken >= self.max {
                return None;
            }
            match self.taken.compare_exchange_weak(taken, taken + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Slot(self.clone())),
                Err(now) => taken = now,
            }
        }
    }

    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Context {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        settings: &Settings,
        relay: RelayView,
        memberships: Arc<Memberships>,
        shutdown: CancellationToken,
    ) -> Self {
        let limits = &settings.limits;
        Context {
            store,
            registry,
            server: settings.server.clone(),
            limits: settings.limits.clone(),
            auth: settings.auth.clone(),
            buckets: UserBuckets::new(limits),
            memberships,
            rings: relay.rings,
            routes: relay.routes,
            user_routes: relay.user_routes,
            tracker: relay.tracker,
            recovery: settings.recovery.clone(),
            scans: tokio::sync::Semaphore::new(settings.recovery.max_scans),
            scans_peak: AtomicUsize::new(0),
            mongo_timeout: settings.mongo.timeout,
            shutdown,
            sessions: TaskTracker::new(),
            pool: Pool::new(limits.buffer_pool_bytes, limits.user_pool_bytes),
            slots: Arc::new(Slots { taken: AtomicUsize::new(0), max: limits.max_connections }),
            next_connection_id: AtomicU64::new(1),
        }
    }

    pub(super) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A user route's collection, key and key type.
    pub(super) fn user_route(&self, name: &str) -> Option<(&str, &str, KeyType)> {
        match self.user_routes.get(name)? {
            Route { collection, audience: Audience::User { key, key_type }, .. } => Some((collection, key, *key_type)),
            _ => None,
        }
    }

    /// Shows the history reads running now, and the most at once so far.
    pub(super) fn count_scans(&self) {
        let running = self.recovery.max_scans - self.scans.available_permits();
        ::metrics::gauge!(crate::prometheus::RECOVERY_SCANS_RUNNING).set(running as f64);
        let peak = self.scans_peak.fetch_max(running, Ordering::Relaxed).max(running);
        ::metrics::gauge!(crate::prometheus::RECOVERY_SCANS_PEAK).set(peak as f64);
    }

    /// How long a database request may take (`mongo.timeout`).
    pub(super) fn store_timeout(&self) -> std::time::Duration {
        self.mongo_timeout
    }

    /// The limits a message body is checked against.
    pub(super) fn body_limits(&self) -> BodyLimits {
        BodyLimits { max_bytes: self.limits.max_body_bytes, max_depth: self.limits.max_body_depth }
    }
}
