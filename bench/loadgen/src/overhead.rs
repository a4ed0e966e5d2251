//! roomcast's own delays, read from its `/metrics`: the histograms
//! `roomcast_relay_overhead_seconds` (change event received → frame written
//! to the socket) and `roomcast_write_seconds` (a send's majority insert, as
//! the relay waits for it) are scraped when a step's window opens and after
//! it drains, and the percentiles of the differences are interpolated within
//! buckets, as Prometheus's `histogram_quantile` does. The peer has no such
//! histograms.

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OVERHEAD: &str = "roomcast_relay_overhead_seconds";
const COMMIT: &str = "roomcast_write_seconds";

/// Cumulative counts per upper bound, as exposed (`+Inf` last).
#[derive(Debug, Clone, Default)]
pub struct Buckets(Vec<(f64, u64)>);

/// The two histograms at one instant.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub overhead: Buckets,
    pub commit: Buckets,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    pub frames: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Share of frames that took at most 1 ms.
    pub within_1ms: f64,
}

pub async fn scrape(port: u16) -> Result<Scrape> {
    let body = exposition(port).await?;
    Ok(Scrape { overhead: parse(&body, OVERHEAD), commit: parse(&body, COMMIT) })
}

async fn exposition(port: u16) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.context("reading /metrics")?;
    Ok(body)
}

/// Waits until roomcast's unlabelled gauge `name` reads `value`, looking
/// every 50 ms for at most `within`: how the generator knows the server let
/// go of connections it closed.
pub async fn await_gauge(port: u16, name: &str, value: f64, within: std::time::Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let body = exposition(port).await?;
        let now = body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
        if now == Some(value) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{name} still {now:?} after {within:?}, waiting for {value}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn parse(exposition: &str, histogram: &str) -> Buckets {
    let series = format!("{histogram}_bucket{{le=\"");
    let buckets = exposition
        .lines()
        .filter_map(|line| line.strip_prefix(series.as_str()))
        .filter_map(|rest| {
            let (bound, count) = rest.split_once("\"} ")?;
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().ok()? };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect();
    Buckets(buckets)
}

impl Buckets {
    /// What was recorded between `earlier` and `self`.
    pub fn since(&self, earlier: &Buckets) -> Overhead {
        let counts: Vec<(f64, u64)> = self
            .0
            .iter()
            .map(|(bound, n)| {
                let before = earlier.0.iter().find(|(b, _)| b == bound).map_or(0, |(_, m)| *m);
                (*bound, n.saturating_sub(before))
            })
            .collect();
        let frames = counts.last().map_or(0, |(_, n)| *n);
        let quantile = |q: f64| quantile(&counts, q) * 1000.0;
        let within_1ms = counts.iter().find(|(b, _)| *b >= 0.001).map_or(0, |(_, n)| *n);
        Overhead {
            frames,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            p999_ms: quantile(0.999),
            within_1ms: if frames > 0 { within_1ms as f64 / frames as f64 } else { 0.0 },
        }
    }
}

/// Linear interpolation inside the bucket holding rank `q × total`; a rank in
/// the `+Inf` bucket reports the largest finite bound.
fn quantile(cumulative: &[(f64, u64)], q: f64) -> f64 {
    let Some(&(_, total)) = cumulative.last() else { return 0.0 };
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(bound, count) in cumulative {
        if count as f64 >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            let inside = (count - lower.1) as f64;
            let share = if inside > 0.0 { (rank - lower.1 as f64) / inside } else { 1.0 };
            return lower.0 + (bound - lower.0) * share;
        }
        lower = (bound, count);
    }
    lower.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_within_buckets_of_the_difference() {
        let before = parse(
            "roomcast_relay_overhead_seconds_bucket{le=\"0.001\"} 10\n\
             roomcast_relay_overhead_seconds_bucket{le=\"0.002\"} 10\n\
             roomcast_relay_overhead_seconds_bucket{le=\"+Inf\"} 10\n\
             roomcast_write_seconds_bucket{le=\"0.001\"} 7\n",
            OVERHEAD,
        );
        let after = parse(
            "roomcast_relay_overhead_seconds_bucket{le=\"0.001\"} 60\n\
             roomcast_relay_overhead_seconds_bucket{le=\"0.002\"} 110\n\
             roomcast_relay_overhead_seconds_bucket{le=\"+Inf\"} 110\n",
            OVERHEAD,
        );
        let overhead = after.since(&before);
        assert_eq!(overhead.frames, 100);
        assert!((overhead.p50_ms - 1.0).abs() < 1e-9, "{overhead:?}");
        assert!((overhead.p99_ms - 1.98).abs() < 1e-9, "{overhead:?}");
        assert!((overhead.within_1ms - 0.5).abs() < 1e-9);
    }
}
