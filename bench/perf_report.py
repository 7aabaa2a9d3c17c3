"""The tables of a performance run (bench/perf_run.py): bistore against the
baselines, the comparison with a baseline binary, and the issue's targets,
from the run's results (each a RESULT line of a bench tool)."""

# Targets of the issue (bench/PERF.md).
TARGET_P50_OVER_NAIVE_MS = 1.0
TARGET_32_VS_NAIVE = 5.0
TARGET_BATCH_VS_RAW = 0.8
TARGET_READ_P50_MS = 0.3
TARGET_READS_KEPT = 0.9
TARGET_REPLAY = 10_000
TARGET_UUID = 10_000_000


def find(results, system, workload, clients=None):
    for r in results:
        if r["system"] == system and r["workload"] == workload and (
                clients is None or r["clients"] == clients):
            return r
    return None


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep] + body)


def cpu_cols(r):
    """gateway-side CPU s/1k tx (bistore's gateway, or the baseline's own
    process), Neo4j CPU s/1k tx, client CPU s/1k tx."""
    if r is None:
        return ["-", "-", "-"]
    cpus = r.get("cpu_s_per_1k", {})
    client = r.get("client_cpu_s_per_1k")
    if "gateway" in cpus:
        gw = cpus["gateway"]
    else:
        gw = client  # the baseline's own process does the gateway's work
        client = None
    return [fmt(gw, 3), fmt(cpus.get("neo4j"), 3), fmt(client, 3) if client is not None else "-"]


def report(run):
    res = run.results
    out = []
    hdr = ["system", "clients", "tx/s", "p50 ms", "p95 ms", "p99 ms", "errors",
           "gateway CPU s/1k", "Neo4j CPU s/1k", "client CPU s/1k", "Neo4j JIT s"]
    rows = []
    for c in run.cfg["clients"]:
        for system in ("bistore", "naive", "python"):
            r = find(res, system, "create", c)
            if r:
                rows.append([system, c, fmt(r["tx_per_s"]), fmt(r["p50_ms"], 2),
                             fmt(r["p95_ms"], 2), fmt(r["p99_ms"], 2), r["errors"]] + cpu_cols(r)
                            + [fmt(r.get("neo4j_jit_s"), 1)])
    out.append("### Single-entity creates (POST /v1/entities vs the baselines)\n")
    out.append("'gateway CPU' is bistore's gateway process, or for a baseline its own "
               "process (which does the gateway's work); 'Neo4j JIT s' is the CPU time of "
               "the JVM's JIT compiler threads during the run (part of Neo4j's CPU).\n")
    out.append(table(hdr, rows))

    rows = []
    for c in run.cfg["clients"]:
        b = find(res, "bistore", "create", c)
        if not b:
            continue
        for base in ("naive", "python"):
            r = find(res, base, "create", c)
            if not r:
                continue
            bc, rc = b.get("cpu_s_per_1k", {}), r.get("cpu_s_per_1k", {})
            gw_ratio = (bc.get("gateway") / r["client_cpu_s_per_1k"]
                        if bc.get("gateway") is not None and r.get("client_cpu_s_per_1k") else None)
            n4_ratio = (bc.get("neo4j") / rc.get("neo4j")
                        if bc.get("neo4j") is not None and rc.get("neo4j") else None)
            rows.append([c, base, fmt(b["tx_per_s"] / r["tx_per_s"] if r["tx_per_s"] else None, 2),
                         fmt(b["p50_ms"] - r["p50_ms"], 2),
                         fmt(b["p50_ms"] / r["p50_ms"] if r["p50_ms"] else None, 2),
                         fmt(gw_ratio, 2), fmt(n4_ratio, 2)])
    out.append("\n### bistore relative to each baseline (same run)\n")
    out.append(table(["clients", "baseline", "throughput x", "p50 +ms", "p50 x",
                      "gateway CPU x", "Neo4j CPU x"], rows))

    rows = []
    for system, label in (("bistore", "bistore batch"), ("naive", "naive batch"),
                          ("neo4j-raw", "neo4j raw UNWIND")):
        r = find(res, system, "batch")
        if r:
            rows.append([label, r["ok"], fmt(r["tx_per_s"], 2), fmt(r["items_per_s"]),
                         fmt(r["p50_ms"]), fmt(r["p99_ms"]), r["errors"]] + cpu_cols(r)[:2]
                        + [fmt(r.get("neo4j_jit_s"), 1)])
    out.append("\n### Document batches (1,000 entities + 5,000 relationships each)\n")
    out.append(table(["system", "docs", "docs/s", "items/s", "p50 ms", "p99 ms", "errors",
                      "gateway CPU s/1k", "Neo4j CPU s/1k", "Neo4j JIT s"], rows))

    rows = []
    for c in run.cfg["read_clients"]:
        for wl, label in (("reads", "reads alone"),
                          ("reads-under-load", f"reads + creates at {run.cfg['bg_writers']} clients")):
            r = find(res, "bistore-under-load" if wl != "reads" else "bistore", wl, c)
            if r:
                rows.append([label, c, fmt(r["tx_per_s"]), fmt(r["p50_ms"], 3),
                             fmt(r["p95_ms"], 3), fmt(r["p99_ms"], 3), r["errors"]])
    for c in run.cfg["mixed_clients"]:
        r = find(res, "bistore", "mixed", c)
        if r:
            rows.append([f"mixed 80/20 (read p50 {fmt(r.get('read_p50_ms'), 3)}, write p50 "
                         f"{fmt(r.get('write_p50_ms'), 2)})", c, fmt(r["tx_per_s"]),
                         fmt(r["p50_ms"], 3), fmt(r["p95_ms"], 3), fmt(r["p99_ms"], 3),
                         r["errors"]])
    out.append("\n### Reads by id and the mixed workload (bistore)\n")
    out.append(table(["workload", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"],
                     rows))

    rows = []
    r = find(res, "bistore", "replay")
    if r:
        rows.append(["recovery replay", f"{r['ok']} intents", f"{fmt(r['tx_per_s'])} intents/s",
                     f"{r['seconds']:.2f} s start to ready (empty restart "
                     f"{r['startup_s']:.2f} s; net {fmt(r['net_tx_per_s'])}/s); CPU s/1k: "
                     f"gateway {r['cpu_s_per_1k']['gateway']:.3f}, "
                     f"Neo4j {r['cpu_s_per_1k']['neo4j']:.3f}"])
    r = find(res, "bistore", "uuid7")
    if r:
        rows.append(["UUIDv7, one thread", f"{r['ok']:,} ids", f"{r['tx_per_s'] / 1e6:.2f} M/s",
                     f"{r['client_cpu_s'] * 1e9 / r['ok']:.0f} ns CPU each "
                     f"({r['ok'] / r['client_cpu_s'] / 1e6:.1f} M/s per CPU second)"
                     if r.get("client_cpu_s") else ""])
    out.append("\n### Recovery and ids\n")
    out.append(table(["what", "size", "rate", "detail"], rows))

    compared = compare_table(run)
    if compared:
        out.append(compared)
    out.append("\n### Targets\n")
    out.append(table(["target", "measured", "met"], targets(run)))
    return "\n".join(out)


def targets(run):
    res = run.results
    rows = []

    def row(name, measured, ok):
        rows.append([name, measured, "-" if ok is None else ("yes" if ok else "NO")])

    b, n = find(res, "bistore", "create", 1), find(res, "naive", "create", 1)
    if b and n:
        d = b["p50_ms"] - n["p50_ms"]
        row("create, 1 client: p50 <= naive + 1 ms",
            f"{b['p50_ms']:.2f} vs {n['p50_ms']:.2f} ms (+{d:.2f})", d <= TARGET_P50_OVER_NAIVE_MS)
    b, n = find(res, "bistore", "create", 32), find(res, "naive", "create", 32)
    if b and n and n["tx_per_s"]:
        x = b["tx_per_s"] / n["tx_per_s"]
        row("create, 32 clients: >= 5x naive", f"{b['tx_per_s']:.0f} vs {n['tx_per_s']:.0f} tx/s "
            f"({x:.2f}x)", x >= TARGET_32_VS_NAIVE)
    b, r = find(res, "bistore", "batch"), find(res, "neo4j-raw", "batch")
    if b and r and r["items_per_s"]:
        x = b["items_per_s"] / r["items_per_s"]
        row("batches: >= 80 % of raw UNWIND", f"{b['items_per_s']:.0f} vs {r['items_per_s']:.0f} "
            f"items/s ({x * 100:.0f} %)", x >= TARGET_BATCH_VS_RAW)
    a = find(res, "bistore", "reads", 1)
    if a:
        row("reads, 1 client: p50 < 0.3 ms", f"{a['p50_ms']:.3f} ms",
            a["p50_ms"] < TARGET_READ_P50_MS)
    for c in run.cfg["read_clients"]:
        a, u = find(res, "bistore", "reads", c), find(res, "bistore-under-load",
                                                     "reads-under-load", c)
        if a and u and a["tx_per_s"]:
            x = u["tx_per_s"] / a["tx_per_s"]
            row(f"reads, {c} client(s): >= 90 % kept under {run.cfg['bg_writers']} writers",
                f"{u['tx_per_s']:.0f} of {a['tx_per_s']:.0f} req/s ({x * 100:.0f} %)",
                x >= TARGET_READS_KEPT)
    r = find(res, "bistore", "replay")
    if r:
        row("replay >= 10,000 intents/s", f"{r['tx_per_s']:.0f}/s", r["tx_per_s"] >= TARGET_REPLAY)
    r = find(res, "bistore", "uuid7")
    if r:
        row("UUIDv7 >= 10 M/s, one thread", f"{r['tx_per_s'] / 1e6:.2f} M/s",
            r["tx_per_s"] >= TARGET_UUID)
    return rows


def compare_table(run):
    """Per round and number of clients: tx/s and p99 of this build, the
    baseline and naive, and the ratios to naive."""
    by_label = {r.get("label"): r for r in run.results}
    rows = []
    for rnd in (1, 2):
        for c in run.cfg["clients"]:
            got = [by_label.get(f"{who} create c={c} round {rnd}")
                   for who in ("this", "baseline", "naive")]
            if not all(got):
                continue
            t, b, n = got
            rows.append([rnd, c] + [f"{fmt(r['tx_per_s'])} / {fmt(r['p99_ms'], 1)}" for r in got]
                        + [f"{t['tx_per_s'] / n['tx_per_s']:.2f}x" if n["tx_per_s"] else "-",
                           f"{b['tx_per_s'] / n['tx_per_s']:.2f}x" if n["tx_per_s"] else "-"])
    if not rows:
        return ""
    return "\n### This build, the baseline binary and naive (tx/s / p99 ms)\n\n" + table(
        ["round", "clients", "this build", "baseline", "naive", "this / naive",
         "baseline / naive"], rows)
