//! Liveness and readiness. `/healthz` answers while the process serves;
//! `/readyz` answers 200 only while every route's change stream is open, so a
//! replica whose streams are broken stops receiving new connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

/// Whether one route's change stream is currently open.
#[derive(Debug)]
pub struct RouteHealth {
    pub name: String,
    open: AtomicBool,
}

impl RouteHealth {
    pub fn new(name: &str) -> Arc<RouteHealth> {
        Arc::new(RouteHealth { name: name.to_string(), open: AtomicBool::new(false) })
    }

    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Release);
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }
}

/// The readiness verdict and its JSON body.
pub fn readiness(routes: &[Arc<RouteHealth>]) -> (bool, Value) {
    let broken: Vec<&str> = routes.iter().filter(|r| !r.is_open()).map(|r| r.name.as_str()).collect();
    let states: serde_json::Map<String, Value> =
        routes.iter().map(|r| (r.name.clone(), json!(if r.is_open() { "open" } else { "broken" }))).collect();
    if broken.is_empty() {
        (true, json!({ "status": "ready", "routes": states }))
    } else {
        (false, json!({ "status": "not_ready", "failed": "change_stream", "routes": states }))
    }
}
