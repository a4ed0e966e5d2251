//! The WebSocket gateway. The HTTP server (`server`) counts the connections
//! not upgraded yet per address (`http_connections`) and runs the routes
//! (`routes`); `/ws` checks the handshake (`handshake`, which knows the
//! client by the rule of `client_addr`), owns the upgrade
//! (`upgrade`) and serves the socket as a session (`session`): a reader
//! (`reader`, with `joins`, `pending` sends and notification `recover`y)
//! and a writer (`writer`) that orders its queue through the `outbox`.

mod buckets;
mod client_addr;
mod deadline;
mod handshake;
mod held;
mod http_connections;
mod http_history;
mod joins;
mod outbox;
mod pages;
mod pending;
mod policy;
mod presence;
mod progress;
mod reader;
mod reads;
mod recover;
mod refusals;
pub mod routes;
pub mod server;
mod session;
mod upgrade;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::buckets::{quota, UserBuckets};
use self::client_addr::TrustedProxies;
use self::http_connections::HttpConnections;
use crate::auth::Authenticator;
use crate::fanout::{Pool, Registry};
use crate::health::RouteHealth;
use crate::membership::Memberships;
use crate::presence::Tracker;
use crate::protocol::BodyLimits;
use crate::recovery::Ring;
use crate::relay::{Audience, Route};
use crate::settings::{AuthSettings, ConfigError, KeyType, LimitSettings, ServerSettings, Settings};
use crate::store::Store;

/// Handshakes allowed per client address (an IPv6 client's /64).
pub type HandshakeLimiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

/// What the relay shares with the gateway: the routes' recovery rings and health.
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
    pub authenticator: Authenticator,
    pub handshakes: HandshakeLimiter,
    /// Each user's request buckets on this replica, whatever their connections.
    pub buckets: UserBuckets,
    /// Whose forwarding header names the client (`server.trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
    /// The connections not upgraded yet, per address.
    pub http_connections: Arc<HttpConnections>,
    pub memberships: Arc<Memberships>,
    /// The notification recovery ring of each user route.
    pub rings: HashMap<String, Arc<Ring>>,
    /// Each route's stream state, for `/readyz`.
    pub routes: Vec<Arc<RouteHealth>>,
    /// The user routes, by name, for pages of a user's documents.
    pub user_routes: HashMap<String, Route>,
    /// The presence of rooms with local listeners.
    pub tracker: Arc<Tracker>,
    mongo_timeout: std::time::Duration,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Tracks open sessions, so shutdown can wait for their close frames.
    pub sessions: TaskTracker,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
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
        authenticator: Authenticator,
        memberships: Arc<Memberships>,
        shutdown: CancellationToken,
    ) -> Result<Self, ConfigError> {
        let limits = &settings.limits;
        let trusted_proxies = TrustedProxies::new(settings.server.trusted_networks()?);
        Ok(Context {
            store,
            registry,
            server: settings.server.clone(),
            limits: settings.limits.clone(),
            auth: settings.auth.clone(),
            authenticator,
            handshakes: governor::RateLimiter::keyed(quota(
                limits.handshakes_per_second_per_ip,
                limits.handshake_burst_per_ip,
            )),
            buckets: UserBuckets::new(limits),
            http_connections: HttpConnections::new(limits.http_connections_per_ip, trusted_proxies.clone()),
            trusted_proxies,
            memberships,
            rings: relay.rings,
            routes: relay.routes,
            user_routes: relay.user_routes,
            tracker: relay.tracker,
            mongo_timeout: settings.mongo.timeout,
            shutdown,
            sessions: TaskTracker::new(),
            metrics: crate::prometheus::install(),
            pool: Pool::new(limits.buffer_pool_bytes, limits.user_pool_bytes),
            slots: Arc::new(Slots { taken: AtomicUsize::new(0), max: limits.max_connections }),
            next_connection_id: AtomicU64::new(1),
        })
    }

    fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A user route's collection, key and key type.
    fn user_route(&self, name: &str) -> Option<(&str, &str, KeyType)> {
        match self.user_routes.get(name)? {
            Route { collection, audience: Audience::User { key, key_type }, .. } => Some((collection, key, *key_type)),
            _ => None,
        }
    }

    /// How long a database request may take (`mongo.timeout`).
    fn store_timeout(&self) -> std::time::Duration {
        self.mongo_timeout
    }

    /// The limits a message body is checked against.
    fn body_limits(&self) -> BodyLimits {
        BodyLimits { max_bytes: self.limits.max_body_bytes, max_depth: self.limits.max_body_depth }
    }
}
