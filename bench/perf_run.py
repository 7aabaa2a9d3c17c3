#!/usr/bin/env python3
"""The performance run behind bench/perf.sh (see bench/PERF.md).

Starts its own Neo4j (HTTP + Bolt) and gateway in --work, runs every
workload for bistore and for the baselines one at a time, prints the table
and writes results.json / results.md there. Everything it started is
stopped on the way out, failures and signals included.

    python3 bench/perf_run.py --work DIR [--build build] [--smoke]
"""

import argparse
import http.client
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from perf_report import report

REPO = Path(__file__).resolve().parents[1]
NEO4J_SH = REPO / "scripts" / "neo4j.sh"
LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")

FULL = dict(duration=10.0, warmup=1.0, clients=[1, 8, 32, 128], neo4j_warmup=2000,
            batch_docs=5, replay=10000, uuid_count=20_000_000, read_clients=[1, 8],
            mixed_clients=[8, 32], bg_writers=32, warm_s=5.0,
            warm_cap_s=240, warm_jit_share=0.15)
SMOKE = dict(duration=1.0, warmup=0.2, count_per_client=3, clients=[1, 8, 32, 128],
             neo4j_warmup=50,
             batch_docs=1, replay=200, uuid_count=1_000_000, read_clients=[1, 8],
             mixed_clients=[8, 32], bg_writers=32, warm_s=0.5,
             warm_cap_s=0, warm_jit_share=1.0)

# The gateway's per-request Neo4j timeout in these runs (the default, 5 s, is
# shorter than a 6,000-operation document takes on a busy 2-core machine).
NEO4J_TIMEOUT_MS = 60000

def log(msg):
    sys.stderr.write(f"[perf {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


class Failure(Exception):
    pass


# ------------------------------------------------------------------ processes


class Run:
    """Everything this run started, so it can all be stopped."""

    def __init__(self, args):
        self.args = args
        self.work = Path(args.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.build = Path(args.build).resolve()
        self.cfg = SMOKE if args.smoke else FULL
        self.neo4j_home = self.work / "neo4j"
        self.neo4j_http = self.neo4j_bolt = None
        self.neo4j_pid = None
        self.gateway = None
        self.gateway_url = None
        self.gateway_log = None
        self.children = []
        self.results = []
        self.failures = []
        self.notes = []

    # ---- Neo4j
    def start_neo4j(self):
        log(f"starting Neo4j in {self.neo4j_home}")
        out = subprocess.run([str(NEO4J_SH), "start", str(self.neo4j_home), "0", "0"],
                             capture_output=True, text=True, timeout=200)
        if out.returncode != 0:
            raise Failure(f"neo4j.sh start failed: {out.stderr}{out.stdout}")
        m = re.search(r"http=(\d+) bolt=(\d+)", out.stdout)
        if not m:
            raise Failure(f"neo4j.sh printed no ports: {out.stdout!r}")
        self.neo4j_http, self.neo4j_bolt = int(m.group(1)), int(m.group(2))
        self.neo4j_pid = int((self.neo4j_home / "pid").read_text().strip())
        log(f"Neo4j http={self.neo4j_http} bolt={self.neo4j_bolt} pid={self.neo4j_pid}")

    def stop_neo4j(self):
        if self.neo4j_home.exists() and (self.neo4j_home / "pid").exists():
            log("stopping Neo4j")
            subprocess.run([str(NEO4J_SH), "stop", str(self.neo4j_home)], capture_output=True,
                           text=True, timeout=120)

    @property
    def neo4j_url(self):
        return f"http://127.0.0.1:{self.neo4j_http}"

    def cypher(self, statements, timeout=300):
        body = json.dumps({"statements": [{"statement": s, "parameters": p or {}}
                                          for s, p in statements]})
        conn = http.client.HTTPConnection("127.0.0.1", self.neo4j_http, timeout=timeout)
        try:
            conn.request("POST", "/db/neo4j/tx/commit", body=body,
                         headers={"Content-Type": "application/json",
                                  "Accept": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read())
        finally:
            conn.close()
        if data.get("errors"):
            raise Failure(f"Cypher failed: {data['errors']}")
        return [[d["row"] for d in r["data"]] for r in data["results"]]

    # ---- the gateway
    def start_gateway(self, sqlite_path, wait_ready=True, binary=None):
        self.gateway_log = self.work / "gateway.log"
        logf = open(self.gateway_log, "ab")
        cmd = [str(binary or self.build / "bistore"), "serve", "--listen", "127.0.0.1:0", "--sqlite",
               str(sqlite_path), "--neo4j-url", self.neo4j_url, "--validate-interval", "0",
               "--log-level", "warn", "--neo4j-timeout-ms", str(NEO4J_TIMEOUT_MS)]
        start = time.monotonic()
        self.gateway = subprocess.Popen(cmd, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        (self.work / "gateway.pid").write_text(str(self.gateway.pid))
        port = self._gateway_port(start)
        self.gateway_url = f"http://127.0.0.1:{port}"
        if wait_ready:
            self.wait_ready(60)
        return start

    def _gateway_port(self, start):
        """The port from the log line, or (--log-level warn hides it) from the
        listening socket the process owns."""
        deadline = start + 30
        while time.monotonic() < deadline:
            if self.gateway.poll() is not None:
                raise Failure(f"the gateway exited with {self.gateway.returncode}; "
                              f"see {self.gateway_log}")
            ports = LISTEN_RE.findall(self.gateway_log.read_text(errors="replace"))
            if ports and self._owns_port(int(ports[-1])):
                return int(ports[-1])
            port = self._listening_port(self.gateway.pid)
            if port:
                return port
            time.sleep(0.005)
        raise Failure("the gateway did not start listening within 30 s")

    @staticmethod
    def _socket_inodes(pid):
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
        return inodes

    def _listening_port(self, pid):
        inodes = self._socket_inodes(pid)
        if not inodes:
            return None
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                f = line.split()
                if len(f) > 9 and f[3] == "0A" and f[9] in inodes:
                    return int(f[1].rsplit(":", 1)[1], 16)
        return None

    def _owns_port(self, port):
        return self._listening_port(self.gateway.pid) == port

    def gateway_get(self, path, timeout=10):
        host, port = self.gateway_url[len("http://"):].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def wait_ready(self, timeout, interval=0.01):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.gateway.poll() is not None:
                raise Failure(f"the gateway exited with {self.gateway.returncode}; "
                              f"see {self.gateway_log}")
            try:
                status, _ = self.gateway_get("/readyz", timeout=5)
                if status == 200:
                    return time.monotonic()
            except OSError:
                pass
            time.sleep(interval)
        raise Failure(f"the gateway was not ready within {timeout} s")

    def stop_gateway(self):
        if self.gateway and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            try:
                self.gateway.wait(30)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait()
        self.gateway = None
        try:
            (self.work / "gateway.pid").unlink()
        except OSError:
            pass

    def stop_all(self):
        for p in self.children:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.stop_gateway()
        self.stop_neo4j()

    # ---- tools
    def tool(self, cmd, label, record=True, background=False):
        """Runs a benchmark tool; returns its RESULT (a dict) or None."""
        log(f"{label}: {' '.join(str(c) for c in cmd)}")
        jit_before = jit_cpu(self.neo4j_pid) if self.neo4j_pid else 0.0
        p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        p.jit_before = jit_before
        self.children.append(p)
        if background:
            return p
        return self.finish(p, label, record)

    def finish(self, p, label, record=True):
        out, err = p.communicate()
        jit = jit_cpu(self.neo4j_pid) - p.jit_before if self.neo4j_pid else 0.0
        self.children.remove(p)
        result = None
        for line in out.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
            else:
                print(f"  {line}", flush=True)
        for line in err.splitlines()[:8]:
            print(f"  ! {line}", flush=True)
        if p.returncode != 0 or result is None:
            self.failures.append(f"{label}: exit {p.returncode}")
            log(f"{label} FAILED (exit {p.returncode})")
        if result is not None:
            result["label"] = label
            result["neo4j_jit_s"] = jit
            if jit > 0.5:
                print(f"  (Neo4j's JIT compiler threads used {jit:.2f} s of CPU during this run)",
                      flush=True)
            if record:
                self.results.append(result)
        return result

    def amount(self, clients, count, duration, warmup):
        """How long a run lasts: a count, or a duration after a warm-up. A
        smoke run counts a few requests per client (some always finish, however
        slow the machine is)."""
        if count:
            return ["--count", count, "--warmup", 0 if warmup is None else warmup]
        if "count_per_client" in self.cfg and duration is None:
            return ["--count", clients * self.cfg["count_per_client"], "--warmup", 0]
        return ["--duration", duration or self.cfg["duration"],
                "--warmup", self.cfg["warmup"] if warmup is None else warmup]

    def cpu_pids(self, with_gateway=True):
        pids = ["--cpu-pid", f"neo4j:{self.neo4j_pid}"]
        if with_gateway and self.gateway:
            pids += ["--cpu-pid", f"gateway:{self.gateway.pid}"]
        return pids

    def bench_load(self, workload, clients, extra=(), label=None, record=True, background=False,
                   duration=None, count=None, warmup=None):
        cmd = [self.build / "bench" / "bench_load", "--url", self.gateway_url, "--workload",
               workload, "--clients", clients]
        cmd += self.amount(clients, count, duration, warmup)
        cmd += self.cpu_pids() + list(extra)
        return self.tool(cmd, label or f"bistore {workload} c={clients}", record, background)

    def bench_naive(self, workload, clients, sqlite_path, count=None, label=None, record=True,
                    warmup=None, duration=None):
        cmd = [self.build / "bench" / "bench_naive", "--neo4j-url", self.neo4j_url,
               "--sqlite", sqlite_path, "--workload", workload, "--clients", clients]
        cmd += self.amount(clients, count, duration, warmup)
        cmd += self.cpu_pids(with_gateway=False)
        return self.tool(cmd, label or f"naive {workload} c={clients}", record)

    def python_baseline(self, clients, sqlite_path):
        cmd = [sys.executable, REPO / "bench" / "python_baseline.py", "--bolt",
               f"bolt://127.0.0.1:{self.neo4j_bolt}", "--sqlite", sqlite_path, "--clients",
               clients] + self.amount(clients, None, None, None)
        cmd += self.cpu_pids(with_gateway=False)
        return self.tool(cmd, f"python create c={clients}")


# ------------------------------------------------------------------ phases


def phase_metrics(run, db):
    """The cost of counting (issue 11): this build's gateway against a
    baseline binary without metrics (--baseline-bin, e.g. main's), the same
    creates at 1 and 32 clients, alternating A B A B on fresh stores so
    drift (Neo4j's JIT, the other tenants of the machine) hits both."""
    base = run.args.baseline_bin
    if not base:
        run.notes.append("metrics phase skipped: no --baseline-bin")
        return
    alternate(run, db, "metrics", base, (1, 32), naive=False)


def alternate(run, db, name, base, clients, naive):
    """Two rounds of creates at each number of clients, this build's gateway
    (labelled name) then base's, each on a fresh store, and with naive the
    naive dual write after them: drift hits all alike."""
    run.stop_gateway()
    for rnd in (1, 2):
        for who, binary in ((name, None), ("baseline", base)):
            run.start_gateway(run.work / f"{name}-{who}-{rnd}.db", binary=binary)
            for c in clients:
                run.bench_load("create", c, label=f"{who} create c={c} round {rnd}")
            run.stop_gateway()
        for c in clients if naive else ():
            run.bench_naive("create", c, run.work / f"naive-{name}-{rnd}.db",
                            label=f"naive create c={c} round {rnd}")
    run.start_gateway(db)


def phase_compare(run, db):
    """This build against --baseline-bin (issue 14's before and after) and
    the naive dual write, at 1, 8, 32 and 128 clients, alternating."""
    base = run.args.baseline_bin
    if not base:
        run.notes.append("compare phase skipped: no --baseline-bin")
        return
    alternate(run, db, "this", base, run.cfg["clients"], naive=True)


def phase_uuid(run):
    run.tool([run.build / "bench" / "bench_uuid7", "--count", run.cfg["uuid_count"]],
             "uuid7")


def phase_warmup(run):
    """Neo4j's JIT compiler keeps most of a core busy for a minute or two of
    load (seen here: 7-8 s of C2 CPU per 10 s for the first ~80 s), which
    slows every system measured meanwhile, the first ones most. So: rounds
    of every request shape (the gateway's, the naive HTTP one, Bolt, the
    UNWIND documents) until a round leaves the JIT threads nearly idle."""
    w = run.cfg["warm_s"]
    deadline = time.monotonic() + run.cfg["warm_cap_s"]
    rounds = 0
    while True:
        rounds += 1
        t0, jit0 = time.monotonic(), jit_cpu(run.neo4j_pid)
        run.bench_load("create", 32, duration=w, warmup=0, label="warm-up: gateway creates",
                       record=False)
        run.bench_naive("create", 8, run.work / "warmup.db", count=None, warmup=0,
                        label="warm-up: naive creates", record=False, duration=w)
        run.tool([sys.executable, REPO / "bench" / "python_baseline.py", "--bolt",
                  f"bolt://127.0.0.1:{run.neo4j_bolt}", "--sqlite", run.work / "warmup.db",
                  "--clients", 8, "--duration", w / 2], "warm-up: Bolt creates", record=False)
        if rounds <= 2:
            run.bench_load("batch", 1, count=1, warmup=0, label="warm-up: gateway batch",
                           record=False)
            run.bench_naive("raw", 1, run.work / "warmup.db", count=1, warmup=0,
                            label="warm-up: raw UNWIND", record=False)
        elapsed, jit = time.monotonic() - t0, jit_cpu(run.neo4j_pid) - jit0
        log(f"warm-up round {rounds}: Neo4j's JIT used {jit:.1f} s of CPU in {elapsed:.1f} s")
        if rounds >= 2 and jit < run.cfg["warm_jit_share"] * elapsed:
            break
        if time.monotonic() > deadline:
            if not run.args.smoke:
                run.notes.append(f"Neo4j's JIT was still busy after {rounds} warm-up rounds "
                                  f"({jit:.1f} s of CPU in the last {elapsed:.0f} s)")
            break


def phase_creates(run):
    for c in run.cfg["clients"]:
        run.bench_load("create", c)
        run.bench_naive("create", c, run.work / "naive.db")
        run.python_baseline(c, run.work / "python.db")


def intents_in(db_path):
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT coalesce(max(seq), 0) FROM bistore_intents").fetchone()[0]
    finally:
        con.close()


def phase_replay(run, db_path):
    """Makes the last N intents pending (as a crash after the commit point
    leaves them) and times the restart until ready with nothing pending."""
    n = run.cfg["replay"]
    have = intents_in(db_path)
    if have < n:
        run.bench_load("create", 8, count=n - have, warmup=0, label="replay fill", record=False)
    run.stop_gateway()

    # A restart with nothing pending, for the fixed cost of starting.
    t0 = run.start_gateway(db_path, wait_ready=False)
    t_empty = run.wait_ready(60) - t0
    run.stop_gateway()

    con = sqlite3.connect(db_path)
    try:
        top = con.execute("SELECT max(seq) FROM bistore_intents").fetchone()[0]
        base = top - n
        store = con.execute("SELECT value FROM bistore_meta WHERE key = 'store_id'").fetchone()[0]
        rows = con.execute("SELECT t.operations FROM bistore_transactions t"
                           " JOIN bistore_intents i ON i.seq = t.seq WHERE i.seq > ?",
                           (base,)).fetchall()
        ids = []
        for (ops,) in rows:
            for op in json.loads(ops):
                if op.get("op") != "create_entity":
                    raise Failure(f"replay: intent with {op.get('op')}: only creates expected")
                ids.append(op["id"])
        if len(ids) != n:
            raise Failure(f"replay: {len(ids)} created entities in the last {n} intents")
        log(f"replay: deleting {n} nodes from Neo4j, watermark {top} -> {base}")
        deleted = 0
        for i in range(0, n, 5000):
            deleted += run.cypher([("MATCH (e:Entity) WHERE e.id IN $ids DETACH DELETE e"
                                    " RETURN count(*)", {"ids": ids[i:i + 5000]})])[0][0][0]
        if deleted != n:
            raise Failure(f"replay: deleted {deleted} nodes, expected {n}")
        wm = run.cypher([("MATCH (w:_BistoreWatermark {store: $store}) SET w.seq = $seq"
                          " RETURN w.seq", {"store": store, "seq": base})])[0]
        if not wm:
            raise Failure("replay: no watermark node")
        con.execute("UPDATE bistore_intents SET applied_at = NULL WHERE seq > ?", (base,))
        con.commit()
    finally:
        con.close()

    n4_before = cpu_of(run.neo4j_pid)
    t0 = run.start_gateway(db_path, wait_ready=False)
    t_ready = run.wait_ready(600, interval=0.005)
    status, body = run.gateway_get("/v1/transactions?state=pending&limit=1")
    pending = json.loads(body).get("items") if status == 200 else None
    elapsed = t_ready - t0
    gw_cpu = cpu_of(run.gateway.pid)
    n4_cpu = cpu_of(run.neo4j_pid) - n4_before
    back = run.cypher([("MATCH (e:Entity) WHERE e.id IN $ids RETURN count(e)",
                        {"ids": ids})])[0][0][0]
    if pending != [] or back != n:
        run.failures.append(f"replay: pending={pending!r}, {back} of {n} nodes back in Neo4j")
    net = max(elapsed - t_empty, 1e-9)
    result = {"system": "bistore", "workload": "replay", "clients": 1, "ok": n,
              "errors": 0 if back == n else n - back, "seconds": elapsed,
              "tx_per_s": n / elapsed, "net_tx_per_s": n / net, "startup_s": t_empty,
              "cpu_s_per_1k": {"gateway": gw_cpu * 1000 / n, "neo4j": n4_cpu * 1000 / n},
              "label": "replay"}
    print(f"  replay: {n} intents, ready with nothing pending {elapsed:.2f} s after start "
          f"({n / elapsed:.0f} intents/s; an empty restart takes {t_empty:.2f} s, so "
          f"{n / net:.0f}/s net); gateway CPU {gw_cpu:.2f} s, Neo4j CPU {n4_cpu:.2f} s",
          flush=True)
    run.results.append(result)


def jit_cpu(pid):
    """CPU seconds of the JVM's JIT compiler threads (C1/C2) so far."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for t in tasks:
        try:
            if not Path(f"/proc/{pid}/task/{t}/comm").read_text().startswith(("C1 ", "C2 ")):
                continue
            data = Path(f"/proc/{pid}/task/{t}/stat").read_text()
        except OSError:
            continue
        f = data[data.rindex(")") + 2:].split()
        total += int(f[11]) + int(f[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_of(pid):
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = data[data.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def phase_reads(run):
    d = run.cfg["duration"]
    for c in run.cfg["read_clients"]:
        run.bench_load("reads", c, label=f"bistore reads c={c}")
    for c in run.cfg["read_clients"]:
        bg_duration = d + run.cfg["warmup"] + 3.0
        bg = run.bench_load("create", run.cfg["bg_writers"], duration=bg_duration, warmup=0,
                            label=f"background creates c={run.cfg['bg_writers']}",
                            background=True,
                            extra=["--system", "bistore-bg"])
        time.sleep(1.5)
        r = run.bench_load("reads", c, label=f"bistore reads under write load c={c}",
                           extra=["--system", "bistore-under-load"])
        run.finish(bg, f"background creates (during reads c={c})")
        if r is not None:
            r["workload"] = "reads-under-load"
    for c in run.cfg["mixed_clients"]:
        run.bench_load("mixed", c)


def phase_batches(run):
    docs = run.cfg["batch_docs"]
    # unmeasured documents first (constraints, plans, JIT)
    run.bench_naive("raw", 1, run.work / "naive.db", count=2, warmup=0,
                    label="raw warm-up", record=False)
    run.bench_naive("batch", 1, run.work / "naive.db", count=2, warmup=0,
                    label="naive batch warm-up", record=False)
    run.bench_load("batch", 1, count=2, warmup=0, label="bistore batch warm-up", record=False)
    run.bench_load("batch", 1, count=docs, warmup=0, label="bistore batch")
    run.bench_naive("raw", 1, run.work / "naive.db", count=docs, warmup=0, label="neo4j raw UNWIND")
    run.bench_naive("batch", 1, run.work / "naive.db", count=docs, warmup=0, label="naive batch")


# ------------------------------------------------------------------ the report


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="folder for the stores, logs and results")
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--smoke", action="store_true", help="everything tiny (CI: does it work?)")
    ap.add_argument("--only", default="uuid,creates,replay,reads,batches",
                    help="comma-separated phases (also: metrics and compare, with "
                    "--baseline-bin)")
    ap.add_argument("--baseline-bin", help="a bistore binary to compare this build's with "
                    "(the metrics and compare phases), e.g. one built from main")
    args = ap.parse_args()
    run = Run(args)
    phases = set(args.only.split(","))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    load = os.getloadavg()
    log(f"{'smoke' if args.smoke else 'full'} run in {run.work}; {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if load[0] > 1.0:
        run.notes.append(f"the 1-minute load average was {load[0]:.2f} at the start: other work "
                         "(or an earlier run) was using the 2 cores, and may have gone on")
    rc = 0
    try:
        if "uuid" in phases:
            phase_uuid(run)
        run.start_neo4j()
        log(f"warming Neo4j up: {run.cfg['neo4j_warmup']} naive writes")
        run.bench_naive("create", 8, run.work / "warmup.db", count=run.cfg["neo4j_warmup"],
                        warmup=0, label="Neo4j warm-up", record=False)
        db = run.work / "bistore.db"
        run.start_gateway(db)
        log(f"gateway {run.gateway_url} pid {run.gateway.pid}")
        phase_warmup(run)
        if "creates" in phases:
            phase_creates(run)
        if "metrics" in phases:
            phase_metrics(run, db)
        if "compare" in phases:
            phase_compare(run, db)
        if "replay" in phases:
            phase_replay(run, db)
        if "reads" in phases:
            phase_reads(run)
        if "batches" in phases:
            phase_batches(run)
    except (Failure, KeyboardInterrupt, OSError, subprocess.SubprocessError) as exc:
        run.failures.append(f"aborted: {exc}")
        log(f"aborted: {exc}")
        rc = 1
    finally:
        run.stop_all()
    text = report(run)
    elapsed = time.monotonic() - started
    print()
    print(text)
    for note in run.notes:
        print(f"\nNote: {note}")
    print(f"\n{len(run.results)} results in {elapsed:.0f} s; work folder {run.work}")
    (run.work / "results.json").write_text(json.dumps(run.results, indent=1))
    (run.work / "results.md").write_text(text + "\n")
    if run.failures:
        print("\nFAILURES:\n  " + "\n  ".join(run.failures))
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
