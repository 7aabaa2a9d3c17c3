"""The Python client's methods for what issue 12 adds to the gateway: raw
statements (tx.cypher / tx.sql, behind --allow-raw-statements), refs on
relationship creates and in later operations of a batch, and GET /v1/stats
and /v1/alerts. Against a gateway without them these tests fail (they are
not skipped)."""

import asyncio

import pytest

from harness import assert_absent, assert_entity_mirrored, assert_relationship_mirrored, poll
from harness.pyclient import aconnect, bistore, connect

RAW = ["--allow-raw-statements"]


def workflow_nodes(neo4j, doc):
    return neo4j.value("MATCH (w:Workflow {doc: $doc}) RETURN count(w)", doc=doc)


def test_raw_statements_and_refs_in_later_operations(gateway_factory, neo4j):
    gw = gateway_factory(args=RAW)
    with connect(gw) as db:
        setup = db.transaction()
        setup.sql("CREATE TABLE workflow_state(doc TEXT NOT NULL, step TEXT NOT NULL)")
        assert setup.commit()[0]["rowcount"] == 0
        db.create_entity("Document", {"title": "doc 17"}, id="doc_17")

        tx = db.transaction(provenance={"tool_id": "T34", "operation": "extract"})
        ada = tx.create_entity("Person", {"canonical_name": "Ada"})
        knows = tx.create_relationship("MENTIONED_IN", ada, "doc_17", ref="m")
        gone = tx.create_relationship("KNOWS", ada, "doc_17")
        upd = tx.update_entity(ada, {"canonical_name": "Ada Lovelace"})
        tx.delete_relationship(gone)
        ins = tx.sql("INSERT INTO workflow_state(doc, step) VALUES (?, ?)", ["doc_17", "extract"])
        sel = tx.sql("SELECT doc, step FROM workflow_state")
        cy = tx.cypher("CREATE (w:Workflow {doc: $doc, step: $step}) RETURN w.step AS step",
                       {"doc": "doc_17", "step": "extract"})
        result = tx.commit()
        assert [r["op"] for r in result] == ["create_entity", "create_relationship",
                                             "create_relationship", "update_entity",
                                             "delete_relationship", "sql", "sql", "cypher"]
        assert result[upd]["version"] == 2 and result[ins]["rowcount"] == 1
        assert result[sel]["rows"] == [{"doc": "doc_17", "step": "extract"}]
        assert result[cy]["rows"] == [{"step": "extract"}]
        assert_entity_mirrored(gw.store, neo4j, result.id(ada),
                               {"version": 2, "properties": {"canonical_name": "Ada Lovelace"}})
        assert_relationship_mirrored(gw.store, neo4j, result.id(knows), {"target_id": "doc_17"})
        assert_absent(gw.store, neo4j, rel_ids=[result.id(gone)])
        assert gw.store.query("SELECT doc, step FROM workflow_state") == [{"doc": "doc_17", "step": "extract"}]
        assert workflow_nodes(neo4j, "doc_17") == 1

        before = len(gw.store.entities())
        bad = db.transaction()
        bad.create_entity("Person", id="never")
        bad.sql("INSERT INTO workflow_state(doc, step) VALUES ('doc_17', 'again')")
        bad.cypher("CREATE (w:Workflow {doc: 'doc_17'}")  # invalid Cypher, last
        with pytest.raises(bistore.Neo4jError) as err:
            bad.commit()
        assert (err.value.status, err.value.operation_index) == (400, 2), err.value
        denied = db.transaction()
        denied.sql("DELETE FROM entities")
        with pytest.raises(bistore.ValidationError) as err:
            denied.commit()
        assert err.value.operation_index == 0 and err.value.code == "invalid_request"
        assert len(gw.store.entities()) == before and gw.store.count_entity("never") == 0
        assert len(gw.store.query("SELECT * FROM workflow_state")) == 1
        assert workflow_nodes(neo4j, "doc_17") == 1


def test_sql_beside_creates_without_cypher(gateway_factory, neo4j):
    # The raw branch at ad335d7 aborted on this batch (BS_ASSERT in
    # client_rows, stores/engine/commit.c): raw SQL, creates, no cypher op.
    gw = gateway_factory(args=RAW)
    with connect(gw, retry=bistore.NO_RETRIES) as db:
        tx = db.transaction()
        tx.sql("CREATE TABLE steps(doc TEXT)")
        doc = tx.create_entity("Document", id="d1")
        tx.sql("INSERT INTO steps(doc) VALUES ('d1')")
        result = tx.commit()
        assert result.id(doc) == "d1" and result[2]["rowcount"] == 1
        assert_entity_mirrored(gw.store, neo4j, "d1")
        assert gw.store.query("SELECT doc FROM steps") == [{"doc": "d1"}]


def test_raw_statements_and_refs_async(gateway_factory, neo4j, tmp_path):
    gw = gateway_factory(args=RAW)

    async def main():
        async with aconnect(gw) as db:
            tx = db.transaction()
            doc = tx.create_entity("Document", id="d1")
            rel = tx.create_relationship("CITES", doc, doc, ref="self")
            tx.update_entity(doc, {"stage": "linked"}, if_version=1)
            tx.delete_relationship(rel)
            cy = tx.cypher("CREATE (w:Workflow {doc: $d}) RETURN count(w) AS n", {"d": "d1"})
            sel = tx.sql("SELECT count(*) AS n FROM entities")
            result = await tx.commit()
            assert result[cy]["rows"] == [{"n": 1}] and result[sel]["rows"] == [{"n": 1}]
            assert_entity_mirrored(gw.store, neo4j, "d1", {"version": 2,
                                                           "properties": {"stage": "linked"}})
            assert_absent(gw.store, neo4j, rel_ids=[result.id(rel)])
            assert workflow_nodes(neo4j, "d1") == 1
        # without the flag, on a file of its own (one process writes a file at a time)
        async with aconnect(gateway_factory(sqlite=tmp_path / "plain.sqlite")) as plain:
            tx = plain.transaction()
            tx.cypher("RETURN 1")
            with pytest.raises(bistore.Forbidden):
                await tx.commit()
    asyncio.run(main())


def check_stats(stats):
    assert set(stats["windows"]) >= {"1m", "5m", "15m"}, stats
    one = stats["windows"]["1m"]
    assert one["transactions"] >= 2 and one["committed"] >= 1 and one["aborted"] >= 1, one
    assert isinstance(stats["pending_intents"], int)


def test_stats_and_alerts(gateway, gateway_factory):
    with connect(gateway) as db:
        db.create_entity("Person", id="p1")
        with pytest.raises(bistore.EntityExists):
            db.create_entity("Person", id="p1")  # an id conflict: the id_conflicts alert
        check_stats(db.stats())
        alerts = poll(lambda: (a := db.alerts()) and any(x["name"] == "id_conflicts" for x in a["active"]) and a,
                      30, what="the id_conflicts alert")
        assert isinstance(alerts["recent"], list)
        active = next(x for x in alerts["active"] if x["name"] == "id_conflicts")
        assert active["value"] >= 1 and active["message"], active

    async def main():
        async with aconnect(gateway) as adb:
            check_stats(await adb.stats())
            assert any(x["name"] == "id_conflicts" for x in (await adb.alerts())["active"])
    asyncio.run(main())
