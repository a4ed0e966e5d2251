"""The Grafana dashboard for roomcast, as data: generate.py writes it to
grafana-dashboard.json. It is kept here rather than as hand-edited JSON so
that each panel says, in a comment, why it is there and what it cannot show,
and so the queries are written once with the same job/instance filter.

Every query is checked against a real Prometheus scraping a real relay by
live_test.py (scripts/test-monitoring), so a renamed metric fails there.
Queries on metrics that come from elsewhere than roomcast (cAdvisor,
kube-state-metrics) are listed in EXTERNAL_METRICS, which that test skips.
"""

# Metrics the dashboard or the rules read that roomcast does not export:
# Kubernetes' own, absent wherever the test runs.
EXTERNAL_METRICS = {
    "container_memory_working_set_bytes": "cAdvisor, through the kubelet",
    "kube_pod_container_resource_limits": "kube-state-metrics",
    "kube_pod_status_ready": "kube-state-metrics",
}

# The filter every roomcast query carries: the two selectors at the top of
# the dashboard.
F = 'job=~"$job", instance=~"$instance"'
RATE = "$__rate_interval"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def target(expr, legend):
    return {"expr": expr, "legendFormat": legend}


def quantiles(metric, qs=(0.5, 0.9, 0.99, 0.999)):
    """histogram_quantile of a roomcast histogram over all selected replicas."""
    return [
        target(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{F}}}[{RATE}])))",
            f"p{q * 100:g}",
        )
        for q in qs
    ]


def limit(variable, setting):
    """A flat line at a configured limit, from a dashboard variable (the
    limits are settings, not metrics). Drawn dashed (see LIMIT_STYLE)."""
    return target(f"vector(${variable})", setting)


# (title, unit, description, targets); None starts a new row, titled by the
# string that follows it.
PANELS = [
    None, "Clients",
    ("Open sessions", "short",
     "Sessions over WebSocket or SSE per replica, and of those the SSE "
     "streams, against limits.max_connections and limits.max_sse_streams "
     "(the variables at the top: set them to your config's values).",
     [target(f"sum by (instance) (roomcast_connections_open{{{F}}})", "{{instance}} sessions"),
      target(f"sum by (instance) (roomcast_sse_streams_open{{{F}}})", "{{instance}} SSE streams"),
      limit("max_connections", "limits.max_connections"),
      limit("max_sse_streams", "limits.max_sse_streams")]),
    ("Rooms joined and HTTP-phase connections", "short",
     "Room subscriptions summed over connections, and connections not (yet) "
     "upgraded: plain HTTP requests, handshakes, stalled clients.",
     [target(f"sum by (instance) (roomcast_rooms_joined{{{F}}})", "{{instance}} rooms joined"),
      target(f"sum by (instance) (roomcast_http_connections{{{F}}})", "{{instance}} HTTP phase")]),
    ("Frames in per second, by type", "ops",
     "Frames received from clients. invalid and binary are clients that do "
     "not speak the protocol.",
     [target(f"sum by (type) (rate(roomcast_frames_in_total{{{F}}}[{RATE}]))", "{{type}}")]),
    ("Frames out per second, by type", "ops",
     "Frames written to sockets, and the frames the fan-out offered (one per "
     "recipient) for comparison.",
     [target(f"sum by (type) (rate(roomcast_frames_out_total{{{F}}}[{RATE}]))", "{{type}}"),
      target(f"sum(rate(roomcast_fanout_frames_total{{{F}}}[{RATE}]))", "offered by the fan-out")]),
    ("Bytes written per second", "Bps",
     "Bytes of text frames written to sockets.",
     [target(f"sum by (instance) (rate(roomcast_bytes_out_total{{{F}}}[{RATE}]))", "{{instance}}")]),

    None, "Latency",
    # roomcast measures its own part of a delivery (the change event's
    # arrival to the socket) and the stream's lag (the commit to the event's
    # arrival, sampled per batch); no metric holds the whole of it.
    ("Relay overhead: change event to socket", "s",
     "roomcast_relay_overhead_seconds: the relay's own delay per frame, from "
     "the change event's arrival from MongoDB to the frame written to the "
     "socket. A delivery also takes the change stream's lag (below).",
     quantiles("roomcast_relay_overhead_seconds")),
    ("Send commit latency", "s",
     "roomcast_write_seconds: a send's commit with write concern majority, as "
     "the session waits for it (queueing for the room's group included).",
     quantiles("roomcast_write_seconds", (0.5, 0.99, 0.999))),
    ("Sends per second, by result", "ops",
     "accepted, or the error code: db_unavailable and internal are the "
     "database's; the others are the clients'.",
     [target(f"sum by (result) (rate(roomcast_sends_total{{{F}}}[{RATE}]))", "{{result}}")]),
    ("Sends per group commit", "short",
     "Average sends written by one ordered insert; above 1, busy rooms are "
     "being grouped.",
     [target(f"sum(rate(roomcast_send_group_size_sum{{{F}}}[{RATE}])) / sum(rate(roomcast_send_group_size_count{{{F}}}[{RATE}]))",
             "sends per insert")]),

    None, "Change streams",
    ("Change-stream lag per route", "s",
     "Now minus the wall time of the last event, per route and replica, set "
     "each time the stream answers. Past server.ready_max_lag the replica is "
     "not ready. A stream that stops answering keeps its last value: /readyz "
     "and the pod's Ready condition see it, this gauge does not.",
     [target(f"roomcast_route_lag_seconds{{{F}}}", "{{route}} {{instance}}"),
      limit("ready_max_lag", "server.ready_max_lag")]),
    ("Change streams open", "short",
     "1 while a route's change stream is open on a replica, 0 while it is "
     "being reopened (with backoff, after an error or a failover).",
     [target(f"roomcast_route_open{{{F}}}", "{{route}} {{instance}}")]),
    ("Change events per second, by route", "ops",
     "Events received from MongoDB.",
     [target(f"sum by (route) (rate(roomcast_route_events_total{{{F}}}[{RATE}]))", "{{route}}")]),
    ("Change-stream restarts", "short",
     "Resumed: reopened from the stored token (a failover, a network break). "
     "History lost: restarted from now; rooms re-filled, users told to resync. "
     "Both counters appear at their first event.",
     [target(f"sum by (route) (increase(roomcast_route_resumes_total{{{F}}}[{RATE}]))", "{{route}} resumed"),
      target(f"sum by (route) (increase(roomcast_route_history_lost_total{{{F}}}[{RATE}]))", "{{route}} history lost")]),

    None, "Closes and refusals",
    ("Closes and refusals per second, by cause", "ops",
     "Sessions ended, by close code (client: the client left or its "
     "connection broke); 4008 slow consumers; handshakes refused by reason; "
     "connections refused unread (too many from one address); HTTP requests "
     "closed for a head not sent in server.header_timeout or an answer not "
     "read in server.write_timeout.",
     [target(f"sum by (code) (rate(roomcast_closes_total{{{F}}}[{RATE}]))", "closed: {{code}}"),
      target(f"sum(rate(roomcast_slow_consumer_disconnects_total{{{F}}}[{RATE}]))", "4008 slow consumer"),
      target(f"sum by (reason) (rate(roomcast_auth_failures_total{{{F}}}[{RATE}]))", "handshake refused: {{reason}}"),
      target(f"sum by (reason) (rate(roomcast_http_refused_total{{{F}}}[{RATE}]))", "refused unread: {{reason}}"),
      target(f"sum(rate(roomcast_http_header_timeouts_total{{{F}}}[{RATE}]))", "HTTP head timeout"),
      target(f"sum(rate(roomcast_http_answer_timeouts_total{{{F}}}[{RATE}]))", "HTTP answer timeout")]),

    None, "Memory",
    ("Connection buffers against limits.buffer_pool_bytes", "bytes",
     "What all connections hold (queued and held frames, replays, pending "
     "sends), and of that what they borrow from the shared pool beyond their "
     "reserves, against limits.buffer_pool_bytes. When the pool is spent, "
     "connections that need more are closed with 4008.",
     [target(f"sum by (instance) (roomcast_buffered_bytes{{{F}}})", "{{instance}} held"),
      target(f"sum by (instance) (roomcast_buffer_pool_bytes{{{F}}})", "{{instance}} borrowed from the pool"),
      limit("buffer_pool_bytes", "limits.buffer_pool_bytes")]),
    ("Relay resident memory", "bytes",
     "Each replica's resident memory, read when scraped. docs/operations.md "
     "(\"Memory\") sizes the defaults to hold under 1 GiB whatever clients do.",
     [target(f"roomcast_resident_memory_bytes{{{F}}}", "{{instance}}")]),
    # The container's memory, from the kubelet, against its limit, from
    # kube-state-metrics: what the kernel charges, socket buffers included.
    ("Container memory (Kubernetes)", "bytes",
     "The roomcast containers' working set (cAdvisor) against their memory "
     "limit (kube-state-metrics). "
     "Shows every container named roomcast that this Prometheus scrapes.",
     [target('sum by (namespace, pod) (container_memory_working_set_bytes{container="roomcast"})', "{{pod}}"),
      target('max by (namespace, pod) (kube_pod_container_resource_limits{container="roomcast", resource="memory"})',
             "{{pod}} limit")]),

    None, "Presence and notifications",
    ("Presence", "short",
     "Users present in the rooms each replica follows, and presence documents "
     "written per second (a user's first connection in a room, their last "
     "departure).",
     [target(f"sum by (instance) (roomcast_presence_tracked_users{{{F}}})", "{{instance}} users tracked"),
      target(f"sum by (kind) (rate(roomcast_presence_writes_total{{{F}}}[{RATE}]))", "writes/s: {{kind}}"),
      target(f"sum(increase(roomcast_presence_replicas_removed_total{{{F}}}[{RATE}]))", "dead replicas removed")]),
    ("Notification recoveries past the ring", "short",
     "since_cursor recoveries the ring could not answer, by result, and the "
     "history reads running against recovery.max_scans.",
     [target(f"sum by (result) (increase(roomcast_recovery_scans_total{{{F}}}[{RATE}]))", "{{result}}"),
      target(f"max(roomcast_recovery_scans_running{{{F}}})", "reads running"),
      target(f"max(roomcast_recovery_scans_peak{{{F}}})", "reads at once, peak")]),
    ("Documents not relayed whole", "short",
     "Documents over limits.max_document_bytes relayed as stubs, and hard "
     "deletes without a pre-image that could not be relayed.",
     [target(f"sum by (route) (increase(roomcast_documents_too_large_total{{{F}}}[{RATE}]))", "{{route}} too large"),
      target(f"sum by (route) (increase(roomcast_deletes_unrouted_total{{{F}}}[{RATE}]))", "{{route}} delete unrouted")]),
]

# Panels as wide as the dashboard: many series that share one scale.
WIDE = {"Closes and refusals per second, by cause"}

# Limit lines are dashed and grey, so they read as bounds, not as data.
LIMIT_STYLE = {
    "matcher": {"id": "byRegexp", "options": r"^(limits|server)\..*"},
    "properties": [
        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
        {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
    ],
}


def variables():
    """Data source, job and instance selectors, and the limits as text boxes
    whose defaults are config/base.yaml's."""
    def query(name, label, expr, multi):
        return {
            "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
            "query": {"query": expr, "refId": name}, "definition": expr,
            # On dashboard load and time range change, so a new replica shows up.
            "refresh": 2, "sort": 1, "multi": multi, "includeAll": multi,
            **({"allValue": ".+"} if multi else {}),
            "current": {}, "options": [], "hide": 0, "regex": "",
        }

    def textbox(name, label, default):
        return {
            "name": name, "label": label, "type": "textbox", "query": default,
            "current": {"text": default, "value": default}, "options": [], "hide": 0,
        }

    # roomcast_buffered_bytes is set at every scrape, so it exists from the
    # first one, before any client connects.
    return [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "options": [], "hide": 0, "refresh": 1, "regex": "", "includeAll": False, "multi": False},
        query("job", "Job", "label_values(roomcast_buffered_bytes, job)", False),
        query("instance", "Instance", 'label_values(roomcast_buffered_bytes{job=~"$job"}, instance)', True),
        textbox("max_connections", "limits.max_connections", "20000"),
        textbox("max_sse_streams", "limits.max_sse_streams", "500"),
        textbox("buffer_pool_bytes", "limits.buffer_pool_bytes", "67108864"),
        textbox("ready_max_lag", "server.ready_max_lag (s)", "30"),
    ]


def build():
    panels, y, x, next_id = [], 0, 0, 1
    items = iter(PANELS)
    for item in items:
        if item is None:
            title = next(items)
            if x:
                y, x = y + 8, 0
            panels.append({"id": next_id, "type": "row", "title": title, "collapsed": False,
                           "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
            next_id, y = next_id + 1, y + 1
            continue
        title, unit, description, targets = item
        width = 24 if title in WIDE else 12
        if width == 24 and x:
            y, x = y + 8, 0
        panels.append({
            "id": next_id, "type": "timeseries", "title": title, "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": 8, "w": width, "x": x, "y": y},
            "fieldConfig": {
                "defaults": {"unit": unit, "min": 0, "custom": {"lineWidth": 1, "fillOpacity": 0}},
                "overrides": [LIMIT_STYLE],
            },
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [{"datasource": DATASOURCE, "refId": chr(ord("A") + i), **t} for i, t in enumerate(targets)],
        })
        next_id += 1
        x = (x + width) % 24
        if x == 0:
            y += 8
    return {
        "title": "roomcast",
        "uid": "roomcast",
        "description": "roomcast relay: clients, latency, change streams, refusals, memory "
                       "(deploy/monitoring, docs/operations.md#alerts)",
        "tags": ["roomcast"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {"list": variables()},
        "panels": panels,
    }
