//! Logging through `tracing`: readable lines locally, JSON lines in
//! production, filtered by `RUST_LOG` (default `info`). Logs go to stdout.

use tracing_subscriber::EnvFilter;

use crate::settings::Environment;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(environment: Environment) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).with_ansi(ansi);
    let _ = match environment {
        Environment::Production => builder.json().try_init(),
        Environment::Local => builder.try_init(),
    };
}
