//! Change-stream routes. Each configured route is exactly one change stream
//! per process, whatever the number of rooms or clients; its events are
//! routed in memory through the registry. Streams are opened before the
//! listener accepts anyone, so no client is told "joined" before the relay
//! can see what it joined.

mod dispatch;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::RouteHealth;
use crate::membership::Memberships;
use crate::recovery::Ring;
use crate::registry::Registry;
use crate::settings::{Channel, Operation, RoomPolicy, RouteSettings, Settings};
use crate::store::Store;

pub use stream::pipeline;

/// The running routes of one process.
pub struct Relay {
    tasks: Vec<JoinHandle<()>>,
    /// The recovery ring of each user route, by route name.
    pub rings: HashMap<String, Arc<Ring>>,
    /// Whether each route's stream is open, for readiness.
    pub health: Vec<Arc<RouteHealth>>,
}

impl Relay {
    /// Opens every route's change stream, then follows them in the background.
    pub async fn start(
        settings: &Settings,
        store: &Store,
        registry: Arc<Registry>,
        memberships: Arc<Memberships>,
        shutdown: CancellationToken,
    ) -> Result<Relay, mongodb::error::Error> {
        let mut routes = settings.routes.clone();
        if settings.auth.room_policy == RoomPolicy::Membership {
            routes.push(RouteSettings {
                name: crate::membership::COLLECTION.to_string(),
                collection: crate::membership::COLLECTION.to_string(),
                channel: Channel::Membership,
                key: "user".to_string(),
                operations: vec![Operation::Update, Operation::Replace, Operation::Delete],
                filter: None,
            });
        }
        let mut tasks = Vec::with_capacity(routes.len());
        let mut rings = HashMap::new();
        let mut health = Vec::new();
        for route_settings in &routes {
            let ring = (route_settings.channel == Channel::User)
                .then(|| Arc::new(Ring::new(settings.recovery.window, settings.recovery.max_events)));
            if let Some(ring) = &ring {
                rings.insert(route_settings.name.clone(), ring.clone());
            }
            let dispatcher =
                dispatch::Dispatcher::new(route_settings, store.clone(), registry.clone(), ring, memberships.clone());
            let route_health = RouteHealth::new(&route_settings.name);
            health.push(route_health.clone());
            let route =
                stream::RouteStream::new(route_settings, store.database(), settings.relay.max_backoff, route_health);
            let opened = route.open().await?;
            tracing::info!(route = %route_settings.name, collection = %route_settings.collection, "change stream open");
            tasks.push(tokio::spawn(stream::follow(route, opened, dispatcher, shutdown.clone())));
        }
        Ok(Relay { tasks, rings, health })
    }

    /// Waits until every route has stopped (after shutdown was requested).
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
