#!/usr/bin/env python3
"""What one joined room adds to a connection's resident memory, at the worst:
every connection joins `limits.max_rooms_per_connection` rooms of its own,
so nothing a room holds is shared with another connection. The relay runs
natively (release build); two runs hold the same connections, joined to
one room each and to ROOMS rooms each; the difference in the relay's RSS,
divided by connections × (ROOMS − 1), is what a joined room costs.

Usage: bench/probes/rooms_memory.py [--connections N] [--rooms R] [--binary PATH] [--config DIR]
Needs pymongo (the development database's venv has it); starts its own
secantusd-rs on a free port.
"""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "probes"))
_loader = importlib.machinery.SourceFileLoader("icount", os.path.join(ROOT, "bench", "icount"))
_spec = importlib.util.spec_from_loader("icount", _loader)
icount = importlib.util.module_from_spec(_spec)
_loader.exec_module(icount)  # runs this script again in the venv if pymongo is missing
from e2e import Frames, connect, send_text  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run(args, mongo_uri, rooms):
    port = icount.free_port()
    env = dict(os.environ, ROOMCAST_ENV="local", ROOMCAST_CONFIG_DIR=args.config, RUST_LOG="warn",
               ROOMCAST__SERVER__PORT=str(port), ROOMCAST__MONGO__URI=mongo_uri,
               ROOMCAST__MONGO__DATABASE=f"rooms_{rooms}", ROOMCAST__LIMITS__HANDSHAKE_BURST_PER_IP="1000000",
               ROOMCAST__LIMITS__HANDSHAKES_PER_SECOND_PER_IP="1000000",
               ROOMCAST__LIMITS__JOIN_BURST=str(max(50, rooms)), ROOMCAST__LIMITS__JOINS_PER_SECOND="1000")
    relay = subprocess.Popen([args.binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sockets = []
    try:
        icount.wait_for_port(port)
        for i in range(args.connections):
            sock, rest = connect(port, f"member-{i}")
            frames = Frames(sock, rest)
            for k in range(rooms):
                send_text(sock, json.dumps({"type": "join", "room": f"own-{i}-{k}"}))
            joined = 0
            while joined < rooms:
                text = frames.next_text()
                if text.startswith('{"type":"error"'):
                    sys.exit(f"rooms_memory: a join was refused: {text}")
                joined += text.startswith('{"type":"joined"')
            sockets.append(sock)
        # Every join was answered: what the relay holds now is what they keep.
        return rss_kib(relay.pid)
    finally:
        for sock in sockets:
            sock.close()
        relay.terminate()
        relay.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--binary", default=os.environ.get("ROOMCAST_BIN", os.path.join(ROOT, "target/release/roomcast")))
    parser.add_argument("--config", default=os.environ.get("ROOMCAST_CONFIG_DIR", os.path.join(ROOT, "config")))
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="rooms-")
    database, mongo_uri = icount.start_database(scratch)
    try:
        one = run(args, mongo_uri, 1)
        many = run(args, mongo_uri, args.rooms)
        per_room = (many - one) * 1024 / (args.connections * (args.rooms - 1))
        print(f"RSS {one:,} KiB with {args.connections} connections in 1 room each, {many:,} KiB in {args.rooms}: "
              f"{per_room:,.0f} bytes per joined room, {per_room * args.rooms / 1024:,.1f} KiB for {args.rooms}")
    finally:
        database.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
