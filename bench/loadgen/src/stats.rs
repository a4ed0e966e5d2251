//! Shared counters and latency histograms for one measured step. A frame
//! counts only if the send time it carries falls inside the step's window, so
//! warm-up traffic and stragglers from an earlier step never skew a figure.
//! Histograms are sharded by connection to keep lock contention negligible
//! with thousands of reader tasks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::clock::now_micros;

const SHARDS: usize = 16;
/// Latencies above a minute are clamped; a benchmark that slow has failed anyway.
const MAX_MICROS: u64 = 60_000_000;

pub struct Stats {
    window_start: AtomicI64,
    window_end: AtomicI64,
    pub delivered: AtomicU64,
    pub sent: AtomicU64,
    pub refused: AtomicU64,
    pub skipped: AtomicU64,
    shards: Vec<Mutex<Histogram<u64>>>,
    /// Send → ack at the publisher: the server's commit path, seen from outside.
    acks: Mutex<Histogram<u64>>,
    closes: Mutex<BTreeMap<String, u64>>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    pub samples: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of latencies given in µs.
    pub fn of(micros: &[u64]) -> Latency {
        let mut histogram = Histogram::<u64>::new_with_max(MAX_MICROS, 3).expect("valid histogram bounds");
        for latency in micros {
            histogram.saturating_record((*latency).clamp(1, MAX_MICROS));
        }
        Latency::from_histogram(&histogram)
    }

    fn from_histogram(all: &Histogram<u64>) -> Latency {
        let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            samples: all.len(),
            mean_ms: all.mean() / 1000.0,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: all.max() as f64 / 1000.0,
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        let histogram = || Mutex::new(Histogram::new_with_max(MAX_MICROS, 3).expect("valid histogram bounds"));
        Stats {
            window_start: AtomicI64::new(i64::MAX),
            window_end: AtomicI64::new(i64::MAX),
            delivered: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            shards: (0..SHARDS).map(|_| histogram()).collect(),
            acks: histogram(),
            closes: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Stats {
    /// Starts a new step: clears every counter but the closes, which are
    /// reported for the whole run.
    pub fn open_window(&self, start: i64, end: i64) {
        for shard in &self.shards {
            shard.lock().expect("histogram poisoned").reset();
        }
        self.acks.lock().expect("histogram poisoned").reset();
        for counter in [&self.delivered, &self.sent, &self.refused, &self.skipped] {
            counter.store(0, Ordering::Relaxed);
        }
        self.window_start.store(start, Ordering::Release);
        self.window_end.store(end, Ordering::Release);
    }

    pub fn in_window(&self, sent_at: i64) -> bool {
        sent_at >= self.window_start.load(Ordering::Acquire) && sent_at < self.window_end.load(Ordering::Acquire)
    }

    /// Records one delivered frame read by connection `conn`.
    pub fn record_delivery(&self, conn: usize, sent_at: i64) {
        if !self.in_window(sent_at) {
            return;
        }
        let latency = (now_micros() - sent_at).clamp(1, MAX_MICROS as i64) as u64;
        self.shards[conn % SHARDS].lock().expect("histogram poisoned").saturating_record(latency);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the ack of a send made at `sent_at`.
    pub fn record_ack(&self, sent_at: i64) {
        if self.in_window(sent_at) {
            let latency = (now_micros() - sent_at).clamp(1, MAX_MICROS as i64) as u64;
            self.acks.lock().expect("histogram poisoned").saturating_record(latency);
        }
    }

    /// Send → ack percentiles, if any ack carried its send time back.
    pub fn ack_latency(&self) -> Option<Latency> {
        let acks = self.acks.lock().expect("histogram poisoned");
        (!acks.is_empty()).then(|| Latency::from_histogram(&acks))
    }

    pub fn record_send(&self, sent_at: i64) {
        if self.in_window(sent_at) {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_close(&self, why: String) {
        *self.closes.lock().expect("closes poisoned").entry(why).or_default() += 1;
    }

    pub fn closes(&self) -> BTreeMap<String, u64> {
        self.closes.lock().expect("closes poisoned").clone()
    }

    pub fn latency(&self) -> Latency {
        let mut all = Histogram::<u64>::new_with_max(MAX_MICROS, 3).expect("valid histogram bounds");
        for shard in &self.shards {
            all.add(&*shard.lock().expect("histogram poisoned")).expect("same bounds");
        }
        Latency::from_histogram(&all)
    }
}
