//! The WebSocket gateway: HTTP routes and the upgrade (`routes`), the
//! protocol frames (`frames`), one socket's session (`session`) and the
//! ordering between a connection's queue and its socket (`outbox`).

pub mod frames;
mod outbox;
pub mod routes;
mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::health::RouteHealth;
use crate::recovery::Ring;
use crate::registry::Registry;
use crate::settings::{AuthSettings, LimitSettings, ServerSettings};
use crate::store::Store;

/// What every connection shares.
pub struct Context {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub server: ServerSettings,
    pub limits: LimitSettings,
    pub auth: AuthSettings,
    /// The notification recovery ring of each user route.
    pub rings: HashMap<String, Arc<Ring>>,
    /// Each route's stream state, for `/readyz`.
    pub routes: Vec<Arc<RouteHealth>>,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Tracks open sessions, so shutdown can wait for their close frames.
    pub sessions: TaskTracker,
    next_connection_id: AtomicU64,
}

impl Context {
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        settings: &crate::settings::Settings,
        relay: &crate::relay::Relay,
        shutdown: CancellationToken,
    ) -> Self {
        Context {
            store,
            registry,
            server: settings.server.clone(),
            limits: settings.limits.clone(),
            auth: settings.auth.clone(),
            rings: relay.rings.clone(),
            routes: relay.health.clone(),
            shutdown,
            sessions: TaskTracker::new(),
            next_connection_id: AtomicU64::new(1),
        }
    }

    fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }
}
