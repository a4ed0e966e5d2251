//! Integration tests: real WebSocket clients against the relay on port 0, and
//! a real MongoDB-compatible server process started by the tests, with one
//! database per test.

mod chatter;
mod client;
mod db;
mod helpers;
mod sse_client;

/// The project's root, where `config/` and `.dev/` are.
pub fn project_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

mod bodies;
mod budgets;
mod chaos;
mod check_only;
mod config;
mod crash;
mod dev_script;
mod edits;
mod errors;
mod history;
mod http;
mod inputs;
mod limits;
mod migration;
mod moderation;
mod notifications;
mod operations;
mod outages;
mod plans;
mod presence;
mod proxies;
mod reading;
mod recovery;
mod rooms;
mod security;
mod sends;
mod setup_script;
mod slow;
mod sse;
mod startup;
mod timeouts;
mod trust;
