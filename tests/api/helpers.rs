//! Starting the relay for a test: in-process on port 0 with a database of its
//! own (`spawn_app`), or as a real child process of the built binary
//! (`spawn_process`), plus a plain MongoDB client for direct writes and checks.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use bson::Document;
use mongodb::{Collection, Database};
use roomcast::settings::Settings;
use roomcast::Application;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::{Client, PATIENCE};
use crate::db;

pub struct TestApp {
    pub port: u16,
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

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A database name no other test uses.
pub fn unique_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The project's settings (base + local), pointed at a test database.
pub fn test_settings(uri: &str, database_name: &str) -> Settings {
    let (mut settings, _) = Settings::load(&project_dir().join("config")).expect("project configuration loads");
    settings.server.port = 0;
    settings.mongo.uri = uri.to_string();
    settings.mongo.database = database_name.to_string();
    // Load tests send far faster than a person; the limit tests set their own.
    let limits = &mut settings.limits;
    (limits.sends_per_second, limits.send_burst) = (1_000_000, 1_000_000);
    (limits.joins_per_second, limits.join_burst) = (1_000_000, 1_000_000);
    (limits.handshakes_per_second_per_ip, limits.handshake_burst_per_ip) = (1_000_000, 1_000_000);
    settings
}

/// The same generous limits for relays run as processes.
pub const GENEROUS_LIMITS: [(&str, &str); 6] = [
    ("ROOMCAST__LIMITS__SENDS_PER_SECOND", "1000000"),
    ("ROOMCAST__LIMITS__SEND_BURST", "1000000"),
    ("ROOMCAST__LIMITS__JOINS_PER_SECOND", "1000000"),
    ("ROOMCAST__LIMITS__JOIN_BURST", "1000000"),
    ("ROOMCAST__LIMITS__HANDSHAKES_PER_SECOND_PER_IP", "1000000"),
    ("ROOMCAST__LIMITS__HANDSHAKE_BURST_PER_IP", "1000000"),
];

pub async fn mongo(database_name: &str) -> Database {
    mongo_at(&db::uri(), database_name).await
}

pub async fn mongo_at(uri: &str, database_name: &str) -> Database {
    let client = mongodb::Client::with_uri_str(uri).await.expect("mongo client");
    client.database(database_name)
}

/// Starts the relay in this process with its own database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_at(&db::uri(), adjust).await
}

/// Starts the relay in this process against the server at `uri`.
pub async fn spawn_app_at(uri: &str, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        roomcast::telemetry::init(roomcast::settings::Environment::Local);
    }
    let database_name = unique_database();
    let mut settings = test_settings(uri, &database_name);
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("application builds");
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    TestApp { port, database: mongo_at(uri, &database_name).await, _stop: stop }
}

/// Waits until `GET path` answers with a body containing `needle`. Polls an
/// observable condition; it never guesses how long something takes.
pub async fn wait_for_http(port: u16, path: &str, needle: &str) {
    let waiting = async {
        loop {
            if crate::errors::http_get(port, path).await.contains(needle) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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
        let response = crate::errors::http_get(self.port, "/metrics").await;
        response.split("\r\n\r\n").nth(1).expect("a response body").to_string()
    }
}

/// The seqs stored for `room`, in order.
pub async fn stored_seqs(database_name: &str, room: &str) -> Vec<i64> {
    use futures::TryStreamExt;
    let messages = mongo(database_name).await.collection::<Document>("messages");
    let cursor = messages.find(bson::doc! {"room": room}).sort(bson::doc! {"seq": 1}).await.unwrap();
    cursor.map_ok(|d| d.get_i64("seq").unwrap()).try_collect().await.unwrap()
}

/// Starts `target/.../roomcast` on port 0 against the given database and
/// returns once it logged the address it listens on.
pub async fn spawn_process(database_name: &str) -> RelayProcess {
    spawn_process_at(&db::uri(), database_name, &[]).await
}

pub async fn spawn_process_at(uri: &str, database_name: &str, env: &[(&str, &str)]) -> RelayProcess {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"));
    command
        .current_dir(project_dir())
        .env("ROOMCAST_ENV", "local")
        .env("ROOMCAST__SERVER__PORT", "0")
        .env("ROOMCAST__MONGO__URI", uri)
        .env("ROOMCAST__MONGO__DATABASE", database_name)
        .env("RUST_LOG", "info")
        .envs(GENEROUS_LIMITS)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("start the roomcast binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(address) = line.split("addr=").nth(1) {
                let address = address.split_whitespace().next().unwrap();
                return address.rsplit(':').next().unwrap().parse::<u16>().unwrap();
            }
        }
        panic!("roomcast exited before listening");
    })
    .await
    .expect("roomcast did not listen in time");
    // Keep draining its output so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    RelayProcess { port, child }
}
