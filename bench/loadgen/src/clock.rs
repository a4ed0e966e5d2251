//! Wall-clock timestamps in microseconds. Every latency is taken inside this
//! one process (the send time travels in the message body and is compared on
//! receipt), so the clock is shared and no cross-host skew enters the figures.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

pub fn micros(duration: Duration) -> i64 {
    duration.as_micros() as i64
}
