"""The asyncio client (bistore.AsyncClient) against the live gateway and the
real Neo4j: every method of test_python_client.py again, awaited (each test
runs its coroutine with asyncio.run), checked in both stores."""

import asyncio

import pytest

from harness import (UUID7_RE, assert_absent, assert_entity_mirrored, assert_relationship_mirrored,
                     assert_stores_consistent)
from harness.pyclient import aconnect, bistore


def run(coro):
    return asyncio.run(coro)


async def collect(aiter):
    return [x async for x in aiter]


def test_async_entities(gateway, neo4j):
    async def main():
        async with aconnect(gateway) as db:
            ada = await db.create_entity("Person", {"canonical_name": "Ada", "confidence": 0.9},
                                         id="ada", metadata={"source_ref": "doc_17#p3"})
            assert ada["version"] == 1
            assert_entity_mirrored(gateway.store, neo4j, "ada",
                                   {"type": "Person", "properties": {"canonical_name": "Ada",
                                                                     "confidence": 0.9}})
            assert (await db.get_entity("ada"))["metadata"] == {"source_ref": "doc_17#p3"}
            assert (await db.get_entity("ada", verify=True))["consistency"]["status"] == "consistent"
            for i in range(5):
                await db.create_entity("Org", id=f"org_{i}")
            pages = await collect(db.list_entities_pages(type="Org", limit=2))
            assert [len(p.items) for p in pages] == [2, 2, 1]
            assert sorted(e["id"] for e in await collect(db.list_entities(type="Org", limit=2))) == \
                [f"org_{i}" for i in range(5)]
            patched = await db.patch_entity("ada", {"confidence": None, "n": 2}, if_version=1)
            assert patched["version"] == 2 and patched["properties"] == {"canonical_name": "Ada", "n": 2}
            assert_entity_mirrored(gateway.store, neo4j, "ada", {"version": 2,
                                                                 "properties": patched["properties"]})
            await db.delete_entity("ada", if_version=2)
            assert_absent(gateway.store, neo4j, entity_ids=["ada"])
    run(main())
    assert_stores_consistent(gateway.store, neo4j)


def test_async_relationships(gateway, neo4j):
    async def main():
        async with aconnect(gateway) as db:
            await db.create_entity("Person", id="a")
            await db.create_entity("Org", id="b")
            rel = await db.create_relationship("WORKS_AT", "a", "b", {"weight": 0.5}, id="r1")
            assert (rel["source"], rel["target"]) == ("a", "b")
            assert_relationship_mirrored(gateway.store, neo4j, "r1", {"properties": {"weight": 0.5}})
            assert (await db.get_relationship("r1"))["type"] == "WORKS_AT"
            await db.delete_relationship("r1")
            assert_absent(gateway.store, neo4j, rel_ids=["r1"])
    run(main())
    assert_stores_consistent(gateway.store, neo4j)


def test_async_transaction_ids_and_audit(gateway, neo4j):
    async def main():
        async with aconnect(gateway) as db:
            ids = await db.reserve_ids(2)
            assert all(UUID7_RE.match(i) for i in ids)
            await db.create_entity("Doc", id="doc_17")
            tx = db.transaction(provenance={"tool_id": "T34", "operation": "extract"})
            ada = tx.create_entity("Person", {"canonical_name": "Ada"}, id=ids[0])
            ae = tx.create_entity("Org", {"canonical_name": "AE"})
            rel = tx.create_relationship("WORKS_AT", ada, ae)
            tx.create_relationship("MENTIONED_IN", ada, "doc_17")
            upd = tx.update_entity("doc_17", {"stage": "extracted"})
            result = await tx.commit()
            assert result.id(ada) == ids[0] and result[upd]["version"] == 2
            assert_relationship_mirrored(gateway.store, neo4j, result.id(rel),
                                         {"source_id": ids[0], "target_id": result.id(ae)})
            assert (await tx.commit()).tx_id == result.tx_id  # replayed by its key
            record = await db.get_transaction(result.tx_id)
            assert record["provenance"] == {"tool_id": "T34", "operation": "extract"}
            listed = await collect(db.list_transactions(limit=1))
            assert result.tx_id in {t["tx_id"] for t in listed}
            assert len(listed) == len(gateway.store.transactions())
    run(main())
    assert_stores_consistent(gateway.store, neo4j)


def test_async_reconciliation(gateway, neo4j):
    async def main():
        async with aconnect(gateway) as db:
            for i in range(3):
                await db.create_entity("Person", id=f"p{i}")
            neo4j.run("MATCH (n:Entity) WHERE n.id IN ['p0', 'p1'] DETACH DELETE n")
            seen = []

            async def progress(state):  # a coroutine function is awaited
                seen.append(state["state"])
            run_ = await db.reconcile("deep", progress=progress, poll_interval=0.05)
            assert run_["state"] == "done" and run_["summary"]["only_in_sqlite"] == 2, run_
            assert seen and seen[-1] == "done"
            pages = await collect(db.findings_pages(run_["id"], limit=1))
            assert [len(p.items) for p in pages] == [1, 1]
            found = await collect(db.findings(run_["id"], kind="only_in_sqlite"))
            assert sorted(f["id"] for f in found) == ["p0", "p1"]
            assert run_["id"] in [r["id"] for r in await collect(db.list_reconciliations())]
            started = await db.start_reconciliation("fast", "sqlite_wins")
            done = await db.wait_reconciliation(started["id"], poll_interval=0.05,
                                                progress=lambda s: None)
            assert done["summary"]["repaired"] == 2
            assert (await db.get_reconciliation(started["id"]))["state"] == "done"
    run(main())
    assert_stores_consistent(gateway.store, neo4j)


def test_async_health_ready_and_errors(gateway):
    async def main():
        async with aconnect(gateway) as db:
            assert await db.health() is True and (await db.ready())["ready"] is True
            await db.create_entity("Person", id="dup")
            with pytest.raises(bistore.EntityExists) as err:
                await db.create_entity("Person", id="dup")
            assert (err.value.status, err.value.field) == (409, "id")
            with pytest.raises(bistore.NotFound):
                await db.get_relationship("nothing")
            with pytest.raises(bistore.VersionConflict):
                await db.delete_entity("dup", if_version=5)
            tx = db.transaction()
            tx.create_entity("Person", id="x")
            tx.update_entity("nobody", {"a": 1})
            with pytest.raises(bistore.NotFound) as err:
                await tx.commit()
            assert err.value.operation_index == 1
            with pytest.raises(bistore.ValidationError) as err:
                await db.create_entity("Person", {"nested": {"no": 1}})
            assert err.value.status == 400
        gateway.kill()
        async with aconnect(gateway, retry=bistore.NO_RETRIES) as db:
            assert await db.health() is False and (await db.ready())["ready"] is False
            with pytest.raises(bistore.Unavailable):
                await db.get_entity("dup")
    run(main())
