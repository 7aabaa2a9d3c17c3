"""Refs in POST /v1/transactions (API.md "Transactions"): every create may
take a "ref", and later operations of the same batch may name the created
object by {"ref": ...} wherever they take an id. Results still give ids.
Both stores are read back directly."""

import pytest

from harness import assert_absent, assert_entity_mirrored, assert_relationship_mirrored, assert_stores_consistent


def tx(gw, *operations):
    return gw.post("/v1/transactions", {"operations": list(operations)})


def create_entity(ref, type="Person", **kw):
    return {"op": "create_entity", "ref": ref, "type": type, **kw}


def assert_refused(r, index, field):
    assert r.status == 400, r
    err = r.json["error"]
    assert err["code"] == "invalid_request", r
    assert err["operation_index"] == index, r
    assert err["field"] == field, r


def test_relationship_refs_and_results_give_ids(gateway, neo4j):
    r = tx(gateway, create_entity("a"), create_entity("b", "Org"),
           {"op": "create_relationship", "ref": "works", "type": "WORKS_AT",
            "source": {"ref": "a"}, "target": {"ref": "b"}, "properties": {"since": 2020}},
           {"op": "create_relationship", "ref": "knows", "id": "rel-knows", "type": "KNOWS",
            "source": {"ref": "b"}, "target": {"ref": "a"}})
    assert r.status == 200, r
    res = r.json["results"]
    assert [x["op"] for x in res] == ["create_entity"] * 2 + ["create_relationship"] * 2
    a, b, works = res[0]["id"], res[1]["id"], res[2]["id"]
    assert res[3]["id"] == "rel-knows"
    assert all("ref" not in x for x in res), "results carry ids, not refs"
    rel = assert_relationship_mirrored(gateway.store, neo4j, works, {"properties": {"since": 2020}})
    assert (rel["source_id"], rel["target_id"]) == (a, b)
    assert_relationship_mirrored(gateway.store, neo4j, "rel-knows")
    assert_stores_consistent(gateway.store, neo4j)


def test_refs_in_later_operations(gateway, neo4j):
    assert tx(gateway, {"op": "create_entity", "id": "keep", "type": "Person"}).status == 200
    r = tx(gateway,
           create_entity("p", properties={"name": "Ada", "draft": True}),
           create_entity("gone", "Org"),
           {"op": "create_relationship", "ref": "r1", "type": "KNOWS", "source": {"ref": "p"}, "target": "keep"},
           {"op": "create_relationship", "ref": "r2", "type": "KNOWS", "source": "keep", "target": {"ref": "p"}},
           {"op": "update_entity", "id": {"ref": "p"}, "if_version": 1,
            "properties": {"name": "Ada Lovelace", "draft": None}},
           {"op": "delete_relationship", "id": {"ref": "r2"}},
           {"op": "delete_entity", "id": {"ref": "gone"}})
    assert r.status == 200, r
    res = r.json["results"]
    p, gone, r1, r2 = res[0]["id"], res[1]["id"], res[2]["id"], res[3]["id"]
    assert res[4] == {"op": "update_entity", "id": p, "version": 2}
    assert res[5] == {"op": "delete_relationship", "id": r2}
    assert res[6] == {"op": "delete_entity", "id": gone}
    assert_entity_mirrored(gateway.store, neo4j, p, {"version": 2, "properties": {"name": "Ada Lovelace"}})
    assert_relationship_mirrored(gateway.store, neo4j, r1)
    assert_absent(gateway.store, neo4j, entity_ids=[gone], rel_ids=[r2])
    assert_stores_consistent(gateway.store, neo4j)


BAD = [
    # (operations, operation_index, field)
    ([create_entity("a"), {"op": "update_entity", "id": {"ref": "nope"}, "properties": {"x": 1}}],
     1, "operations[1].id.ref"),
    ([{"op": "delete_entity", "id": {"ref": "a"}}, create_entity("a")],
     0, "operations[0].id.ref"),  # used before its create
    ([create_entity("a"), {"op": "create_relationship", "type": "K", "source": {"ref": "a"},
                           "target": {"ref": "later"}}, create_entity("later")],
     1, "operations[1].target.ref"),
    ([create_entity("a"), create_entity("a")], 1, "operations[1].ref"),
    ([create_entity("a"), create_entity("b"),
      {"op": "create_relationship", "ref": "a", "type": "K", "source": {"ref": "a"}, "target": {"ref": "b"}}],
     2, "operations[2].ref"),  # one namespace for entities and relationships
    ([create_entity("a"), {"op": "delete_relationship", "id": {"ref": "a"}}],
     1, "operations[1].id.ref"),  # an entity's ref where a relationship is wanted
    ([create_entity("a"), create_entity("b"),
      {"op": "create_relationship", "ref": "r", "type": "K", "source": {"ref": "a"}, "target": {"ref": "b"}},
      {"op": "delete_entity", "id": {"ref": "r"}}],
     3, "operations[3].id.ref"),  # a relationship's ref where an entity is wanted
    ([create_entity("a"), {"op": "update_entity", "id": {"ref": "a", "x": 1}, "properties": {}}],
     1, "operations[1].id.x"),
    ([create_entity("a"), {"op": "update_entity", "id": 5, "properties": {}}], 1, "operations[1].id"),
]


@pytest.mark.parametrize("ops,index,field", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_refs_are_refused_and_write_nothing(gateway, neo4j, ops, index, field):
    before = (gateway.store.dump(with_aborted=False), neo4j.dump())
    assert_refused(tx(gateway, *ops), index, field)
    assert (gateway.store.dump(with_aborted=False), neo4j.dump()) == before


def test_single_resources_take_no_ref(gateway):
    a = gateway.post("/v1/entities", {"type": "Person"}).json["id"]
    r = gateway.post("/v1/relationships", {"type": "K", "source": a, "target": a, "ref": "x"})
    assert r.status == 400 and r.json["error"]["field"] == "ref", r
