//! The database server the tests run against: `ROOMCAST_TEST_MONGO_URI` when
//! set, otherwise one MongoDB-compatible server process started here for the
//! whole test binary (a `mongod` on PATH, else SecantusDB from `.dev/`, which
//! `scripts/install-db` installs). The process is tied to the test process
//! with PR_SET_PDEATHSIG, so it never outlives a run, even a killed one.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

static SHARED: OnceLock<String> = OnceLock::new();

/// The URI of the database server shared by the tests.
pub fn uri() -> String {
    if let Ok(uri) = std::env::var("ROOMCAST_TEST_MONGO_URI") {
        return uri;
    }
    SHARED.get_or_init(|| start(Path::new(":memory:"))).clone()
}

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

enum Server {
    Mongod(PathBuf),
    Secantus(PathBuf),
}

fn find_server() -> Server {
    if let Some(mongod) = which("mongod") {
        return Server::Mongod(mongod);
    }
    for candidate in [".dev/secantus/bin/secantusd-rs", ".dev/venv/bin/secantusd-py"] {
        let path = project_dir().join(candidate);
        if path.exists() {
            return Server::Secantus(path);
        }
    }
    panic!("no database server found: run scripts/install-db (scripts/test does), or set ROOMCAST_TEST_MONGO_URI");
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|path| path.is_file()))
}

/// Starts a server process on a free loopback port and returns its URI once it
/// accepts connections. `storage` is a directory, or `:memory:`.
pub fn start(storage: &Path) -> String {
    let (ready_tx, ready_rx) = mpsc::channel::<String>();
    let storage = storage.to_path_buf();
    // The parent-death signal fires when the *thread* that spawned the child
    // ends, so the child is spawned from a thread that lives as long as the
    // process and then keeps draining the server's output.
    std::thread::spawn(move || {
        let (mut command, ready_marker, uri_for) = server_command(&storage);
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
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        for output in [Box::new(stderr) as Box<dyn std::io::Read + Send>, Box::new(stdout)] {
            let lines_tx = lines_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if std::env::var_os("ROOMCAST_TEST_DB_LOG").is_some() {
                        eprintln!("[db] {line}");
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
                let _ = ready_tx.send(uri_for(&line));
            }
        }
        let status = child.wait();
        eprintln!("database server exited: {status:?}");
    });
    let uri = ready_rx.recv_timeout(Duration::from_secs(60)).expect("the database server did not start within 60 s");
    if uri.contains("replicaSet=rs0") {
        initiate_replica_set(&uri);
    }
    uri
}

type UriFor = Box<dyn Fn(&str) -> String + Send>;

fn server_command(storage: &Path) -> (Command, String, UriFor) {
    match find_server() {
        Server::Secantus(binary) => {
            let mut command = Command::new(binary);
            command.args(["--host", "127.0.0.1", "--port", "0", "--storage-path"]).arg(storage);
            command.arg("--sync-on-commit");
            let uri_for: UriFor = Box::new(|line: &str| {
                let address = line.rsplit("listening on ").next().unwrap().split_whitespace().next().unwrap();
                format!("mongodb://{address}/?directConnection=true")
            });
            (command, "listening on".to_string(), uri_for)
        }
        Server::Mongod(binary) => {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let dir = if storage == Path::new(":memory:") {
                std::env::temp_dir().join(format!("roomcast-mongod-{}-{port}", std::process::id()))
            } else {
                storage.to_path_buf()
            };
            std::fs::create_dir_all(&dir).unwrap();
            let mut command = Command::new(binary);
            command.args(["--replSet", "rs0", "--bind_ip", "127.0.0.1", "--port", &port.to_string(), "--dbpath"]);
            command.arg(dir);
            let uri_for: UriFor =
                Box::new(move |_| format!("mongodb://127.0.0.1:{port}/?directConnection=true&replicaSet=rs0"));
            (command, "Waiting for connections".to_string(), uri_for)
        }
    }
}

/// A fresh `mongod --replSet` must be initiated before it accepts writes.
fn initiate_replica_set(uri: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let direct = uri.replace("&replicaSet=rs0", "");
        let client = mongodb::Client::with_uri_str(&direct).await.unwrap();
        let host = direct.trim_start_matches("mongodb://").split('/').next().unwrap().to_string();
        let config = bson::doc! { "_id": "rs0", "members": [{ "_id": 0, "host": host }] };
        let _ = client.database("admin").run_command(bson::doc! { "replSetInitiate": config }).await;
        // Writes need a primary; `hello` reports one once the election is over.
        for _ in 0..600 {
            let hello = client.database("admin").run_command(bson::doc! { "hello": 1 }).await.unwrap();
            if hello.get_bool("isWritablePrimary").unwrap_or(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("mongod did not become primary");
    });
}
