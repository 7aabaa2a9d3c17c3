#!/usr/bin/env python3
"""The dual write a Python service writes today, without bistore.

Per entity: the official `neo4j` driver over Bolt runs
`CREATE (n:Entity:Person) SET n = $props` in `session.execute_write`, then
`sqlite3` inserts the row and commits (WAL, synchronous=FULL), nothing else:
no log, no coordination. Threads for concurrency, each with its own session
and its own SQLite connection; one driver for the process (its pool sized
to the clients).

    python3 bench/python_baseline.py --bolt bolt://127.0.0.1:7687 --sqlite PATH
        [--clients N] [--duration S | --count N] [--warmup S]
        [--cpu-pid LABEL:PID]... [--system python]

Prints the same human line and RESULT line as bench_load (bench_common.h).
Needs `pip install neo4j==5.28.2` (a 5.x driver, for Neo4j 5.26).
"""

import argparse
import json
import math
import os
import sqlite3
import sys
import threading
import time
import uuid

try:
    import neo4j
except ImportError:  # pragma: no cover - reported to the caller
    sys.stderr.write("python_baseline: the neo4j driver is missing (pip install neo4j==5.28.2)\n")
    sys.exit(3)

CREATE = "CREATE (n:Entity:Person) SET n = $props"
SCHEMA = """
CREATE TABLE IF NOT EXISTS entities(id TEXT PRIMARY KEY, type TEXT NOT NULL,
  properties TEXT NOT NULL, created_at TEXT NOT NULL);
"""


def cpu_of_pid(pid):
    """utime + stime of another process, in seconds (None if unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_self():
    t = os.times()
    return t.user + t.system


def quantile(sorted_values, p):
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(p * len(sorted_values))))
    return sorted_values[rank - 1]


def uuid7():
    """A UUIDv7 (time-ordered), as a service on Python < 3.14 writes it by hand."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68) << 64  # 12 bits rand_a
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


class Control:
    def __init__(self, warmup, duration, count):
        self.started = time.monotonic()
        self.measure_start = self.started + warmup
        self.deadline = None if count else self.measure_start + duration
        self.remaining = count
        self.lock = threading.Lock()

    def next(self):
        """(may start, measured)"""
        now = time.monotonic()
        if now < self.measure_start:
            return True, False, now
        if self.deadline is not None:
            return now < self.deadline, True, now
        with self.lock:
            if self.remaining <= 0:
                return False, True, now
            self.remaining -= 1
        return True, True, now


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bolt", required=True)
    ap.add_argument("--sqlite", required=True)
    ap.add_argument("--database", default="neo4j")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--warmup", type=float, default=0.0)
    ap.add_argument("--cpu-pid", action="append", default=[])
    ap.add_argument("--system", default="python")
    args = ap.parse_args()

    cpus = []
    for spec in args.cpu_pid:
        label, _, pid = spec.partition(":")
        cpus.append({"label": label, "pid": int(pid)})

    setup = sqlite3.connect(args.sqlite)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.executescript(SCHEMA)
    setup.close()

    driver = neo4j.GraphDatabase.driver(args.bolt, auth=None,
                                        max_connection_pool_size=max(100, args.clients))
    driver.verify_connectivity()
    with driver.session(database=args.database) as s:
        s.run("CREATE CONSTRAINT bistore_entity_id IF NOT EXISTS"
              " FOR (n:Entity) REQUIRE n.id IS UNIQUE").consume()

    ctl = Control(args.warmup, args.duration, args.count)
    results = []
    shown = [0]
    shown_lock = threading.Lock()

    def note_error(what, exc):
        with shown_lock:
            if shown[0] < 3:
                shown[0] += 1
                sys.stderr.write(f"error {shown[0]}: {what}: {exc!r}\n")

    def create(tx, props):
        tx.run(CREATE, props=props).consume()

    def client(index):
        lat, ok, errors, last = [], 0, 0, ctl.measure_start
        db = sqlite3.connect(args.sqlite, timeout=30, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA synchronous=FULL")
        i = 0
        with driver.session(database=args.database) as session:
            while True:
                go, measured, t0 = ctl.next()
                if not go:
                    break
                i += 1
                entity_id = uuid7()
                props = {"canonical_name": f"Person {index}-{i}", "confidence": (i % 100) / 100,
                         "mentions": i}
                good = True
                try:
                    session.execute_write(create, dict(props, id=entity_id))
                    db.execute("BEGIN")
                    db.execute("INSERT INTO entities(id, type, properties, created_at)"
                               " VALUES (?, ?, ?, datetime('now'))",
                               (entity_id, "Person", json.dumps(props)))
                    db.execute("COMMIT")
                except Exception as exc:  # noqa: BLE001 - counted and shown
                    good = False
                    note_error("create", exc)
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                t1 = time.monotonic()
                if not measured:
                    continue
                if good:
                    ok += 1
                    lat.append((t1 - t0) * 1000.0)
                else:
                    errors += 1
                last = max(last, t1)
        db.close()
        results.append((lat, ok, errors, last))

    self_before = cpu_self()
    if args.warmup <= 0:
        for c in cpus:
            c["before"] = cpu_of_pid(c["pid"])
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    if args.warmup > 0:
        time.sleep(max(0.0, ctl.measure_start - time.monotonic()))
        self_before = cpu_self()
        for c in cpus:
            c["before"] = cpu_of_pid(c["pid"])
    for t in threads:
        t.join()
    self_after = cpu_self()
    for c in cpus:
        c["after"] = cpu_of_pid(c["pid"])
    driver.close()

    lat = sorted(x for r in results for x in r[0])
    ok = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    last = max([r[3] for r in results] + [ctl.measure_start])
    seconds = max(last - ctl.measure_start, 1e-9)
    done = ok + errors
    tps = ok / seconds
    p50, p95, p99, mx = (quantile(lat, p) for p in (0.5, 0.95, 0.99, 1.0))
    client_cpu = self_after - self_before
    line = (f"{args.system} create clients={args.clients}: {ok} ok, {errors} errors in "
            f"{seconds:.2f} s: {tps:.1f} tx/s, p50 {p50:.3f} ms, p95 {p95:.3f} ms, "
            f"p99 {p99:.3f} ms, max {mx:.3f} ms; client CPU {client_cpu:.2f} s")
    per_1k = {}
    for c in cpus:
        if c.get("before") is None or c.get("after") is None:
            continue
        used = c["after"] - c["before"]
        per_1k[c["label"]] = used * 1000.0 / done if done else 0.0
        line += f"; {c['label']} CPU {used:.2f} s ({per_1k[c['label']]:.3f} s per 1,000 tx)"
    print(line)
    print("RESULT " + json.dumps({
        "system": args.system, "workload": "create", "clients": args.clients, "ok": ok,
        "errors": errors, "seconds": seconds, "tx_per_s": tps, "items_per_s": tps,
        "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": mx,
        "client_cpu_s": client_cpu, "items_per_tx": 1, "cpu_s_per_1k": per_1k,
        "client_cpu_s_per_1k": client_cpu * 1000.0 / done if done else 0.0}), flush=True)
    return 0 if ok > 0 and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
