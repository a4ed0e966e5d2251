//! `scripts/dev` as a newcomer runs it: the URLs come once the relay
//! answers, and a SIGTERM to the script stops the relay and the database it
//! started, the relay first, each with one signal.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::PATIENCE;
use crate::helpers::http_get;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn accepts(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

#[tokio::test]
async fn the_dev_script_prints_its_urls_once_the_relay_answers_and_sigterm_stops_everything() {
    let (port, db_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("roomcast-dev-{}-{port}", std::process::id()));
    let mut script = tokio::process::Command::new(crate::project_dir().join("scripts/dev"))
        .env("ROOMCAST__SERVER__PORT", port.to_string())
        .env("ROOMCAST_DEV_DB_PORT", db_port.to_string())
        .env("ROOMCAST_DEV_DATA", dir.join("data"))
        .env("ROOMCAST_DEV_BIN", env!("CARGO_BIN_EXE_roomcast"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("scripts/dev starts");
    let mut lines = BufReader::new(script.stdout.take().unwrap()).lines();
    let waiting = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("dev: demo page on") {
                return line;
            }
        }
        panic!("scripts/dev ended before it printed its URLs");
    };
    let printed = tokio::time::timeout(PATIENCE * 4, waiting).await.expect("the URLs within patience");
    assert_eq!(printed, format!("dev: demo page on http://127.0.0.1:{port}/"));
    // Printed only once the relay answers.
    assert!(http_get(port, "/healthz").await.contains(r#""status":"ok""#));
    assert!(accepts(db_port).await, "the database it started");

    let pid = script.id().expect("running") as i32;
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(PATIENCE, script.wait()).await.expect("it stops").unwrap();
    assert_eq!(status.code(), Some(143), "128 + SIGTERM");
    assert!(!accepts(port).await, "the relay is stopped");
    assert!(!accepts(db_port).await, "the database is stopped");
    let log = std::fs::read_to_string(dir.join("db.log")).unwrap_or_default();
    assert!(!log.contains("Traceback"), "one signal, no traceback:\n{log}");
    let _ = std::fs::remove_dir_all(dir);
}
