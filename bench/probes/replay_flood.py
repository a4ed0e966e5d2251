#!/usr/bin/env python3
"""Replay flood: a room holds 300 messages of 60 KB; six connections re-join
it from seq 0 twenty times each and never read, while one more client joins
another room, sends and waits for its own message. Prints the relay
process's RSS before and at its peak during the next 15 s, and that client's
round trip. Needs pymongo (pip install pymongo); the WebSocket client is
e2e.py's.

It starts the relay itself, so it can measure its memory:
Usage: bench/probes/replay_flood.py RELAY_BINARY CONFIG_DIR MONGO_PORT
"""
import datetime
import json
import os
import socket
import subprocess
import sys
import time

from pymongo import MongoClient

sys.path.insert(0, os.path.dirname(__file__))
from e2e import Frames, connect, send_text  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def hoard(port, user):
    """A connection with a 4 KiB receive buffer that sends twenty joins and never reads."""
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
    for _ in range(20):
        send_text(sock, json.dumps({"type": "join", "room": "big", "since": 0}))
    return sock


def main():
    binary, config_dir, mongo_port = sys.argv[1], sys.argv[2], sys.argv[3]
    mongo_uri = f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true"
    database = f"flood_{os.getpid()}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, ROOMCAST_ENV="local", ROOMCAST_CONFIG_DIR=config_dir, ROOMCAST__SERVER__PORT=str(port),
               ROOMCAST__MONGO__URI=mongo_uri, ROOMCAST__MONGO__DATABASE=database, RUST_LOG="warn",
               ROOMCAST__LIMITS__JOINS_PER_SECOND="1000000", ROOMCAST__LIMITS__JOIN_BURST="1000000")
    env.pop("LISTEN_FDS", None)
    relay = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)  # waiting for the relay to listen
        messages = MongoClient(mongo_uri)[database]["messages"]
        body = "x" * 60_000
        for first in range(1, 301, 50):
            now = datetime.datetime.now(datetime.timezone.utc)
            messages.insert_many([{"room": "big", "seq": seq, "author": "bot", "body": body, "sent_at": now}
                                  for seq in range(first, first + 50)])
        before = rss_kib(relay.pid)
        hoarders = [hoard(port, f"hoarder{i}") for i in range(6)]
        started = time.perf_counter()
        sock, rest = connect(port, "alice")
        frames = Frames(sock, rest)
        send_text(sock, json.dumps({"type": "join", "room": "calm"}))
        send_text(sock, json.dumps({"type": "send", "room": "calm", "client_id": "c1", "body": "hi"}))
        while not frames.next_text().startswith('{"type":"message"'):
            pass
        round_trip = (time.perf_counter() - started) * 1000
        peak, until = before, time.time() + 15
        while time.time() < until:
            peak = max(peak, rss_kib(relay.pid))
            time.sleep(0.25)  # sampling interval of the memory reading
        print(f"RSS before {before} KiB, peak {peak} KiB: grew by {(peak - before) / 1024:.0f} MiB; "
              f"another client's join + send + own message: {round_trip:.0f} ms")
        del hoarders
    finally:
        relay.kill()
        MongoClient(mongo_uri).drop_database(database)


if __name__ == "__main__":
    main()
