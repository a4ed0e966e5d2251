//! The WebSocket gateway: the HTTP server (`server`), its routes (`routes`),
//! the WebSocket upgrade (`upgrade`), the protocol frames (`frames`), one
//! socket's session (`session`) and the ordering between a connection's queue
//! and its socket (`outbox`).

pub mod frames;
mod outbox;
pub mod routes;
pub mod server;
mod session;
mod upgrade;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::health::RouteHealth;
use crate::membership::Memberships;
use crate::recovery::Ring;
use crate::registry::Registry;
use crate::settings::{AuthSettings, LimitSettings, ServerSettings};
use crate::store::Store;

/// Handshakes allowed per client address.
pub type HandshakeLimiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

/// A token bucket: `per_second` sustained, `burst` at once.
pub fn quota(per_second: u32, burst: u32) -> governor::Quota {
    let at_least_one = |n: u32| std::num::NonZeroU32::new(n.max(1)).expect("not zero");
    governor::Quota::per_second(at_least_one(per_second)).allow_burst(at_least_one(burst))
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
    pub memberships: Arc<Memberships>,
    /// The notification recovery ring of each user route.
    pub rings: HashMap<String, Arc<Ring>>,
    /// Each route's stream state, for `/readyz`.
    pub routes: Vec<Arc<RouteHealth>>,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Tracks open sessions, so shutdown can wait for their close frames.
    pub sessions: TaskTracker,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    next_connection_id: AtomicU64,
}

impl Context {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        settings: &crate::settings::Settings,
        relay: &crate::relay::Relay,
        authenticator: Authenticator,
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
            authenticator,
            handshakes: governor::RateLimiter::keyed(quota(
                limits.handshakes_per_second_per_ip,
                limits.handshake_burst_per_ip,
            )),
            memberships,
            rings: relay.rings.clone(),
            routes: relay.health.clone(),
            shutdown,
            sessions: TaskTracker::new(),
            metrics: crate::metrics::install(),
            next_connection_id: AtomicU64::new(1),
        }
    }

    fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }
}
