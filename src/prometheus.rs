//! Prometheus metrics, through the `metrics` facade and its Prometheus
//! exporter, served at `GET /metrics`. docs/operations.md lists every name.
//! The recorder is process-wide, so it is installed once however many
//! applications a process builds (the tests build many).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CONNECTIONS_OPEN: &str = "roomcast_connections_open";
pub const ROUTE_OPEN: &str = "roomcast_route_open";
pub const CLOSES: &str = "roomcast_closes_total";
pub const RESIDENT_MEMORY: &str = "roomcast_resident_memory_bytes";
pub const RECOVERY_SCANS: &str = "roomcast_recovery_scans_total";
pub const RECOVERY_SCANS_RUNNING: &str = "roomcast_recovery_scans_running";
pub const RECOVERY_SCANS_PEAK: &str = "roomcast_recovery_scans_peak";
pub const SSE_STREAMS: &str = "roomcast_sse_streams_open";
pub const ROOMS_JOINED: &str = "roomcast_rooms_joined";
pub const FRAMES_IN: &str = "roomcast_frames_in_total";
pub const FRAMES_OUT: &str = "roomcast_frames_out_total";
pub const FANOUT_FRAMES: &str = "roomcast_fanout_frames_total";
pub const BYTES_OUT: &str = "roomcast_bytes_out_total";
pub const SENDS: &str = "roomcast_sends_total";
pub const WRITE_SECONDS: &str = "roomcast_write_seconds";
pub const SEND_GROUP_SIZE: &str = "roomcast_send_group_size";
pub const RELAY_OVERHEAD_SECONDS: &str = "roomcast_relay_overhead_seconds";
pub const ROUTE_EVENTS: &str = "roomcast_route_events_total";
pub const ROUTE_LAG_SECONDS: &str = "roomcast_route_lag_seconds";
pub const ROUTE_RESUMES: &str = "roomcast_route_resumes_total";
pub const ROUTE_HISTORY_LOST: &str = "roomcast_route_history_lost_total";
pub const SLOW_CONSUMER_DISCONNECTS: &str = "roomcast_slow_consumer_disconnects_total";
pub const AUTH_FAILURES: &str = "roomcast_auth_failures_total";
pub const DOCUMENTS_TOO_LARGE: &str = "roomcast_documents_too_large_total";
pub const BUFFERED_BYTES: &str = "roomcast_buffered_bytes";
pub const BUFFER_POOL_BYTES: &str = "roomcast_buffer_pool_bytes";
pub const HTTP_CONNECTIONS: &str = "roomcast_http_connections";
pub const HTTP_REFUSED: &str = "roomcast_http_refused_total";
pub const DELETES_UNROUTED: &str = "roomcast_deletes_unrouted_total";
pub const REMOVALS_UNCHECKED: &str = "roomcast_removals_unchecked_total";
pub const SEQS_REUSED: &str = "roomcast_seqs_reused_total";
pub const PRESENCE_WRITES: &str = "roomcast_presence_writes_total";
pub const PRESENCE_REPLICAS_REMOVED: &str = "roomcast_presence_replicas_removed_total";
pub const PRESENCE_TRACKED_USERS: &str = "roomcast_presence_tracked_users";
pub const HTTP_HEADER_TIMEOUTS: &str = "roomcast_http_header_timeouts_total";
pub const HTTP_ANSWER_TIMEOUTS: &str = "roomcast_http_answer_timeouts_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The `type` labels of `roomcast_frames_out_total`; anything else is "other", last.
pub const FRAME_TYPES: [&str; 19] = [
    "message",
    "notification",
    "ack",
    "error",
    "joined",
    "left",
    "pong",
    "recovery",
    "resync",
    "history",
    "read_marker",
    "rooms",
    "notifications",
    "presence",
    "presence_join",
    "presence_leave",
    "occupancy",
    "typing",
    "other",
];

/// Fine around the 1 ms that matters for the relay's own delay and for a
/// send's commit, and up to the 10 s of a slow database.
const LATENCY_BUCKETS: [f64; 23] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_2, 0.000_3, 0.000_5, 0.000_75, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Sends per group commit, up to the 64 one insert takes.
const GROUP_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Installs the recorder (once) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(WRITE_SECONDS.to_string()), &LATENCY_BUCKETS)
                .expect("valid buckets")
                .set_buckets_for_metric(Matcher::Full(SEND_GROUP_SIZE.to_string()), &GROUP_BUCKETS)
                .expect("valid buckets")
                .set_buckets_for_metric(Matcher::Full(RELAY_OVERHEAD_SECONDS.to_string()), &LATENCY_BUCKETS)
                .expect("valid buckets")
                .install_recorder()
                .unwrap_or_else(|_| {
                    // Another recorder was installed first (a host application's):
                    // keep ours local, so /metrics still answers.
                    PrometheusBuilder::new().build_recorder().handle()
                });
            describe();
            // Counted from the start, so a first close is an increase too.
            for code in ["1001", "4000", "4001", "4008", "client"] {
                ::metrics::counter!(CLOSES, "code" => code).absolute(0);
            }
            handle
        })
        .clone()
}

/// Folds recorded histogram samples into their buckets. The exporter keeps
/// every sample until then; without this, a relay nobody scrapes would hold
/// one entry per frame written.
pub async fn keep_up(handle: PrometheusHandle, shutdown: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => handle.run_upkeep(),
            _ = shutdown.cancelled() => return,
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS_OPEN, "Open sessions, over WebSocket or SSE.");
    describe_gauge!(ROUTE_OPEN, "1 while the route's change stream is open, 0 while it is being reopened.");
    describe_counter!(
        CLOSES,
        "Sessions ended, by close code: the server's (1001, 1002, 1007, 1009, 4000, 4001, 4008) or client (the client left)."
    );
    describe_gauge!(RESIDENT_MEMORY, Unit::Bytes, "The process's resident memory, read when scraped.");
    describe_counter!(
        RECOVERY_SCANS,
        "Notification recoveries read from MongoDB's history, by result: recovered, busy, too_old, too_large, history_lost, timed_out, failed."
    );
    describe_gauge!(RECOVERY_SCANS_RUNNING, "Recoveries reading MongoDB's history now, against recovery.max_scans.");
    describe_gauge!(RECOVERY_SCANS_PEAK, "The most recoveries that read MongoDB's history at once since the start.");
    describe_gauge!(SSE_STREAMS, "Open SSE streams (GET /sse), against limits.max_sse_streams.");
    describe_gauge!(ROOMS_JOINED, "Room subscriptions, summed over connections.");
    describe_counter!(FRAMES_IN, "Frames received from clients, by type.");
    describe_counter!(FRAMES_OUT, "Frames written to clients, by type.");
    describe_counter!(FANOUT_FRAMES, "Frames offered by the fan-out, one per recipient.");
    describe_counter!(BYTES_OUT, Unit::Bytes, "Bytes of frames written to clients.");
    describe_counter!(SENDS, "Sends, by result: accepted or an error code.");
    describe_histogram!(WRITE_SECONDS, Unit::Seconds, "Time to commit a send (write concern majority).");
    describe_histogram!(
        SEND_GROUP_SIZE,
        Unit::Count,
        "Sends to one room written by one ordered insert (group commit)."
    );
    describe_histogram!(
        RELAY_OVERHEAD_SECONDS,
        Unit::Seconds,
        "Time from a change event's arrival to its frame written to a client socket, per frame."
    );
    describe_counter!(ROUTE_EVENTS, "Change events received, by route.");
    describe_gauge!(ROUTE_LAG_SECONDS, Unit::Seconds, "How far each route's change stream is behind.");
    describe_counter!(ROUTE_RESUMES, "Change streams reopened from a resume token, by route.");
    describe_counter!(ROUTE_HISTORY_LOST, "Change streams restarted after their history was lost, by route.");
    describe_counter!(SLOW_CONSUMER_DISCONNECTS, "Connections closed with 4008 for reading too slowly.");
    describe_counter!(AUTH_FAILURES, "Handshakes refused, by reason.");
    describe_counter!(DOCUMENTS_TOO_LARGE, "Documents over limits.max_document_bytes relayed as stubs, by route.");
    describe_gauge!(
        BUFFERED_BYTES,
        Unit::Bytes,
        "Bytes all connections hold: queued and held frames, replays, pending sends."
    );
    describe_gauge!(
        BUFFER_POOL_BYTES,
        Unit::Bytes,
        "Bytes connections borrow from the shared pool beyond their reserves."
    );
    describe_gauge!(HTTP_CONNECTIONS, "Connections in their HTTP phase: not upgraded to a WebSocket.");
    describe_counter!(HTTP_REFUSED, "Connections closed at once, unread, by reason.");
    describe_counter!(DELETES_UNROUTED, "Messages deleted by other programs that could not be relayed: no pre-image.");
    describe_counter!(REMOVALS_UNCHECKED, "Removed seqs not checked for reuse: too many rooms waiting.");
    describe_counter!(SEQS_REUSED, "Seqs of a removed newest message taken by a send before a tombstone held them.");
    describe_counter!(PRESENCE_WRITES, "Presence documents this replica wrote, by kind: arrive or depart.");
    describe_counter!(PRESENCE_REPLICAS_REMOVED, "Replicas this one found dead and whose presence it removed.");
    describe_gauge!(PRESENCE_TRACKED_USERS, "Present users held in memory, summed over the rooms followed.");
    describe_counter!(
        HTTP_HEADER_TIMEOUTS,
        "Connections closed for not sending a complete first request head within server.header_timeout."
    );
    describe_counter!(
        HTTP_ANSWER_TIMEOUTS,
        "HTTP connections closed because an answer was not sent within server.write_timeout."
    );
}

/// The `type` of a server frame, read from its first bytes without parsing:
/// every frame roomcast writes starts with `{"type":"`. Answers an index
/// into [`FRAME_TYPES`], so a writer counts a frame without a second match.
pub fn frame_type(text: &[u8]) -> usize {
    let other = FRAME_TYPES.len() - 1;
    let Some(rest) = text.strip_prefix(br#"{"type":""#) else { return other };
    FRAME_TYPES[..other]
        .iter()
        .position(|k| rest.starts_with(k.as_bytes()) && rest.get(k.len()) == Some(&b'"'))
        .unwrap_or(other)
}

/// The process's resident memory in bytes, from `/proc/self/status` (Linux).
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn frame_types_are_read_from_the_prefix() {
        let kind = |text: &[u8]| super::FRAME_TYPES[super::frame_type(text)];
        assert_eq!(kind(br#"{"type":"ack","seq":1}"#), "ack");
        assert_eq!(kind(br#"{"type":"acknowledged"}"#), "other");
        assert_eq!(kind(b"garbage"), "other");
    }
}
