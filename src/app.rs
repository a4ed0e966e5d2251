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
use crate::settings::{Channel, ConfigError, MongoSettings, Settings};
use crate::store::{Schema, SchemaError, Store};

/// Failures while building the application. Each one is displayed as one
/// line that says what was tried, why it failed and what to do; the binary
/// prints that line and exits with [`StartupError::exit_code`].
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// MongoDB could not be reached, or refused what start-up asks of it.
    #[error(transparent)]
    Mongo(DatabaseError),
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(BindError),
    /// The database lacks something roomcast needs, or holds something in its way.
    #[error(transparent)]
    Schema(SchemaError),
}

impl StartupError {
    /// The process's exit code for this failure, as README.md documents it:
    /// 2 when the configuration (or the database's schema) must change, 3
    /// when MongoDB could not be reached or refused, 4 when a port could not
    /// be listened on.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartupError::Config(_) | StartupError::Schema(_) => 2,
            StartupError::Mongo(_) => 3,
            StartupError::Bind(_) => 4,
        }
    }

    fn from_schema(mongo: &MongoSettings, error: SchemaError) -> Self {
        match error {
            // Not reaching the database is not a fault of its schema.
            SchemaError::Database(error) => StartupError::Mongo(DatabaseError::new(mongo, error)),
            other => StartupError::Schema(other),
        }
    }
}

/// MongoDB failed at start-up: where it was looked for (the URI with its
/// password masked) and the driver's reason, in one line.
#[derive(Debug)]
pub struct DatabaseError {
    uri: String,
    timeout: Duration,
    error: mongodb::error::Error,
}

impl DatabaseError {
    fn new(mongo: &MongoSettings, error: mongodb::error::Error) -> Self {
        DatabaseError { uri: masked_uri(&mongo.uri), timeout: mongo.timeout, error }
    }
}

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use mongodb::error::ErrorKind;
        let uri = &self.uri;
        let env = env_name("mongo.uri");
        match &*self.error.kind {
            ErrorKind::ServerSelection { message, .. } => {
                write!(
                    f,
                    "cannot reach MongoDB at {uri} within {:?} ({}): check that the database is running there, \
                     or point mongo.uri ({env}) at it",
                    self.timeout,
                    unreachable_servers(message)
                )?;
                if uri.contains("127.0.0.1:27217") || uri.contains("localhost:27217") {
                    write!(f, "; scripts/dev starts the development database there")?;
                }
                Ok(())
            }
            ErrorKind::DnsResolve { message, .. } => write!(
                f,
                "cannot resolve the hosts of MongoDB at {uri} ({}): check the host name in mongo.uri ({env})",
                one_line(message)
            ),
            ErrorKind::Authentication { message, .. } => write!(
                f,
                "MongoDB at {uri} refused the credentials ({}): check the user, password and authSource in mongo.uri \
                 ({env})",
                one_line(message)
            ),
            ErrorKind::Command(command) => {
                let hint = match command.code {
                    13 => "; the user needs readWrite on mongo.database (README.md, \"Permissions\")",
                    40573 => {
                        "; change streams need a replica set: start mongod with --replSet and run rs.initiate() once"
                    }
                    _ => "",
                };
                write!(
                    f,
                    "MongoDB at {uri} refused start-up: {} ({}): {}{hint}",
                    command.code_name,
                    command.code,
                    one_line(&command.message)
                )
            }
            other => write!(f, "MongoDB at {uri} failed at start-up: {}", one_line(&other.to_string())),
        }
    }
}

impl std::error::Error for DatabaseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// What each server of a failed server selection answered, from the
/// driver's description of the topology (it offers no other form):
/// `127.0.0.1:27217: Connection refused (os error 111)`, or that none did.
fn unreachable_servers(topology: &str) -> String {
    let servers: Vec<String> = topology
        .split("{ Address: ")
        .skip(1)
        .map(|server| {
            let address = server.split(", ").next().unwrap_or(server);
            let error = server.split_once("Error: ").map(|(_, error)| {
                let error = error.split(", labels:").next().unwrap_or(error);
                let error = error.strip_prefix("Kind: ").unwrap_or(error);
                error.strip_prefix("I/O error: ").unwrap_or(error).to_string()
            });
            format!("{address}: {}", error.unwrap_or_else(|| "no answer".to_string()))
        })
        .collect();
    if servers.is_empty() {
        "no server answered".to_string()
    } else {
        one_line(&servers.join("; "))
    }
}

/// The URI with its password, and any query parameter that may hold a
/// secret, replaced by `****`. When in doubt it masks more: an unescaped
/// `@` anywhere hides what comes before it.
pub fn masked_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else { return "****".to_string() };
    let (authority, tail) = match rest.find('@') {
        Some(first_at) => {
            let end = rest[first_at..].find(['/', '?']).map_or(rest.len(), |i| first_at + i);
            rest.split_at(end)
        }
        None => rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len())),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:****@{hosts}"),
            None => format!("{userinfo}@{hosts}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _))
                        if key.to_ascii_lowercase().contains("password")
                            || key.eq_ignore_ascii_case("authMechanismProperties") =>
                    {
                        format!("{key}=****")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// A listener that could not be bound: which setting gave its address, the
/// address, and why, with what to do about it.
#[derive(Debug)]
pub struct BindError {
    /// `server.port` or `server.metrics_port`.
    setting: &'static str,
    address: String,
    error: std::io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let BindError { setting, address, error } = self;
        let env = env_name(setting);
        let port = address.rsplit_once(':').map_or(address.as_str(), |(_, port)| port);
        match error.kind() {
            std::io::ErrorKind::AddrInUse => write!(
                f,
                "cannot listen on {address}: port {port} is in use: stop what holds it, or set {setting} ({env}) \
                 to a free port"
            ),
            std::io::ErrorKind::PermissionDenied => write!(
                f,
                "cannot listen on {address}: not permitted ({error}): ports below 1024 need privileges; set \
                 {setting} ({env}) to 1024 or above"
            ),
            _ => write!(
                f,
                "cannot listen on {address}: {}: check server.host (ROOMCAST__SERVER__HOST) and {setting} ({env})",
                one_line(&error.to_string())
            ),
        }
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The environment variable that sets a dotted key: `ROOMCAST__SERVER__PORT`.
fn env_name(key: &str) -> String {
    format!("ROOMCAST__{}", key.to_ascii_uppercase().replace('.', "__"))
}

/// Text from elsewhere (the driver, the OS) on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
        let mongo = &settings.mongo;
        let unreachable = |error| StartupError::Mongo(DatabaseError::new(mongo, error));
        let store = Store::connect(mongo).await.map_err(unreachable)?;
        let schema = Schema::for_settings(&settings);
        if settings.mongo.create_indexes {
            store.provision(&schema).await.map_err(|error| StartupError::from_schema(mongo, error))?;
        } else {
            store.check_schema(&schema).await.map_err(|error| StartupError::from_schema(mongo, error))?;
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
                .await
                .map_err(unreachable)?;
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
        let host = &settings.server.host;
        let listener = listen(host, settings.server.port)
            .await
            .map_err(|(address, error)| StartupError::Bind(BindError { setting: "server.port", address, error }))?;
        let address = listener.local_addr().map_err(|error| {
            StartupError::Bind(BindError {
                setting: "server.port",
                address: format!("{host}:{}", settings.server.port),
                error,
            })
        })?;
        let metrics_listener = match settings.server.metrics_port {
            Some(port) => Some(bind(host, port).await.map_err(|(address, error)| {
                StartupError::Bind(BindError { setting: "server.metrics_port", address, error })
            })?),
            None => None,
        };
        if let Some(address) = metrics_listener.as_ref().and_then(|metrics| metrics.local_addr().ok()) {
            tracing::info!(addr = %address, "serving /metrics");
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
        self.context.store.close().await;
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
/// `host:port` bound here. A failure comes with the address it was for.
async fn listen(host: &str, port: u16) -> Result<TcpListener, (String, std::io::Error)> {
    let inherited = || -> std::io::Result<Option<TcpListener>> {
        match listenfd::ListenFd::from_env().take_tcp_listener(0)? {
            Some(inherited) => {
                inherited.set_nonblocking(true)?;
                TcpListener::from_std(inherited).map(Some)
            }
            None => Ok(None),
        }
    };
    match inherited() {
        Ok(Some(listener)) => Ok(listener),
        Ok(None) => bind(host, port).await,
        Err(error) => Err(("the socket passed in LISTEN_FDS".to_string(), error)),
    }
}

async fn bind(host: &str, port: u16) -> Result<TcpListener, (String, std::io::Error)> {
    let at = |error| (format!("{host}:{port}"), error);
    let address = tokio::net::lookup_host((host, port)).await.map_err(at)?.next().ok_or_else(|| {
        at(std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, format!("cannot resolve {host}")))
    })?;
    let at = |error| (address.to_string(), error);
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
        .map_err(at)?;
    socket.set_reuseaddr(true).map_err(at)?;
    socket.bind(address).map_err(at)?;
    socket.listen(1024).map_err(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_is_shown_without_its_password() {
        let cases = [
            ("mongodb://127.0.0.1:27217/?directConnection=true", "mongodb://127.0.0.1:27217/?directConnection=true"),
            (
                "mongodb://alice:s3cret@db1:27017,db2:27017/chat?replicaSet=rs0",
                "mongodb://alice:****@db1:27017,db2:27017/chat?replicaSet=rs0",
            ),
            ("mongodb+srv://alice:p%40ss@cluster0.example.net", "mongodb+srv://alice:****@cluster0.example.net"),
            ("mongodb://alice@db1/?authMechanism=MONGODB-X509", "mongodb://alice@db1/?authMechanism=MONGODB-X509"),
            ("mongodb://alice:a/b@c@db1/", "mongodb://alice:****@db1/"),
            (
                "mongodb://db1/?tls=true&tlsCertificateKeyFilePassword=hush",
                "mongodb://db1/?tls=true&tlsCertificateKeyFilePassword=****",
            ),
            (
                "mongodb://db1/?authMechanismProperties=AWS_SESSION_TOKEN:hush",
                "mongodb://db1/?authMechanismProperties=****",
            ),
            ("not a uri: hush", "****"),
        ];
        for (uri, shown) in cases {
            assert_eq!(masked_uri(uri), shown, "{uri}");
        }
    }

    #[test]
    fn a_failed_server_selection_says_what_each_server_answered() {
        let topology = "No available servers. Topology: { Type: ReplicaSetNoPrimary, Set Name: rs0, Servers: [ \
            { Address: 127.0.0.1:1, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), \
            labels: {\"SystemOverloadedError\", \"RetryableError\"}, source: None, server response: None }, \
            { Address: 127.0.0.1:2, Type: Unknown, source: None } ] }";
        assert_eq!(
            unreachable_servers(topology),
            "127.0.0.1:1: Connection refused (os error 111); 127.0.0.1:2: no answer"
        );
        assert_eq!(unreachable_servers("No available servers."), "no server answered");
    }

    #[test]
    fn a_port_in_use_says_which_setting_moves_it() {
        let error = BindError {
            setting: "server.port",
            address: "127.0.0.1:8080".to_string(),
            error: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(
            error.to_string(),
            "cannot listen on 127.0.0.1:8080: port 8080 is in use: stop what holds it, or set server.port \
             (ROOMCAST__SERVER__PORT) to a free port"
        );
        assert_eq!(StartupError::Bind(error).exit_code(), 4);
    }
}
