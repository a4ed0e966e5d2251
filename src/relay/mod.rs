//! Change-stream routes. Each configured route is exactly one change stream
//! per process, whatever the number of rooms or clients; its events are
//! routed in memory through the registry. Streams are opened before the
//! listener accepts anyone, so no client is told "joined" before the relay
//! can see what it joined.

mod dispatch;
mod stream;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;
use crate::settings::RouteSettings;
use crate::store::Store;

pub use stream::pipeline;

/// The running routes of one process.
pub struct Relay {
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Opens every route's change stream, then follows them in the background.
    pub async fn start(
        routes: &[RouteSettings],
        store: &Store,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
    ) -> Result<Relay, mongodb::error::Error> {
        let mut tasks = Vec::with_capacity(routes.len());
        for settings in routes {
            let dispatcher = dispatch::Dispatcher::new(settings, store.clone(), registry.clone());
            let route = stream::RouteStream::new(settings, store.database());
            let opened = route.open().await?;
            tracing::info!(route = %settings.name, collection = %settings.collection, "change stream open");
            tasks.push(tokio::spawn(stream::follow(route, opened, dispatcher, shutdown.clone())));
        }
        Ok(Relay { tasks })
    }

    /// Waits until every route has stopped (after shutdown was requested).
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
