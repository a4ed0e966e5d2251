//! CPU time and memory of a server process, read from /proc the same way for
//! roomcast, the Node.js peer and the database. CPU covers every thread of
//! the process (libuv's pool and tokio's workers alike).

use anyhow::{bail, Context, Result};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    /// User plus system CPU seconds since the process started.
    pub cpu_s: f64,
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM) since the process started.
    pub peak_rss_kib: u64,
}

pub fn sample(pid: u32) -> Result<ProcSample> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("process {pid} is gone"))?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    if fields.len() < 13 {
        bail!("unexpected /proc/{pid}/stat");
    }
    // utime and stime are fields 14 and 15 of stat(5); fields[0] is field 3.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(ProcSample {
        cpu_s: ticks as f64 / ticks_per_s,
        rss_kib: status_kib(&status, "VmRSS:"),
        peak_rss_kib: status_kib(&status, "VmHWM:"),
    })
}

fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds a process used between two samples; 0 when the pid is unknown.
pub fn cpu_between(before: Option<ProcSample>, after: Option<ProcSample>) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) => (a.cpu_s - b.cpu_s).max(0.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let own = super::sample(std::process::id()).unwrap();
        assert!(own.rss_kib > 0 && own.peak_rss_kib >= own.rss_kib);
    }
}
