#!/usr/bin/env python3
"""Two helpers of bench/recon.sh, standard library only.

    bench/recon_damage.py sqlite-scan SQLITE_PATH
        SQLite's own keyset scan of entities and of relationships (pages of
        5,000, the columns a row-by-row fast check reads), one line each:
        "<what> <rows> rows in <s> s (<rows/s>)".

    bench/recon_damage.py damage SQLITE_PATH NEO4J_URL ENTITIES [--per-kind 25]
        Scatters per-kind differences of each of four kinds over the id
        space of a bench_recon_load store (ids e%08d): entities only in
        SQLite (rows added to the file), only in Neo4j (nodes added), a
        mismatched hash (Neo4j's _h and its parts replaced), and duplicate
        ids (the uniqueness constraint dropped, a plain range index on
        Entity(id) in its place, exact copies of nodes made).
        None has relationships, so each is exactly one finding. Prints the
        expected summary counters as JSON.
"""

import http.client
import json
import sqlite3
import sys
import time
import urllib.parse

PAGE = 5000


def sqlite_scan(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for what, sql in (("entities", "SELECT id, type, version, hash FROM entities WHERE id > ?"
                                   " ORDER BY id LIMIT ?"),
                      ("relationships", "SELECT id, type, source_id, target_id, version, hash"
                                        " FROM relationships WHERE id > ? ORDER BY id LIMIT ?")):
        after, rows, t0 = "", 0, time.monotonic()
        while True:
            page = db.execute(sql, (after, PAGE)).fetchall()
            rows += len(page)
            if len(page) < PAGE:
                break
            after = page[-1][0]
        secs = time.monotonic() - t0
        print(f"SQLite keyset scan, {what}: {rows} rows in {secs:.1f} s ({rows / secs:.0f} rows/s)")


class Neo4j:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port or 7474, timeout=600)

    def run(self, statement, **params):
        body = json.dumps({"statements": [{"statement": statement, "parameters": params}]})
        self.conn.request("POST", "/db/neo4j/tx/commit", body=body,
                          headers={"Content-Type": "application/json", "Accept": "application/json"})
        resp = self.conn.getresponse()
        doc = json.loads(resp.read())
        if resp.status != 200 or doc.get("errors"):
            raise RuntimeError(f"Neo4j: HTTP {resp.status} {doc.get('errors')}")
        return [d["row"] for d in doc["results"][0]["data"]]


def parts(h):
    v = int(h, 16)
    return v >> 34, (v >> 4) & 0x3FFFFFFF


def damage(path, url, entities, per_kind):
    neo = Neo4j(url)
    step = entities // (4 * per_kind)
    picks = [f"e{(k * step + step // 2) % entities:08d}" for k in range(4 * per_kind)]
    only_sqlite, only_neo4j = picks[0::4], picks[1::4]
    mismatched, duplicated = picks[2::4], picks[3::4]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for eid in only_sqlite:
        db.execute("INSERT INTO entities (id, type, properties, version, hash, created_at, updated_at)"
                   " VALUES (?, 'Person', '{}', 1, '0123456789abcdef', '2026-12-03T00:00:00.000Z',"
                   " '2026-12-03T00:00:00.000Z')", (eid + "-s",))
    db.execute("COMMIT")
    db.close()
    h = "fedcba9876543210"
    h1, h2 = parts(h)
    neo.run("UNWIND $ids AS id CREATE (:Entity:Person {id: id, _v: 1, _h: $h, _h1: $h1, _h2: $h2})",
            ids=[e + "-n" for e in only_neo4j], h=h, h1=h1, h2=h2)
    h = "0000000000000010"
    h1, h2 = parts(h)
    neo.run("UNWIND $ids AS id MATCH (n:Entity {id: id}) SET n._h = $h, n._h1 = $h1, n._h2 = $h2",
            ids=mismatched, h=h, h1=h1, h2=h2)
    names = [r[0] for r in neo.run("SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties"
                                   " WHERE 'Entity' IN labelsOrTypes AND properties = ['id'] RETURN name")]
    for name in names:
        neo.run(f"DROP CONSTRAINT `{name}`")
    # Without the constraint's index every id range is a label scan, for the
    # row-by-row scan as for the range checksums: a plain range index keeps
    # the figure about the reconciliation, not about a missing index.
    neo.run("CREATE INDEX bench_entity_id IF NOT EXISTS FOR (n:Entity) ON (n.id)")
    neo.run("CALL db.awaitIndexes(300)")
    neo.run("UNWIND $ids AS id MATCH (n:Entity {id: id}) CREATE (m:Entity) SET m = properties(n)",
            ids=duplicated)
    print(json.dumps({"only_in_sqlite": per_kind, "only_in_neo4j": per_kind, "mismatched": per_kind,
                      "duplicate_ids": per_kind}))


def main(argv):
    if len(argv) == 3 and argv[1] == "sqlite-scan":
        sqlite_scan(argv[2])
        return 0
    if len(argv) in (5, 7) and argv[1] == "damage":
        per_kind = int(argv[6]) if len(argv) == 7 and argv[5] == "--per-kind" else 25
        damage(argv[2], argv[3], int(argv[4]), per_kind)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
