"""The Python client with several gateway addresses (a primary and its
standby), against the live gateway and the real Neo4j:

- a first address nobody listens on: the call goes on to the second at once
  (no backoff wait), writes and reads succeed there, and the client stays
  there (current_address); the asyncio client the same;
- sticky: after a switch the client does not go back to the first address
  while the second answers, and a healthy first address is never left;
- a lost answer (the proxy in front of the first address cuts it) retried
  at the second address with the same Idempotency-Key: written once, in
  SQLite and in Neo4j;
- a first gateway that answers 503 (its Neo4j refuses): the call moves on
  to the next gateway, which writes;
- RetryPolicy(deadline=...): with no address answering, the call keeps
  trying for that long, past `attempts` or short of it, then raises the
  transport error as Unavailable.
"""

import asyncio
import socket
import time

import httpx
import pytest

from harness import assert_entity_mirrored, assert_relationship_mirrored, assert_stores_consistent
from harness.pyclient import aconnect, bistore, connect


def closed_port_url():
    """The address of a loopback port nothing listens on (bound, then closed)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def written_once(gw, neo4j, entity_id):
    assert gw.store.count_entity(entity_id) == 1
    assert neo4j.count_entity(entity_id) == 1
    assert len(gw.store.entities()) == 1 and len(neo4j.entities()) == 1, \
        (gw.store.entities().keys(), neo4j.entities().keys())
    assert_stores_consistent(gw.store, neo4j)


def test_a_dead_first_address_fails_over_to_the_second(gateway, neo4j):
    dead = closed_port_url()
    waits = []
    with connect([dead + "/", gateway.url], sleep=waits.append) as db:
        assert db.addresses == (dead, gateway.url) and db.current_address == dead
        assert db.health() is False and db.ready()["ready"] is False  # the current address only
        ada = db.create_entity("Person", {"canonical_name": "Ada Lovelace"}, id="ada")
        assert ada["version"] == 1
        assert db.current_address == gateway.url == db.base_url
        assert waits == [0.0]  # the second address was tried at once
        assert db.health() is True and db.ready()["ready"] is True
        assert db.get_entity("ada", verify=True)["consistency"]["status"] == "consistent"
        tx = db.transaction(provenance={"tool_id": "T34"})
        org = tx.create_entity("Org", {"canonical_name": "Analytical Engine"})
        rel = tx.create_relationship("WORKED_ON", "ada", org)
        result = tx.commit()
        assert [e["id"] for e in db.list_entities(type="Org")] == [result.id(org)]
        assert waits == [0.0] and db.current_address == gateway.url  # no other switch
    assert_entity_mirrored(gateway.store, neo4j, "ada",
                           {"type": "Person", "properties": {"canonical_name": "Ada Lovelace"}})
    assert_relationship_mirrored(gateway.store, neo4j, result.id(rel),
                                 {"type": "WORKED_ON", "source_id": "ada",
                                  "target_id": result.id(org)})
    assert_stores_consistent(gateway.store, neo4j)


def test_the_client_stays_on_the_address_that_answered(gateway, neo4j, front):
    front.refuse()  # the first address accepts and closes every connection
    with connect([front.url, gateway.url]) as db:
        db.create_entity("Person", id="p1")
        assert db.current_address == gateway.url
        refused = front.connections_accepted
        assert refused >= 1
        front.pass_through()  # the first address works again: the client stays where it is
        for i in range(2, 6):
            db.create_entity("Person", id=f"p{i}")
            assert db.get_entity(f"p{i}")["id"] == f"p{i}"
        with pytest.raises(bistore.NotFound):
            db.get_entity("nobody")  # an error answer is an answer: still no switch
        assert front.connections_accepted == refused and db.current_address == gateway.url
    # A healthy first address is kept, even with the second one dead.
    with connect([front.url, closed_port_url()]) as db:
        for i in range(6, 9):
            db.create_entity("Person", id=f"p{i}")
        assert db.current_address == front.url
    assert front.connections_accepted == refused + 1  # one kept-alive connection, all calls on it
    assert {f"p{i}" for i in range(1, 9)} == set(gateway.store.entities())
    assert_stores_consistent(gateway.store, neo4j)


def test_a_lost_answer_is_retried_at_the_next_address_and_written_once(gateway, neo4j, front):
    with connect([front.url, gateway.url]) as db:
        front.cut_answers(1)  # the gateway commits, the client never hears of it
        ada = db.create_entity("Person", {"canonical_name": "Ada"})  # no id: a second write adds one
        assert db.current_address == gateway.url
    assert front.answers_cut == 1 and front.connections_accepted == 1
    written_once(gateway, neo4j, ada["id"])
    assert len(gateway.store.transactions()) == 1
    with connect([front.url, gateway.url]) as db:  # a transaction, the same way
        tx = db.transaction(provenance={"tool_id": "T34"})
        a = tx.create_entity("Person")
        b = tx.create_entity("Org")
        tx.create_relationship("WORKS_AT", a, b)
        front.cut_answers(1)
        result = tx.commit()
        assert db.current_address == gateway.url
    assert front.answers_cut == 2
    assert set(gateway.store.entities()) == {ada["id"], result.id(a), result.id(b)}
    assert len(neo4j.entities()) == 3 and len(neo4j.relationships()) == 1
    assert len(gateway.store.relationships()) == 1 and len(gateway.store.transactions()) == 2
    assert_stores_consistent(gateway.store, neo4j)


def test_a_gateway_answering_503_passes_the_call_on(gateway_factory, proxy_factory, tmp_path):
    refusing = proxy_factory()
    refusing.refuse()  # its Neo4j never answers: it is not ready, and says so with a 503
    down = gateway_factory(sqlite=tmp_path / "down.sqlite", neo4j_url=refusing.url, ready=False)
    up = gateway_factory()
    status, _, answer = down.post("/v1/entities", {"type": "Person"})
    assert status == 503, answer
    with connect([down.url, up.url]) as db:
        db.create_entity("Person", id="moved_on")
        assert db.current_address == up.url
    assert up.store.count_entity("moved_on") == 1 and down.store.count_entity("moved_on") == 0


def test_deadline_keeps_trying_then_raises_the_transport_error():
    urls = [closed_port_url(), closed_port_url()]
    with pytest.raises(ValueError):
        bistore.RetryPolicy(deadline=0)
    for attempts in (1000, 2):  # the deadline decides, short of attempts or past them
        policy = bistore.RetryPolicy(attempts=attempts, backoff=0.05, deadline=1.0)
        with bistore.Client(urls, retry=policy) as db:
            began = time.monotonic()
            with pytest.raises(bistore.Unavailable) as err:
                db.create_entity("Person")
            took = time.monotonic() - began
            assert db.current_address == urls[0]
        assert 0.9 <= took < 5, took
        assert (err.value.code, err.value.status) == ("connection_failed", None)
        assert isinstance(err.value.__cause__, httpx.ConnectError), repr(err.value.__cause__)
        tries = int(str(err.value).split(" after ")[1].split()[0])
        assert 4 < tries < 1000, str(err.value)  # several rounds of both addresses


def test_async_dead_first_address_fails_over_to_the_second(gateway, neo4j):
    dead = closed_port_url()

    async def main():
        async with aconnect([dead, gateway.url]) as db:
            assert db.addresses == (dead, gateway.url) and db.current_address == dead
            ada = await db.create_entity("Person", {"canonical_name": "Ada"}, id="ada")
            assert db.current_address == gateway.url
            assert (await db.get_entity("ada"))["properties"] == ada["properties"]
            tx = db.transaction()
            org = tx.create_entity("Org")
            tx.create_relationship("WORKS_AT", "ada", org)
            result = await tx.commit()
            assert await db.health() is True
            return result.id(org)
    org_id = asyncio.run(main())
    assert set(gateway.store.entities()) == {"ada", org_id}
    assert len(gateway.store.relationships()) == 1 and len(neo4j.relationships()) == 1
    assert_stores_consistent(gateway.store, neo4j)
