//! The roomcast binary: load the configuration, start logging, serve.

use std::path::PathBuf;

use roomcast::app::StartupError;
use roomcast::settings::Settings;
use roomcast::{telemetry, Application};

/// mimalloc, not the C library's allocator: a relay's heap is tens of
/// thousands of small objects per connection and per frame, which it
/// allocates in fewer instructions and holds in fewer pages (see
/// docs/operations.md, "Memory"). `--features system-allocator` builds with
/// the C library's, for heap profilers that watch it (bench/heap).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config_dir = std::env::var_os("ROOMCAST_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| "config".into());
    let (settings, environment) = match Settings::load(&config_dir) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("roomcast: {error}");
            std::process::exit(2);
        }
    };
    telemetry::init(environment);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        // Keys named by the configuration are read while building, and the
        // database's schema is checked: same one-line rule, same exit code,
        // since either needs the deployment changed before a restart helps.
        Err(StartupError::Config(error)) => {
            eprintln!("roomcast: {error}");
            std::process::exit(2);
        }
        Err(StartupError::Schema(error)) => {
            eprintln!("roomcast: {error}");
            std::process::exit(2);
        }
        Err(other) => return Err(other.into()),
    };
    app.run_until_stopped().await;
    Ok(())
}
