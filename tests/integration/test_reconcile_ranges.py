"""The fast reconciliation by range checksums (stores/reconcile/ranges.c), on
a store large enough for several first-level ranges (4,096 SQLite keys each)
and for differing ranges to be cut (16 parts, down to 256 rows) before rows
are compared: a consistent store reads no row from either store, scattered
differences of every kind are all found (the same findings as a deep run),
however the ids are spread, and `bistore migrate` gives records written
without hash parts their _h1/_h2."""

import re
import time

import pytest

from harness.asserts import assert_stores_consistent, hash_parts
from harness.reconcile import (CONSTRAINT, assert_clean, keyed, reconcile, run_cli, sqlite_write,
                               start_run, store_counts, wait_run)

ENTITIES = 13000     # four first-level ranges (three cuts at every 4,096th SQLite key)
LINKED = 3000        # the entities relationships join (the rest have none)
RELATIONSHIPS = 5000
SCAN_PAGE = re.compile(rb"ORDER BY [nr]\.id LIMIT \$limit")  # a page of rows (recon_merge)
RANGE_SUMS = re.compile(rb"UNWIND \$ranges AS g")  # a request of range checksums


def entity_ids(n):
    """Ids of three shapes, interleaved, so that the first-level ranges hold
    very different slices of each: UUIDv7-like (time-ordered hex), client ids
    with a counter, and short mixed-case names."""
    ids = []
    for i in range(n):
        shape = i % 3
        if shape == 0:
            ids.append(f"0190{i:08x}-7{i % 4096:03x}-8000-{i * 7919 % 16 ** 12:012x}")
        elif shape == 1:
            ids.append(f"client-{i:07d}")
        else:
            ids.append(f"Z{chr(65 + i % 26)}{i * 31 % 9973}.{i}")
    return ids


def build(gw, ids):
    """ENTITIES entities and RELATIONSHIPS relationships (two types) among the
    first LINKED of them, through the gateway."""
    for start in range(0, len(ids), 2000):
        ops = [{"op": "create_entity", "id": eid, "type": ("Person", "Paper", "Topic")[k % 3],
                "properties": {"n": k, "name": f"entity {k}"}}
               for k, eid in enumerate(ids[start:start + 2000], start)]
        r = gw.post("/v1/transactions", {"operations": ops})
        assert r.status == 200, r
    rels = []
    for k in range(RELATIONSHIPS):
        rels.append({"op": "create_relationship", "id": f"r-{k * 7 % RELATIONSHIPS:05d}",
                     "type": "CITES" if k % 2 else "MENTIONS", "source": ids[k % LINKED],
                     "target": ids[(k * 13 + 1) % LINKED], "properties": {"w": k}})
    for start in range(0, len(rels), 2500):
        r = gw.post("/v1/transactions", {"operations": rels[start:start + 2500]})
        assert r.status == 200, r


@pytest.fixture
def big(gateway, neo4j):
    ids = entity_ids(ENTITIES)
    build(gateway, ids)
    order = sorted(ids)  # SQLite's order (bytes) and Neo4j's agree on these ids
    return gateway, neo4j, order


def test_a_consistent_store_is_checked_without_reading_a_row(gateway_factory, proxy_factory, neo4j):
    """Every range agrees, so no page of rows is asked of Neo4j: a request for
    one is held at the proxy, and the run still ends at once with counters
    that equal both stores' contents."""
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url)
    build(gw, entity_ids(ENTITIES))
    proxy.hold_matching(SCAN_PAGE)
    run = assert_clean(gw, neo4j, mode="fast")
    assert proxy.held_count() == 0, "a fast run of a consistent store read rows from Neo4j"
    assert run["summary"]["entities_sqlite"] == ENTITIES
    assert run["summary"]["relationships_neo4j"] == RELATIONSHIPS
    assert run["progress"]["scanned"] == ENTITIES + RELATIONSHIPS, run
    proxy.pass_through()


def test_range_checksums_go_to_neo4j_two_at_a_time(gateway_factory, proxy_factory, neo4j):
    """Neo4j runs a query on one core, so the fast scan sends the ranges of a
    round on two connections at once: with the first requests held at the
    proxy, two are out together (one at a time, the second would wait for
    the first's answer). Released, the run ends clean."""
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url)
    build(gw, entity_ids(ENTITIES))
    proxy.hold_matching(RANGE_SUMS)
    rid = start_run(gw, mode="fast")
    try:
        deadline = time.monotonic() + 30
        while proxy.holding_connections() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.holding_connections() == 2, "range checksums went to Neo4j one at a time"
    finally:
        proxy.release()
    run = wait_run(gw, rid)
    assert run["summary"]["entities_neo4j"] == ENTITIES, run
    assert run["summary"]["relationships_sqlite"] == RELATIONSHIPS, run
    assert_clean(gw, neo4j, mode="fast")


def test_scattered_differences_of_every_kind_are_all_found(entity_constraint, big):
    """Differences at both ends of the id space, at the first key of a
    first-level range, and scattered: the fast run finds exactly what the
    deep run finds, and exactly what was done."""
    gw, neo4j, order = big
    unlinked = [e for e in order if e not in set(entity_ids(LINKED))]
    linked = sorted(entity_ids(LINKED))
    cut = order[4096]  # the first key of the second range
    assert cut in unlinked or cut in linked
    expected = []
    # Neo4j lost nodes (no relationships, so nothing else goes with them)
    for eid in (unlinked[0], unlinked[-1], unlinked[len(unlinked) // 2]):
        neo4j.run("MATCH (n:Entity {id: $id}) DELETE n", id=eid)
        expected.append(("only_in_sqlite", "entity", eid))
    # nodes only in Neo4j, with a well-formed _v, _h and parts
    for eid in ("00-before-everything", "zzzz-after-everything", cut + "0"):
        h = "00112233445566ff"
        h1, h2 = hash_parts(h)
        neo4j.run("CREATE (:Entity:Person {id: $id, _v: 1, _h: $h, _h1: $h1, _h2: $h2})", id=eid, h=h, h1=h1, h2=h2)
        expected.append(("only_in_neo4j", "entity", eid))
    # a version changed, and a hash changed with consistent parts (only the sums differ)
    victims = [unlinked[100], unlinked[7000]]
    neo4j.run("MATCH (n:Entity {id: $id}) SET n._v = n._v + 1", id=victims[0])
    h = "ffeeddccbbaa9988"
    h1, h2 = hash_parts(h)
    neo4j.run("MATCH (n:Entity {id: $id}) SET n._h = $h, n._h1 = $h1, n._h2 = $h2", id=victims[1], h=h, h1=h1, h2=h2)
    expected += [("mismatch", "entity", victims[0]), ("mismatch", "entity", victims[1])]
    # SQLite: a row deleted, a hash edited
    sqlite_write(gw.store.path, "DELETE FROM entities WHERE id = ?", (unlinked[8000],))
    expected.append(("only_in_neo4j", "entity", unlinked[8000]))
    sqlite_write(gw.store.path, "UPDATE entities SET hash = '0000000000000001' WHERE id = ?", (unlinked[9500],))
    expected.append(("mismatch", "entity", unlinked[9500]))
    # a duplicate: an exact copy of a node (same id, _v, _h and parts)
    neo4j.run(f"DROP CONSTRAINT {CONSTRAINT}")
    dup = unlinked[5500]
    neo4j.run("MATCH (n:Entity {id: $id}) CREATE (m:Entity:Paper) SET m = properties(n)", id=dup)
    assert neo4j.count_entity(dup) == 2
    expected.append(("duplicate_id", "entity", dup))
    # relationships: one gone from Neo4j, one moved to another node (same
    # id, _v, _h, parts), one with another version
    neo4j.run("MATCH ()-[r:CITES {id: 'r-00007'}]->() DELETE r")
    expected.append(("only_in_sqlite", "relationship", "r-00007"))
    rel = neo4j.run("MATCH (a)-[r:MENTIONS]->(b) WHERE a <> b RETURN r.id, b.id ORDER BY r.id SKIP 1200 LIMIT 1")
    rid, old_target = rel[0]
    other = next(e for e in linked if e != old_target)
    neo4j.run("MATCH (a)-[r:MENTIONS {id: $rid}]->() MATCH (b:Entity {id: $b}) "
              "WITH a, b, r, properties(r) AS p DELETE r CREATE (a)-[r2:MENTIONS]->(b) SET r2 = p", rid=rid, b=other)
    expected.append(("mismatch", "relationship", rid))
    neo4j.run("MATCH ()-[r:CITES {id: 'r-04001'}]->() SET r._v = 7")
    expected.append(("mismatch", "relationship", "r-04001"))

    fast, found_fast = reconcile(gw, mode="fast")
    deep, found_deep = reconcile(gw, mode="deep")
    assert keyed(found_fast) == sorted(expected), \
        (sorted(set(keyed(found_fast)) - set(expected)), sorted(set(expected) - set(keyed(found_fast))))
    assert keyed(found_deep) == keyed(found_fast)
    counts = store_counts(gw, neo4j)
    for key, value in counts.items():
        assert fast["summary"][key] == value, (key, fast["summary"], counts)
        assert deep["summary"][key] == value, (key, deep["summary"], counts)


def test_ids_that_are_all_one_shape_or_crowded_at_one_end(gateway, neo4j):
    """Ranges are cut at actual keys: 9,000 ids that share a long prefix and
    differ only in their last characters, and Neo4j holding 600 extra nodes
    between two adjacent SQLite keys (a range that Neo4j fills and SQLite
    does not, cut at Neo4j's keys)."""
    gw = gateway
    ids = [f"sample:2026-12-03:batch-0001:item-{i:05d}" for i in range(9000)]
    for start in range(0, len(ids), 3000):
        ops = [{"op": "create_entity", "id": eid, "type": "Sample", "properties": {"i": i}}
               for i, eid in enumerate(ids[start:start + 3000], start)]
        assert gw.post("/v1/transactions", {"operations": ops}).status == 200
    assert_clean(gw, neo4j, mode="fast")
    h = "0123456789abcdef"
    h1, h2 = hash_parts(h)
    neo4j.run("UNWIND range(0, 599) AS k CREATE (:Entity:Sample {id: $base + '-x' + right('000' + toString(k), 3),"
              " _v: 1, _h: $h, _h1: $h1, _h2: $h2})", base=ids[4500], h=h, h1=h1, h2=h2)
    run, found = reconcile(gw, mode="fast")
    extra = sorted(f"{ids[4500]}-x{k:03d}" for k in range(600))
    assert keyed(found) == [("only_in_neo4j", "entity", e) for e in extra]
    assert run["summary"]["entities_neo4j"] == 9600 and run["summary"]["entities_sqlite"] == 9000, run


def test_migrate_gives_older_records_their_hash_parts(big):
    """Records without _h1/_h2 (and nodes without _hid: written by an older
    gateway): a fast run is still right (their ranges are compared row by
    row); `bistore migrate` gives each its parts from its _h and id, is a
    no-op the second time, and the stores then agree field by field, parts
    included."""
    gw, neo4j, order = big
    neo4j.run("MATCH (n:Entity) WHERE n.id < $mid REMOVE n._h1, n._h2, n._hid", mid=order[len(order) // 2])
    neo4j.run("MATCH (n:Entity) WHERE n.id >= $mid WITH n LIMIT 100 REMOVE n._hid", mid=order[len(order) // 2])
    neo4j.run("MATCH ()-[r:CITES]->() REMOVE r._h1")
    stripped = neo4j.value("MATCH (n:Entity) WHERE n._h1 IS NULL OR n._hid IS NULL RETURN count(n)") + \
        neo4j.value("MATCH ()-[r]->() WHERE r._h1 IS NULL RETURN count(r)")
    assert stripped == ENTITIES // 2 + 100 + RELATIONSHIPS // 2
    assert_clean(gw, neo4j, mode="fast")
    args = ["migrate", "--neo4j-url", neo4j.url]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert f"read {ENTITIES + RELATIONSHIPS} records, gave {stripped} of them their hash parts" in first.stdout, \
        first.stdout
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert f"gave 0 of them" in second.stdout, second.stdout
    assert_stores_consistent(gw.store, neo4j)  # parts included (harness/asserts.py)
    assert_clean(gw, neo4j, mode="fast")


def test_migrate_reports_a_neo4j_it_cannot_reach(tmp_path):
    r = run_cli("migrate", "--neo4j-url", "http://127.0.0.1:9", "--neo4j-timeout-ms", "500")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "bistore migrate:" in r.stderr and "run it again to resume" in r.stderr, r.stderr
