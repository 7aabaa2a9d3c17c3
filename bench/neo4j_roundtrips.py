#!/usr/bin/env python3
"""What Neo4j alone charges for the commit protocol's requests (PERF.md).

Times, on one keep-alive HTTP connection, single-node creates written the
ways the protocol could send them, against the one-request autocommit a
naive dual write uses:

  autocommit            POST /tx/commit [create]              (naive)
  begin                 POST /tx (empty)                      (the spare)
  run                   POST /tx/N [create]
  run+guard             POST /tx/N [guarded watermark, create]
  run+joined-guard      POST /tx/N [one statement: the guard, WITH w, the create]
  commit                POST /tx/N/commit (empty)
  commit-with-statements POST /tx/N/commit [create]

and the same through the Query API (`--neo4j-api query`: one statement a
request, explicit transactions under /db/{db}/query/v2/tx):

  q-autocommit          POST /query/v2 {create}               (its naive write)
  q-begin               POST /query/v2/tx {}
  q-run+joined-guard    POST /query/v2/tx/ID {guard WITH w create}
  q-commit              POST /query/v2/tx/ID/commit {}

and, with --pid, Neo4j's CPU per create for each whole pattern. Then
Neo4j's rate for the nodes replay writes: 10,000 such nodes as 5 UNWIND
autocommits of 2,000 (what a replay batch sends), three rounds. Nothing
but the Python standard library. Usage:

  bench/neo4j_roundtrips.py --url http://127.0.0.1:7474 [--pid PID] [-n 400]
"""
import argparse
import http.client
import json
import os
import statistics
import time
import urllib.parse
import uuid


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="Neo4j HTTP URL")
    ap.add_argument("--pid", type=int, help="Neo4j's process id, for its CPU")
    ap.add_argument("-n", type=int, default=400, help="measured creates per pattern")
    ap.add_argument("--database", default="neo4j")
    args = ap.parse_args()
    u = urllib.parse.urlparse(args.url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 7474, timeout=60)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    last_doc = [None]  # the last answer's JSON
    base = f"/db/{args.database}/tx"

    def req(path, stmts=None, body=None, extra=None):
        t = time.perf_counter()
        conn.request("POST", path, body=json.dumps({"statements": stmts or []} if body is None
                                                   else body), headers={**headers, **(extra or {})})
        r = conn.getresponse()
        body = r.read()
        ms = (time.perf_counter() - t) * 1000
        doc = json.loads(body) if body else {}
        last_doc[0] = doc
        if doc.get("errors"):
            raise SystemExit(f"Neo4j refused {path}: {doc['errors']}")
        return ms, r

    def begin():
        ms, r = req(base)
        return ms, base + "/" + r.getheader("Location").rsplit("/", 1)[1]

    def create():
        return {"statement": "UNWIND $rows AS r CREATE (n:Entity:RoundTrip) SET n = r RETURN count(*)",
                "parameters": {"rows": [{"id": str(uuid.uuid4()), "_v": 1, "_h": "0123456789abcdef",
                                         "name": "x", "confidence": 0.5, "mentions": 3}]}}

    store = "roundtrip-" + uuid.uuid4().hex[:8]
    req(base + "/commit", [{"statement": "MERGE (w:_RoundTripWatermark {store: $s}) SET w.seq = 0",
                            "parameters": {"s": store}}])
    seq = [0]

    def guard():
        seq[0] += 1
        return {"statement": "MATCH (w:_RoundTripWatermark {store: $store}) SET w._lock = true"
                " WITH w, CASE WHEN w.seq = $prev THEN 1 ELSE 1/0 END AS ok SET w.seq = $seq"
                " RETURN w.seq", "parameters": {"store": store, "prev": seq[0] - 1, "seq": seq[0]}}

    steps = {k: [] for k in ("autocommit", "begin", "run", "run+guard", "run+joined-guard",
                             "commit", "commit-with-statements", "q-autocommit", "q-begin",
                             "q-run+joined-guard", "q-commit")}

    def p_auto():
        steps["autocommit"].append(req(base + "/commit", [create()])[0])

    def p_protocol():  # the gateway's: begin (ahead), run guard+data, commit
        ms, path = begin()
        steps["begin"].append(ms)
        steps["run+guard"].append(req(path, [guard(), create()])[0])
        steps["commit"].append(req(path + "/commit")[0])

    def joined():  # the guard and the create as one statement
        g, cr = guard(), create()
        return {"statement": g["statement"].replace(" RETURN w.seq", " WITH w ") + cr["statement"],
                "parameters": {**g["parameters"], **cr["parameters"]}}

    def p_joined():
        _, path = begin()
        steps["run+joined-guard"].append(req(path, [joined()])[0])
        req(path + "/commit")

    qbase = f"/db/{args.database}/query/v2"

    def p_q_auto():
        steps["q-autocommit"].append(req(qbase, body=create())[0])

    def p_q_protocol():  # the query adapter's: begin, one run (guard joined), commit
        ms, r = req(qbase + "/tx", body={})
        steps["q-begin"].append(ms)
        tx = last_doc[0]["transaction"]["id"]
        aff = r.getheader("neo4j-cluster-affinity")
        extra = {"neo4j-cluster-affinity": aff} if aff else None
        steps["q-run+joined-guard"].append(req(f"{qbase}/tx/{tx}", body=joined(), extra=extra)[0])
        steps["q-commit"].append(req(f"{qbase}/tx/{tx}/commit", body={}, extra=extra)[0])

    def p_plain():  # begin, run data, commit
        _, path = begin()
        steps["run"].append(req(path, [create()])[0])
        req(path + "/commit")

    def p_commit_with():  # begin, commit carrying the data
        _, path = begin()
        steps["commit-with-statements"].append(req(path + "/commit", [create()])[0])

    def cpu():
        if not args.pid:
            return 0.0
        f = open(f"/proc/{args.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    patterns = [("autocommit (naive)", p_auto), ("begin + run(guard, data) + commit", p_protocol),
                ("begin + run(guard joined to data) + commit", p_joined),
                ("begin + run(data) + commit", p_plain), ("begin + commit(data)", p_commit_with),
                ("query: autocommit", p_q_auto),
                ("query: begin + run(joined guard) + commit", p_q_protocol)]
    for _, f in patterns:  # warm up: plans cached, JIT busy elsewhere
        for _ in range(100):
            f()
    for v in steps.values():
        v.clear()
    print(f"{'pattern':42s} {'wall ms/create':>15s} {'Neo4j CPU ms/create':>20s}")
    for name, f in patterns:
        c0, t0 = cpu(), time.perf_counter()
        for _ in range(args.n):
            f()
        wall, c = (time.perf_counter() - t0) * 1000 / args.n, (cpu() - c0) * 1000 / args.n
        print(f"{name:42s} {wall:15.2f} {c if args.pid else float('nan'):20.2f}")
    print()
    print(f"{'request':24s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for k, v in steps.items():
        v = sorted(v)
        print(f"{k:24s} {statistics.median(v):8.2f} {v[int(len(v) * 0.95)]:8.2f}")
    print()
    for _ in range(3):
        batches = [[{"statement": create()["statement"], "parameters": {"rows": [
            dict(create()["parameters"]["rows"][0]) for _ in range(2000)]}}] for _ in range(5)]
        c0, t0 = cpu(), time.perf_counter()
        for b in batches:
            req(base + "/commit", b)
        wall, c = time.perf_counter() - t0, cpu() - c0
        print(f"10,000 nodes as 5 UNWINDs of 2,000: {10000 / wall:,.0f} nodes/s"
              + (f", Neo4j CPU {c * 1000 / 10000:.3f} ms/node" if args.pid else ""))
    req(base + "/commit", [{"statement": "MATCH (n:RoundTrip) DETACH DELETE n"},
                           {"statement": "MATCH (w:_RoundTripWatermark {store: $s}) DELETE w",
                            "parameters": {"s": store}}])


if __name__ == "__main__":
    main()
