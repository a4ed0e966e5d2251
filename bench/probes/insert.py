#!/usr/bin/env python3
"""A bare driver's majority insert, paced like bench/probes/e2e.py: the
database's own share of a send, on the same database and in the same sitting.
Needs pymongo (pip install pymongo).

Usage: bench/probes/insert.py MONGO_PORT [COUNT]
"""
import datetime
import sys
import time

from bson import ObjectId
from pymongo import MongoClient, WriteConcern


def main():
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    client = MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true")
    collection = client["probe"].get_collection("inserts", write_concern=WriteConcern(w="majority"))
    latencies = []
    for i in range(count):
        document = {"_id": ObjectId(), "room": "probe", "seq": i, "body": {"pad": "x" * 100},
                    "sent_at": datetime.datetime.now(datetime.timezone.utc)}
        started = time.perf_counter()
        collection.insert_one(document)
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.004)  # pacing between inserts, as in e2e.py
    client["probe"].drop_collection("inserts")
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))]
    print(f"majority insert: p50 {pick(0.5):.3f} ms, p99 {pick(0.99):.3f} ms ({count} inserts)")


if __name__ == "__main__":
    main()
