#!/usr/bin/env python3
"""Attacks on the read side, measured from outside against a relay this
probe starts (so it can read its memory): what one user can make the
relay hold or cost everyone else. Each scenario prints its figures.

  pool      one user's 20 connections never read, each joining 7 rooms of
            15 x 62 KB from the start; meanwhile another user joins such a
            room late, reads a page of one, and receives a 62 KB message
  h2pages   HTTP/2 with prior knowledge, a history page asked 19 times a
            second for 40 s with no flow-control window granted; then the
            same over HTTP/1.1, 20 connections that never read
  rooms     a user with read markers on 5 rooms of 10,000 messages: time
            per `rooms`, and another user's history page and send -> ack
            while 10 connections of that user loop `rooms`
  reconnect history pages of one user: bursts on one connection, then a
            new connection after each burst
  churn     two relays; one user churns joins on the first with 3
            connections; does the second take the first for dead?

Needs pymongo (the development database's venv has it).
Usage: bench/probes/trust.py SCENARIO RELAY_BINARY CONFIG_DIR MONGO_PORT
"""
import datetime
import json
import os
import socket
import subprocess
import sys
import threading
import time

from pymongo import MongoClient

sys.path.insert(0, os.path.dirname(__file__))
from e2e import Frames, connect, send_text  # noqa: E402

BINARY, CONFIG_DIR, MONGO_PORT = sys.argv[2], sys.argv[3], sys.argv[4]
MONGO_URI = f"mongodb://127.0.0.1:{MONGO_PORT}/?directConnection=true"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Relay:
    """The relay binary on a free port, on `database`, with `settings` as ROOMCAST__ variables."""

    def __init__(self, database, **settings):
        self.port = free_port()
        env = dict(os.environ, ROOMCAST_ENV="local", ROOMCAST_CONFIG_DIR=CONFIG_DIR, RUST_LOG="warn",
                   ROOMCAST__SERVER__PORT=str(self.port), ROOMCAST__MONGO__URI=MONGO_URI,
                   ROOMCAST__MONGO__DATABASE=database)
        env.update({f"ROOMCAST__{key.upper().replace('.', '__')}": str(value) for key, value in settings.items()})
        env.pop("LISTEN_FDS", None)
        self.process = subprocess.Popen([BINARY], env=env, stdout=subprocess.DEVNULL)
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port)).close()
                return
            except OSError:
                time.sleep(0.05)  # waiting for the relay to listen

    def rss(self):
        return rss_kib(self.process.pid)

    def metric(self, series):
        text = http_get(self.port, "/metrics")
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self):
        self.process.kill()
        self.process.wait()


def http_get(port, path, timeout=30):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def history_body(port, path):
    response = http_get(port, path)
    status = int(response.split(" ", 2)[1])
    body = response.split("\r\n\r\n", 1)[1] if status == 200 else ""
    if "chunked" in response.split("\r\n\r\n", 1)[0].lower():
        body = body.split("\r\n", 1)[1].rsplit("\r\n0\r\n", 1)[0]
    return status, json.loads(body) if body else None


def write_rooms(database, rooms, count, body_bytes):
    messages = MongoClient(MONGO_URI)[database]["messages"]
    body = "x" * body_bytes
    for room in rooms:
        for first in range(1, count + 1, 1000):
            now = datetime.datetime.now(datetime.timezone.utc)
            messages.insert_many([{"room": room, "seq": seq, "author": "bot", "body": body, "sent_at": now}
                                  for seq in range(first, min(first + 1000, count + 1))])


def stingy(port, user):
    """A WebSocket with a 4 KiB receive buffer that is never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /ws?user={user} HTTP/1.1\r\nHost: probe\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock


def wait_for(frames, prefix, room=None, within=None):
    """The next text frame starting with `prefix` (of `room`), or TimeoutError
    after `within` seconds (with a socket timeout set, so a silent socket
    is noticed too)."""
    deadline = None if within is None else time.monotonic() + within
    while True:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError
        try:
            text = frames.next_text()
        except (socket.timeout, TimeoutError):
            if deadline is None:
                raise
            continue
        if text.startswith(prefix) and (room is None or f'"room":"{room}"' in text):
            return json.loads(text)


def pool(database):
    relay = Relay(database, **{"limits.joins_per_second": 1000000, "limits.join_burst": 1000000})
    try:
        write_rooms(database, [f"heavy{r}" for r in range(8)], 15, 62_000)
        time.sleep(2)  # the relay's stream goes past the history written above
        attackers = []
        for _ in range(20):
            sock = stingy(relay.port, "mallory")
            for room in range(7):
                send_text(sock, json.dumps({"type": "join", "room": f"heavy{room}", "since": 0}))
            attackers.append(sock)
        time.sleep(3)  # the attack's replays are read and queued
        print(f"pool borrowed while the attack holds: {relay.metric('roomcast_buffer_pool_bytes') / 1024:.0f} KiB")
        sock, rest = connect(relay.port, "alice")
        sock.settimeout(2)
        frames = Frames(sock, rest)
        outcome = []
        try:
            send_text(sock, json.dumps({"type": "join", "room": "heavy7", "since": 0}))
            joined = wait_for(frames, '{"type":"joined"', within=20)
            send_text(sock, json.dumps({"type": "ping"}))
            replayed = 0
            pong_by = time.monotonic() + 20
            while not (text := frames.next_text()).startswith('{"type":"pong"'):
                replayed += text.startswith('{"type":"message"')
                if time.monotonic() > pong_by:
                    raise TimeoutError
            outcome.append(f"late joiner's replay: {replayed} of 15 (recovered: {joined['recovered']})")
            send_text(sock, json.dumps({"type": "history", "room": "heavy1", "limit": 17}))
            page = wait_for(frames, '{"type":"history"', within=20)
            outcome.append(f"history page: {len(page['messages'])} of 15")
            bob, bob_rest = connect(relay.port, "bob")
            bob.settimeout(2)
            bob_frames = Frames(bob, bob_rest)
            send_text(bob, json.dumps({"type": "join", "room": "heavy7"}))
            wait_for(bob_frames, '{"type":"joined"', within=20)
            outcome.append("bob joined")
            send_text(bob, json.dumps({"type": "send", "room": "heavy7", "client_id": "big", "body": "y" * 62_000}))
            message = wait_for(frames, '{"type":"message"', "heavy7", within=20)
            outcome.append(f"a 62 KB message to alice: delivered (seq {message['seq']})")
        except (socket.timeout, TimeoutError):
            outcome.append("then no answer within 20 s")
        except SystemExit:
            outcome.append("then alice was closed by the relay")
        print("; ".join(outcome))
        del attackers
    finally:
        relay.stop()


def h2_request(stream_id, path):
    block = bytes([0x82, 0x86, 0x44, len(path)]) + path + bytes([0x41, 1]) + b"x"
    return bytes([0, 0, len(block), 0x1, 0x5]) + stream_id.to_bytes(4, "big") + block


def h2pages(database):
    relay = Relay(database)
    try:
        write_rooms(database, ["big"], 200, 5_000)
        time.sleep(1)
        before = relay.rss()
        sock = socket.create_connection(("127.0.0.1", relay.port))
        # The preface, and SETTINGS with an initial window of 0: no DATA may come.
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]))
        path = b"/v1/rooms/big/messages?user=mallory&limit=200"
        peak, stream_id, started, refused = before, 1, time.time(), False
        while time.time() - started < 40:
            try:
                sock.sendall(h2_request(stream_id, path))
            except OSError:
                refused = True
                break
            stream_id += 2
            peak = max(peak, relay.rss())
            time.sleep(1 / 19)  # the attack's pace: 19 pages a second
        print(f"HTTP/2 prior knowledge: {'refused' if refused else 'served'}; {stream_id // 2} pages asked; "
              f"RSS {before} -> peak {peak} KiB (+{(peak - before) / 1024:.0f} MiB); "
              f"pool {relay.metric('roomcast_buffer_pool_bytes') / 1024:.0f} KiB")
        sock.close()
        before = relay.rss()
        held = []
        for _ in range(20):
            conn = socket.socket()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.connect(("127.0.0.1", relay.port))
            conn.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(conn)
        time.sleep(2)
        print(f"HTTP/1.1, 20 connections that never read: RSS {before} -> {relay.rss()} KiB; "
              f"pool {relay.metric('roomcast_buffer_pool_bytes') / 1024:.0f} KiB")
        del held
    finally:
        relay.stop()


LOOPERS = 10


def rooms_cost(database):
    # The default buckets: how hard one user may loop `rooms` is part of the answer.
    relay = Relay(database)
    try:
        rooms = [f"deep{r}" for r in range(5)]
        write_rooms(database, rooms, 10_000, 100)
        markers = MongoClient(MONGO_URI)[database]["read_markers"]
        now = datetime.datetime.now(datetime.timezone.utc)
        markers.insert_many([{"_id": {"user": "mallory", "room": r}, "user": "mallory", "room": r, "seq": 1, "at": now}
                             for r in rooms])
        time.sleep(2)
        sock, rest = connect(relay.port, "mallory")
        frames = Frames(sock, rest)
        took = []
        for _ in range(5):
            started = time.perf_counter()
            send_text(sock, json.dumps({"type": "rooms"}))
            wait_for(frames, '{"type":"rooms"')
            took.append((time.perf_counter() - started) * 1000)
        print(f"rooms over 5 rooms of 10,000 messages: {min(took):.0f}-{max(took):.0f} ms per call")
        stop = threading.Event()

        def loop_rooms():
            s, r = connect(relay.port, "mallory")
            f = Frames(s, r)
            s.settimeout(60)
            while not stop.is_set():
                send_text(s, json.dumps({"type": "rooms"}))
                answer = f.next_text()
                while not answer.startswith(('{"type":"rooms"', '{"type":"error"')):
                    answer = f.next_text()
                if answer.startswith('{"type":"error"'):
                    loops[1] += 1
                else:
                    loops[0] += 1

        loops = [0, 0]
        loopers = [threading.Thread(target=loop_rooms) for _ in range(LOOPERS)]
        for looper in loopers:
            looper.start()
        # Past the buckets' bursts: what the loop can keep up.
        time.sleep(10)
        loops[:] = [0, 0]
        alice, alice_rest = connect(relay.port, "alice")
        alice.settimeout(2)
        alice_frames = Frames(alice, alice_rest)
        send_text(alice, json.dumps({"type": "join", "room": "calm"}))
        wait_for(alice_frames, '{"type":"joined"')
        pages, acks, measured = [], [], time.perf_counter()
        try:
            for i in range(10):
                started = time.perf_counter()
                send_text(alice, json.dumps({"type": "history", "room": "deep0", "before": 5000, "limit": 50}))
                wait_for(alice_frames, '{"type":"history"', within=30)
                pages.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                send_text(alice, json.dumps({"type": "send", "room": "calm", "client_id": f"c{i}", "body": i}))
                wait_for(alice_frames, '{"type":"ack"', within=30)
                acks.append((time.perf_counter() - started) * 1000)
        except TimeoutError:
            print(f"another user got no answer within 30 s after {len(pages)} pages")
        measured = time.perf_counter() - measured
        stop.set()
        for looper in loopers:
            looper.join()
        print(f"{LOOPERS} connections looping rooms got {loops[0] / measured:.1f} lists/s "
              f"and {loops[1] / measured:.0f} refusals/s")
        if len(pages) == 10 and len(acks) == 10:
            pages.sort()
            acks.sort()
            print(f"meanwhile another user's history page {pages[0]:.0f}-{pages[-1]:.0f} ms (median {pages[5]:.0f}), "
                  f"send -> ack {acks[0]:.0f}-{acks[-1]:.0f} ms (median {acks[5]:.0f})")
    finally:
        relay.stop()


def reconnect(database):
    relay = Relay(database)
    try:
        def burst(frames, sock):
            for _ in range(100):
                send_text(sock, json.dumps({"type": "history", "room": "r", "limit": 1}))
            send_text(sock, json.dumps({"type": "ping"}))
            pages = 0
            while not (text := frames.next_text()).startswith('{"type":"pong"'):
                pages += text.startswith('{"type":"history"')
            return pages

        sock, rest = connect(relay.port, "mallory")
        frames = Frames(sock, rest)
        started, pages = time.perf_counter(), 0
        while time.perf_counter() - started < 10:
            pages += burst(frames, sock)
        one = pages / (time.perf_counter() - started)
        sock.close()
        time.sleep(6)  # the user's bucket refills between the two runs
        started, pages, handshakes, refused = time.perf_counter(), 0, 0, 0
        while time.perf_counter() - started < 10:
            try:
                sock, rest = connect(relay.port, "mallory")
            except SystemExit:
                refused += 1
                continue
            handshakes += 1
            pages += burst(Frames(sock, rest), sock)
            sock.close()
        print(f"history pages per second: {one:.0f} on one connection; "
              f"{pages / (time.perf_counter() - started):.0f} reconnecting after each burst "
              f"({handshakes} handshakes, {refused} refused)")
    finally:
        relay.stop()


def churn(database):
    fast = {"limits.joins_per_second": 1000000, "limits.join_burst": 1000000}
    busy, calm = Relay(database, **fast), Relay(database, **fast)
    try:
        carol, carol_rest = connect(busy.port, "carol")
        dave, dave_rest = connect(calm.port, "dave")
        dave_frames = Frames(dave, dave_rest)
        for sock in (carol, dave):
            send_text(sock, json.dumps({"type": "join", "room": "lobby"}))
        stop, rounds = threading.Event(), [0]

        def churner(n):
            while not stop.is_set():
                s, r = connect(busy.port, "churner")
                f = Frames(s, r)
                for i in range(80):
                    send_text(s, json.dumps({"type": "join", "room": f"c{n}-{rounds[0]}-{i}"}))
                answered = 0
                while answered < 80:
                    answered += f.next_text().startswith('{"type":"joined"')
                rounds[0] += 1
                s.close()

        threads = [threading.Thread(target=churner, args=(n,)) for n in range(3)]
        started = time.time()
        for thread in threads:
            thread.start()
        left = None
        dave.settimeout(1)
        while time.time() - started < 30:
            try:
                text = dave_frames.next_text()
            except (socket.timeout, TimeoutError):
                continue
            if text.startswith('{"type":"presence_leave"') and '"carol"' in text:
                left = time.time() - started
                break
        stop.set()
        for thread in threads:
            thread.join()
        churned = time.time() - started
        erin, erin_rest = connect(busy.port, "erin")
        joined_at = time.time()
        send_text(erin, json.dumps({"type": "join", "room": "lobby"}))
        dave.settimeout(30)
        wait_for(dave_frames, '{"type":"presence_join"')
        print(f"{rounds[0] * 80} joins churned in {churned:.0f} s on one relay: carol "
              + (f"taken for gone after {left:.1f} s" if left else "never taken for gone")
              + f"; a fresh user's presence_join then took {(time.time() - joined_at) * 1000:.0f} ms")
        del carol, erin
    finally:
        busy.stop()
        calm.stop()


def main():
    scenarios = {"pool": pool, "h2pages": h2pages, "rooms": rooms_cost, "reconnect": reconnect, "churn": churn}
    database = f"trust_{os.getpid()}"
    try:
        scenarios[sys.argv[1]](database)
    finally:
        MongoClient(MONGO_URI).drop_database(database)


if __name__ == "__main__":
    main()
