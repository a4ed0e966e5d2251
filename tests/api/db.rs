//! The database servers the tests run against. Most tests share one server
//! process started here for the whole test binary (or the external one named
//! by `ROOMCAST_TEST_MONGO_URI`). Tests that break the database start a
//! dedicated server they can kill and restart on the same port and storage.
//! The server is a `mongod` on PATH, else SecantusDB from `.dev/`, which
//! `scripts/install-db` installs. Every server process is tied to the test
//! process with PR_SET_PDEATHSIG, so none outlives a run, even a killed one.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use bson::doc;

static SHARED: OnceLock<String> = OnceLock::new();
static SHARED_SCRATCH: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_shared_scratch() {
    if let Some(scratch) = SHARED_SCRATCH.get() {
        let _ = std::fs::remove_dir_all(scratch);
    }
}

/// The URI of the database server shared by the tests.
pub fn uri() -> String {
    if let Ok(uri) = std::env::var("ROOMCAST_TEST_MONGO_URI") {
        return uri;
    }
    SHARED
        .get_or_init(|| {
            let mut server = DbServer::start(DbOptions { sync_on_commit: false, ..DbOptions::default() });
            let uri = server.uri.clone();
            // It lives as long as the test process; its storage is removed when that exits.
            if let Some(scratch) = server.scratch.take() {
                let _ = SHARED_SCRATCH.set(scratch);
                unsafe {
                    libc::atexit(remove_shared_scratch);
                }
            }
            std::mem::forget(server);
            uri
        })
        .clone()
}

/// How to start a dedicated server.
#[derive(Clone)]
pub struct DbOptions {
    /// Durable commits, so a SIGKILL loses nothing acknowledged (SecantusDB
    /// needs the flag for that; it costs an fsync per commit).
    pub sync_on_commit: bool,
    /// A directory that survives restarts; `None` uses a private temporary
    /// directory, removed when the server is dropped.
    pub storage: Option<PathBuf>,
    /// Enables `configureFailPoint`.
    pub test_commands: bool,
    /// Caps the oplog, so a stream's history can be lost on purpose.
    pub oplog_max_entries: Option<u32>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions { sync_on_commit: true, storage: None, test_commands: false, oplog_max_entries: None }
    }
}

/// A database server process this test controls.
pub struct DbServer {
    pub uri: String,
    port: u16,
    options: DbOptions,
    pid: u32,
    exited: mpsc::Receiver<()>,
    /// The temporary storage this server owns, if it was given none.
    scratch: Option<PathBuf>,
}

enum Binary {
    Mongod(PathBuf),
    Secantus(PathBuf),
}

fn find_binary() -> Binary {
    if let Some(mongod) = which("mongod") {
        return Binary::Mongod(mongod);
    }
    // ROOMCAST_DB=py or rs picks one build of SecantusDB, as scripts/install-db does.
    let builds = match std::env::var("ROOMCAST_DB").as_deref() {
        Ok("py") => vec![".dev/venv/bin/secantusd-py"],
        Ok("rs") => vec![".dev/secantus/bin/secantusd-rs"],
        _ => vec![".dev/secantus/bin/secantusd-rs", ".dev/venv/bin/secantusd-py"],
    };
    for candidate in builds {
        let path = crate::project_dir().join(candidate);
        if path.exists() {
            return Binary::Secantus(path);
        }
    }
    panic!("no database server found: run scripts/install-db (scripts/test does), or set ROOMCAST_TEST_MONGO_URI");
}

/// Whether the shared server stops an index scan at a query's `limit`, as
/// MongoDB and secantusd-rs do. The pip build of SecantusDB reads the whole
/// range its filter bounds, whatever the limit (docs/design.md, "Query
/// bounds").
pub fn stops_scans_at_limits() -> bool {
    if std::env::var_os("ROOMCAST_TEST_MONGO_URI").is_some() {
        return true;
    }
    !matches!(find_binary(), Binary::Secantus(path) if path.ends_with("secantusd-py"))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|path| path.is_file()))
}

impl DbServer {
    /// Starts a server on a free loopback port and returns once it accepts connections.
    pub fn start(mut options: DbOptions) -> DbServer {
        // Not `:memory:`: only the pip build knows it, and servers must never share a directory.
        let scratch = options.storage.is_none().then(|| {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::env::temp_dir().join(format!("roomcast-db-{}-{n}", std::process::id()))
        });
        if let Some(scratch) = &scratch {
            options.storage = Some(scratch.clone());
        }
        let mut server = DbServer::launch(options, None);
        server.scratch = scratch;
        server
    }

    fn launch(options: DbOptions, port: Option<u16>) -> DbServer {
        let (ready_tx, ready_rx) = mpsc::channel::<(u32, String, u16)>();
        let (exit_tx, exited) = mpsc::channel::<()>();
        let thread_options = options.clone();
        // The parent-death signal fires when the *thread* that spawned the child
        // ends, so the child is spawned from a thread that lives as long as the
        // child and then keeps draining the server's output.
        std::thread::spawn(move || {
            let (mut command, ready_marker, address_of) = server_command(&thread_options, port);
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = command.spawn().expect("cannot start the database server");
            let pid = child.id();
            let (lines_tx, lines_rx) = mpsc::channel::<String>();
            let outputs: [Box<dyn std::io::Read + Send>; 2] =
                [Box::new(child.stderr.take().unwrap()), Box::new(child.stdout.take().unwrap())];
            for output in outputs {
                let lines_tx = lines_tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(output).lines().map_while(Result::ok) {
                        if std::env::var_os("ROOMCAST_TEST_DB_LOG").is_some() {
                            eprintln!("[db {pid}] {line}");
                        }
                        let _ = lines_tx.send(line);
                    }
                });
            }
            drop(lines_tx);
            let mut announced = false;
            for line in lines_rx {
                if !announced && line.contains(&ready_marker) {
                    announced = true;
                    let (uri, port) = address_of(&line);
                    let _ = ready_tx.send((pid, uri, port));
                }
            }
            let _ = child.wait();
            let _ = exit_tx.send(());
        });
        let (pid, uri, port) =
            ready_rx.recv_timeout(Duration::from_secs(60)).expect("the database server did not start within 60 s");
        if uri.contains("replicaSet=rs0") {
            initiate_replica_set(&uri);
        }
        DbServer { uri, port, options, pid, exited, scratch: None }
    }

    /// Sends `signal` and waits until the process is gone.
    pub fn stop(&mut self, signal: i32) {
        unsafe {
            libc::kill(self.pid as i32, signal);
        }
        self.exited.recv_timeout(Duration::from_secs(30)).expect("the database server did not exit");
    }

    /// Starts the server again on the same port and storage.
    pub fn restart(&mut self) {
        let mut again = DbServer::launch(self.options.clone(), Some(self.port));
        assert_eq!(again.uri, self.uri);
        again.scratch = self.scratch.take();
        // The old process is gone; forgetting it keeps Drop from signalling a reused pid.
        std::mem::forget(std::mem::replace(self, again));
    }

    pub async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(&self.uri).await.expect("mongo client")
    }

    /// Fails every change-stream command of the relay (app name `roomcast`)
    /// with a non-resumable error until `heal_change_streams`; the tests' own
    /// clients are not affected.
    pub async fn break_change_streams(&self) {
        let data = doc! { "failCommands": ["aggregate", "getMore"], "errorCode": 280, "appName": "roomcast" };
        self.fail_point(doc! { "configureFailPoint": "failCommand", "mode": "alwaysOn", "data": data }).await;
    }

    pub async fn heal_change_streams(&self) {
        self.fail_point(doc! { "configureFailPoint": "failCommand", "mode": "off" }).await;
    }

    async fn fail_point(&self, command: bson::Document) {
        self.client().await.database("admin").run_command(command).await.expect("configureFailPoint");
    }

    /// Makes the server drop oplog entries beyond its cap now.
    pub async fn prune_oplog(&self) {
        let command = doc! { "secantusAdmin.pruneOplog": 1 };
        self.client().await.database("admin").run_command(command).await.expect("prune the oplog");
    }
}

impl Drop for DbServer {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
        }
        if let Some(scratch) = &self.scratch {
            let _ = self.exited.recv_timeout(Duration::from_secs(10));
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

type AddressOf = Box<dyn Fn(&str) -> (String, u16) + Send>;

fn server_command(options: &DbOptions, port: Option<u16>) -> (Command, String, AddressOf) {
    let storage = options.storage.clone();
    match find_binary() {
        Binary::Secantus(binary) => {
            let mut command = Command::new(binary);
            command.args(["--host", "127.0.0.1", "--port", &port.unwrap_or(0).to_string(), "--storage-path"]);
            command.arg(storage.as_deref().expect("storage is always set by start()"));
            if options.sync_on_commit {
                command.arg("--sync-on-commit");
            }
            if options.test_commands {
                command.arg("--enable-test-commands");
            }
            if binary_is_rust_build(&command) {
                // Its WiredTiger log otherwise preallocates 128 MB per server.
                command.args(["--log-file-max", "16MB"]);
            }
            if let Some(cap) = options.oplog_max_entries {
                command.args(["--oplog-max-entries", &cap.to_string()]);
            }
            let address_of: AddressOf = Box::new(|line: &str| {
                let address = line.rsplit("listening on ").next().unwrap().split_whitespace().next().unwrap();
                let port = address.rsplit(':').next().unwrap().parse().unwrap();
                (format!("mongodb://{address}/?directConnection=true"), port)
            });
            (command, "listening on".to_string(), address_of)
        }
        Binary::Mongod(binary) => {
            let port = port
                .unwrap_or_else(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
            let dir = storage
                .unwrap_or_else(|| std::env::temp_dir().join(format!("roomcast-mongod-{}-{port}", std::process::id())));
            std::fs::create_dir_all(&dir).unwrap();
            let mut command = Command::new(binary);
            command.args(["--replSet", "rs0", "--bind_ip", "127.0.0.1", "--port", &port.to_string(), "--dbpath"]);
            command.arg(dir);
            if options.test_commands {
                command.args(["--setParameter", "enableTestCommands=1"]);
            }
            let address_of: AddressOf =
                Box::new(move |_| (format!("mongodb://127.0.0.1:{port}/?directConnection=true&replicaSet=rs0"), port));
            (command, "Waiting for connections".to_string(), address_of)
        }
    }
}

fn binary_is_rust_build(command: &Command) -> bool {
    command.get_program().to_string_lossy().ends_with("secantusd-rs")
}

/// A fresh `mongod --replSet` must be initiated before it accepts writes.
fn initiate_replica_set(uri: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let direct = uri.replace("&replicaSet=rs0", "");
        let client = mongodb::Client::with_uri_str(&direct).await.unwrap();
        let host = direct.trim_start_matches("mongodb://").split('/').next().unwrap().to_string();
        let config = doc! { "_id": "rs0", "members": [{ "_id": 0, "host": host }] };
        // Already initiated after a restart: the error is expected then.
        let _ = client.database("admin").run_command(doc! { "replSetInitiate": config }).await;
        // Writes need a primary; `hello` reports one once the election is over.
        for _ in 0..600 {
            let hello = client.database("admin").run_command(doc! { "hello": 1 }).await.unwrap();
            if hello.get_bool("isWritablePrimary").unwrap_or(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("mongod did not become primary");
    });
}
