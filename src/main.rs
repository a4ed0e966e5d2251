//! The roomcast binary: load the configuration, start logging, serve.

use std::path::PathBuf;

use roomcast::app::StartupError;
use roomcast::settings::Settings;
use roomcast::{telemetry, Application};

/// mimalloc, not the C library's allocator: the event and fan-out paths
/// allocate per batch and per message, which it serves in fewer
/// instructions (docs/design.md, "mimalloc is the allocator").
/// `--features system-allocator` builds with the C library's, for heap
/// profilers that watch it (bench/heap).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Descriptors wanted beyond one per WebSocket connection: connections in
/// their HTTP phase, the database's pools, the metrics port.
const DESCRIPTORS_BESIDES_CONNECTIONS: u64 = 1_200;

/// Raises the soft limit on open descriptors to the hard one: shells often
/// leave it at 1,024, which would refuse connections long before
/// `limits.max_connections`; containers usually allow far more.
fn raise_descriptor_limit(wanted: u64) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            limit,
            wanted,
            "the open-descriptor limit is below limits.max_connections and what else the relay opens: \
             raise it (ulimit -n, or the container runtime's nofile) or lower limits.max_connections"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-descriptor limit"),
    }
}

#[tokio::main]
async fn main() {
    let config_dir = std::env::var_os("ROOMCAST_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| "config".into());
    let (settings, environment) = match Settings::load(&config_dir) {
        Ok(loaded) => loaded,
        Err(error) => refuse(StartupError::Config(error)),
    };
    telemetry::init(environment);
    raise_descriptor_limit(settings.limits.max_connections as u64 + DESCRIPTORS_BESIDES_CONNECTIONS);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => refuse(error),
    };
    app.run_until_stopped().await;
}

/// Stops start-up: one line on stderr, whatever `RUST_BACKTRACE` says, and
/// the failure's exit code (2 configuration or schema, 3 MongoDB, 4 a port).
fn refuse(error: StartupError) -> ! {
    eprintln!("roomcast: {error}");
    std::process::exit(error.exit_code())
}
