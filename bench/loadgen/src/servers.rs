//! Starting and stopping the two servers under test. Each run gets a fresh
//! process (so peak RSS and CPU belong to that run alone) and a fresh
//! database name. Children die with the load generator (PR_SET_PDEATHSIG),
//! so an interrupted benchmark leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::dialect::Target;

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the binaries are and how they reach the database.
#[derive(Debug, Clone)]
pub struct Setup {
    pub repo: PathBuf,
    pub roomcast_bin: PathBuf,
    pub peer_dir: PathBuf,
    pub mongo_uri: String,
    pub logs: PathBuf,
    /// roomcast's per-connection queue for saturation runs (fan-out and
    /// growth), raised because the peer has no such bound at all; the other
    /// runs keep roomcast's defaults.
    pub send_queue_frames: usize,
    pub send_queue_bytes: usize,
    /// One `typing` per user and room per this long, on both servers: the
    /// typing storm traces deliveries with the same rule.
    pub typing_interval_ms: u64,
}

/// roomcast's per-client abuse limits, lifted for the benchmark, and its
/// per-replica bounds sized for a 1 GiB pod, lifted to the benchmark
/// machine's size: the saturation ramp queues far more than a pod would hold.
const UNLIMITED: [(&str, &str); 12] = [
    ("MAX_CONNECTIONS", "1000000"),
    ("BUFFER_POOL_BYTES", "4294967296"),
    ("HANDSHAKES_PER_SECOND_PER_IP", "1000000"),
    ("HANDSHAKE_BURST_PER_IP", "1000000"),
    ("HTTP_CONNECTIONS_PER_IP", "1000000"),
    ("SENDS_PER_SECOND", "1000000"),
    ("SEND_BURST", "1000000"),
    ("JOINS_PER_SECOND", "1000000"),
    ("JOIN_BURST", "1000000"),
    ("MAX_CONNECTIONS_PER_USER", "1000000"),
    // Read markers' bucket, which `typing` shares: lifted so that a typing
    // storm meets the typing throttle, not the bucket.
    ("READ_MARKERS_PER_SECOND", "1000000"),
    ("READ_MARKER_BURST", "1000000"),
];

/// Above the largest idle size (20,000).
const MAX_SSE_STREAMS: &str = "25000";

/// roomcast's default `limits.typing_interval`.
const ROOMCAST_TYPING_INTERVAL_MS: u64 = 2000;

/// Whether the roomcast build under test has a configuration key: its
/// `config/base.yaml` (where `ROOMCAST_CONFIG_DIR` points, for an older
/// build) names it.
fn roomcast_knows(setup: &Setup, key: &str) -> bool {
    let dir = std::env::var_os("ROOMCAST_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| setup.repo.join("config"));
    std::fs::read_to_string(dir.join("base.yaml")).is_ok_and(|base| base.contains(&format!("{key}:")))
}

pub struct Server {
    child: Child,
    pub pid: u32,
    pub port: u16,
}

impl Server {
    pub async fn start(target: Target, setup: &Setup, database: &str, saturating: bool) -> Result<Server> {
        let mut command = match target {
            Target::Roomcast => {
                let mut c = Command::new(&setup.roomcast_bin);
                c.current_dir(&setup.repo)
                    .env("ROOMCAST__SERVER__PORT", "0")
                    .env("ROOMCAST__MONGO__URI", &setup.mongo_uri)
                    .env("ROOMCAST__MONGO__DATABASE", database);
                // Only when it is not roomcast's default, so that a binary from
                // before typing (a before/after run) still starts.
                if setup.typing_interval_ms != ROOMCAST_TYPING_INTERVAL_MS {
                    c.env("ROOMCAST__LIMITS__TYPING_INTERVAL", format!("{}ms", setup.typing_interval_ms));
                }
                // The peer has no abuse limits; every client here shares one
                // address, and publishers send far above a person's rate.
                for (key, value) in UNLIMITED {
                    c.env(format!("ROOMCAST__LIMITS__{key}"), value);
                }
                // Newer keys only where the build knows them (a before/after run).
                if roomcast_knows(setup, "user_pool_bytes") {
                    c.env("ROOMCAST__LIMITS__USER_POOL_BYTES", "4294967296");
                }
                // A few hundred by default (config/base.yaml); the SSE idle scenario holds up to 20k.
                if roomcast_knows(setup, "max_sse_streams") {
                    c.env("ROOMCAST__LIMITS__MAX_SSE_STREAMS", MAX_SSE_STREAMS);
                }
                if saturating {
                    c.env("ROOMCAST__LIMITS__SEND_QUEUE_FRAMES", setup.send_queue_frames.to_string())
                        .env("ROOMCAST__LIMITS__SEND_QUEUE_BYTES", setup.send_queue_bytes.to_string());
                }
                c
            }
            Target::SocketIo => {
                let mut c = Command::new("node");
                c.arg("server.js")
                    .current_dir(&setup.peer_dir)
                    .env("PORT", "0")
                    .env("MONGO_URI", &setup.mongo_uri)
                    .env("MONGO_DB", database)
                    .env("TYPING_INTERVAL_MS", setup.typing_interval_ms.to_string());
                c
            }
        };
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches only the child being exec'd.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().with_context(|| format!("starting {}", target.name()))?;
        let pid = child.id().ok_or_else(|| anyhow!("{} exited at once", target.name()))?;
        let log = setup.logs.join(format!("{database}.log"));
        let (found, port) = oneshot::channel();
        copy_output(&mut child, &log, found).await?;
        let port = tokio::select! {
            port = port => port.map_err(|_| anyhow!("{} exited before listening; see {}", target.name(), log.display()))?,
            _ = tokio::time::sleep(START_TIMEOUT) => bail!("{} did not listen within {START_TIMEOUT:?}", target.name()),
        };
        Ok(Server { child, pid, port })
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub async fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        if tokio::time::timeout(STOP_GRACE, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// Copies the child's stdout and stderr into `log`, and reports the port
/// from the first line that announces it.
async fn copy_output(child: &mut Child, log: &Path, found: oneshot::Sender<u16>) -> Result<()> {
    let file = tokio::fs::File::create(log).await.with_context(|| format!("creating {}", log.display()))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    for pipe in [Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, Box::new(stderr)] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    tokio::spawn(async move {
        let mut file = tokio::io::BufWriter::new(file);
        let mut found = Some(found);
        while let Some(line) = rx.recv().await {
            if let Some(port) = announced_port(&line) {
                if let Some(found) = found.take() {
                    let _ = found.send(port);
                }
            }
            let _ = file.write_all(line.as_bytes()).await;
            let _ = file.write_all(b"\n").await;
            let _ = file.flush().await;
        }
    });
    Ok(())
}

/// roomcast logs `listening addr=127.0.0.1:PORT`; the peer prints `listening on PORT`.
fn announced_port(line: &str) -> Option<u16> {
    if let Some(rest) = line.split("listening addr=").nth(1) {
        let addr = rest.split_whitespace().next()?;
        return addr.rsplit(':').next()?.parse().ok();
    }
    if let Some(rest) = line.trim().strip_prefix("listening on ") {
        return rest.trim().parse().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_port_in_both_announcements() {
        let roomcast = "2026-11-23T18:00:00Z  INFO roomcast::app: listening addr=127.0.0.1:40123 database=b";
        assert_eq!(super::announced_port(roomcast), Some(40123));
        assert_eq!(super::announced_port("listening on 35555"), Some(35555));
        assert_eq!(super::announced_port("change stream open"), None);
    }
}
