#!/usr/bin/env python3
"""How many change events per second of CPU one relay skips: events in rooms
nobody on it joined, which every replica reads and drops. The relay runs
natively (release build); another program writes N messages in 1,000 rooms,
in writes of 5,000; the relay's CPU time (user and system, from /proc) over
the time it takes to see them all, divided by N, is what one skipped event
costs, and its inverse the rate one core sustains. The idle relay's own CPU
over the same time is measured first and subtracted.

Usage: bench/probes/skip_rate.py [--events N] [--binary PATH] [--config DIR]
Needs pymongo (the development database's venv has it); starts its own
secantusd-rs on a free port. The database, on the same machine, competes
for the CPU, which makes the time longer but not the relay's CPU time.
"""
import argparse
import datetime
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_loader = importlib.machinery.SourceFileLoader("icount", os.path.join(ROOT, "bench", "icount"))
_spec = importlib.util.spec_from_loader("icount", _loader)
icount = importlib.util.module_from_spec(_spec)
_loader.exec_module(icount)  # runs this script again in the venv if pymongo is missing

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main():
    from pymongo import MongoClient

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--binary", default=os.environ.get("ROOMCAST_BIN", os.path.join(ROOT, "target/release/roomcast")))
    parser.add_argument("--config", default=os.environ.get("ROOMCAST_CONFIG_DIR", os.path.join(ROOT, "config")))
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="skip-")
    database, mongo_uri = icount.start_database(scratch)
    port = icount.free_port()
    env = dict(os.environ, ROOMCAST_ENV="local", ROOMCAST_CONFIG_DIR=args.config, RUST_LOG="warn",
               ROOMCAST__SERVER__PORT=str(port), ROOMCAST__MONGO__URI=mongo_uri, ROOMCAST__MONGO__DATABASE="skip")
    relay = subprocess.Popen([args.binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        icount.wait_for_port(port)
        db = MongoClient(mongo_uri)["skip"]
        now = datetime.datetime.now(datetime.timezone.utc)
        documents = [{"room": f"other{n % 1000}", "seq": n // 1000 + 1, "author": "bot",
                      "body": {"text": "x" * 100}, "sent_at": now} for n in range(args.events)]
        series = 'roomcast_route_events_total{route="messages"}'
        idle_from, idle_at = cpu_seconds(relay.pid), time.time()
        time.sleep(5)  # the idle relay's own CPU, to subtract
        idle_rate = (cpu_seconds(relay.pid) - idle_from) / (time.time() - idle_at)
        start_cpu, start = cpu_seconds(relay.pid), time.time()
        for at in range(0, args.events, 5000):
            db["messages"].insert_many(documents[at:at + 5000])
        while icount.metric(port, series) < args.events:
            time.sleep(0.05)  # polling the relay's own count of events
        elapsed = time.time() - start
        used = cpu_seconds(relay.pid) - start_cpu - idle_rate * elapsed
        print(f"skipped {args.events:,} events in {elapsed:.1f} s; relay CPU {used:.2f} s: "
              f"{used / args.events * 1e6:.2f} µs per event, {args.events / used:,.0f} events per CPU-second")
    finally:
        relay.terminate()
        relay.wait(timeout=60)
        database.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
