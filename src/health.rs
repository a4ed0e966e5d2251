//! Liveness and readiness. `/healthz` answers while the process serves;
//! `/readyz` answers 200 only while every route's change stream is open, so a
//! replica whose streams are broken stops receiving new connections.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Whether one route's change stream is currently open.
#[derive(Debug)]
pub struct RouteHealth {
    pub name: String,
    open: AtomicBool,
    /// Lag seen at the last event: now minus the event's wall time, in ms.
    event_lag_ms: AtomicU64,
    /// When the stream last answered a round trip, in ms since the epoch.
    answered_at_ms: AtomicU64,
    lag_gauge: ::metrics::Gauge,
    open_gauge: ::metrics::Gauge,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl RouteHealth {
    pub fn new(name: &str) -> Arc<RouteHealth> {
        Arc::new(RouteHealth {
            name: name.to_string(),
            open: AtomicBool::new(false),
            event_lag_ms: AtomicU64::new(0),
            answered_at_ms: AtomicU64::new(now_ms()),
            lag_gauge: ::metrics::gauge!(crate::prometheus::ROUTE_LAG_SECONDS, "route" => name.to_string()),
            // Exported from the start: a stream that never opened shows 0.
            open_gauge: {
                let gauge = ::metrics::gauge!(crate::prometheus::ROUTE_OPEN, "route" => name.to_string());
                gauge.set(0.0);
                gauge
            },
        })
    }

    /// A round trip completed; `event_time` is the wall time of the newest
    /// event it carried, if it carried any. An empty batch means the stream
    /// is caught up to the moment of the answer (its post-batch token).
    pub fn answered(&self, event_time: Option<SystemTime>) {
        let now = now_ms();
        let lag = event_time
            .map_or(0, |at| now.saturating_sub(at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)));
        self.event_lag_ms.store(lag, Ordering::Release);
        self.answered_at_ms.store(now, Ordering::Release);
        self.lag_gauge.set(lag as f64 / 1000.0);
    }

    /// How far behind the stream is: the last event's lag, or the time since
    /// the stream last answered, whichever is larger.
    pub fn lag(&self) -> Duration {
        let silent = now_ms().saturating_sub(self.answered_at_ms.load(Ordering::Acquire));
        Duration::from_millis(self.event_lag_ms.load(Ordering::Acquire).max(silent))
    }

    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Release);
        self.open_gauge.set(if open { 1.0 } else { 0.0 });
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }
}

/// What readiness looks at.
pub struct Checks<'a> {
    pub shutting_down: bool,
    pub mongo_answers: bool,
    pub routes: &'a [Arc<RouteHealth>],
    pub max_lag: Duration,
}

/// The readiness verdict and its JSON body: which check failed, first.
pub fn readiness(checks: Checks<'_>) -> (bool, Value) {
    let states: serde_json::Map<String, Value> = checks
        .routes
        .iter()
        .map(|r| {
            let state = if r.is_open() { "open" } else { "broken" };
            (r.name.clone(), json!({ "state": state, "lag_ms": r.lag().as_millis() as u64 }))
        })
        .collect();
    let failed = if checks.shutting_down {
        Some("shutting_down")
    } else if !checks.mongo_answers {
        Some("mongodb")
    } else if checks.routes.iter().any(|r| !r.is_open()) {
        Some("change_stream")
    } else if checks.routes.iter().any(|r| r.lag() > checks.max_lag) {
        Some("change_stream_lag")
    } else {
        None
    };
    match failed {
        None => (true, json!({ "status": "ready", "routes": states })),
        Some(check) => (false, json!({ "status": "not_ready", "failed": check, "routes": states })),
    }
}
