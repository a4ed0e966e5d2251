//! Starting a relay for a test, the one way: `spawn_app()` is a builder.
//! Awaited, it runs the relay in this process; `.process()` runs the built
//! binary as a child instead, handed a listening socket (systemd-style socket
//! activation) so the test knows its port without reading its logs. Either
//! way the relay gets a database of its own and the project's configuration,
//! with the limits relaxed for tests that send faster than a person. Settings
//! are given as dotted keys (`.set("limits.max_replay", "5")`), which reach a
//! child process as `ROOMCAST__…` variables, or as a closure over `Settings`
//! for a relay in this process (`.with(…)`).

use std::future::{Future, IntoFuture};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bson::Document;
use mongodb::{Collection, Database};
use roomcast::settings::Settings;
use roomcast::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{Client, PATIENCE};
use crate::db;

/// Limits high enough that only the tests about limits meet them: load tests
/// send far faster than a person.
pub const RELAXED_LIMITS: [(&str, &str); 7] = [
    ("limits.sends_per_second", "1000000"),
    ("limits.send_burst", "1000000"),
    ("limits.joins_per_second", "1000000"),
    ("limits.join_burst", "1000000"),
    ("limits.handshakes_per_second_per_ip", "1000000"),
    ("limits.handshake_burst_per_ip", "1000000"),
    ("limits.http_connections_per_ip", "1000000"),
];

/// A relay that notices a database outage and its end quickly: a send
/// during the outage fails within a second, and streams reopen often.
pub const RECOVER_FAST: [(&str, &str); 2] = [("mongo.timeout", "1s"), ("relay.max_backoff", "200ms")];

/// A relay running in this process.
pub struct TestApp {
    pub port: u16,
    /// The port of `/metrics` when `server.metrics_port` gives it one.
    pub metrics_port: Option<u16>,
    pub database: Database,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestApp {
    pub async fn client(&self, user: &str) -> Client {
        Client::connect(self.port, user).await
    }

    pub fn messages(&self) -> Collection<Document> {
        self.database.collection("messages")
    }

    pub fn notifications(&self) -> Collection<Document> {
        self.database.collection("notifications")
    }

    pub async fn message_count(&self) -> u64 {
        self.messages().count_documents(bson::doc! {}).await.unwrap()
    }
}

/// A database name no other test uses.
pub fn unique_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A client of the shared test database server.
pub async fn mongo(database_name: &str) -> Database {
    mongo_at(&db::uri(), database_name).await
}

pub async fn mongo_at(uri: &str, database_name: &str) -> Database {
    let client = mongodb::Client::with_uri_str(uri).await.expect("mongo client");
    client.database(database_name)
}

type Adjust = Box<dyn FnOnce(&mut Settings) + Send>;

/// How to start a relay: see the module's documentation.
#[must_use = "await it, or call .process()"]
pub struct Spawn {
    uri: Option<String>,
    database: Option<String>,
    settings: Vec<(String, String)>,
    adjust: Option<Adjust>,
    port: u16,
}

/// A relay on the shared database server, with a new database and the
/// relaxed limits; adjust it with the builder's methods.
pub fn spawn_app() -> Spawn {
    Spawn { uri: None, database: None, settings: Vec::new(), adjust: None, port: 0 }
}

impl Spawn {
    /// Against the database server at `uri` (a test's own `DbServer`).
    pub fn at(mut self, uri: &str) -> Self {
        self.uri = Some(uri.to_string());
        self
    }

    /// In the named database, which other relays of the test share.
    pub fn database(mut self, name: &str) -> Self {
        self.database = Some(name.to_string());
        self
    }

    /// One setting, as a dotted key: `set("limits.max_replay", "5")`.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Several settings at once.
    pub fn set_all(self, pairs: &[(&str, &str)]) -> Self {
        pairs.iter().fold(self, |spawn, (key, value)| spawn.set(key, value))
    }

    /// A change to the settings of a relay in this process, applied last.
    pub fn with(mut self, adjust: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.adjust = Some(Box::new(adjust));
        self
    }

    /// A child process listening on this port (to come back where it was).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    fn uri(&self) -> String {
        self.uri.clone().unwrap_or_else(db::uri)
    }

    /// Every setting: the relaxed limits, the database, then the test's own.
    fn overrides(&self, database_name: &str) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> =
            RELAXED_LIMITS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.push(("mongo.uri".to_string(), self.uri()));
        all.push(("mongo.database".to_string(), database_name.to_string()));
        all.extend(self.settings.iter().cloned());
        all
    }

    async fn start(self) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            roomcast::telemetry::init(roomcast::settings::Environment::Local);
        }
        let database_name = self.database.clone().unwrap_or_else(unique_database);
        let uri = self.uri();
        let mut overrides = self.overrides(&database_name);
        overrides.push(("server.port".to_string(), "0".to_string()));
        let pairs: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (mut settings, _) =
            Settings::load_with(&crate::project_dir().join("config"), &pairs).expect("test configuration loads");
        if let Some(adjust) = self.adjust {
            adjust(&mut settings);
        }
        let app = Application::build(settings).await.expect("application builds");
        let port = app.port();
        let metrics_port = app.metrics_port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        TestApp { port, metrics_port, database: mongo_at(&uri, &database_name).await, _stop: stop }
    }

    /// The built binary, with every setting as a `ROOMCAST__…` variable,
    /// handed `listener` as its socket.
    fn command(&self, listener: &std::net::TcpListener) -> tokio::process::Command {
        assert!(self.adjust.is_none(), ".with() changes a relay in this process; use .set() for a child process");
        let database_name = self.database.clone().unwrap_or_else(unique_database);
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"));
        command
            .current_dir(crate::project_dir())
            .env("ROOMCAST_ENV", "local")
            .env("RUST_LOG", "info")
            .env("LISTEN_FDS", "1")
            .env_remove("LISTEN_PID")
            .stdout(if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (key, value) in self.overrides(&database_name) {
            command.env(format!("ROOMCAST__{}", key.to_uppercase().replace('.', "__")), value);
        }
        pass_listener(&mut command, listener);
        command
    }

    /// Runs the built binary as a child process and returns once it serves.
    pub async fn process(self) -> RelayProcess {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("bind the relay's port");
        let port = listener.local_addr().unwrap().port();
        let mut child = self.command(&listener).spawn().expect("start the roomcast binary");
        // The child holds the socket now; ours would keep the port answering after it dies.
        drop(listener);
        tokio::select! {
            () = serving(port) => {}
            status = child.wait() => panic!("roomcast exited before serving: {status:?}"),
            () = tokio::time::sleep(PATIENCE) => panic!("roomcast did not serve within {PATIENCE:?}"),
        }
        RelayProcess { port, child }
    }

    /// Runs the built binary as a child process that is expected to stop
    /// during start-up: its exit code and what it wrote to stderr.
    pub async fn exits(self) -> (Option<i32>, String) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("bind the relay's port");
        let mut command = self.command(&listener);
        let child = command.stderr(Stdio::piped()).spawn().expect("start the roomcast binary");
        drop(listener);
        let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("roomcast did not stop within {PATIENCE:?}"))
            .expect("wait for roomcast");
        (output.status.code(), String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

impl IntoFuture for Spawn {
    type Output = TestApp;
    type IntoFuture = Pin<Box<dyn Future<Output = TestApp> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}

/// Puts `listener` at descriptor 3 of the child, where `LISTEN_FDS=1` says it is.
fn pass_listener(command: &mut tokio::process::Command, listener: &std::net::TcpListener) {
    let fd = listener.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2, fcntl) run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let moved = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if moved == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Completes once the relay on `port` answers `/healthz`; a request sent
/// before it serves waits in the listener's backlog.
async fn serving(port: u16) {
    loop {
        if let Ok(response) = try_http_get(port, "/healthz").await {
            if response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        // Refused or reset: the child is going away, which `wait` reports.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn try_http_get(port: u16, path: &str) -> std::io::Result<String> {
    try_http_get_with(port, path, &[]).await
}

async fn try_http_get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let headers: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// `GET path` on the relay, the whole response as text.
pub async fn http_get(port: u16, path: &str) -> String {
    try_http_get(port, path).await.expect("HTTP request")
}

/// `GET path` with extra headers: the status and the body as JSON.
pub async fn http_get_json(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let response = try_http_get_with(port, path, headers).await.expect("HTTP request");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

/// Waits until `GET path` answers with a body containing `needle`. Polls an
/// observable condition; it never guesses how long something takes.
pub async fn wait_for_http(port: u16, path: &str, needle: &str) {
    let waiting = async {
        loop {
            if http_get(port, path).await.contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE * 2, waiting).await.unwrap_or_else(|_| panic!("{path} never showed {needle}"));
}

/// A relay running as a separate process of the built binary.
pub struct RelayProcess {
    pub port: u16,
    child: tokio::process::Child,
}

impl RelayProcess {
    /// The process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// SIGTERM, then the process's exit code and how long it took to exit.
    pub async fn terminate(&mut self) -> (Option<i32>, std::time::Duration) {
        let pid = self.child.id().expect("running");
        let started = std::time::Instant::now();
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
        let status = self.child.wait().await.expect("wait for roomcast");
        (status.code(), started.elapsed())
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill roomcast");
    }

    pub async fn client(&self, user: &str) -> Client {
        Client::connect(self.port, user).await
    }

    /// The body of its `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = http_get(self.port, "/metrics").await;
        response.split("\r\n\r\n").nth(1).expect("a response body").to_string()
    }
}

/// Scrapes `relays` until `series`, summed over them, is at least `count`,
/// and returns the last scrape of each. A counter raised just after the
/// change a client saw may lag that client by a moment.
pub async fn wait_for_total(relays: &[&RelayProcess], series: &str, count: f64) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut scrapes = Vec::new();
        for relay in relays {
            scrapes.push(relay.metrics().await);
        }
        let total: f64 = scrapes.iter().map(|metrics| crate::operations::metric(metrics, series).unwrap_or(0.0)).sum();
        if total >= count {
            return scrapes;
        }
        assert!(tokio::time::Instant::now() < deadline, "{series} never reached {count} (at {total})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The seqs stored for `room`, in order.
pub async fn stored_seqs(database_name: &str, room: &str) -> Vec<i64> {
    use futures::TryStreamExt;
    let messages = mongo(database_name).await.collection::<Document>("messages");
    let cursor = messages.find(bson::doc! {"room": room}).sort(bson::doc! {"seq": 1}).await.unwrap();
    cursor.map_ok(|d| d.get_i64("seq").unwrap()).try_collect().await.unwrap()
}
