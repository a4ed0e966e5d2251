//! The one table bench/run prints: each figure for roomcast and the
//! socket.io peer side by side, with roomcast ÷ peer and which direction is
//! better. Rows are JSON pointers into the suite's result, so the table and
//! the saved JSON can never disagree.

use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    /// The offered load or what the throttle lets through: neither direction wins.
    Neither,
}

struct Row {
    figure: String,
    pointer: String,
    better: Better,
}

fn row(figure: impl Into<String>, pointer: impl Into<String>, better: Better) -> Row {
    Row { figure: figure.into(), pointer: pointer.into(), better }
}

/// The figures of a fixed-rate fan-out step, under its delivered-rate row.
const FIXED_STEP_FIGURES: [(&str, &str, Better); 14] = [
    ("  p50 latency ms", "/latency/p50_ms", Better::Lower),
    ("  p99 latency ms", "/latency/p99_ms", Better::Lower),
    ("  p99.9 latency ms", "/latency/p999_ms", Better::Lower),
    ("  lost frames", "/lost_frames", Better::Lower),
    ("  server CPU s per 1M frames", "/server_cpu_s_per_m_frames", Better::Lower),
    ("  database CPU s in window", "/db_cpu_s", Better::Lower),
    ("  load generator CPU s in window", "/loadgen_cpu_s", Better::Lower),
    ("  server peak RSS MiB", "/server_peak_rss_mib", Better::Lower),
    ("  send → ack p50 ms (roomcast only)", "/ack_latency/p50_ms", Better::Lower),
    ("  relay: send commit p50 ms (roomcast only)", "/relay_commit/p50_ms", Better::Lower),
    ("  relay overhead p50 ms (roomcast only)", "/relay_overhead/p50_ms", Better::Lower),
    ("  relay overhead p99 ms (roomcast only)", "/relay_overhead/p99_ms", Better::Lower),
    ("  relay overhead p99.9 ms (roomcast only)", "/relay_overhead/p999_ms", Better::Lower),
    ("  relay overhead share within 1 ms (roomcast only)", "/relay_overhead/within_1ms", Better::Higher),
];

fn rows(result: &Value) -> Vec<(String, Row)> {
    use Better::*;
    let mut rows = Vec::new();
    let scale = &result["scale"];
    for (section, prefix) in [("fanout", "fanout"), ("wide", "wide")] {
        let shape = format!("{}×{}", scale[format!("{prefix}_rooms")], scale[format!("{prefix}_subs_per_room")]);
        let rate = scale[format!("{prefix}_rate")].as_f64().unwrap_or(0.0);
        let label = format!("fan-out {shape} @ {rate} msg/s: delivered frames/s");
        rows.push((section.into(), row(label, "/fixed/delivered_frames_per_s", Higher)));
        for (label, pointer, better) in FIXED_STEP_FIGURES {
            rows.push((section.into(), row(label, format!("/fixed{pointer}"), better)));
        }
        let floor = "  the floor under this load: insert → change event p50 ms (bare driver)";
        rows.push((section.into(), row(floor, "/floor_under_load/insert_to_event/p50_ms", Lower)));
        rows.push((section.into(), row("  p50 latency over that floor ms", "/p50_over_floor_under_load_ms", Lower)));
        if section == "fanout" {
            let label = format!("fan-out {shape} ramp: saturation frames/s");
            rows.push((section.into(), row(label, "/saturation_frames_per_s", Higher)));
            rows.extend(fanout_sse_rows(&shape, rate));
        }
    }
    if let Some(sizes) = result["scale"]["idle_sizes"].as_array() {
        for (i, size) in sizes.iter().enumerate() {
            rows.push((
                "idle".into(),
                row(
                    format!("idle {size} connections: RSS KiB per connection"),
                    format!("/points/{i}/rss_per_connection_kib"),
                    Lower,
                ),
            ));
        }
    }
    if let Some(sizes) = result["scale"]["idle_sizes"].as_array() {
        for (i, size) in sizes.iter().enumerate() {
            let label = format!("idle {size} SSE streams: RSS KiB per connection (roomcast only)");
            rows.push(("idle-sse".into(), row(label, format!("/points/{i}/rss_per_connection_kib"), Lower)));
        }
    }
    let users = format!("{}×{}", result["scale"]["notify_users"], result["scale"]["notify_conns_per_user"]);
    for (label, pointer, better) in [
        (format!("notifications {users} conns: delivered frames/s"), "/figures/delivered_frames_per_s", Higher),
        ("  p50 latency ms".into(), "/figures/latency/p50_ms", Lower),
        ("  p99 latency ms".into(), "/figures/latency/p99_ms", Lower),
        ("  p99.9 latency ms".into(), "/figures/latency/p999_ms", Lower),
        ("  lost frames".into(), "/figures/lost_frames", Lower),
        ("  server CPU s per 1M frames".into(), "/figures/server_cpu_s_per_m_frames", Lower),
    ] {
        rows.push(("notify".into(), row(label, pointer, better)));
    }
    let label = format!(
        "history {} readers × {} per page over {} messages, beside fan-out {}×{} @ {} msg/s: pages/s",
        scale["history_readers"],
        scale["history_limit"],
        scale["history_messages"],
        scale["history_fanout_rooms"],
        scale["history_fanout_subs_per_room"],
        scale["history_fanout_rate"].as_f64().unwrap_or(0.0),
    );
    for (label, pointer, better) in [
        (label, "/pages_per_s", Higher),
        ("  request → page p50 latency ms".into(), "/paging/latency/p50_ms", Lower),
        ("  request → page p99 latency ms".into(), "/paging/latency/p99_ms", Lower),
        ("  request → page p99.9 latency ms".into(), "/paging/latency/p999_ms", Lower),
        ("  server CPU s per 1k pages (above the fan-out alone)".into(), "/server_cpu_s_per_k_pages", Lower),
        ("  the fan-out beside it: delivered frames/s".into(), "/fanout/delivered_frames_per_s", Higher),
        ("  the fan-out beside it: p99 latency ms".into(), "/fanout/latency/p99_ms", Lower),
        ("  the fan-out beside it: lost frames".into(), "/fanout/lost_frames", Lower),
        ("  the same fan-out alone: p99 latency ms".into(), "/fanout_alone/latency/p99_ms", Lower),
    ] {
        rows.push(("history".into(), row(label, pointer, better)));
    }
    rows.extend(presence_rows(scale));
    rows.extend(typing_rows(scale));
    if let Some(points) = result["growth"].as_array() {
        for (i, point) in points.iter().enumerate() {
            let name = format!("growth {}×{}", point["rooms"], point["subs_per_room"]);
            rows.push((
                format!("/growth/{i}"),
                row(format!("{name}: frames/s (closed loop)"), "/figures/delivered_frames_per_s", Higher),
            ));
            rows.push((format!("/growth/{i}"), row("  p99 latency ms", "/figures/latency/p99_ms", Lower)));
        }
    }
    rows
}

/// roomcast's fixed fan-out step with SSE subscribers, and the same step
/// with WebSocket ones on the same server just before (the peer has no SSE).
fn fanout_sse_rows(shape: &str, rate: f64) -> Vec<(String, Row)> {
    use Better::*;
    let mut rows = Vec::new();
    for (transport, name) in [("sse", "SSE"), ("websocket", "WebSocket")] {
        let label = format!(
            "fan-out {shape} @ {rate} msg/s, {name} subscribers, WebSocket publishers: delivered frames/s (roomcast only)"
        );
        for (label, pointer, better) in [
            (label.as_str(), "/delivered_frames_per_s", Higher),
            ("  p50 latency ms (roomcast only)", "/latency/p50_ms", Lower),
            ("  p99 latency ms (roomcast only)", "/latency/p99_ms", Lower),
            ("  lost frames (roomcast only)", "/lost_frames", Lower),
            ("  server CPU s per 1M frames (roomcast only)", "/server_cpu_s_per_m_frames", Lower),
            ("  load generator CPU s in window (roomcast only)", "/loadgen_cpu_s", Lower),
        ] {
            rows.push(("fanout-sse".to_string(), row(label, format!("/{transport}/fixed{pointer}"), better)));
        }
    }
    rows
}

fn presence_rows(scale: &Value) -> Vec<(String, Row)> {
    use Better::*;
    let label = format!(
        "presence churn, {} rooms × {} watchers, @ {} connects/s: connect+disconnect cycles/s",
        scale["presence_rooms"],
        scale["presence_watchers_per_room"],
        scale["presence_rate"].as_f64().unwrap_or(0.0),
    );
    [
        (label.as_str(), "/fixed/cycles_per_s", Higher),
        ("  join + leave frames to watchers/s", "/fixed/figures/delivered_frames_per_s", Higher),
        ("  join → watchers' presence_join p50 ms", "/fixed/figures/latency/p50_ms", Lower),
        ("  join → watchers' presence_join p99 ms", "/fixed/figures/latency/p99_ms", Lower),
        ("  lost join/leave frames", "/fixed/figures/lost_frames", Lower),
        ("  failed cycles", "/fixed/failed_cycles", Lower),
        ("  cycles coalesced away (no write, no frame)", "/fixed/coalesced_cycles", Lower),
        ("  MongoDB writes/s on presence (MongoDB's top)", "/fixed/db_presence_writes_per_s", Lower),
        ("  MongoDB writes/s, whole database (MongoDB's top)", "/fixed/db_writes_per_s", Lower),
        ("  server CPU s per 1k cycles", "/fixed/server_cpu_s_per_k_cycles", Lower),
        ("  database CPU s in window", "/fixed/figures/db_cpu_s", Lower),
        ("presence churn ramp: best sustained cycles/s", "/saturation_cycles_per_s", Higher),
    ]
    .into_iter()
    .map(|(label, pointer, better)| ("presence".to_string(), row(label, pointer, better)))
    .collect()
}

fn typing_rows(scale: &Value) -> Vec<(String, Row)> {
    use Better::*;
    let label = format!(
        "typing storm, {} users in one room, each `typing` every {} ms: typing frames sent/s",
        scale["typing_users"], scale["typing_period_ms"]
    );
    let passed = format!(
        "  writes that passed the throttle/s (users ÷ {} ms interval = {:.1})",
        scale["typing_interval_ms"],
        scale["typing_users"].as_f64().unwrap_or(0.0) * 1000.0 / scale["typing_interval_ms"].as_f64().unwrap_or(1.0)
    );
    [
        (label.as_str(), "/typing_sent_per_s", Neither),
        (passed.as_str(), "/events_per_s", Neither),
        ("  MongoDB writes/s on typing (MongoDB's top)", "/db_typing_writes_per_s", Lower),
        ("  MongoDB writes/s, whole database (MongoDB's top)", "/db_writes_per_s", Lower),
        ("  typing frames delivered to members/s", "/figures/delivered_frames_per_s", Higher),
        ("  passing frame's send → typing frame p50 ms", "/figures/latency/p50_ms", Lower),
        ("  passing frame's send → typing frame p99 ms", "/figures/latency/p99_ms", Lower),
        ("  lost typing frames", "/figures/lost_frames", Lower),
        ("  server CPU s per 1k delivered frames", "/server_cpu_s_per_k_frames", Lower),
    ]
    .into_iter()
    .map(|(label, pointer, better)| ("typing".to_string(), row(label, pointer, better)))
    .collect()
}

/// The value of one figure for one target, if that run produced it.
fn figure(result: &Value, section_path: &str, target: &str, pointer: &str) -> Option<f64> {
    let section = if section_path.starts_with('/') { result.pointer(section_path)? } else { &result[section_path] };
    section[target].pointer(pointer)?.as_f64()
}

/// A figure as the table shows it. A step's p50 over the floor is the
/// difference of two medians from independent samples: with the floor's
/// few samples (a smoke run has seven) the floor's can be the higher, and a
/// negative difference would read as a server faster than the bare driver.
/// It is shown as NaN ("–"), and kept as measured in the JSON.
fn shown(value: Option<f64>, pointer: &str) -> Option<f64> {
    match value {
        Some(v) if v < 0.0 && pointer.ends_with("p50_over_floor_under_load_ms") => Some(f64::NAN),
        other => other,
    }
}

fn format_number(value: Option<f64>) -> String {
    match value {
        None => "error".into(),
        Some(v) if v.is_nan() => "–".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The comparison table as Markdown, ready for docs/benchmarks.md.
pub fn table(result: &Value) -> String {
    let mut lines = vec![
        "| figure | roomcast | socket.io peer | roomcast ÷ peer | better |".to_string(),
        "|---|---:|---:|---:|---|".to_string(),
    ];
    for (section, row) in rows(result) {
        let ran =
            if section.starts_with('/') { result.pointer(&section).is_some() } else { result.get(&section).is_some() };
        if !ran {
            continue;
        }
        let ours = shown(figure(result, &section, "roomcast", &row.pointer), &row.pointer);
        let theirs = shown(figure(result, &section, "socket.io", &row.pointer), &row.pointer);
        let ours_only = row.figure.ends_with("(roomcast only)");
        let ratio = match (ours, theirs) {
            (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}", a / b),
            _ => "–".into(),
        };
        let better = match row.better {
            Better::Higher => "higher",
            Better::Lower => "lower",
            Better::Neither => "–",
        };
        lines.push(format!(
            "| {} | {} | {} | {} | {} |",
            row.figure,
            format_number(ours),
            if ours_only { "n/a".into() } else { format_number(theirs) },
            ratio,
            better
        ));
    }
    lines.join("\n")
}

/// The floor and anything that went wrong, printed under the table.
pub fn notes(result: &Value) -> String {
    let mut notes = Vec::new();
    let floor = &result["floor"]["insert_to_event"];
    if let Some(p50) = floor["p50_ms"].as_f64() {
        notes.push(format!(
            "the floor (bare driver, insert → change event at {} inserts/s): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms; insert commit p50 {:.2} ms",
            result["floor"]["rate"], p50, floor["p99_ms"].as_f64().unwrap_or(0.0), floor["p999_ms"].as_f64().unwrap_or(0.0),
            result["floor"]["insert_commit"]["p50_ms"].as_f64().unwrap_or(0.0),
        ));
    }
    if let Some(history) = result.get("history") {
        // Both sides' pages must hold the same messages for their rates to compare.
        let per_page: Vec<String> = ["roomcast", "socket.io"]
            .iter()
            .filter_map(|t| history[t]["messages_per_page"].as_f64().map(|m| format!("{t} {m:.1}")))
            .collect();
        notes.push(format!(
            "history: messages per page {} (limit {})",
            per_page.join(", "),
            result["scale"]["history_limit"]
        ));
    }
    if result.get("presence").is_some() || result.get("typing").is_some() {
        notes.push(
            "presence, typing: the peer keeps presence and the typing throttle in its one process's memory \
             (no MongoDB, nothing across processes), so its rows compare cost, not features"
                .to_string(),
        );
    }
    if let Some(presence) = result.get("presence") {
        notes.push(presence_ramp(presence));
    }
    if result.get("typing").is_some() {
        notes.push(
            "typing: a delivery's latency counts from the send of the frame the throttle passed, found by \
             replaying the throttle's rule on the typist's send times (bench/README.md)"
                .to_string(),
        );
    }
    collect_problems(result, "", &mut notes);
    notes.join("\n")
}

/// Errors and abnormal closes anywhere in the result, with where they happened.
fn collect_problems(value: &Value, path: &str, notes: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{path}/{key}");
                match (key.as_str(), child) {
                    ("error", Value::String(e)) => notes.push(format!("error at {path}: {e}")),
                    ("closes", Value::Object(closes)) if !closes.is_empty() => {
                        let list: Vec<String> = closes.iter().map(|(why, n)| format!("{n}× {why}")).collect();
                        notes.push(format!("connections closed at {path}: {}", list.join(", ")));
                    }
                    _ => collect_problems(child, &here, notes),
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_problems(child, &format!("{path}/{i}"), notes);
            }
        }
        _ => {}
    }
}

/// Each side's presence steps, offered → sustained cycles/s, and any
/// `occupancy` frames (a room went above the listing limit).
fn presence_ramp(presence: &Value) -> String {
    let sides: Vec<String> = ["roomcast", "socket.io"]
        .iter()
        .filter_map(|target| {
            let run = presence.get(*target)?;
            let steps: Vec<&Value> = std::iter::once(&run["fixed"]).chain(run["ramp"].as_array()?.iter()).collect();
            let shown: Vec<String> = steps
                .iter()
                .map(|s| {
                    let (offered, got) = (s["offered_cycles_per_s"].as_f64()?, s["cycles_per_s"].as_f64()?);
                    let p99 = s["figures"]["latency"]["p99_ms"].as_f64()?;
                    let lost = s["figures"]["lost_frames"].as_u64().unwrap_or(0);
                    let coalesced = s["coalesced_cycles"].as_u64().unwrap_or(0);
                    let mut notes = format!("p99 {p99:.1} ms");
                    if lost > 0 {
                        notes.push_str(&format!(", {lost} frames lost"));
                    }
                    if coalesced > 0 {
                        notes.push_str(&format!(", {coalesced} cycles coalesced"));
                    }
                    Some(format!("{offered:.0} → {got:.1} ({notes})"))
                })
                .collect::<Option<_>>()?;
            let occupancy: u64 = steps.iter().filter_map(|s| s["occupancy_frames"].as_u64()).sum();
            let occupancy = if occupancy > 0 { format!(", {occupancy} occupancy frames") } else { String::new() };
            Some(format!("{target} {}{occupancy}", shown.join(", ")))
        })
        .collect();
    format!("presence churn, offered → sustained cycles/s: {}", sides.join("; "))
}
