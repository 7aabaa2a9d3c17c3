#!/usr/bin/env python3
"""Do the gateway's stats stay in fixed memory? (bench/README.md)

    bench/stats_memory.py            RSS after 1,000 and after 1,000,000 requests
    bench/stats_memory.py --smoke    1,000 and 20,000: does the benchmark work?

Builds the release binaries (scripts/build.sh release), starts its own
Neo4j in a temporary folder (or uses NEO4J_URL when set: nothing is written
to it), starts the gateway (`bistore serve --listen 127.0.0.1:0
--validate-interval 0`) and drives it with build/bench/bench_load
--workload refused: POST /v1/entities of an invalid type, refused with 400
before any store is touched, so each request is cheap and still goes
through the request, transaction and latency counting behind /metrics and
/v1/stats. It reads the gateway's VmRSS (and VmHWM) from /proc after the
first FIRST requests and again after TOTAL, and prints both and the
difference. Not a timed test: the request rate is printed for information.

Exit status 1 when a step fails, or (not with --smoke) when RSS grew by
more than --max-growth-mib (16) between the two readings. Environment:
CLIENTS (8), FIRST (1000), TOTAL (1000000), NEO4J_URL, KEEP=1 (keep the
temporary folder and the gateway's log).
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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BISTORE = os.path.join(ROOT, "build", "bistore")
BENCH_LOAD = os.path.join(ROOT, "build", "bench", "bench_load")
NEO4J_SH = os.path.join(ROOT, "scripts", "neo4j.sh")


def say(*a):
    print(*a, flush=True)


def status_kib(pid, field):
    """VmRSS / VmHWM of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def get_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def wait_ready(url, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("/readyz not 200 in time")


def load(url, count, clients):
    """count refused writes through bench_load; its RESULT object."""
    cmd = [BENCH_LOAD, "--url", url, "--workload", "refused", "--clients", str(clients),
           "--count", str(count), "--warmup", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"bench_load failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"bench_load printed no RESULT line:\n{out.stdout}")


def counted(url):
    """GET /v1/stats (None when it does not answer)."""
    try:
        stats = get_json(url + "/v1/stats")
    except OSError:
        return None
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="1,000 and 20,000 requests")
    ap.add_argument("--max-growth-mib", type=float, default=16.0)
    args = ap.parse_args()
    clients = int(os.environ.get("CLIENTS", "8"))
    first = int(os.environ.get("FIRST", "1000"))
    total = int(os.environ.get("TOTAL", "20000" if args.smoke else "1000000"))
    keep = os.environ.get("KEEP") == "1"

    subprocess.run([os.path.join(ROOT, "scripts", "build.sh"), "release"], check=True,
                   stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="bistore-stats-memory.")
    neo4j_home = None
    gw = None
    status = 1
    try:
        neo4j_url = os.environ.get("NEO4J_URL")
        if not neo4j_url:
            neo4j_home = os.path.join(work, "neo4j")
            os.mkdir(neo4j_home)
            ports = subprocess.run([NEO4J_SH, "start", neo4j_home, "0"], check=True,
                                   capture_output=True, text=True).stdout
            m = re.search(r"http=(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", ports))
            if not m:
                raise RuntimeError(f"scripts/neo4j.sh start printed no port: {ports!r}")
            neo4j_url = f"http://127.0.0.1:{m.group(1)}"
        log_path = os.path.join(work, "gateway.log")
        log = open(log_path, "wb")
        gw = subprocess.Popen([BISTORE, "serve", "--listen", "127.0.0.1:0", "--sqlite",
                               os.path.join(work, "bistore.db"), "--neo4j-url", neo4j_url,
                               "--validate-interval", "0"],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(log_path, errors="replace").read())
            if m:
                port = int(m.group(1))
            elif gw.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start:\n" + open(log_path, errors="replace").read()[-3000:])
            else:
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, gw)
        rss0 = status_kib(gw.pid, "VmRSS")

        r1 = load(url, first, clients)
        rss1 = status_kib(gw.pid, "VmRSS")
        say(f"after {first:>9,} requests: RSS {rss1 / 1024:8.1f} MiB (at start {rss0 / 1024:.1f} MiB)")
        started = time.monotonic()
        r2 = load(url, total - first, clients)
        took = time.monotonic() - started
        rss2 = status_kib(gw.pid, "VmRSS")
        hwm = status_kib(gw.pid, "VmHWM")
        say(f"after {total:>9,} requests: RSS {rss2 / 1024:8.1f} MiB (peak {hwm / 1024:.1f} MiB)")
        growth = (rss2 - rss1) / 1024
        say(f"difference: {growth:+.1f} MiB ({rss2 - rss1:+,} KiB) over {total - first:,} more requests "
            f"({(total - first) / took:,.0f} requests/s, {clients} clients, p99 {r2['p99_ms']:.2f} ms)")
        if r1["ok"] + r2["ok"] != total:
            raise RuntimeError(f"{r1['ok'] + r2['ok']} requests answered 400, expected {total}")
        stats = counted(url)
        window = ((stats or {}).get("windows") or {}).get("15m")
        say("GET /v1/stats 15m window: " + json.dumps(window))
        # Every request went through the counting (a write refused with 400
        # is an aborted transaction), or the figure above says nothing.
        if not window or window.get("aborted") != total:
            raise RuntimeError(f"/v1/stats counted {window and window.get('aborted')} aborted "
                               f"transactions in 15 minutes, expected {total}")
        result = {"first": first, "total": total, "rss_first_kib": rss1, "rss_total_kib": rss2,
                  "growth_kib": rss2 - rss1, "peak_kib": hwm, "requests_per_s": round((total - first) / took)}
        say("RESULT " + json.dumps(result))
        if not args.smoke and growth > args.max_growth_mib:
            say(f"stats_memory: FAILED: RSS grew by {growth:.1f} MiB (> {args.max_growth_mib} MiB)")
        else:
            status = 0
    except (RuntimeError, OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        say(f"stats_memory: FAILED: {exc}")
    finally:
        if gw is not None and gw.poll() is None:
            gw.send_signal(signal.SIGTERM)
            try:
                gw.wait(30)
            except subprocess.TimeoutExpired:
                gw.kill()
                gw.wait(30)
        if neo4j_home:
            subprocess.run([NEO4J_SH, "stop", neo4j_home], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if keep:
            say(f"stats_memory: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
