//! loadgen: the load generator and orchestrator behind bench/run. It starts
//! roomcast and the socket.io peer in turn against the same database, drives
//! both with the same workload over their own protocols, measures both the
//! same way (send time in the body, latency taken when the frame is read,
//! CPU and memory from /proc), and writes one JSON result, a Markdown table
//! and the cost-growth plot.

mod churn;
mod clock;
mod conn;
mod dbops;
mod dialect;
mod figures;
mod fleet;
mod machine;
mod overhead;
mod pager;
mod plot;
mod procstat;
mod publisher;
mod report;
mod scale;
mod scenario;
mod servers;
mod sse;
mod stats;
mod suite;
mod typist;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::scale::Scale;
use crate::servers::Setup;
use crate::suite::Suite;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks roomcast against the socket.io peer (see bench/README.md)")]
struct Args {
    /// The roomcast repository (its config/ directory is used).
    #[arg(long)]
    repo: PathBuf,
    #[arg(long)]
    roomcast_bin: PathBuf,
    /// The directory holding the peer's server.js and node_modules.
    #[arg(long)]
    peer_dir: PathBuf,
    /// Connection string of the database both servers share.
    #[arg(long)]
    mongo_uri: String,
    /// The database server's pid, to report its CPU time too.
    #[arg(long)]
    db_pid: Option<u32>,
    /// `full` (6–8 minutes on 2 cores) or `smoke` (seconds; proves the harness works).
    #[arg(long, default_value = "full")]
    scale: String,
    /// Multiplies every warm-up, window and drain duration.
    #[arg(long, default_value_t = 1.0)]
    stretch: f64,
    /// Comma-separated: floor, fanout, fanout-sse, wide, idle, idle-sse, notify, history, presence, typing,
    /// growth, or all. The -sse ones run against roomcast only.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Comma-separated: roomcast, socket.io (default both).
    #[arg(long, default_value = "roomcast,socket.io", value_delimiter = ',')]
    targets: Vec<String>,
    /// Where results, logs and the plot go.
    #[arg(long)]
    results: PathBuf,
    /// Names the result files, e.g. 2026-11-23T18-30-00.
    #[arg(long)]
    stamp: String,
    /// roomcast's per-connection queue bound during the runs (the peer has none).
    #[arg(long, default_value_t = 65_536)]
    send_queue_frames: usize,
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    send_queue_bytes: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut scale = match args.scale.as_str() {
        "smoke" => Scale::smoke(),
        "full" => Scale::full(),
        other => anyhow::bail!("unknown scale {other}: use full or smoke"),
    }
    .stretched(args.stretch);
    let requested_idle_sizes = scale.idle_sizes.clone();
    let descriptor_limit = raise_descriptor_limit();
    scale.fit_descriptor_limit(descriptor_limit);
    if scale.idle_sizes != requested_idle_sizes {
        eprintln!(
            "bench: idle sizes {requested_idle_sizes:?} capped to {:?} by the descriptor limit {descriptor_limit}",
            scale.idle_sizes
        );
    }
    let logs = args.results.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let suite = Suite {
        setup: Setup {
            repo: args.repo,
            roomcast_bin: args.roomcast_bin,
            peer_dir: args.peer_dir,
            mongo_uri: args.mongo_uri,
            logs,
            send_queue_frames: args.send_queue_frames,
            send_queue_bytes: args.send_queue_bytes,
            typing_interval_ms: scale.typing_interval_ms,
        },
        db_pid: args.db_pid,
        scale,
        scenarios: args.scenarios,
        targets: parse_targets(&args.targets)?,
        stamp: args.stamp.clone(),
    };
    // Ctrl-C or SIGTERM ends the process; the servers die with it (PR_SET_PDEATHSIG).
    let mut result = tokio::select! {
        result = suite.run() => result?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    };
    result["descriptor_limit"] = descriptor_limit.into();
    result["idle_sizes_requested"] = serde_json::json!(requested_idle_sizes);
    let table = report::table(&result);
    let notes = report::notes(&result);
    let base = args.results.join(&args.stamp);
    std::fs::write(base.with_extension("json"), serde_json::to_string_pretty(&result)? + "\n")?;
    std::fs::write(base.with_extension("md"), format!("{table}\n\n{notes}\n"))?;
    if result.get("growth").is_some() {
        std::fs::write(args.results.join(format!("{}-growth.svg", args.stamp)), plot::growth_svg(&result))?;
    }
    println!("{table}\n\n{notes}");
    println!("\nresults: {}.json (and .md, -growth.svg)", base.display());
    Ok(())
}

fn parse_targets(names: &[String]) -> Result<Vec<dialect::Target>> {
    names
        .iter()
        .map(|name| {
            dialect::Target::BOTH
                .into_iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| anyhow::anyhow!("unknown target {name}: use roomcast or socket.io"))
        })
        .collect()
}

/// Raises the soft limit on open files to the hard one (the servers inherit
/// it) and returns the limit in force.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}
