//! Scenario 2, idle connections: open N connections, each joined to one room,
//! let the server settle, and divide its resident memory growth by N. Sizes
//! are reached cumulatively on one server; readers stay alive to answer
//! keep-alive pings (and, over SSE, to take the keep-alive comments, which
//! is how the relay knows a stream's client is there). Over SSE each
//! connection is a `GET /sse` stream, joined by one POST on a connection
//! closed once answered: only the stream counts among the N.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use super::Ctx;
use crate::conn;
use crate::dialect::Transport;
use crate::procstat;
use crate::stats::Stats;

#[derive(Debug, Serialize)]
pub struct IdlePoint {
    pub connections: usize,
    pub connect_s: f64,
    pub server_rss_mib: f64,
    pub rss_per_connection_kib: f64,
    pub server_cpu_s_while_connecting: f64,
}

#[derive(Debug, Serialize)]
pub struct IdleRun {
    pub baseline_rss_mib: f64,
    pub points: Vec<IdlePoint>,
    pub closes: BTreeMap<String, u64>,
}

pub async fn run(ctx: &Ctx<'_>, transport: Transport) -> Result<IdleRun> {
    let scale = ctx.scale;
    let stats = Arc::new(Stats::default());
    tokio::time::sleep(scale.settle).await;
    let baseline = procstat::sample(ctx.watched.server)?;
    let mut readers = Vec::new();
    let mut points = Vec::new();
    for &size in &scale.idle_sizes {
        let began = Instant::now();
        let cpu_before = procstat::sample(ctx.watched.server)?.cpu_s;
        let members = scale.idle_members_per_room;
        let opened = conn::open_subscribers(transport, ctx.target, ctx.port, readers.len()..size, &stats, |i| {
            (format!("idle-{i}"), vec![format!("idle-{}", i / members)])
        })
        .await;
        let opened = match opened {
            Ok(opened) => opened,
            Err(error) => {
                readers.iter().for_each(|r: &tokio::task::JoinHandle<()>| r.abort());
                return Err(error.context(format!("opening {size} idle connections")));
            }
        };
        readers.extend(opened);
        let connect_s = began.elapsed().as_secs_f64();
        tokio::time::sleep(scale.settle).await;
        let now = procstat::sample(ctx.watched.server)?;
        points.push(IdlePoint {
            connections: size,
            connect_s,
            server_rss_mib: now.rss_kib as f64 / 1024.0,
            rss_per_connection_kib: now.rss_kib.saturating_sub(baseline.rss_kib) as f64 / size as f64,
            server_cpu_s_while_connecting: now.cpu_s - cpu_before,
        });
    }
    for reader in &readers {
        reader.abort();
    }
    Ok(IdleRun { baseline_rss_mib: baseline.rss_kib as f64 / 1024.0, points, closes: stats.closes() })
}
