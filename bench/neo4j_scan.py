#!/usr/bin/env python3
"""Neo4j's own keyset scan rate, for comparison with the reconciliation.

    bench/neo4j_scan.py URL [--page 5000] [--database neo4j]

Pages through the store over the HTTP transaction endpoint the way a fast
check has to, each page one autocommit request on one keep-alive
connection, and prints one line per scan:

  entities (id, _v, _h)     MATCH (n:Entity) WHERE n.id > $after
                            RETURN n.id, n._v, n._h ORDER BY n.id LIMIT 5000
  entities as the gateway   the gateway's own fast-scan query (adds elementId)
  relationships as the gateway
                            per relationship type, the gateway's fast query
                            (type, endpoints' ids, elementId)

Only the standard library; the JSON parsing is Python's C parser, so the
figures are close to what Neo4j itself can stream.
"""

import argparse
import http.client
import json
import sys
import time
import urllib.parse

ENTITY_MIN = ("MATCH (n:Entity) WHERE n.id > $after RETURN n.id, n._v, n._h"
              " ORDER BY n.id LIMIT $limit")
# The columns of stores/neo4j/recon.c's fast scan (it pages with `>=` and skips
# the rows it has seen; `>` reads the same rows).
ENTITY_GATEWAY = ("MATCH (n:Entity) WHERE n.id > $after RETURN n.id, n._v, n._h, elementId(n)"
                  " ORDER BY n.id LIMIT $limit")
REL_GATEWAY = ("MATCH (a:Entity)-[r:`{type}`]->(b:Entity) WHERE r.id > $after"
               " RETURN r.id, r._v, r._h, elementId(r), type(r), a.id, b.id"
               " ORDER BY r.id LIMIT $limit")


class Neo4j:
    def __init__(self, url, database):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port or 7474, timeout=600)
        self.path = f"/db/{database}/tx/commit"

    def query(self, statement, **params):
        body = json.dumps({"statements": [{"statement": statement, "parameters": params}]})
        self.conn.request("POST", self.path, body=body,
                          headers={"Content-Type": "application/json",
                                   "Accept": "application/json"})
        resp = self.conn.getresponse()
        doc = json.loads(resp.read())
        if resp.status != 200 or doc.get("errors"):
            raise RuntimeError(f"Neo4j: HTTP {resp.status} {doc.get('errors')}")
        return [d["row"] for d in doc["results"][0]["data"]]


def scan(neo, statement, page):
    """Pages until the end; returns (rows, seconds)."""
    after, rows = "", 0
    t0 = time.monotonic()
    while True:
        data = neo.query(statement, after=after, limit=page)
        rows += len(data)
        if len(data) < page:
            return rows, time.monotonic() - t0
        after = data[-1][0]


def report(what, rows, secs):
    print(f"neo4j scan {what}: {rows} rows in {secs:.1f} s ({rows / secs if secs else 0:.0f} rows/s)",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("--page", type=int, default=5000)
    ap.add_argument("--database", default="neo4j")
    args = ap.parse_args()
    neo = Neo4j(args.url, args.database)
    rows, secs = scan(neo, ENTITY_MIN, args.page)
    report("entities (id, _v, _h)", rows, secs)
    rows, secs = scan(neo, ENTITY_GATEWAY, args.page)
    report("entities as the gateway", rows, secs)
    types = [r[0] for r in neo.query("CALL db.relationshipTypes() YIELD relationshipType"
                                     " RETURN relationshipType ORDER BY relationshipType")]
    total_rows, total_secs = 0, 0.0
    for t in types:
        if not t.replace("_", "").isalnum():  # becomes query text
            sys.exit(f"neo4j_scan: odd relationship type {t!r}")
        rows, secs = scan(neo, REL_GATEWAY.replace("{type}", t), args.page)
        total_rows += rows
        total_secs += secs
    report("relationships as the gateway", total_rows, total_secs)


if __name__ == "__main__":
    main()
