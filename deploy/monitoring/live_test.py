#!/usr/bin/env python3
"""The monitoring files against the real thing: a real Prometheus scraping
two real relays on a real database, all on 127.0.0.1.

It starts the development database (scripts/db), relays A and B
(target/debug/roomcast, config/local.yaml) and a Prometheus that scrapes
both every second and evaluates rules.yaml. Then it makes traffic, and
provokes each event an alert or a panel watches, so that the counters that
only appear at their first increment exist: chat and a notification; a
handshake without credentials; a recovery from an ancient cursor; one
address holding too many connections; a client that stops reading (4008);
HTTP answers nobody reads; B full (server_full), then killed (its presence
removed by A); the notifications collection dropped (history lost); the
database stopped and started again (db_unavailable, a failed recovery, the
streams resumed).

Then, through Prometheus's HTTP API:
- every rule in rules.yaml loaded and evaluates without error;
- every dashboard query returns data;
- every alert expression is a valid query, and every metric selector in it
  returns series: "not firing" must not hide "no such metric";
- the alerts these events must raise are firing (history lost, replica
  removed) or pending (B down).
Metrics from Kubernetes (dashboard.EXTERNAL_METRICS) are skipped, by name.

Nothing waits a fixed time: each step polls for what it needs, with a
deadline. Usage: live_test.py --prometheus PATH   (scripts/test-monitoring)
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import yaml
from pymongo import MongoClient
from websockets.sync.client import connect as ws_connect

# No __pycache__ beside the sources for importing dashboard.py.
sys.dont_write_bytecode = True
import dashboard  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RELAY = ROOT / "target/debug/roomcast"

# Relay settings, as ROOMCAST__* variables. Rate limits high enough that
# only what a step provokes is refused (as clients/js/test/support/relay.js).
GENEROUS = {
    "LIMITS__SENDS_PER_SECOND": "1000", "LIMITS__SEND_BURST": "1000",
    "LIMITS__JOINS_PER_SECOND": "1000", "LIMITS__JOIN_BURST": "1000",
    "LIMITS__HANDSHAKES_PER_SECOND_PER_IP": "1000", "LIMITS__HANDSHAKE_BURST_PER_IP": "1000",
}
COMMON = {
    # Streams reopen quickly after the database comes back.
    "RELAY__MAX_BACKOFF": "200ms",
    # Sends fail with db_unavailable within a second of the outage.
    "MONGO__TIMEOUT": "1s",
    # A killed replica is found dead within a second or so.
    "PRESENCE__HEARTBEAT_INTERVAL": "100ms",
    "PRESENCE__REPLICA_TIMEOUT": "600ms",
    # Short, so the 4008 and unread-answer steps end quickly: a queue short
    # in frames, pages of 8 MiB that the kernel's buffers cannot take whole
    # (as tests/api/http.rs does), and short timeouts.
    "LIMITS__SEND_QUEUE_FRAMES": "16",
    "LIMITS__MAX_REPLAY_BYTES": "8388608",
    "LIMITS__SEND_QUEUE_BYTES": "8388608",
    "LIMITS__USER_POOL_BYTES": "8388608",
    "SERVER__WRITE_TIMEOUT": "2s",
    "SERVER__KEEP_ALIVE_TIMEOUT": "2s",
    "SERVER__HEADER_TIMEOUT": "1s",
    # Few connections per address in their HTTP phase, so one address can
    # exceed them; the steps that do so use addresses of their own
    # (127.0.0.2, 127.0.0.3), never Prometheus's 127.0.0.1.
    "LIMITS__HTTP_CONNECTIONS_PER_IP": "4",
}
# B takes one connection, so a second is refused with server_full.
ONLY_B = {"LIMITS__MAX_CONNECTIONS": "1"}

# What the dashboard's variables stand for in the queries sent here.
VARIABLES = {
    # Five minutes: the whole run, whatever
    # the order of its steps, so each rate sees its events.
    "$__rate_interval": "5m", "$job": "roomcast", "$instance": ".+",
    "$max_connections": "20000", "$max_sse_streams": "500",
    "$buffer_pool_bytes": "67108864", "$ready_max_lag": "30",
}

# The alerts the provoked events must have raised by the end, and the state.
EXPECTED_ALERTS = {
    "RoomcastChangeStreamHistoryLost": "firing",
    "RoomcastPresenceReplicaRemoved": "firing",
    "RoomcastReplicaDown": "pending",
}

DEADLINE = 60.0


def log(message):
    print(f"  {message}", flush=True)


def until(what, probe, timeout=DEADLINE, every=0.1):
    """Polls probe() until it returns something true, and returns that;
    fails after timeout seconds, saying what was awaited."""
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A server started in its own process group, its output in a log file."""

    def __init__(self, name, argv, logdir, env=None):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = logdir / f"{name}.log"
        self.proc = None
        self.offset = 0

    def start(self):
        # A restart appends to the same log: its lines are read from here on.
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        return self

    def wait_for_line(self, pattern):
        regex = re.compile(pattern)

        def seen():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}")
            with open(self.log_path, "rb") as f:
                f.seek(self.offset)
                return regex.search(f.read().decode(errors="replace"))
        return until(f"{self.name} to log /{pattern}/", seen)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Prometheus:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path, **params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def query(self, expr):
        """The result vector, or raises on an invalid query."""
        answer = self.get("/api/v1/query", query=expr)
        if answer.get("status") != "success":
            raise ValueError(f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]["result"]

    def has(self, expr):
        return bool(self.query(expr))

    def ready(self):
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False


class Client:
    """A WebSocket client speaking roomcast's JSON frames; all are closed at
    the end of the run."""

    opened = []

    def __init__(self, port, query, sock=None):
        # Entered by hand: connect() is a context manager, and a client here
        # lives across steps.
        self._connection = ws_connect(f"ws://127.0.0.1:{port}/ws?{query}", sock=sock, open_timeout=10,
                                      max_size=None, close_timeout=1)
        self.ws = self._connection.__enter__()
        Client.opened.append(self)

    def send(self, **frame):
        self.ws.send(json.dumps(frame))

    def expect(self, what, predicate, timeout=20):
        end = time.monotonic() + timeout
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            frame = json.loads(self.ws.recv(timeout=remaining))
            if predicate(frame):
                return frame

    def join(self, room):
        self.send(type="join", room=room)
        return self.expect(f"joined {room}", lambda f: f["type"] == "joined" and f["room"] == room)

    def close(self):
        try:
            self._connection.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - already closed by the relay
            pass


def database_command(port, data):
    """scripts/db, which runs a mongod on PATH (a replica set it initiates)
    or else the SecantusDB build in .dev/; ROOMCAST_DB=py or rs picks the
    build, as the JavaScript tests do (scripts/db takes rs when it is there)."""
    build = {"rs": ".dev/secantus/bin/secantusd-rs", "py": ".dev/venv/bin/secantusd-py"}.get(
        os.environ.get("ROOMCAST_DB", ""))
    if build is None or shutil.which("mongod"):
        return ["scripts/db", str(port), str(data)]
    data.mkdir(parents=True, exist_ok=True)
    return [str(ROOT / build), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(data)]


def stingy_socket(port, source="127.0.0.1"):
    """A socket with a 4 KiB receive buffer, so what it does not read backs
    up into the relay instead of the kernel (as tests/api's connect_stingy)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def http_status(port, path, source="127.0.0.1", headers=()):
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        head = "".join(f"{h}\r\n" for h in headers)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Connection: close\r\n\r\n".encode())
        return int(s.recv(64).split()[1])


# --- PromQL ----------------------------------------------------------------

PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# Written `sum by (x) (...)` as well as `sum(...)`: never a metric.
AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
               "bottomk", "topk", "quantile"}


def promql_tokens(expr):
    """Splits PromQL into strings, {...} label sets (strings inside kept
    whole), [...] ranges, names, numbers (10m, 0.9, 1e3) and single signs."""
    tokens, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c.isspace():
            i += 1
        elif c in "\"'`":
            j = i + 1
            while expr[j] != c:
                j += 2 if expr[j] == "\\" else 1
            tokens.append(expr[i:j + 1])
            i = j + 1
        elif c == "{":
            j, quote = i + 1, None
            while quote or expr[j] != "}":
                if quote and expr[j] == "\\":
                    j += 1
                elif expr[j] == quote:
                    quote = None
                elif not quote and expr[j] in "\"'`":
                    quote = expr[j]
                j += 1
            tokens.append(expr[i:j + 1])
            i = j + 1
        elif c == "[":
            j = expr.index("]", i)
            tokens.append(expr[i:j + 1])
            i = j + 1
        else:
            match = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*|[0-9.][0-9A-Za-z.+]*|.", expr[i:])
            tokens.append(match.group(0))
            i += len(match.group(0))
    return tokens


def selectors(expr):
    """The vector selectors of a PromQL expression, e.g.
    'roomcast_sends_total{result=~"db_unavailable|internal"}': what the
    expression reads, so each can be checked to return series. Enough of
    PromQL for this repository's rules and queries: the label lists of
    by/without/on/group_left, function names, keywords, numbers, durations
    and strings are not selectors."""
    tokens, found, i = promql_tokens(expr), [], 0
    while i < len(tokens):
        token = tokens[i]
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in GROUPING:
            if after == "(":
                i = tokens.index(")", i)  # skip the label list
        elif re.match(r"[A-Za-z_:]", token) and token not in PROMQL_WORDS | AGGREGATORS and after != "(":
            labels = after if after.startswith("{") else ""
            found.append(token + labels)
            i += 1 if labels else 0
        elif token.startswith("{"):
            found.append(token)
        i += 1
    return found


def substitute(expr):
    for variable, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    return expr


def external(selector):
    return re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", selector).group(0) in dashboard.EXTERNAL_METRICS


# --- the run -----------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", required=True, help="the prometheus server binary")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="roomcast-monitoring-"))
    processes = []
    failures = []
    passed = 0

    def start(process):
        processes.append(process)
        return process.start()

    def verdict(ok, what):
        nonlocal passed
        print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if ok:
            passed += 1
        else:
            failures.append(what)

    try:
        # --- servers ---------------------------------------------------------
        db_port = free_port()
        db_dir = work / "db"
        db = start(Process("db", database_command(db_port, db_dir), work))
        db.wait_for_line(r"listening on|Waiting for connections")
        uri = f"mongodb://127.0.0.1:{db_port}/?directConnection=true"
        mongo = MongoClient(uri, serverSelectionTimeoutMS=2000, timeoutMS=5000)
        # A real mongod is a replica set only once scripts/db initiated it.
        until("the database to be a writable primary",
              lambda: mongo.admin.command("hello").get("isWritablePrimary"))
        database = f"monitoring_{os.getpid()}"
        log(f"database on 127.0.0.1:{db_port} ({database})")

        def relay(name, extra):
            env = {**os.environ, "ROOMCAST_ENV": "local", "ROOMCAST__SERVER__PORT": "0",
                   "ROOMCAST__MONGO__URI": uri, "ROOMCAST__MONGO__DATABASE": database}
            env.update({f"ROOMCAST__{k}": v for k, v in {**GENEROUS, **COMMON, **extra}.items()})
            process = start(Process(name, [str(RELAY)], work, env))
            process.port = int(process.wait_for_line(r"listening addr=127\.0\.0\.1:(\d+)").group(1))
            log(f"relay {name} on 127.0.0.1:{process.port}")
            return process

        a = relay("relay-a", {})
        b = relay("relay-b", ONLY_B)

        prom_port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(HERE / "rules.yaml")],
            "scrape_configs": [{"job_name": "roomcast", "static_configs": [
                {"targets": [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]}]}],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        start(Process("prometheus", [
            args.prometheus, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"], work))
        prom = Prometheus(prom_port)
        until("Prometheus to be ready", prom.ready)
        until("Prometheus to scrape both relays",
              lambda: len(prom.query('up{job="roomcast"} == 1')) == 2)
        log(f"Prometheus on 127.0.0.1:{prom_port} scrapes both relays")

        # --- traffic ---------------------------------------------------------
        alice, bob = Client(a.port, "user=alice"), Client(a.port, "user=bob")
        alice.join("lobby")
        bob.join("lobby")

        def chat(first, last):
            for i in range(first, last + 1):
                alice.send(type="send", room="lobby", client_id=f"c{i}", body={"text": f"hello {i}"})
            bob.expect(f"message {last}", lambda f: f["type"] == "message" and f.get("seq") == last)
        # Histograms appear at their first sample: chat again once Prometheus
        # has them, so their rates (the dashboard's quantiles) see sends.
        chat(1, 5)
        until("the send histogram in Prometheus", lambda: prom.has("roomcast_write_seconds_count"))
        chat(6, 10)
        mongo[database].notifications.insert_one({"user": "alice", "kind": "test", "text": "hi"})
        alice.expect("a notification", lambda f: f["type"] == "notification")
        log("chat: 10 messages relayed, 1 notification delivered")

        # An SSE stream, held open to the end.
        # An SSE stream stays in its HTTP phase: from an address of its own,
        # so it takes none of 127.0.0.1's four.
        sse = socket.create_connection(("127.0.0.1", a.port), timeout=10, source_address=("127.0.0.4", 0))
        sse.sendall(b"GET /sse?user=dave HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        head = sse.recv(4096)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"GET /sse answered {head[:40]!r}")
        log("SSE: one stream open")

        # Refused handshakes: no credentials on A; B full (max_connections 1).
        upgrade = ("Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
        status = http_status(a.port, "/ws", headers=upgrade)
        carol = Client(b.port, "user=carol")
        carol.join("lobby")
        full = http_status(b.port, "/ws?user=frank", headers=upgrade)
        log(f"handshakes refused: {status} without credentials, {full} on a full replica")

        # A recovery from an ancient cursor: older than recovery.max_scan_span.
        erin = Client(a.port, "user=erin&since_cursor=" + urllib.parse.quote("notifications:1000000000.1.0"))
        erin.expect("recovered: false", lambda f: f["type"] == "recovery" and f["recovered"] is False)
        log("recovery: an ancient cursor refused (too_old)")

        # One address (127.0.0.2) beyond its 4 HTTP-phase connections: the
        # fifth is refused unread; the others send no request head and are
        # closed after server.header_timeout.
        idle = [socket.create_connection(("127.0.0.1", a.port), source_address=("127.0.0.2", 0)) for _ in range(5)]
        until("connections refused unread", lambda: prom.has("roomcast_http_refused_total > 0"))
        until("HTTP head timeouts", lambda: prom.has("roomcast_http_header_timeouts_total > 0"))
        for s in idle:
            s.close()
        log("HTTP: connections refused unread, heads timed out")

        # A client that stops reading, in a room that gets 200 messages of
        # 40 KB (inserted directly, as another program would): closed with 4008.
        stingy = Client(a.port, "user=stingy", sock=stingy_socket(a.port))
        stingy.join("big")
        body = "z" * 40_000
        mongo[database].messages.insert_many(
            [{"room": "big", "seq": seq, "author": "bob", "body": body, "sent_at": datetime.now(timezone.utc)} for seq in range(1, 201)])
        until("a slow-consumer close", lambda: prom.has("roomcast_slow_consumer_disconnects_total > 0"))
        log("slow consumer: closed with 4008")

        # HTTP answers nobody reads, from 127.0.0.3: 8 MiB pages of the room
        # above, held past server.write_timeout.
        stalled = []
        for _ in range(4):
            s = stingy_socket(a.port, "127.0.0.3")
            s.sendall(b"GET /v1/rooms/big/messages?user=mallory&limit=200 HTTP/1.1\r\nHost: x\r\n\r\n")
            stalled.append(s)
        until("the pool to hold unread answers", lambda: prom.has("roomcast_buffer_pool_bytes > 0"))
        until("an HTTP answer timeout", lambda: prom.has("roomcast_http_answer_timeouts_total > 0"))
        for s in stalled:
            s.close()
        log("HTTP: answers nobody read timed out")

        # B killed outright: A removes its presence once its heartbeat is still.
        b.stop(signal.SIGKILL)
        until("A to remove B's presence", lambda: prom.has("roomcast_presence_replicas_removed_total > 0"))
        until("B's scrape to fail", lambda: prom.has('up{job="roomcast"} == 0'))
        log("replica B killed: its presence removed, its target down")

        # The notifications collection dropped: that stream restarts from now.
        mongo[database].notifications.drop()
        until("a lost history", lambda: prom.has("roomcast_route_history_lost_total > 0"))
        log("notifications dropped: history lost")

        # The database stopped: a send fails, a recovery that must read the
        # history fails; started again: the streams resume from their tokens.
        mongo.close()
        db.stop(signal.SIGKILL)
        alice.send(type="send", room="lobby", client_id="during-outage", body={"text": "anyone?"})
        alice.expect("db_unavailable", lambda f: f["type"] == "error" and f.get("code") == "db_unavailable")
        recent = int(time.time()) - 30
        gina = Client(a.port, "user=gina&since_cursor=" + urllib.parse.quote(f"notifications:{recent}.1.0"))
        gina.expect("recovered: false", lambda f: f["type"] == "recovery" and f["recovered"] is False)
        db.start()
        db.wait_for_line(r"listening on|Waiting for connections")
        until("the streams to resume", lambda: prom.has("roomcast_route_resumes_total > 0"))
        log("database restarted: a send got db_unavailable, a recovery failed, streams resumed")

        # Everything above reached Prometheus before the checks: the last
        # scrape of A is newer than the last event.
        # rate() and increase() need two samples: wait until every roomcast
        # series has two (B's, stale since its kill, have more).
        until("two samples of every series", lambda: all(
            len(series["values"]) >= 2 for series in prom.query('{__name__=~"roomcast_.+"}[10m]')), every=0.5)

        # --- checks ----------------------------------------------------------
        print("\n== rules loaded by Prometheus", flush=True)
        plain = yaml.safe_load((HERE / "rules.yaml").read_text())
        names = [rule["alert"] for group in plain["groups"] for rule in group["rules"]]

        def rules():
            return {r["name"]: r for g in prom.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]}
        # Rules are evaluated every second; a rule not yet evaluated has the zero time.
        until("every rule to be evaluated once",
              lambda: all(not r["lastEvaluation"].startswith("0001") for r in rules().values()))
        loaded = rules()
        verdict(sorted(loaded) == sorted(names), f"Prometheus loaded all {len(names)} alerts of rules.yaml")
        broken = {name: rule.get("lastError") for name, rule in loaded.items() if rule.get("health") != "ok"}
        verdict(not broken, f"every rule evaluates without error {broken if broken else ''}".rstrip())

        print("\n== dashboard queries return data", flush=True)
        board = json.loads((HERE / "grafana-dashboard.json").read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = substitute(target["expr"])
                label = f"{panel['title']} / {target['legendFormat']}"
                if any(external(s) for s in selectors(expr)):
                    print(f"  skip {label}: reads a Kubernetes metric", flush=True)
                    continue
                try:
                    result = prom.query(expr)
                    numbers = [s for s in result if s["value"][1] not in ("NaN", "+Inf", "-Inf")]
                    verdict(bool(numbers), f"{label}: {len(result)} series")
                except ValueError as error:
                    verdict(False, f"{label}: {error}")
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                metric = re.search(r"label_values\(([^,]+),", variable["definition"]).group(1)
                verdict(prom.has(substitute(metric)), f"variable {variable['name']}: {metric} has series")

        print("\n== alert expressions: valid, and what they read exists", flush=True)
        firing = {}
        for group in plain["groups"]:
            for rule in group["rules"]:
                try:
                    result = prom.query(rule["expr"])
                except ValueError as error:
                    verdict(False, f"{rule['alert']}: {error}")
                    continue
                firing[rule["alert"]] = len(result)
                for selector in dict.fromkeys(selectors(rule["expr"])):
                    if external(selector):
                        print(f"  skip {rule['alert']}: {selector} comes from Kubernetes", flush=True)
                        continue
                    # Over the run, not now: B's series went stale when it was killed.
                    verdict(prom.has(f"count_over_time({selector}[10m])"), f"{rule['alert']}: {selector} has series")

        print("\n== alerts the events raised", flush=True)
        def states():
            return {a["labels"]["alertname"]: a["state"] for a in prom.get("/api/v1/alerts")["data"]["alerts"]}
        try:
            until("the expected alerts", lambda: all(states().get(n) == s for n, s in EXPECTED_ALERTS.items()),
                  timeout=15)
        except TimeoutError:
            pass
        now = states()
        for name, state in EXPECTED_ALERTS.items():
            verdict(now.get(name) == state, f"{name} is {state} (is {now.get(name, 'inactive')})")
        others = {n: s for n, s in now.items() if n not in EXPECTED_ALERTS}
        print(f"  (also active: {others if others else 'none'})", flush=True)

    except Exception as error:  # noqa: BLE001 - reported as a failure, with the logs kept
        failures.append(f"{type(error).__name__}: {error}")
        print(f"  FAIL {type(error).__name__}: {error}", flush=True)
        args.keep = True
    finally:
        for client in Client.opened:
            client.close()
        for process in reversed(processes):
            process.stop()
        if args.keep:
            print(f"  logs and data kept in {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nlive: {passed} passed, {len(failures)} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
