"""The HTTP contract (API.md) against a real Neo4j: /v1/relationships and
/v1/transactions (batches, refs, the audit trail, idempotency), each write
checked in both stores read directly."""

import json
import uuid

import pytest

from harness import (assert_absent, assert_entity_mirrored, assert_intents_settled,
                     assert_relationship_mirrored, assert_stores_consistent, RFC3339_UTC_RE, UUID7_RE)
from harness.api import (create_entity, create_relationship, error_of, snapshot, assert_unchanged, list_all,
                         parses_to, check_timestamps)


# ------------------------------------------------------------ relationships


def test_create_relationship_lands_in_both_stores(gateway, neo4j):
    rtype = f"LINK_{uuid.uuid4().hex[:8].upper()}"  # a type never used before in this Neo4j
    create_entity(gateway, "Person", {"name": "Ada"}, id="ra")
    create_entity(gateway, "Org", {"name": "Engines"}, id="rb")
    r = gateway.post("/v1/relationships", {"id": "rel-1", "type": rtype, "source": "ra", "target": "rb",
                                           "properties": {"weight": 0.7, "roles": ["x", "y"]}})
    assert r.status == 201, r
    body = r.json
    assert body["id"] == "rel-1" and body["type"] == rtype
    assert body["source"] == "ra" and body["target"] == "rb"
    assert body["properties"] == {"weight": 0.7, "roles": ["x", "y"]} and body["version"] == 1
    check_timestamps(body)
    assert body["tx_id"]
    assert_relationship_mirrored(gateway.store, neo4j, "rel-1",
                                 {"type": rtype, "source_id": "ra", "target_id": "rb", "version": 1,
                                  "properties": {"weight": 0.7, "roles": ["x", "y"]}})
    # generated id
    gen = create_relationship(gateway, "rb", "ra", rtype)
    assert UUID7_RE.match(gen["id"]), gen["id"]
    assert_relationship_mirrored(gateway.store, neo4j, gen["id"], {"properties": {}})
    # uniqueness constraints: Entity.id, and one for the new relationship type
    cons = neo4j.run("SHOW CONSTRAINTS YIELD entityType, labelsOrTypes, properties, type "
                     "RETURN entityType, labelsOrTypes, properties, type")
    assert ["NODE", ["Entity"], ["id"], "UNIQUENESS"] in cons, cons
    assert ["RELATIONSHIP", [rtype], ["id"], "RELATIONSHIP_UNIQUENESS"] in cons, cons
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)


def test_relationship_missing_endpoint_is_404(gateway, neo4j):
    create_entity(gateway, "Person", id="only")
    before = snapshot(gateway, neo4j)
    error_of(gateway.post("/v1/relationships", {"type": "KNOWS", "source": "only", "target": "ghost"}),
             404, "not_found")
    error_of(gateway.post("/v1/relationships", {"type": "KNOWS", "source": "ghost", "target": "only"}),
             404, "not_found")
    assert_unchanged(gateway, neo4j, before)


def test_relationship_existing_id_is_409(gateway, neo4j):
    create_entity(gateway, "Person", id="x1")
    create_entity(gateway, "Person", id="x2")
    create_relationship(gateway, "x1", "x2", "KNOWS", id="dup-rel", properties={"n": 1})
    before = snapshot(gateway, neo4j)
    error_of(gateway.post("/v1/relationships", {"id": "dup-rel", "type": "KNOWS", "source": "x2", "target": "x1"}),
             409, "relationship_exists")
    # also when the duplicate has another type (Neo4j's constraints are per type)
    error_of(gateway.post("/v1/relationships", {"id": "dup-rel", "type": "LIKES", "source": "x2", "target": "x1"}),
             409, "relationship_exists")
    assert_unchanged(gateway, neo4j, before)
    assert_relationship_mirrored(gateway.store, neo4j, "dup-rel", {"source_id": "x1", "properties": {"n": 1}})


def test_get_and_delete_relationship(gateway, neo4j):
    create_entity(gateway, "Person", id="g1")
    create_entity(gateway, "Person", id="g2")
    made = create_relationship(gateway, "g1", "g2", "KNOWS", id="gr", properties={"since": 1999})
    r = gateway.get("/v1/relationships/gr")
    assert r.status == 200, r
    for key in ("id", "type", "source", "target", "properties", "version", "created_at", "updated_at"):
        assert r.json[key] == made[key], key
    error_of(gateway.get("/v1/relationships/none"), 404, "not_found")
    r = gateway.delete("/v1/relationships/gr")
    assert r.status == 204, r
    assert_absent(gateway.store, neo4j, rel_ids=["gr"])
    assert_entity_mirrored(gateway.store, neo4j, "g1")
    assert_entity_mirrored(gateway.store, neo4j, "g2")
    error_of(gateway.get("/v1/relationships/gr"), 404, "not_found")
    error_of(gateway.delete("/v1/relationships/gr"), 404, "not_found")
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)


@pytest.mark.parametrize("body", [
    {"type": "KNOWS]->() DETACH DELETE n //", "source": "v1", "target": "v2"},
    {"type": "1KNOWS", "source": "v1", "target": "v2"},
    {"type": "KNOWS", "source": "v1", "target": "v2", "properties": {"w": {"x": 1}}},
    {"type": "KNOWS", "source": "v1", "target": "v2", "properties": {"_w": 1}},
    {"type": "KNOWS", "source": "v1", "target": "v2", "properties": {"id": "x"}},
    {"type": "KNOWS", "source": "v1", "target": "v2", "id": "bad id"},
    {"type": "KNOWS", "source": "v1"},
    {"type": "KNOWS", "target": "v2"},
    {"type": "KNOWS", "source": "v 1", "target": "v2"},
], ids=["injection", "digit", "nested", "underscore", "reserved_id", "bad_id", "no_target", "no_source",
        "bad_source_id"])
def test_invalid_relationship_is_rejected(gateway, neo4j, body):
    create_entity(gateway, "Person", id="v1")
    create_entity(gateway, "Person", id="v2")
    before = gateway.store.dump(), neo4j.dump()
    error_of(gateway.post("/v1/relationships", body), 400, "invalid_request")
    assert (gateway.store.dump(), neo4j.dump()) == before


# ------------------------------------------------------------- transactions


def test_batch_with_refs_creates_the_same_graph_in_both(gateway, neo4j):
    create_entity(gateway, "Org", {"name": "Existing"}, id="org-existing")
    ops = [
        {"op": "create_entity", "ref": "a", "type": "Person", "properties": {"name": "Ada", "age": 36}},
        {"op": "create_entity", "ref": "b", "id": "entity_9c1b", "type": "Org", "properties": {"name": "AE"}},
        {"op": "create_relationship", "type": "WORKS_AT", "source": {"ref": "a"}, "target": {"ref": "b"},
         "properties": {"since": 1843}},
        {"op": "create_relationship", "id": "rel-x", "type": "ADVISES", "source": {"ref": "a"},
         "target": "org-existing"},
        {"op": "create_relationship", "type": "PARTNERS", "source": "org-existing", "target": {"ref": "b"}},
    ]
    prov = {"tool_id": "T34", "operation": "extract", "inputs": ["doc_17", "doc_18"]}
    r = gateway.post("/v1/transactions", {"operations": ops, "provenance": prov})
    assert r.status == 200, r
    body = r.json
    assert body["state"] == "committed" and body["neo4j"] == "applied" and body["tx_id"]
    res = body["results"]
    assert [x["op"] for x in res] == [o["op"] for o in ops]
    assert all(x["version"] == 1 for x in res)
    a_id, b_id = res[0]["id"], res[1]["id"]
    assert UUID7_RE.match(a_id) and b_id == "entity_9c1b" and res[3]["id"] == "rel-x"
    assert_entity_mirrored(gateway.store, neo4j, a_id,
                           {"type": "Person", "properties": {"name": "Ada", "age": 36}, "version": 1})
    assert_entity_mirrored(gateway.store, neo4j, b_id, {"type": "Org", "properties": {"name": "AE"}})
    assert_relationship_mirrored(gateway.store, neo4j, res[2]["id"],
                                 {"type": "WORKS_AT", "source_id": a_id, "target_id": b_id,
                                  "properties": {"since": 1843}})
    assert_relationship_mirrored(gateway.store, neo4j, "rel-x",
                                 {"type": "ADVISES", "source_id": a_id, "target_id": "org-existing",
                                  "properties": {}})
    assert_relationship_mirrored(gateway.store, neo4j, res[4]["id"],
                                 {"type": "PARTNERS", "source_id": "org-existing", "target_id": b_id})
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)
    tx = gateway.store.transaction(body["tx_id"])
    assert tx and tx["state"] == "committed"
    # provenance is stored in SQLite with the transaction (in whichever column)
    assert any(parses_to(v, prov) for v in tx.values()), f"provenance not found in {tx}"


def ten_operations(bad=None):
    """Ten operations against e1 (Person v1), e2 (Org v1), r0 (e1-WORKS_AT->e2);
    operation 6 is replaced by `bad` when given."""
    ops = [
        {"op": "create_entity", "ref": "a", "id": "n-a", "type": "Person", "properties": {"name": "A"}},
        {"op": "create_entity", "ref": "b", "id": "n-b", "type": "Org", "properties": {"name": "B"}},
        {"op": "create_relationship", "id": "n-r1", "type": "WORKS_AT", "source": {"ref": "a"},
         "target": {"ref": "b"}, "properties": {"since": 2020}},
        {"op": "update_entity", "id": "e1", "if_version": 1, "properties": {"name": "Ada L.", "extra": None}},
        {"op": "create_entity", "ref": "c", "id": "n-c", "type": "Person", "properties": {"name": "C"}},
        {"op": "create_relationship", "id": "n-r2", "type": "KNOWS", "source": {"ref": "c"}, "target": "e1"},
        {"op": "update_entity", "id": "e2", "properties": {"size": 10}},
        {"op": "delete_relationship", "id": "r0"},
        {"op": "delete_entity", "id": "e3"},
        {"op": "create_entity", "id": "n-d", "type": "Person", "properties": {"name": "D"}},
    ]
    if bad is not None:
        ops[6] = bad
    return {"operations": ops}


def seed_for_ten(gw):
    create_entity(gw, "Person", {"name": "Ada", "extra": 1}, id="e1")
    create_entity(gw, "Org", {"name": "Engines"}, id="e2")
    create_entity(gw, "Person", {"name": "Gone"}, id="e3")
    create_relationship(gw, "e1", "e2", "WORKS_AT", id="r0")
    create_relationship(gw, "e3", "e1", "KNOWS", id="r3")


def test_ten_operation_batch_applies_everything(gateway, neo4j):
    seed_for_ten(gateway)
    r = gateway.post("/v1/transactions", ten_operations())
    assert r.status == 200, r
    res = r.json["results"]
    assert len(res) == 10
    assert [x["op"] for x in res] == [o["op"] for o in ten_operations()["operations"]]
    assert [res[i]["id"] for i in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)] == \
        ["n-a", "n-b", "n-r1", "e1", "n-c", "n-r2", "e2", "r0", "e3", "n-d"]
    assert res[3]["version"] == 2 and res[6]["version"] == 2
    assert_entity_mirrored(gateway.store, neo4j, "e1", {"version": 2, "properties": {"name": "Ada L."}})
    assert_entity_mirrored(gateway.store, neo4j, "e2", {"version": 2, "properties": {"name": "Engines", "size": 10}})
    for eid in ("n-a", "n-b", "n-c", "n-d"):
        assert_entity_mirrored(gateway.store, neo4j, eid, {"version": 1})
    assert_relationship_mirrored(gateway.store, neo4j, "n-r1", {"source_id": "n-a", "target_id": "n-b"})
    assert_relationship_mirrored(gateway.store, neo4j, "n-r2", {"source_id": "n-c", "target_id": "e1"})
    assert_absent(gateway.store, neo4j, entity_ids=["e3"], rel_ids=["r0", "r3"])
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)


BAD_SEVENTH = {
    "injection_type": ({"op": "create_entity", "type": "Person) DETACH DELETE n //"}, 400, "invalid_request"),
    "nested_property": ({"op": "create_entity", "type": "Person", "properties": {"x": {"y": 1}}},
                        400, "invalid_request"),
    "reserved_key": ({"op": "update_entity", "id": "e2", "properties": {"_h": "x"}}, 400, "invalid_request"),
    "unknown_ref": ({"op": "create_relationship", "type": "KNOWS", "source": {"ref": "zz"}, "target": "e1"},
                    400, "invalid_request"),
    "unknown_op": ({"op": "merge_entity", "id": "e2"}, 400, "invalid_request"),
    "existing_id": ({"op": "create_entity", "id": "e1", "type": "Person"}, 409, "entity_exists"),
    # found while planning (400) or by the store (409): either way nothing is written
    "id_created_earlier_in_batch": ({"op": "create_entity", "id": "n-a", "type": "Person"},
                                    (409, 400), ("entity_exists", "invalid_request")),
    "existing_relationship_id": ({"op": "create_relationship", "id": "r3", "type": "KNOWS", "source": "e1",
                                  "target": "e2"}, 409, "relationship_exists"),
    "stale_version": ({"op": "update_entity", "id": "e2", "if_version": 5, "properties": {"x": 1}},
                      412, "version_mismatch"),
    "missing_endpoint": ({"op": "create_relationship", "type": "KNOWS", "source": "e1", "target": "ghost"},
                         404, "not_found"),
    "update_missing_entity": ({"op": "update_entity", "id": "ghost", "properties": {"x": 1}}, 404, "not_found"),
}


@pytest.mark.parametrize("case", sorted(BAD_SEVENTH))
def test_batch_with_bad_seventh_operation_changes_nothing(gateway, neo4j, case):
    bad, status, code = BAD_SEVENTH[case]
    seed_for_ten(gateway)
    before = snapshot(gateway, neo4j)
    r = gateway.post("/v1/transactions", ten_operations(bad))
    if isinstance(status, tuple):
        assert (r.status, r.error_code()) in zip(status, code), r
        err = r.json["error"]
    else:
        err = error_of(r, status, code)
    assert err.get("operation_index") == 6, err
    if "field" in err:
        assert err["field"].startswith("operations[6]"), err
    assert_unchanged(gateway, neo4j, before)
    assert_absent(gateway.store, neo4j, entity_ids=["n-a", "n-b", "n-c", "n-d"], rel_ids=["n-r1", "n-r2"])
    assert_entity_mirrored(gateway.store, neo4j, "e1", {"version": 1, "properties": {"name": "Ada", "extra": 1}})
    assert_entity_mirrored(gateway.store, neo4j, "e3")
    assert_relationship_mirrored(gateway.store, neo4j, "r0")
    assert_intents_settled(gateway.store, neo4j)
    if case in ("existing_id", "existing_relationship_id"):
        # reached the stores and was rolled back: audited as aborted
        aborted = gateway.get("/v1/transactions?state=aborted")
        assert aborted.status == 200 and len(aborted.json["items"]) == 1, aborted
    # the gateway is not wedged by the rollback
    assert gateway.post("/v1/transactions", ten_operations()).status == 200
    assert_stores_consistent(gateway.store, neo4j)


@pytest.mark.parametrize("body,index", [
    ({"operations": []}, None),
    ({}, None),
    ({"operations": {"op": "create_entity"}}, None),
    ({"operations": [{"op": "create_entity", "type": "Person", "ref": "a"},
                     {"op": "create_entity", "type": "Person", "ref": "a"}]}, 1),
    ({"operations": [{"op": "create_relationship", "type": "KNOWS", "source": {"ref": "later"}, "target": "x"},
                     {"op": "create_entity", "type": "Person", "ref": "later"}]}, 0),
    ({"operations": [{"op": "create_entity", "type": "Person"}, {"type": "Person"}]}, 1),
    ({"operations": [{"op": "update_entity", "properties": {"a": 1}}]}, 0),
    ({"operations": [{"op": "update_entity", "id": "x", "if_version": "one", "properties": {}}]}, 0),
    ({"operations": [{"op": "create_entity", "type": "Person"}], "provenance": "not an object"}, None),
], ids=["empty", "missing", "not_a_list", "duplicate_ref", "ref_before_definition", "op_missing",
        "update_without_id", "if_version_not_int", "provenance_not_object"])
def test_invalid_batch_is_400(gateway, neo4j, body, index):
    before = gateway.store.dump(), neo4j.dump()
    err = error_of(gateway.post("/v1/transactions", body), 400, "invalid_request")
    if index is not None:
        assert err.get("operation_index") == index, err
    assert (gateway.store.dump(), neo4j.dump()) == before


@pytest.mark.parametrize("op", [
    {"op": "cypher", "statement": "MATCH (n) DETACH DELETE n", "parameters": {}},
    {"op": "sql", "statement": "DELETE FROM entities", "parameters": []},
])
def test_raw_statements_are_forbidden_by_default(gateway, neo4j, op):
    create_entity(gateway, "Person", id="keep-me")
    before = snapshot(gateway, neo4j)
    r = gateway.post("/v1/transactions", {"operations": [{"op": "create_entity", "type": "Person"}, op]})
    err = error_of(r, 403, "forbidden")
    if "operation_index" in err:
        assert err["operation_index"] == 1
    assert_unchanged(gateway, neo4j, before)
    assert_entity_mirrored(gateway.store, neo4j, "keep-me")


def test_transaction_get_and_provenance(gateway, neo4j):
    prov = {"tool_id": "T34", "operation": "extract", "inputs": [{"doc": "d1"}, "d2"]}
    r = gateway.post("/v1/transactions", {"operations": [
        {"op": "create_entity", "ref": "a", "type": "Person"},
        {"op": "create_entity", "ref": "b", "type": "Person"},
        {"op": "create_relationship", "type": "KNOWS", "source": {"ref": "a"}, "target": {"ref": "b"}}],
        "provenance": prov})
    assert r.status == 200, r
    tx_id = r.json["tx_id"]
    g = gateway.get(f"/v1/transactions/{tx_id}")
    assert g.status == 200, g
    t = g.json
    assert t["tx_id"] == tx_id and t["state"] == "applied"
    assert t["provenance"] == prov
    assert t["error"] is None
    assert RFC3339_UTC_RE.match(t["created_at"]) and RFC3339_UTC_RE.match(t["applied_at"]), t
    assert t["applied_at"] >= t["created_at"]
    ops = t["operations"]
    assert (isinstance(ops, list) and len(ops) == 3) or ops == 3, ops
    assert gateway.store.transaction(tx_id)["state"] == "committed"
    # a transaction without provenance
    r2 = gateway.post("/v1/transactions", {"operations": [{"op": "create_entity", "type": "Org"}]})
    t2 = gateway.get(f"/v1/transactions/{r2.json['tx_id']}").json
    assert t2["provenance"] in (None, {}), t2
    error_of(gateway.get("/v1/transactions/01890000-0000-7000-8000-000000000000"), 404, "not_found")
    error_of(gateway.get("/v1/transactions/no-such-tx"), 404, "not_found")


def test_transactions_audit_list(gateway, neo4j):
    t1 = create_entity(gateway, "Person", id="au1")["tx_id"]
    t2 = gateway.post("/v1/transactions", {"operations": [
        {"op": "create_entity", "id": "au2", "type": "Person"},
        {"op": "create_relationship", "type": "KNOWS", "source": "au1", "target": "au2"}]}).json["tx_id"]
    dup = gateway.post("/v1/entities", {"id": "au1", "type": "Person", "properties": {"who": "dup"}})
    error_of(dup, 409, "entity_exists")
    t4 = create_relationship(gateway, "au2", "au1", "LIKES")["tx_id"]
    t5 = gateway.patch("/v1/entities/au2", {"properties": {"x": 1}}).json
    assert t5["version"] == 2

    items, pages = list_all(gateway, "/v1/transactions", limit=2)
    assert len(items) == 5, [i.get("tx_id") for i in items]
    assert len(pages) >= 3
    assert items[0]["tx_id"] == t1 and items[1]["tx_id"] == t2 and items[3]["tx_id"] == t4, \
        "not oldest first"
    assert items[2]["state"] == "aborted"
    assert len({i["tx_id"] for i in items}) == 5
    assert [i["state"] for i in items] == ["applied", "applied", "aborted", "applied", "applied"]

    aborted, _ = list_all(gateway, "/v1/transactions?state=aborted", limit=10)
    assert len(aborted) == 1 and aborted[0]["tx_id"] == items[2]["tx_id"]
    full = gateway.get(f"/v1/transactions/{aborted[0]['tx_id']}")
    assert full.status == 200 and full.json["state"] == "aborted", full
    assert full.json["error"] and "entity_exists" in json.dumps(full.json["error"]), full.json
    assert full.json["applied_at"] is None
    # none of the aborted transaction's data is anywhere
    assert gateway.store.entity("au1")["properties"] == {}
    assert "who" not in neo4j.entities()["au1"]["props"]

    committed, _ = list_all(gateway, "/v1/transactions?state=committed", limit=2)
    assert [i["tx_id"] for i in committed] == [i["tx_id"] for i in items if i["state"] != "aborted"]
    applied, _ = list_all(gateway, "/v1/transactions?state=applied", limit=100)
    assert [i["tx_id"] for i in applied] == [i["tx_id"] for i in committed]
    pending, _ = list_all(gateway, "/v1/transactions?state=pending", limit=100)
    assert pending == []
    # SQLite's audit table agrees
    states = {t["tx_id"]: t["state"] for t in gateway.store.transactions()}
    assert states == {i["tx_id"]: ("aborted" if i["state"] == "aborted" else "committed") for i in items}
    error_of(gateway.get("/v1/transactions?state=bogus"), 400, "invalid_request")


def test_transaction_idempotency_key(gateway, neo4j):
    key = f"tx-{uuid.uuid4()}"
    body = {"operations": [{"op": "create_entity", "ref": "a", "type": "Person", "properties": {"k": 1}},
                           {"op": "create_entity", "ref": "b", "type": "Person"},
                           {"op": "create_relationship", "type": "KNOWS", "source": {"ref": "a"},
                            "target": {"ref": "b"}}]}
    first = gateway.post("/v1/transactions", body, headers={"Idempotency-Key": key})
    assert first.status == 200, first
    second = gateway.post("/v1/transactions", body, headers={"Idempotency-Key": key})
    assert second.status == 200 and second.json == first.json, second
    assert gateway.store.value("SELECT count(*) FROM entities") == 2
    assert neo4j.value("MATCH (n:Entity) RETURN count(n)") == 2
    assert neo4j.value("MATCH ()-[r]->() RETURN count(r)") == 1
    assert len(gateway.store.transactions()) == 1
    changed = {"operations": body["operations"][:1]}
    error_of(gateway.post("/v1/transactions", changed, headers={"Idempotency-Key": key}), 409,
             "idempotency_conflict")
    assert gateway.store.value("SELECT count(*) FROM entities") == 2
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)


def test_batch_answer_and_stored_idempotency_result_keep_their_shape(gateway, neo4j):
    """A batch's answer is built from its results alone, whether or not the gateway
    keeps records for it; an Idempotency-Key's stored result still holds the full
    records of every operation."""
    ops = [{"op": "create_entity", "ref": "a", "type": "Person", "properties": {"k": 1}},
           {"op": "create_entity", "ref": "b", "type": "Person"},
           {"op": "create_relationship", "type": "KNOWS", "source": {"ref": "a"},
            "target": {"ref": "b"}, "properties": {"w": 0.5}}]
    plain = gateway.post("/v1/transactions", {"operations": ops})
    assert plain.status == 200, plain
    assert list(plain.json) == ["tx_id", "state", "neo4j", "results"]
    assert [r["op"] for r in plain.json["results"]] == [o["op"] for o in ops]
    assert all(list(r) == ["op", "id", "version"] and r["version"] == 1
               for r in plain.json["results"])

    key = f"tx-{uuid.uuid4()}"
    keyed = gateway.post("/v1/transactions", {"operations": ops}, headers={"Idempotency-Key": key})
    assert keyed.status == 200, keyed
    assert list(keyed.json) == list(plain.json)
    stored = json.loads(gateway.store.value(
        "SELECT result FROM bistore_idempotency WHERE key = ?", (key,)))
    assert stored["tx_id"] == keyed.json["tx_id"]
    assert stored["results"] == keyed.json["results"]
    ids = [r["id"] for r in keyed.json["results"]]
    records = stored["records"]
    assert [r["id"] for r in records] == ids
    assert records[0]["properties"] == {"k": 1} and records[0]["type"] == "Person"
    assert records[2]["source"] == ids[0] and records[2]["target"] == ids[1]
    assert records[2]["properties"] == {"w": 0.5}
    for r in records:
        assert r["version"] == 1
        assert RFC3339_UTC_RE.match(r["created_at"]) and r["created_at"] == r["updated_at"]
    assert_stores_consistent(gateway.store, neo4j)


def test_neo4j_refusing_a_statement_before_the_last_names_its_operation(gateway, neo4j):
    """Neo4j alone holds the id of the transaction's first entity: its
    constraint refuses the first data statement while it runs, and Neo4j
    counts that statement's partial result (no rows), so its answer points
    one statement further, at the relationship: the answer must name the
    entity's operation (it named operation 1)."""
    gw = gateway
    assert gw.post("/v1/entities", {"id": "m1", "type": "Person"}).status == 201
    assert gw.post("/v1/entities", {"id": "m2", "type": "Person"}).status == 201
    neo4j.run("CREATE (:Entity:Person {id: 'm-dup'})")
    before = snapshot(gw, neo4j)
    ops = [{"op": "create_entity", "id": "m-dup", "type": "Person"},
           {"op": "create_relationship", "id": "m-r", "type": "KNOWS", "source": "m1", "target": "m2"}]
    err = error_of(gw.post("/v1/transactions", {"operations": ops}), 409, "entity_exists")
    assert err.get("operation_index") == 0, err
    assert_unchanged(gw, neo4j, before)
    assert_absent(gw.store, neo4j, entity_ids=[], rel_ids=["m-r"])
    assert gw.store.entity("m-dup") is None
    assert_intents_settled(gw.store, neo4j)


def test_neo4j_refusing_the_last_statement_names_its_operation(gateway, neo4j):
    """Neo4j alone holds the id of the transaction's last relationship: its
    constraint refuses the last statement (Neo4j may count that statement's
    partial result or not), and the answer names the operation."""
    gw = gateway
    assert gw.post("/v1/entities", {"id": "e1", "type": "Person"}).status == 201
    assert gw.post("/v1/entities", {"id": "e2", "type": "Person"}).status == 201
    assert gw.post("/v1/relationships", {"id": "k0", "type": "KNOWS", "source": "e1", "target": "e2"}).status == 201
    neo4j.run("MATCH (a:Entity {id: 'e1'}) CREATE (a)-[:KNOWS {id: 'n-last'}]->(a)")
    before = snapshot(gw, neo4j)
    ops = [{"op": "create_entity", "id": "n-a", "type": "Person"},
           {"op": "create_entity", "id": "n-b", "type": "Person"},
           {"op": "create_relationship", "id": "n-last", "type": "KNOWS", "source": "e1", "target": "e2"}]
    err = error_of(gw.post("/v1/transactions", {"operations": ops}), 409, "relationship_exists")
    assert err.get("operation_index") == 2, err
    assert_unchanged(gw, neo4j, before)
    assert_absent(gw.store, neo4j, entity_ids=["n-a", "n-b"])
    assert_intents_settled(gw.store, neo4j)
