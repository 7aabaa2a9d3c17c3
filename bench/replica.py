#!/usr/bin/env python3
"""What a replica costs (issue 15): the same creates (bench_load --workload
create) through a gateway alone, through one started with --replica-dir
(it runs a real Litestream replicating its SQLite file into a file
replica, and acknowledges each write once Litestream says the replica
holds it), and through the same with a standby following that replica
(--standby-of: `litestream restore -f`, the whole failover set-up), at 1
and 32 clients, in turns on fresh stores so the drift of the machine hits
every shape. Prints p50/p99 and tx/s of each, and the ratios to alone.

  bench/replica.py                 own Neo4j (scripts/neo4j.sh), a warm-up, 3 rounds of 10 s
  bench/replica.py --smoke         one round of 2 s: does it work?
  bench/replica.py --neo4j-url URL a running Neo4j (wiped between runs: never a test's)
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def litestream_binary():
    return subprocess.run([str(REPO / "scripts" / "litestream.sh"), "path"], capture_output=True, text=True,
                          check=True).stdout.strip()


def wipe(neo4j_url):
    body = json.dumps({"statements": [{"statement": "MATCH (n) CALL { WITH n DETACH DELETE n } "
                                                    "IN TRANSACTIONS OF 10000 ROWS"}]}).encode()
    req = urllib.request.Request(f"{neo4j_url}/db/neo4j/tx/commit", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        answer = json.loads(r.read())
    assert not answer.get("errors"), answer


class Run:
    def __init__(self, work, neo4j_url, build):
        self.work, self.neo4j_url, self.build = Path(work), neo4j_url, Path(build)
        self.procs = []

    def gateway(self, d, args):
        """A gateway with args in folder d: its URL and process, once ready
        (a standby: once it answers at all)."""
        standby = "--standby-of" in args
        db = d / ("standby.sqlite" if standby else "bistore.sqlite")
        log_path = d / ("standby.log" if standby else "gateway.log")
        cmd = [str(self.build / "bistore"), "serve", "--listen", "127.0.0.1:0", "--sqlite", str(db),
               "--neo4j-url", self.neo4j_url, "--validate-interval", "0", "--log-level", "warn",
               "--log-format", "text", *args]
        log = open(log_path, "wb")
        gw = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.procs.append(gw)
        port = None
        for _ in range(600):
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log_path.read_text())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.05)
        assert port, log_path.read_text()
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except urllib.error.HTTPError as e:
                if standby and e.code == 503:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError(f"{d.name}: not ready\n" + log_path.read_text()[-2000:])
        return url, gw

    def start(self, name, shape):
        """shape: alone, replica (--replica-dir) or standby (and a standby
        following the replica). The primary's URL and the processes."""
        d = self.work / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        args = []
        if shape != "alone":
            args = ["--replica-dir", str(d / "replicas"), "--litestream", litestream_binary()]
        url, gw = self.gateway(d, args)
        procs = [gw]
        if shape == "standby":
            _, sb = self.gateway(d, [*args, "--standby-of", url])
            procs.append(sb)
        return url, gw, procs

    def stop(self, *procs):
        for p in procs:
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()

    def load(self, url, clients, seconds, gw):
        cmd = [str(self.build / "bench" / "bench_load"), "--url", url, "--workload", "create",
               "--clients", str(clients), "--duration", str(seconds), "--warmup", "1",
               "--cpu-pid", f"gateway:{gw.pid}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 120)
        assert out.returncode == 0, out.stdout + out.stderr
        line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
        return json.loads(line[len("RESULT "):])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--neo4j-url")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--build", default=str(REPO / "build"))
    a = ap.parse_args()
    rounds = a.rounds or (1 if a.smoke else 3)
    seconds = a.seconds or (2 if a.smoke else 10)
    work = Path(tempfile.mkdtemp(prefix="bistore-replica-bench-"))
    neo4j_home = None
    url = a.neo4j_url
    try:
        if not url:
            neo4j_home = work / "neo4j"
            out = subprocess.run([str(REPO / "scripts" / "neo4j.sh"), "start", str(neo4j_home), "0"],
                                 capture_output=True, text=True, check=True).stdout
            port = re.search(r"http=(\d+)", out).group(1)
            url = f"http://127.0.0.1:{port}"
        run = Run(work, url, a.build)
        results = {}
        # Neo4j's JIT and caches: a fresh server takes writes 3-4x slower in
        # its first minute (measured: 94 then 405 tx/s at 1 client), so every
        # shape runs once unrecorded first.
        shapes = ("alone", "replica", "standby")
        for shape in shapes:
            wipe(url)
            gw_url, gw, procs = run.start(f"warm-up-{shape}", shape)
            run.load(gw_url, 32, seconds, gw)
            run.stop(*procs)
        for rnd in range(rounds):
            for shape in shapes:
                for clients in (1, 32):
                    wipe(url)
                    name = f"{shape}-c{clients}-r{rnd}"
                    gw_url, gw, procs = run.start(name, shape)
                    r = run.load(gw_url, clients, seconds, gw)
                    run.stop(*procs)
                    results.setdefault((shape, clients), []).append(r)
                    print(f"{name}: {r['tx_per_s']:.0f} tx/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                          f"errors {r['errors']}", flush=True)
        print("\nmedians of the rounds; ratio and p50 added against alone")
        print("clients | shape   |     tx/s |    p50 |    p99 | tx/s ratio | p50 added")
        for clients in (1, 32):
            def med(shape, key):
                xs = sorted(r[key] for r in results[(shape, clients)])
                return xs[len(xs) // 2]
            a_t, a50 = med("alone", "tx_per_s"), med("alone", "p50_ms")
            for shape in shapes:
                t, p50, p99 = med(shape, "tx_per_s"), med(shape, "p50_ms"), med(shape, "p99_ms")
                print(f"{clients:7d} | {shape:7s} | {t:8.0f} | {p50:6.2f} | {p99:6.2f} | {t / a_t:9.2f}x | "
                      f"+{p50 - a50:.2f} ms")
        errors = sum(r["errors"] for rs in results.values() for r in rs)
        if errors:
            print(f"replica.py: {errors} requests failed", file=sys.stderr)
            return 1
        return 0
    finally:
        if neo4j_home:
            subprocess.run([str(REPO / "scripts" / "neo4j.sh"), "stop", str(neo4j_home)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
