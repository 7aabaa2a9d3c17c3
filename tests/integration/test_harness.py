"""Checks of the harness itself (Neo4j helpers and the fault proxy), no gateway.

If these fail, the gateway tests' verdicts mean nothing."""

import http.client
import json
import threading

import pytest



def neo4j_commit(url_port, statement, timeout=10, **params):
    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=timeout)
    try:
        conn.request("POST", "/db/neo4j/tx/commit",
                     body=json.dumps({"statements": [{"statement": statement, "parameters": params}]}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_wipe_removes_data_keeps_constraints_and_ends_orphans(fresh_neo4j):
    neo = fresh_neo4j
    neo.run("CREATE CONSTRAINT harness_probe IF NOT EXISTS FOR (n:HarnessProbe) REQUIRE n.id IS UNIQUE")
    neo.run("CREATE (:Entity:Person {id: 'p1'})-[:KNOWS {id: 'r1'}]->(:Entity:Person {id: 'p2'})")
    # An open transaction holding a write lock on p1, as a killed gateway leaves behind.
    conn = http.client.HTTPConnection("127.0.0.1", neo.port, timeout=10)
    conn.request("POST", "/db/neo4j/tx", body=json.dumps(
        {"statements": [{"statement": "MATCH (n:Entity {id: 'p1'}) SET n.locked = true"}]}),
        headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 201, resp.read()
    resp.read()
    conn.close()
    neo.wipe()
    assert neo.value("MATCH (n) RETURN count(n)") == 0
    names = [r[0] for r in neo.run("SHOW CONSTRAINTS YIELD name RETURN name")]
    assert "harness_probe" in names


def test_neo4j_dump_reads_layout(fresh_neo4j):
    neo = fresh_neo4j
    neo.run("CREATE (:Entity:Person {id: 'a', name: 'A', _v: 1, _h: '0123456789abcdef'})"
            "-[:KNOWS {id: 'k', since: 3, _v: 1, _h: 'fedcba9876543210'}]->"
            "(:Entity:Org {id: 'b', _v: 2, _h: '0000000000000000'}), (:_BistoreWatermark {store: 's', seq: 4})")
    ents = neo.entities()
    assert ents["a"]["labels"] == {"Entity", "Person"}
    assert ents["a"]["props"] == {"id": "a", "name": "A", "_v": 1, "_h": "0123456789abcdef"}
    rels = neo.relationships()
    assert rels == {"k": {"type": "KNOWS", "source": "a", "target": "b",
                          "props": {"id": "k", "since": 3, "_v": 1, "_h": "fedcba9876543210"}}}
    assert neo.watermarks() == [{"store": "s", "seq": 4}]
    assert neo.other_nodes() == []


def test_proxy_passes_through(proxy_factory):
    proxy = proxy_factory()
    status, doc = neo4j_commit(proxy.port, "RETURN $x AS x", x=41)
    assert status == 200 and doc["results"][0]["data"][0]["row"] == [41]


def test_proxy_holds_matching_then_delivers_after_client_left(proxy_factory, fresh_neo4j):
    proxy = proxy_factory()
    proxy.hold_matching(b"/commit")
    result = {}

    def client():
        try:
            result["r"] = neo4j_commit(proxy.port, "CREATE (:HeldProbe {id: 'h1'})", timeout=3)
        except OSError as exc:
            result["err"] = exc

    t = threading.Thread(target=client)
    t.start()
    assert proxy.wait_held(1, timeout=10)
    t.join(10)
    assert "err" in result, "the held request must not have been answered"
    # The client has given up and closed; Neo4j has not seen the request.
    assert fresh_neo4j.value("MATCH (n:HeldProbe) RETURN count(n)") == 0
    # Other requests keep flowing while something is held.
    proxy.stop_matching()
    status, _ = neo4j_commit(proxy.port, "RETURN 1")
    assert status == 200
    assert proxy.release() >= 1
    assert proxy.wait_released_answered(10)
    assert any(b"200 OK" in r for r in proxy.released_responses), proxy.released_responses
    assert fresh_neo4j.value("MATCH (n:HeldProbe) RETURN count(n)") == 1


def test_proxy_release_without_delivery_drops(proxy_factory, fresh_neo4j):
    proxy = proxy_factory()
    proxy.hold_matching(b"/commit")
    errors = []

    def client():
        try:
            neo4j_commit(proxy.port, "CREATE (:HeldProbe {id: 'h2'})", timeout=10)
        except OSError as exc:
            errors.append(exc)

    t = threading.Thread(target=client)
    t.start()
    assert proxy.wait_held(1, timeout=10)
    proxy.release(deliver=False)
    t.join(10)
    assert errors, "a dropped request must fail on the client side"
    assert fresh_neo4j.value("MATCH (n:HeldProbe) RETURN count(n)") == 0


def test_proxy_blackhole_and_refuse(proxy_factory):
    proxy = proxy_factory()
    proxy.blackhole()
    with pytest.raises(OSError):
        neo4j_commit(proxy.port, "RETURN 1", timeout=1)
    proxy.refuse()
    with pytest.raises(OSError):
        neo4j_commit(proxy.port, "RETURN 1", timeout=5)
    proxy.pass_through()
    status, _ = neo4j_commit(proxy.port, "RETURN 1")
    assert status == 200


def test_proxy_close_all_cuts_open_connections(proxy_factory):
    proxy = proxy_factory()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    proxy.close_all()
    with pytest.raises(OSError):
        conn.request("GET", "/")
        conn.getresponse().read()
