#!/usr/bin/env python3
"""What Neo4j alone charges for a document batch, by the shape it is sent in (PERF.md).

One document the size of bench_load's batch (--entities nodes, --relationships
relationships between random pairs of them, the same properties), sent four
ways on one keep-alive HTTP connection, in rounds that alternate the shapes so
that the machine's state is shared:

  one bare      one POST /tx/commit, both UNWINDs, the rows as the client
                sent them (what `bench_naive --workload raw` measures)
  one ours      the same with the bookkeeping bistore adds to each row
                (_v, _h, _h1, _h2, and _hid on nodes) and RETURN count(*)
  chunked bare  the protocol's shape: POST /tx (open), one POST /tx/N per
                chunk of --chunk rows, then POST /tx/N/commit, bare rows
  chunked ours  that shape with bistore's rows: what the gateway's pipelined
                path sends to Neo4j for the document

Fresh time-ordered ids each time (UUIDv7, as the gateway and bench_naive
make them: random ones would cost Neo4j's id index more), so every round writes new nodes, as a
gateway does. The gateway's own time comes on top of "chunked ours", so
raw / chunked-ours is the ceiling of bistore's batch rate against the raw
UNWIND where the protocol's shape stays. Nothing but the Python standard
library. Usage:

  bench/neo4j_batch_shapes.py --url http://127.0.0.1:7474 [--rounds 6]
"""
import argparse
import http.client
import json
import random
import statistics
import time
import urllib.parse
import uuid

NODES = "UNWIND $rows AS r CREATE (n:Entity:Person) SET n = r"
RELS = ("UNWIND $rows AS r MATCH (a:Entity {id: r.source}) MATCH (b:Entity {id: r.target})"
        " CREATE (a)-[x:RELATED_TO]->(b) SET x = r.rel")
COUNTED = " RETURN count(*)"


_seq = [0]


def uuid7():
    """A UUIDv7: milliseconds since the epoch, then a counter and random bits."""
    _seq[0] += 1
    ms = time.time_ns() // 1_000_000
    value = (ms << 80) | (0x7 << 76) | ((_seq[0] & 0xFFF) << 64) | (0b10 << 62) | \
        random.getrandbits(62)
    return str(uuid.UUID(int=value))


def bookkeeping(rng, node):
    """Values of the shape bistore stores beside each row."""
    extra = {"_v": 1, "_h": "%016x" % rng.getrandbits(64), "_h1": rng.getrandbits(30),
             "_h2": rng.getrandbits(30)}
    if node:
        extra["_hid"] = rng.getrandbits(30)
    return extra


def document(n_nodes, n_rels, ours, chunk):
    """The document's statements, in chunks of at most `chunk` rows."""
    rng = random.Random(42)
    ids = [uuid7() for _ in range(n_nodes)]
    nodes = []
    for i, eid in enumerate(ids):
        row = {"canonical_name": f"Entity {i}", "confidence": (i % 100) / 100, "mentions": i,
               "id": eid}
        if ours:
            row.update(bookkeeping(rng, True))
        nodes.append(row)
    rels = []
    for i in range(n_rels):
        rel = {"weight": (i % 100) / 100, "id": uuid7()}
        if ours:
            rel.update(bookkeeping(rng, False))
        rels.append({"source": ids[rng.randrange(n_nodes)], "target": ids[rng.randrange(n_nodes)],
                     "rel": rel})
    tail = COUNTED if ours else ""
    out = []
    for text, rows in ((NODES, nodes), (RELS, rels)):
        for at in range(0, len(rows), chunk):
            out.append({"statement": text + tail, "parameters": {"rows": rows[at:at + chunk]}})
    return out


class Neo4j:
    def __init__(self, url, database):
        u = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port or 7474, timeout=120)
        self.base = f"/db/{database}/tx"

    def post(self, path, statements):
        body = json.dumps({"statements": statements})
        self.conn.request("POST", path, body, {"Content-Type": "application/json"})
        r = self.conn.getresponse()
        doc = json.loads(r.read())
        if r.status not in (200, 201) or doc.get("errors"):
            raise SystemExit(f"neo4j_batch_shapes: {path} answered {r.status}: "
                             f"{doc.get('errors', [])[:1]}")
        return r

    def one(self, statements):
        t = time.perf_counter()
        self.post(self.base + "/commit", statements)
        return time.perf_counter() - t, None

    def chunked(self, statements):
        t = time.perf_counter()
        loc = urllib.parse.urlparse(self.post(self.base, []).getheader("Location")).path
        runs = 0.0
        for s in statements:
            a = time.perf_counter()
            self.post(loc, [s])
            runs += time.perf_counter() - a
        a = time.perf_counter()
        self.post(loc + "/commit", [])
        return time.perf_counter() - t, (runs, time.perf_counter() - a)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="Neo4j HTTP URL")
    ap.add_argument("--database", default="neo4j")
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--relationships", type=int, default=5000)
    ap.add_argument("--chunk", type=int, default=1000, help="rows per request when chunked "
                    "(the gateway's chunks are 500 rows, then 1,000-4,000)")
    ap.add_argument("--rounds", type=int, default=6, help="measured rounds (one warm-up more)")
    a = ap.parse_args()
    if a.entities < 1 or a.relationships < 0 or a.chunk < 1 or a.rounds < 1:
        ap.error("--entities and --chunk are at least 1, --rounds at least 1")
    neo = Neo4j(a.url, a.database)
    neo.post(neo.base + "/commit", [
        {"statement": "CREATE CONSTRAINT bistore_entity_id IF NOT EXISTS "
                      "FOR (n:Entity) REQUIRE n.id IS UNIQUE"},
        {"statement": "CREATE CONSTRAINT bistore_rel_RELATED_TO_id IF NOT EXISTS "
                      "FOR ()-[x:RELATED_TO]-() REQUIRE x.id IS UNIQUE"}])
    big = a.entities + a.relationships
    shapes = [("one bare", False, big, neo.one), ("one ours", True, big, neo.one),
              ("chunked bare", False, a.chunk, neo.chunked),
              ("chunked ours", True, a.chunk, neo.chunked)]
    times = {name: [] for name, *_ in shapes}
    for rnd in range(a.rounds + 1):
        for name, ours, chunk, send in shapes:
            took = send(document(a.entities, a.relationships, ours, chunk))
            if rnd:  # the first round warms Neo4j's plans and JIT
                times[name].append(took)
    items = a.entities + a.relationships
    print(f"Neo4j alone, one document of {a.entities:,} nodes + {a.relationships:,} relationships, "
          f"{a.rounds} rounds (medians):")
    result = {}
    for name, _, _, _ in shapes:
        total = statistics.median(t for t, _ in times[name])
        line = f"  {name:13} {total * 1000:7.1f} ms  {items / total:9,.0f} items/s"
        parts = [p for _, p in times[name] if p]
        if parts:
            runs = statistics.median(p[0] for p in parts)
            commit = statistics.median(p[1] for p in parts)
            line += f"  (statements {runs * 1000:.1f} ms, commit {commit * 1000:.1f} ms)"
        print(line)
        result[name] = total
    print(f"  ceiling of bistore / raw UNWIND where the protocol's shape stays: "
          f"{result['one bare'] / result['chunked ours']:.0%}; the bookkeeping alone "
          f"{result['one bare'] / result['one ours']:.0%}, the chunked explicit transaction "
          f"alone {result['one bare'] / result['chunked bare']:.0%}")
    print("RESULT " + json.dumps({"tool": "neo4j_batch_shapes", "ms": {
        k: round(v * 1000, 1) for k, v in result.items()}}))


if __name__ == "__main__":
    main()
