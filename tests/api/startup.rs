//! Start-up failures a newcomer meets first, each one line on stderr with a
//! documented exit code, whatever `RUST_BACKTRACE` says: MongoDB not
//! reachable (3), the port taken (4). Configuration errors (2) are in
//! config.rs and check_only.rs.

use std::process::Stdio;

use crate::client::PATIENCE;
use crate::db;
use crate::helpers::unique_database;

/// Runs the built binary with the local configuration, `settings` as
/// `ROOMCAST__…` variables and backtraces asked for, and no socket handed
/// over: its exit code and stderr.
async fn start_expecting_failure(settings: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"));
    command
        .current_dir(crate::project_dir())
        .env("ROOMCAST_ENV", "local")
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "info")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in settings {
        command.env(format!("ROOMCAST__{}", key.to_uppercase().replace('.', "__")), value);
    }
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .unwrap_or_else(|_| panic!("roomcast did not stop within {PATIENCE:?}"))
        .expect("run roomcast");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).trim().to_string())
}

/// A port nothing listens on: bound, then let go.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_database_stops_start_up_with_one_line_and_exit_code_3() {
    let port = closed_port();
    let uri = format!("mongodb://alice:s3cret@127.0.0.1:{port}/?directConnection=true");
    let (code, stderr) = start_expecting_failure(&[("mongo.uri", &uri), ("mongo.timeout", "1s")]).await;
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let tried = format!("mongodb://alice:****@127.0.0.1:{port}/?directConnection=true");
    assert!(stderr.starts_with(&format!("roomcast: cannot reach MongoDB at {tried} within 1s")), "{stderr}");
    assert!(stderr.contains("Connection refused"), "says why: {stderr}");
    assert!(stderr.contains("ROOMCAST__MONGO__URI"), "says what to check: {stderr}");
    assert!(!stderr.contains("s3cret"), "the password is masked: {stderr}");
    assert!(!stderr.contains("SystemOverloadedError"), "no driver dump: {stderr}");
}

#[tokio::test]
async fn a_port_in_use_stops_start_up_with_one_line_and_exit_code_4() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let database = unique_database();
    let (code, stderr) =
        start_expecting_failure(&[("mongo.uri", &db::uri()), ("mongo.database", &database), ("server.port", &port)])
            .await;
    drop(taken);
    assert_eq!(code, Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, no backtrace: {stderr}");
    assert_eq!(
        stderr,
        format!(
            "roomcast: cannot listen on 127.0.0.1:{port}: port {port} is in use: stop what holds it, or set \
             server.port (ROOMCAST__SERVER__PORT) to a free port"
        )
    );
}
