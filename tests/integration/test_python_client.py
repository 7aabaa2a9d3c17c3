"""The Python client (clients/python) against the live gateway and the real
Neo4j, synchronously: every method, each result checked in both stores with
the harness; typed errors for every code the gateway can be made to answer.
The asyncio client's twin of each test is in test_python_client_async.py;
retries, packaging, mypy and the README's examples in
test_python_client_extras.py."""

import pytest

from harness import (UUID7_RE, assert_absent, assert_entity_mirrored, assert_relationship_mirrored,
                     assert_stores_consistent)
from harness.pyclient import bistore, connect


@pytest.fixture
def db(gateway):
    with connect(gateway) as client:
        yield client


def test_entities_create_get_list_patch_delete(db, gateway, neo4j):
    ada = db.create_entity("Person", {"canonical_name": "Ada Lovelace", "confidence": 0.93,
                                      "surface_forms": ["Ada", "Lady Lovelace"]},
                           id="entity_ada", metadata={"source_ref": "doc_17#p3"})
    assert ada["id"] == "entity_ada" and ada["version"] == 1 and ada["tx_id"]
    assert_entity_mirrored(gateway.store, neo4j, "entity_ada",
                           {"type": "Person", "version": 1,
                            "properties": {"canonical_name": "Ada Lovelace", "confidence": 0.93,
                                           "surface_forms": ["Ada", "Lady Lovelace"]}})
    got = db.get_entity("entity_ada")
    assert got["metadata"] == {"source_ref": "doc_17#p3"} and got["properties"] == ada["properties"]
    assert db.get_entity("entity_ada", verify=True)["consistency"]["status"] == "consistent"

    generated = db.create_entity("Person", {"canonical_name": "Charles Babbage"})
    assert UUID7_RE.match(generated["id"]), generated
    for i in range(5):
        db.create_entity("Org", {"n": i}, id=f"org_{i}")
    pages = list(db.list_entities_pages(type="Org", limit=2))
    assert [len(p.items) for p in pages] == [2, 2, 1] and pages[-1].next is None
    assert sorted(e["id"] for e in db.list_entities(type="Org", limit=2)) == [f"org_{i}" for i in range(5)]
    assert {e["id"] for e in db.list_entities(limit=3)} == {"entity_ada", generated["id"]} | \
        {f"org_{i}" for i in range(5)}

    patched = db.patch_entity("entity_ada", {"confidence": 0.97, "surface_forms": None},
                              metadata={"source_ref": "doc_18"}, if_version=1)
    assert patched["version"] == 2 and patched["properties"] == {"canonical_name": "Ada Lovelace",
                                                                 "confidence": 0.97}
    assert_entity_mirrored(gateway.store, neo4j, "entity_ada",
                           {"version": 2, "properties": patched["properties"]})
    assert gateway.store.entity("entity_ada")["metadata"] == {"source_ref": "doc_18"}
    assert db.patch_entity("entity_ada", {"x": 1})["version"] == 3  # no If-Match

    db.delete_entity("entity_ada", if_version=3)
    db.delete_entity(generated["id"])
    assert_absent(gateway.store, neo4j, entity_ids=["entity_ada", generated["id"]])
    assert_stores_consistent(gateway.store, neo4j)


def test_relationships_create_get_delete(db, gateway, neo4j):
    a = db.create_entity("Person", id="a")
    b = db.create_entity("Org", id="b")
    rel = db.create_relationship("WORKS_AT", a["id"], b["id"], {"weight": 0.7}, id="rel_1")
    assert (rel["id"], rel["source"], rel["target"], rel["version"]) == ("rel_1", "a", "b", 1)
    assert_relationship_mirrored(gateway.store, neo4j, "rel_1",
                                 {"type": "WORKS_AT", "source_id": "a", "target_id": "b",
                                  "properties": {"weight": 0.7}})
    assert db.get_relationship("rel_1")["properties"] == {"weight": 0.7}
    other = db.create_relationship("KNOWS", "a", "b")
    assert UUID7_RE.match(other["id"])
    db.delete_relationship("rel_1")
    assert_absent(gateway.store, neo4j, rel_ids=["rel_1"])
    db.delete_entity("a")  # takes `other` with it, in both stores
    assert_absent(gateway.store, neo4j, entity_ids=["a"], rel_ids=[other["id"]])
    assert_stores_consistent(gateway.store, neo4j)


def test_transaction_builder_refs_results_and_audit(db, gateway, neo4j):
    db.create_entity("Doc", {"title": "old"}, id="doc_17")
    db.create_entity("Doc", id="doc_gone")
    tx = db.transaction(provenance={"tool_id": "T34", "operation": "extract", "inputs": ["doc_17"]})
    ada = tx.create_entity("Person", {"canonical_name": "Ada"}, metadata={"source_ref": "doc_17#p3"})
    ae = tx.create_entity("Org", {"canonical_name": "AE"}, id="org_ae", ref="ae")
    works = tx.create_relationship("WORKS_AT", ada, ae, {"since": 1843})
    cites = tx.create_relationship("MENTIONED_IN", ae, "doc_17")
    upd = tx.update_entity("doc_17", {"title": "Sketch of the Analytical Engine"}, if_version=1)
    tx.delete_entity("doc_gone")
    assert len(tx) == 6
    result = tx.commit()
    assert result.state == "committed" and result.neo4j == "applied" and len(result) == 6
    assert [r["op"] for r in result] == ["create_entity", "create_entity", "create_relationship",
                                         "create_relationship", "update_entity", "delete_entity"]
    assert result.id(ae) == "org_ae" and UUID7_RE.match(result.id(ada))
    assert result[upd]["version"] == 2
    assert_entity_mirrored(gateway.store, neo4j, result.id(ada), {"type": "Person"})
    assert_relationship_mirrored(gateway.store, neo4j, result.id(works),
                                 {"source_id": result.id(ada), "target_id": "org_ae",
                                  "properties": {"since": 1843}})
    assert_relationship_mirrored(gateway.store, neo4j, result.id(cites), {"target_id": "doc_17"})
    assert_entity_mirrored(gateway.store, neo4j, "doc_17",
                           {"version": 2, "properties": {"title": "Sketch of the Analytical Engine"}})
    assert_absent(gateway.store, neo4j, entity_ids=["doc_gone"])
    assert_stores_consistent(gateway.store, neo4j)

    record = db.get_transaction(result.tx_id)
    assert record["state"] in ("committed", "applied") and record["provenance"]["tool_id"] == "T34"
    assert result.tx_id in {t["tx_id"] for t in db.list_transactions(limit=1)}
    assert tx.commit().tx_id == result.tx_id  # the same builder again: the first answer, no write
    assert len(gateway.store.transactions()) == len({t["tx_id"] for t in db.list_transactions()})
    with pytest.raises(RuntimeError):
        tx.create_entity("Person")
    other = db.transaction()
    with pytest.raises(ValueError, match="another transaction"):
        other.create_relationship("KNOWS", ada, "doc_17")


def test_reserved_ids(db, gateway, neo4j):
    ids = db.reserve_ids(5)
    assert len(ids) == 5 and len(set(ids)) == 5 and all(UUID7_RE.match(i) for i in ids)
    assert db.create_entity("Person", id=ids[0])["id"] == ids[0]
    assert_entity_mirrored(gateway.store, neo4j, ids[0])
    assert gateway.store.count_entity(ids[1]) == 0  # reserving writes nothing


def test_reconciliation_start_wait_findings(db, gateway, neo4j):
    for i in range(4):
        db.create_entity("Person", {"n": i}, id=f"p{i}")
    for i in range(3):  # damage Neo4j directly: three entities only in SQLite
        neo4j.run("MATCH (n:Entity {id: $id}) DETACH DELETE n", id=f"p{i}")
    seen = []
    run = db.reconcile("deep", progress=seen.append, poll_interval=0.05)
    assert run["state"] == "done", run
    assert seen and seen[-1] == run and all("progress" in s for s in seen)
    assert run["summary"]["only_in_sqlite"] == 3 and run["summary"]["repaired"] == 0
    pages = list(db.findings_pages(run["id"], limit=1))
    assert [len(p.items) for p in pages] == [1, 1, 1]
    assert sorted(f["id"] for f in db.findings(run["id"], kind="only_in_sqlite", limit=2)) == \
        ["p0", "p1", "p2"]
    assert list(db.findings(run["id"], kind="mismatch")) == []
    assert run["id"] in [r["id"] for r in db.list_reconciliations()]

    started = db.start_reconciliation(mode="fast", repair="sqlite_wins")
    assert started["state"] == "running" and started["repair"] == "sqlite_wins"
    fixed = db.wait_reconciliation(started["id"], poll_interval=0.05)
    assert fixed["state"] == "done" and fixed["summary"]["repaired"] == 3, fixed
    assert db.get_reconciliation(started["id"])["summary"] == fixed["summary"]
    assert_stores_consistent(gateway.store, neo4j)


def test_health_and_ready(gateway):
    with connect(gateway) as db:
        assert db.health() is True
        ready = db.ready()
        assert ready["ready"] is True and ready["status"] == 200
    gateway.kill()
    with connect(gateway, retry=bistore.NO_RETRIES) as db:
        assert db.health() is False
        assert db.ready()["ready"] is False
        with pytest.raises(bistore.Unavailable) as err:
            db.get_entity("x")
        assert err.value.status is None and err.value.code == "connection_failed"


def test_typed_errors(db, gateway):
    db.create_entity("Person", id="dup")
    db.create_relationship("KNOWS", "dup", "dup", id="rdup")
    cases = [
        (lambda: db.create_entity("Person", id="dup"), bistore.EntityExists, 409, "entity_exists", "id"),
        (lambda: db.create_relationship("KNOWS", "dup", "dup", id="rdup"), bistore.RelationshipExists,
         409, "relationship_exists", None),
        (lambda: db.get_entity("nobody"), bistore.NotFound, 404, "not_found", None),
        (lambda: db.create_relationship("KNOWS", "dup", "nobody"), bistore.NotFound, 404, "not_found", None),
        (lambda: db.create_entity("not a type"), bistore.ValidationError, 400, "invalid_request", "type"),
        (lambda: db.create_entity("Person", {"_h": 1}), bistore.ValidationError, 400, "invalid_request", None),
        (lambda: db.patch_entity("dup", {"a": 1}, if_version=7), bistore.VersionConflict, 412,
         "version_mismatch", None),
        (lambda: db.get_entity("x" * 129), bistore.ValidationError, 400, "invalid_request", "id"),
    ]
    for call, cls, status, code, field in cases:
        with pytest.raises(cls) as err:
            call()
        e = err.value
        assert isinstance(e, bistore.BistoreError) and (e.status, e.code) == (status, code), e
        assert e.message and (field is None or e.field == field), (e, e.field)
        assert e.operation_index is None and e.retried is False

    tx = db.transaction()
    tx.create_entity("Person", id="fresh")
    tx.create_entity("bad type")
    with pytest.raises(bistore.ValidationError) as err:
        tx.commit()
    assert err.value.operation_index == 1 and err.value.field == "operations[1].type", err.value
    assert gateway.store.count_entity("fresh") == 0

    tx = db.transaction()
    tx.create_entity("Person", id="fresh")
    tx.create_entity("Person", id="dup")
    with pytest.raises(bistore.EntityExists) as err:
        tx.commit()
    assert err.value.operation_index == 1 and gateway.store.count_entity("fresh") == 0

    db.create_entity("Person", id="k1", idempotency_key="key-1")
    with pytest.raises(bistore.IdempotencyConflict) as err:
        db.create_entity("Person", id="k2", idempotency_key="key-1")
    assert err.value.status == 409 and err.value.code == "idempotency_conflict"
    with pytest.raises(bistore.ValidationError) as err:
        db.reserve_ids(0)
    assert err.value.field == "count"


def test_payload_too_large_and_forbidden(gateway_factory):
    gw = gateway_factory(args=["--max-operations", "3"])
    with connect(gw) as db:
        tx = db.transaction()
        for i in range(4):
            tx.create_entity("Person", id=f"p{i}")
        with pytest.raises(bistore.PayloadTooLarge) as err:
            tx.commit()
        assert err.value.status == 413 and err.value.code == "payload_too_large"
        assert gw.store.count_entity("p0") == 0
        tx = db.transaction()  # raw statements without --allow-raw-statements
        tx.sql("SELECT 1")
        with pytest.raises(bistore.Forbidden) as err:
            tx.commit()
        assert err.value.status == 403 and err.value.code == "forbidden"


def test_unavailable_when_neo4j_is_gone(gateway_factory, proxy_factory):
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url)
    proxy.refuse()
    with connect(gw, retry=bistore.RetryPolicy(attempts=2, backoff=0.01)) as db:
        with pytest.raises(bistore.Unavailable) as err:
            db.create_entity("Person", id="nowhere")
        assert err.value.status == 503 and err.value.code in ("neo4j_unavailable", "not_ready")
    assert gw.store.count_entity("nowhere") == 0
