//! Building and running the service: connect to MongoDB, create (or only
//! check) what it needs there, open every route's change stream, bind the
//! listener (or take the one the process was started with), then serve
//! until the shutdown future completes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::fanout::{ChangedPresence, Registry};
use crate::http::{routes, server, Gate};
use crate::membership::Memberships;
use crate::presence::{self, Timing, Tracker};
use crate::relay::{Relay, Route};
use crate::session::{Context, RelayView};
use crate::settings::{Channel, ConfigError, Settings};
use crate::store::{Schema, SchemaError, Store};

/// Failures while building the application.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot reach MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("cannot bind the listener: {0}")]
    Bind(#[from] std::io::Error),
    /// The database lacks something roomcast needs, or holds something in its way.
    #[error(transparent)]
    Schema(SchemaError),
}

impl From<SchemaError> for StartupError {
    fn from(error: SchemaError) -> Self {
        match error {
            // Not reaching the database is not a fault of its schema.
            SchemaError::Database(error) => StartupError::Mongo(error),
            other => StartupError::Schema(other),
        }
    }
}

/// The task that keeps this replica's presence, and what stops it.
struct PresenceTask {
    task: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    stop: CancellationToken,
}

/// The service, built and bound, ready to run.
pub struct Application {
    listener: TcpListener,
    port: u16,
    /// The listener of `/metrics`, when it has a port of its own.
    metrics_listener: Option<TcpListener>,
    presence: PresenceTask,
    context: Arc<Context>,
    gate: Arc<Gate>,
    relay: Relay,
}

impl Application {
    /// Connects, prepares the database and opens the change streams; the
    /// listener is bound last, so a client that connects is served for real.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        // Before anything registers a metric: earlier ones would go to no recorder.
        crate::prometheus::install();
        let authenticator = Authenticator::from_settings(&settings.auth)?;
        let store = Store::connect(&settings.mongo).await?;
        let schema = Schema::for_settings(&settings);
        if settings.mongo.create_indexes {
            store.provision(&schema).await?;
        } else {
            store.check_schema(&schema).await?;
            tracing::info!(indexes = schema.indexes.len(), "the database has what roomcast needs");
        }
        let changed = Arc::new(ChangedPresence::default());
        let registry =
            Arc::new(Registry::with_presence(changed.clone()).with_max_memberships(settings.limits.max_joined_rooms));
        let memberships = Arc::new(Memberships::default());
        let tracker = Arc::new(Tracker::new(registry.clone(), settings.limits.presence_max_listed));
        let shutdown = CancellationToken::new();
        let relay =
            Relay::start(&settings, &store, registry.clone(), memberships.clone(), tracker.clone(), shutdown.clone())
                .await?;
        // The presence this replica writes, and its heartbeat, stop only once
        // its sessions are closed, so their departures are written first.
        let replica = bson::oid::ObjectId::new().to_hex();
        let timing = Timing {
            heartbeat: settings.presence.heartbeat_interval,
            replica_timeout: settings.presence.replica_timeout,
            write_timeout: settings.mongo.timeout,
        };
        let presence_stop = CancellationToken::new();
        let keeper = presence::Keeper::new(store.clone(), registry.clone(), changed, tracker.clone(), replica);
        let keeper = Box::pin(keeper.keep(timing, presence_stop.clone()));
        let listener = listen(&settings.server.host, settings.server.port).await?;
        let address = listener.local_addr()?;
        let metrics_listener = match settings.server.metrics_port {
            Some(port) => Some(bind(&settings.server.host, port).await?),
            None => None,
        };
        if let Some(metrics) = &metrics_listener {
            tracing::info!(addr = %metrics.local_addr()?, "serving /metrics");
        }
        tracing::info!(addr = %address, database = %settings.mongo.database, "listening");
        let user_routes = settings
            .routes
            .iter()
            .filter(|route| route.channel == Channel::User)
            .map(|route| (route.name.clone(), Route::from_settings(route)))
            .collect();
        let view = RelayView { rings: relay.rings.clone(), routes: relay.health.clone(), user_routes, tracker };
        let context = Arc::new(Context::new(store, registry, &settings, view, memberships, shutdown));
        let gate = Arc::new(Gate::new(context.clone(), &settings, authenticator)?);
        let presence = PresenceTask { task: keeper, stop: presence_stop };
        Ok(Application { listener, port: address.port(), metrics_listener, context, gate, relay, presence })
    }

    /// The bound port, useful when `server.port` is 0.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `/metrics` when `server.metrics_port` gives it one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.port())
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn run_until_stopped(self) {
        self.run(crate::shutdown::signal()).await
    }

    /// Serves until `stop` completes, then closes every client with 1001 and
    /// stops the routes.
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.context.shutdown.clone();
        let presence = tokio::spawn(self.presence.task);
        tokio::spawn(forget_idle_limiters(self.gate.clone()));
        tokio::spawn(crate::session::keepalive::keep_alive(self.context.clone()));
        tokio::spawn(crate::prometheus::keep_up(self.gate.metrics.clone(), shutdown.clone()));
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                stop.await;
                shutdown.cancel();
            }
        });
        // On the signal, in order: /readyz answers 503 (it reads the token),
        // the listener stops accepting, every session finishes its frame in
        // hand, flushes what it queued (acks included) and closes with 1001,
        // then the routes stop. All of it within `server.shutdown_grace`,
        // counted from the signal; plain HTTP exchanges drain meanwhile.
        let grace = self.context.server.shutdown_grace;
        let routes = routes::routes(self.gate.clone());
        let drain = grace.min(server::LONGEST_EXCHANGE);
        let bounds = server::HttpBounds {
            header_timeout: self.context.server.header_timeout,
            keep_alive_timeout: self.context.server.keep_alive_timeout,
            answer_timeout: self.context.server.write_timeout,
            connections: self.gate.connections.clone(),
            // Past both of the relay's own deadlines, which close with a code.
            user_timeout: Some(self.context.server.idle_timeout + self.context.server.write_timeout),
        };
        if let Some(listener) = self.metrics_listener {
            let metrics = routes::metrics_routes(self.gate.clone());
            let stop = shutdown.clone().cancelled_owned();
            tokio::spawn(server::serve(listener, metrics, bounds.clone(), stop, drain));
        }
        let serving = server::serve(self.listener, routes, bounds, shutdown.clone().cancelled_owned(), drain);
        let closing_sessions = async {
            shutdown.cancelled().await;
            let stopping_at = tokio::time::Instant::now();
            self.context.registry.go_away_everyone();
            self.context.sessions.close();
            if tokio::time::timeout(grace, self.context.sessions.wait()).await.is_err() {
                tracing::warn!("some sessions did not close within the shutdown grace");
            }
            stopping_at
        };
        let ((), stopping_at) = tokio::join!(serving, closing_sessions);
        self.presence.stop.cancel();
        let left = grace.saturating_sub(stopping_at.elapsed());
        if tokio::time::timeout(left, presence).await.is_err() {
            tracing::warn!("presence was not removed within the shutdown grace; other replicas will time it out");
        }
        let left = grace.saturating_sub(stopping_at.elapsed());
        if tokio::time::timeout(left, self.relay.stopped()).await.is_err() {
            tracing::warn!("some routes did not stop within the shutdown grace");
        }
        tracing::info!("stopped");
    }
}

/// Keeps the per-address and per-user limiters from growing with every
/// address and user ever seen.
async fn forget_idle_limiters(gate: Arc<Gate>) {
    let mut every_minute = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every_minute.tick() => {
                gate.handshakes.retain_recent();
                gate.handshakes.shrink_to_fit();
                gate.sessions.buckets.forget_idle();
            }
            _ = gate.sessions.shutdown.cancelled() => return,
        }
    }
}

/// The listener: the first socket passed by a service manager (systemd
/// socket activation: `LISTEN_FDS`, the socket at descriptor 3), else
/// `host:port` bound here.
async fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    if let Some(inherited) = listenfd::ListenFd::from_env().take_tcp_listener(0)? {
        inherited.set_nonblocking(true)?;
        return TcpListener::from_std(inherited);
    }
    bind(host, port).await
}

async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let address = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, format!("cannot resolve {host}")))?;
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}
