"""A large transaction (1,000 operations or more) is committed alone and
pipelined: its statements go to Neo4j in chunks while the operations after
them are applied to SQLite. The protocol must not change: everything is
checked before SQLite's commit point, and a failure anywhere, in either
store, early or late, leaves both stores as they were."""

import json
import re

import pytest

from harness import assert_absent, assert_entity_mirrored, assert_intents_settled, assert_stores_consistent
from harness.api import assert_unchanged, error_of, snapshot
from harness.faults import send_expecting_no_answer

ENTITIES, RELS = 1200, 2400  # 3,600 operations: a chunk of 500 rows, then one or more


def document(prefix, bad_at=None, bad=None):
    ops = [{"op": "create_entity", "ref": f"e{i}", "id": f"{prefix}-e{i}", "type": "Person",
            "properties": {"n": i, "name": f"p{i}"}} for i in range(ENTITIES)]
    ops += [{"op": "create_relationship", "id": f"{prefix}-r{j}", "type": "MENTIONS",
             "source": {"ref": f"e{j % ENTITIES}"}, "target": {"ref": f"e{(j * 7 + 1) % ENTITIES}"},
             "properties": {"w": j}} for j in range(RELS)]
    if bad_at is not None:
        ops[bad_at] = bad
    return {"operations": ops}


def chunk_requests(log, rid):
    """The statement requests (not the begin, not the commit) of request rid."""
    return re.findall(r"\[" + re.escape(rid) + r"\] neo4j POST /db/neo4j/(?:query/v2/)?tx/[^/ ]+ ", log)


def test_large_transaction_is_pipelined_and_mirrored(gateway_factory, neo4j):
    gw = gateway_factory(args=["--log-level", "debug", "--neo4j-timeout-ms", "60000"])
    r = gw.post("/v1/transactions", document("ok"), headers={"X-Request-Id": "big-doc"}, timeout=120)
    assert r.status == 200, r
    assert r.json["neo4j"] == "applied" and len(r.json["results"]) == ENTITIES + RELS
    # sent in chunks while SQLite was written, not as one request at the end:
    # the first of 500 rows, the rest as Neo4j takes them (1,000 to 4,000)
    assert len(chunk_requests(gw.log_path.read_text(errors="replace"), "big-doc")) >= 2
    for i in (0, 999, 1000, ENTITIES - 1):
        assert_entity_mirrored(gw.store, neo4j, f"ok-e{i}", {"version": 1, "properties": {"n": i, "name": f"p{i}"}})
    assert neo4j.value("MATCH (:Entity)-[x:MENTIONS]->(:Entity) RETURN count(x)") == RELS
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
    # the intent holds the statements sent (the chunks, in order; not the
    # guard), so a replay sends the same rows
    intents = gw.store.intents()
    assert len(intents) == 1
    stmts = json.loads(intents[0]["statements"])
    assert len(stmts) >= 3 and not any("_BistoreWatermark" in s["statement"] for s in stmts)
    sizes = [len(s["parameters"]["rows"]) for s in stmts]
    assert sizes[0] == 500 and sum(sizes) == ENTITIES + RELS and max(sizes) <= 4000, sizes
    ids = [row.get("id") or row["rel"]["id"] for s in stmts for row in s["parameters"]["rows"]]
    assert ids == [f"ok-e{i}" for i in range(ENTITIES)] + [f"ok-r{j}" for j in range(RELS)]


def test_a_first_chunk_of_large_entities_is_sent(gateway_factory, neo4j):
    """The first chunk (500 rows) with the guard went through a 1 MiB
    buffer: 1,000 entities of 4 KiB each (4 MiB, a quarter of the body
    limit) were refused 502 "out of memory" on every try."""
    ops = [{"op": "create_entity", "id": f"big-e{i}", "type": "Person",
            "properties": {"n": i, "text": f"{i:06d}" + "x" * 4090}} for i in range(1000)]
    gw = gateway_factory(args=["--neo4j-timeout-ms", "60000"])
    r = gw.post("/v1/transactions", {"operations": ops}, timeout=120)
    assert r.status == 200 and r.json["neo4j"] == "applied", r
    for i in (0, 499, 500, 999):
        assert_entity_mirrored(gw.store, neo4j, f"big-e{i}", {"version": 1})
    assert len(neo4j.value("MATCH (n:Entity {id: 'big-e999'}) RETURN n.text")) == 4096
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)


def test_a_watermark_moved_behind_the_gateway_names_no_operation(gateway_factory, neo4j):
    """The first chunk's guard refuses: no operation is at fault (the
    transaction endpoint counts the guard's partial result, which named the
    first operation), and nothing is written."""
    gw = gateway_factory(args=["--neo4j-timeout-ms", "60000"])
    assert gw.post("/v1/entities", {"id": "wm-seed", "type": "Person"}).status == 201
    store_id = gw.store.query("SELECT value FROM bistore_meta WHERE key = 'store_id'")[0]["value"]
    top = gw.store.max_intent_seq()
    neo4j.run("MATCH (w:_BistoreWatermark {store: $s}) SET w.seq = $seq", s=store_id, seq=top + 5)
    r = gw.post("/v1/transactions", document("wm"), timeout=120)
    assert r.status == 503 and r.error_code() == "neo4j_unavailable", r
    assert "watermark" in r.json["error"]["message"], r.json
    assert "operation_index" not in r.json["error"], r.json
    assert_absent(gw.store, neo4j, entity_ids=["wm-e0", f"wm-e{ENTITIES - 1}"], rel_ids=["wm-r0"])
    assert gw.store.max_intent_seq() == top


LATE = ENTITIES + RELS - 100  # in the last chunk: earlier chunks already ran in Neo4j
BAD_LATE = {
    "existing_entity_id": ({"op": "create_entity", "id": "seed-a", "type": "Person"}, 409, "entity_exists"),
    "missing_endpoint": ({"op": "create_relationship", "type": "MENTIONS", "source": "seed-a",
                          "target": "ghost"}, 404, "not_found"),
    "stale_version": ({"op": "update_entity", "id": "seed-a", "if_version": 7, "properties": {"x": 1}},
                      412, "version_mismatch"),
}


@pytest.mark.parametrize("case", sorted(BAD_LATE))
def test_late_failure_in_sqlite_changes_nothing(gateway_factory, neo4j, case):
    gw = gateway_factory(args=["--neo4j-timeout-ms", "60000"])
    assert gw.post("/v1/entities", {"id": "seed-a", "type": "Person"}).status == 201
    before = snapshot(gw, neo4j)
    bad, status, code = BAD_LATE[case]
    err = error_of(gw.post("/v1/transactions", document("x", LATE, bad), timeout=120), status, code)
    assert err.get("operation_index") == LATE, err
    assert_unchanged(gw, neo4j, before)
    assert_absent(gw.store, neo4j, entity_ids=["x-e0", "x-e1199"], rel_ids=["x-r0", "x-r2000"])
    assert_intents_settled(gw.store, neo4j)
    assert gw.post("/v1/transactions", document("y"), timeout=120).status == 200
    assert_stores_consistent(gw.store, neo4j)


def test_neo4j_refusing_a_middle_chunk_changes_nothing(gateway_factory, neo4j):
    gw = gateway_factory(args=["--neo4j-timeout-ms", "60000"])
    assert gw.post("/v1/entities", {"id": "seed-b", "type": "Person"}).status == 201
    # Neo4j alone holds an id the document creates at operation 1,100 (after
    # the first chunk, of 500): SQLite takes it, Neo4j's constraint refuses it.
    neo4j.run("CREATE (:Entity:Person {id: 'z-e1100'})")
    before = snapshot(gw, neo4j)
    err = error_of(gw.post("/v1/transactions", document("z"), timeout=120), 409, "entity_exists")
    # Neo4j names the statement, not the row: the first operation of the
    # statement it reports (its constraint check may surface in the next
    # one); where the chunks after the first begin depends on Neo4j's pace
    assert 500 <= err.get("operation_index", -1) <= 1100, err
    assert_unchanged(gw, neo4j, before)
    assert_absent(gw.store, neo4j, entity_ids=["z-e0", "z-e1199"], rel_ids=["z-r0"])
    assert gw.store.entity("z-e1100") is None
    aborted = gw.get("/v1/transactions?state=aborted")
    assert aborted.status == 200 and len(aborted.json["items"]) == 1, aborted
    assert_intents_settled(gw.store, neo4j)


def test_neo4j_refusing_the_last_chunk_after_the_intent_changes_nothing(gateway_factory, neo4j):
    """The intent is written while the last chunk runs: Neo4j refusing that
    chunk must take the intent back with everything else."""
    gw = gateway_factory(args=["--neo4j-timeout-ms", "60000"])
    assert gw.post("/v1/entities", {"id": "seed-d", "type": "Person"}).status == 201
    intents_before = len(gw.store.intents())
    # Neo4j alone holds the id of the document's relationship 2,300
    # (operation 3,500, 100 from the end): its constraint refuses it late
    neo4j.run("MATCH (a:Entity {id: 'seed-d'}) CREATE (a)-[:MENTIONS {id: 'w-r2300'}]->(a)")
    before = snapshot(gw, neo4j)
    err = error_of(gw.post("/v1/transactions", document("w"), timeout=120), 409, "relationship_exists")
    # the first operation of the relationships' statement that holds it (a
    # refusal surfacing past the request's last statement names that one)
    assert ENTITIES <= err.get("operation_index", -1) <= ENTITIES + 2300, err
    assert_unchanged(gw, neo4j, before)
    assert len(gw.store.intents()) == intents_before, "the refused document's intent stayed"
    assert_absent(gw.store, neo4j, entity_ids=["w-e0", "w-e1199"], rel_ids=["w-r0", "w-r2399"])
    aborted = gw.get("/v1/transactions?state=aborted")
    assert aborted.status == 200 and len(aborted.json["items"]) == 1, aborted
    assert_intents_settled(gw.store, neo4j)
    neo4j.run("MATCH ()-[x:MENTIONS {id: 'w-r2300'}]->() DELETE x")  # the planted one
    assert gw.post("/v1/transactions", document("v"), timeout=120).status == 200
    assert_stores_consistent(gw.store, neo4j)


@pytest.mark.parametrize("point", ["after_begin", "after_neo4j_statements", "after_sqlite_commit",
                                   "after_neo4j_commit"])
def test_kill_during_a_pipelined_commit_then_recover(gateway_factory, neo4j, point):
    gw = gateway_factory(env={"BISTORE_FAULT": f"{point}:2"}, args=["--neo4j-timeout-ms", "60000"])
    assert gw.post("/v1/entities", {"id": "seed-c", "type": "Person"}).status == 201  # write 1
    send_expecting_no_answer(gw, "POST", "/v1/transactions", document("k"))  # write 2 dies
    gw.expect_fault_kill()
    passed = point in ("after_sqlite_commit", "after_neo4j_commit")
    assert gw.store.count_entity("k-e0") == (1 if passed else 0)
    assert neo4j.count_entity("k-e0") == (1 if point == "after_neo4j_commit" else 0), \
        "Neo4j shows data of an uncommitted transaction"

    gw2 = gateway_factory(sqlite=gw.sqlite_path, args=["--neo4j-timeout-ms", "60000"])
    if passed:
        for i in (0, 1100, ENTITIES - 1):
            assert_entity_mirrored(gw2.store, neo4j, f"k-e{i}", {"version": 1})
        assert neo4j.value("MATCH ()-[x:MENTIONS]->() RETURN count(x)") == RELS
    else:
        assert_absent(gw2.store, neo4j, entity_ids=["k-e0", "k-e1199"], rel_ids=["k-r0"])
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)
    # the dead gateway's open transaction (with chunks in it) holds no lock now
    assert gw2.post("/v1/transactions", document("after"), timeout=120).status == 200
    assert_stores_consistent(gw2.store, neo4j)
