//! Change-stream routes. Each route (`route`) is exactly one change stream
//! per process (`stream`), whatever the number of rooms or clients; its
//! events are handed to the handling of its audience (`dispatch`: `rooms`,
//! `users`, `members`) and routed in memory through the fan-out. Streams are
//! opened before the listener accepts anyone, so no client is told "joined"
//! before the relay can see what it joined.

mod dispatch;
mod event;
mod markers;
mod members;
mod presence;
mod recall;
mod removals;
mod rooms;
mod route;
mod stream;
mod typing;
mod users;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fanout::Registry;
use crate::health::RouteHealth;
use crate::membership::Memberships;
use crate::presence::Tracker;
use crate::recovery::Ring;
use crate::settings::{RoomPolicy, Settings};
use crate::store::Store;

pub use recall::{Recall, Unrecovered};
pub use route::{Audience, Route};

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
        tracker: Arc<Tracker>,
        shutdown: CancellationToken,
    ) -> Result<Relay, mongodb::error::Error> {
        let mut routes: Vec<Route> = settings.routes.iter().map(Route::from_settings).collect();
        if settings.auth.room_policy == RoomPolicy::Membership {
            routes.push(Route::membership());
        }
        routes.push(Route::read_markers());
        routes.push(Route::presence());
        routes.push(Route::typing());
        let mut tasks = Vec::with_capacity(routes.len() + 1);
        let removed = Arc::new(removals::RemovedSeqs::default());
        tasks.push(tokio::spawn(removals::hold(store.clone(), removed.clone(), shutdown.clone())));
        let mut rings = HashMap::new();
        let mut health = Vec::new();
        for route in &routes {
            let max_document_bytes = settings.limits.max_document_bytes;
            let dispatcher = match &route.audience {
                Audience::Room => dispatch::Dispatcher::Room(rooms::RoomRelay::new(
                    &route.name,
                    store.clone(),
                    registry.clone(),
                    removed.clone(),
                    max_document_bytes,
                )),
                Audience::User { key, key_type } => {
                    let recovery = &settings.recovery;
                    let ring = Arc::new(Ring::new(recovery.window, recovery.max_events, recovery.max_bytes));
                    rings.insert(route.name.clone(), ring.clone());
                    let relay =
                        users::UserRelay::new(&route.name, key, *key_type, registry.clone(), ring, max_document_bytes);
                    dispatch::Dispatcher::User(relay)
                }
                Audience::ReadMarkers => dispatch::Dispatcher::ReadMarkers(markers::MarkerRelay::new(registry.clone())),
                Audience::Presence => {
                    dispatch::Dispatcher::Presence(presence::PresenceRelay::new(store.clone(), tracker.clone()))
                }
                Audience::Typing => dispatch::Dispatcher::Typing(typing::TypingRelay::new(registry.clone())),
                Audience::Membership => dispatch::Dispatcher::Membership(members::MembershipWatch::new(
                    store.clone(),
                    registry.clone(),
                    memberships.clone(),
                )),
            };
            let route_health = RouteHealth::new(&route.name);
            health.push(route_health.clone());
            let stream = stream::RouteStream::new(route, store.background(), settings.relay.max_backoff, route_health);
            let opened = stream.open().await?;
            tracing::info!(route = %route.name, collection = %route.collection, "change stream open");
            tasks.push(tokio::spawn(stream::follow(stream, opened, dispatcher, shutdown.clone())));
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
