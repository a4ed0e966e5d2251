//! Layered configuration. `config/base.yaml` is read first, then
//! `config/{ROOMCAST_ENV}.yaml` (default `local`), then environment variables
//! named `ROOMCAST__SECTION__KEY`. Unknown keys are refused, and every error
//! names the offending key in one line, so a typo never silently falls back
//! to a default.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

mod validate;

/// A configuration problem, always naming the key at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { key: key.into(), message: message.into() }
    }
}

/// The environment a process runs in, chosen by `ROOMCAST_ENV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Local,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::Production => "production",
        }
    }

    fn from_env() -> Result<Self, ConfigError> {
        match std::env::var("ROOMCAST_ENV").as_deref() {
            Err(_) | Ok("local") => Ok(Environment::Local),
            Ok("production") => Ok(Environment::Production),
            Ok(other) => {
                Err(ConfigError::new("ROOMCAST_ENV", format!("`{other}` is not one of `local`, `production`")))
            }
        }
    }
}

/// The whole configuration file, as layered and validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub mongo: MongoSettings,
    pub auth: AuthSettings,
    pub limits: LimitSettings,
    pub recovery: RecoverySettings,
    pub relay: RelaySettings,
    pub presence: PresenceSettings,
    pub routes: Vec<RouteSettings>,
}

/// `server`: the listener, timeouts and what the HTTP side serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// How often the server sends a WebSocket ping.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Browsers' `Origin` values allowed to connect; empty allows any. Clients
    /// that send no `Origin` (not browsers) are not affected.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// A header listing the addresses a request was forwarded for, comma
    /// separated (`x-forwarded-for`); believed only from `trusted_proxies`.
    #[serde(default)]
    pub client_ip_header: Option<String>,
    /// The deployment's own proxies, as CIDR networks (a bare address is a
    /// network of one): only their connections' `client_ip_header` counts.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// How long a new connection may take to send its first complete request head.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// How long a kept-alive HTTP connection may take, after an answer, to
    /// send its next complete request head.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// A directory served at `/` (the demo page); none serves nothing.
    #[serde(default)]
    pub static_dir: Option<std::path::PathBuf>,
    /// How long shutdown may take, from the signal to the exit.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// `/readyz` fails when a change stream is further behind than this.
    #[serde(with = "humantime_serde")]
    pub ready_max_lag: Duration,
    /// A port of its own for `/metrics` (on `host`), which the main port
    /// then does not serve; none serves `/metrics` on the main port.
    #[serde(default)]
    pub metrics_port: Option<u16>,
    /// A WebSocket whose socket takes no byte for this long while frames
    /// wait for it is closed (4008); an HTTP answer not sent within it
    /// closes its connection.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
}

impl ServerSettings {
    /// `trusted_proxies` as networks; the error names the first entry that is not one.
    pub fn trusted_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        let network = |entry: &String| {
            let entry = entry.trim();
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    let example = "for example 10.0.0.0/8, 2001:db8::/48 or 192.0.2.7";
                    ConfigError::new("server.trusted_proxies", format!("`{entry}` is not a CIDR network ({example})"))
                })
        };
        self.trusted_proxies.iter().map(network).collect()
    }
}

/// `mongo`: where the database is, and who prepares it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MongoSettings {
    pub uri: String,
    pub database: String,
    /// Bound on server selection, so a send during an outage fails fast with
    /// `db_unavailable` instead of hanging for the driver's default 30 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Whether start-up creates the indexes and turns on the pre-images it
    /// needs; `false` only checks that they exist (deploy/mongodb/setup.js).
    #[serde(default = "yes")]
    pub create_indexes: bool,
    /// Connections to MongoDB for what clients ask (sends, joins, pages,
    /// presence writes). Change streams and heartbeats have a pool of their
    /// own, so client work never queues them.
    pub max_pool_size: u32,
    /// How long the database may spend on one read a client's request
    /// causes (`maxTimeMS`).
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
}

fn yes() -> bool {
    true
}

/// `auth.mode`: how a connection's user is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// The user id is taken from the `user` query parameter. Local use only.
    None,
    /// A signed JWT; the user id is its `sub`.
    Jwt,
}

/// Who may join (and so send to) a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomPolicy {
    Open,
    /// The token's `rooms` claim lists room names or glob patterns.
    Claim,
    /// The `room_members` collection decides, and is watched for removals.
    Membership,
}

/// `auth`: identity and room policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Whether a token may come in the `token` query parameter.
    pub query_token: bool,
    pub room_policy: RoomPolicy,
    pub jwt: JwtSettings,
}

/// A token signature algorithm roomcast accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
    ES256,
}

/// Where keys come from. Only paths and variable names live here, never
/// key material, so these settings can be logged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    pub algorithms: Vec<JwtAlgorithm>,
    /// HS256: a file holding the shared secret.
    pub secret_file: Option<std::path::PathBuf>,
    /// HS256: the name of an environment variable holding the shared secret.
    pub secret_env: Option<String>,
    /// RS256 / ES256: a PEM public key.
    pub key_file: Option<std::path::PathBuf>,
    /// A JSON Web Key Set; the token's `kid` selects the key.
    pub jwks_file: Option<std::path::PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Accept tokens of any issuer in production, where `issuer` is otherwise required.
    #[serde(default)]
    pub allow_any_issuer: bool,
    /// Accept tokens of any audience in production, where `audience` is otherwise required.
    #[serde(default)]
    pub allow_any_audience: bool,
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

/// `limits`: every bound on what a client may make the relay do or hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest accepted WebSocket message; larger ones close the socket with 1009.
    pub max_frame_bytes: usize,
    /// Largest `body`, measured as compact JSON.
    pub max_body_bytes: usize,
    /// Deepest accepted `body` nesting (MongoDB itself stops at 100 levels).
    pub max_body_depth: usize,
    /// Most messages replayed on a join with `since`.
    pub max_replay: i64,
    /// Most bytes of frames one replay holds; past it, the newest messages
    /// that fit are replayed and `recovered` is false.
    pub max_replay_bytes: usize,
    /// Largest document relayed, as BSON and as a frame; a larger one is
    /// relayed as a stub with `too_large: true`.
    pub max_document_bytes: usize,
    /// Frames a connection may have queued before it counts as a slow consumer.
    pub send_queue_frames: usize,
    /// Most bytes one connection may hold: queued and held frames, replays,
    /// and the bodies of its pending sends.
    pub send_queue_bytes: usize,
    /// Bytes every connection may hold without drawing on the shared pool.
    pub connection_reserve_bytes: usize,
    /// Bytes all connections of a replica together may hold beyond their reserves.
    pub buffer_pool_bytes: usize,
    /// Most bytes of `buffer_pool_bytes` one user may borrow, over all their
    /// connections and HTTP answers on the replica.
    pub user_pool_bytes: usize,
    /// Open WebSocket connections per replica; more handshakes get 503.
    pub max_connections: usize,
    /// Of those, how many may be SSE streams (`GET /sse`), which hold the
    /// HTTP server's buffers too (docs/operations.md, "Memory"); 0 turns
    /// SSE off.
    pub max_sse_streams: usize,
    pub max_rooms_per_connection: usize,
    /// Rooms joined at once over all connections of a replica; each costs
    /// memory of its own (docs/operations.md, "Memory").
    pub max_joined_rooms: usize,
    /// Most messages one `history` page holds (a larger `limit` is capped).
    pub max_history_page: i64,
    /// Most rooms one `rooms` answer lists.
    pub max_rooms_listed: usize,
    /// Above this many present users, a room's presence is a count (`occupancy`).
    pub presence_max_listed: usize,
    /// At most one `typing` per user per room is written per interval.
    #[serde(with = "humantime_serde")]
    pub typing_interval: Duration,
    /// Token bucket for `read` and `typing` frames of one user.
    pub read_markers_per_second: u32,
    pub read_marker_burst: u32,
    pub max_connections_per_user: usize,
    /// Token bucket for send, edit and delete frames of one user.
    pub sends_per_second: u32,
    pub send_burst: u32,
    /// Token bucket for joins and pages (`history`, `rooms`,
    /// `notifications`, HTTP history) of one user.
    pub joins_per_second: u32,
    pub join_burst: u32,
    /// Token bucket for WebSocket handshakes from one client address.
    pub handshakes_per_second_per_ip: u32,
    pub handshake_burst_per_ip: u32,
    /// Connections one client address may hold in their HTTP phase: not
    /// upgraded to a WebSocket yet, or serving plain HTTP.
    pub http_connections_per_ip: usize,
}

/// `recovery`: how much notification history each replica keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySettings {
    /// How long each replica keeps user-route notifications for `since_cursor`.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Most notifications kept per user route, whatever the window.
    pub max_events: usize,
    /// Most bytes of frames kept per user route, whatever the window.
    pub max_bytes: usize,
    /// Past the ring, a cursor is recovered from MongoDB's own history (a
    /// change stream from the cursor's time): at most this many such
    /// scans at once per replica; more answer `recovered: false`.
    pub max_scans: usize,
    /// The oldest cursor a scan goes back to, from now; older ones answer
    /// `recovered: false` without a scan.
    #[serde(with = "humantime_serde")]
    pub max_scan_span: Duration,
    /// How long one scan may take in all.
    #[serde(with = "humantime_serde")]
    pub scan_timeout: Duration,
}

/// `presence`: how replicas tell each other they are alive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSettings {
    /// How often each replica raises its heartbeat.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A replica whose heartbeat stood still this long is gone: its users leave.
    #[serde(with = "humantime_serde")]
    pub replica_timeout: Duration,
}

/// `relay`: how broken change streams are reopened.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Longest wait between two attempts to reopen a broken change stream.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

/// Whom a route's documents go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Every member of the document's room.
    Room,
    /// Every connection of the document's user.
    User,
}

/// The change-stream operations a route relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Insert,
    Update,
    Replace,
    /// Room routes only: routed by the document as it was before (pre-images).
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Replace => "replace",
            Operation::Delete => "delete",
        }
    }
}

/// One entry of `routes`: a collection watched by one change stream per process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    pub name: String,
    pub collection: String,
    pub channel: Channel,
    pub key: String,
    pub operations: Vec<Operation>,
    /// The BSON type of the user key of a `user` route; documents whose key
    /// has another type are not relayed.
    #[serde(default)]
    pub key_type: KeyType,
    /// An extra MongoDB filter on the change event, ANDed after `operationType`.
    #[serde(default, rename = "match")]
    pub filter: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The BSON type a user route's key must have: a user id is a string unless
/// the route says the ids are ObjectIds, so a user who picked the 24-hex
/// form of someone's ObjectId is never taken for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    #[default]
    String,
    ObjectId,
}

impl Settings {
    /// Reads `base.yaml`, the environment's file and `ROOMCAST__*` variables.
    pub fn load(config_dir: &Path) -> Result<(Settings, Environment), ConfigError> {
        Settings::load_with(config_dir, &[])
    }

    /// As `load`, with `overrides` (dotted keys such as `limits.max_replay`)
    /// applied last, above the environment: for programs that embed roomcast.
    pub fn load_with(config_dir: &Path, overrides: &[(&str, &str)]) -> Result<(Settings, Environment), ConfigError> {
        let environment = Environment::from_env()?;
        let mut builder = config::Config::builder()
            .add_source(config::File::from(config_dir.join("base.yaml")).required(true))
            .add_source(config::File::from(config_dir.join(format!("{}.yaml", environment.as_str()))).required(false))
            .add_source(
                config::Environment::with_prefix("ROOMCAST")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("auth.jwt.algorithms")
                    .with_list_parse_key("server.allowed_origins")
                    .with_list_parse_key("server.trusted_proxies"),
            );
        for (key, value) in overrides {
            builder = builder.set_override(*key, *value).map_err(|e| ConfigError::new(*key, e.to_string()))?;
        }
        let raw = builder.build().map_err(|e| ConfigError::new("config", e.to_string()))?;
        let settings: Settings = serde_path_to_error::deserialize(raw).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(path, e.into_inner().to_string())
        })?;
        settings.validate(environment)?;
        Ok((settings, environment))
    }
}
