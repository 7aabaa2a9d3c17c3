"""The two Neo4j adapters (--neo4j-api tx|query): each talks to the API it
names, and the open-transaction record (<db>.neo4j-tx) written by a gateway
using one is finished by a gateway using the other (the path says which API
a transaction belongs to).

The rest of the suite runs on either adapter with BISTORE_TEST_NEO4J_API
(scripts/test.sh runs it on both)."""

import http.client
import json
import re
import subprocess
import threading

import pytest

from harness import BISTORE_BIN, assert_absent, assert_entity_mirrored, assert_intents_settled, assert_stores_consistent
from harness.common import bistore_env, poll
from harness.faults import send_expecting_no_answer

TX_PATH = re.compile(r"^/db/neo4j/tx/\d+$")
QUERY_PATH = re.compile(r"^/db/neo4j/query/v2/tx/[^/#\s]+(#\S+)?$")
PATHS = {"tx": TX_PATH, "query": QUERY_PATH}
# Debug log lines of the requests each adapter sends for a write.
REQUEST_LINE = {"tx": re.compile(r"neo4j POST /db/neo4j/tx/\d+/commit -> 200"),
                "query": re.compile(r"neo4j POST /db/neo4j/query/v2/tx/[^/ ]+/commit -> 202")}

VICTIM = {"operations": [
    {"op": "create_entity", "id": "victim-e", "type": "Person", "properties": {"name": "victim"}},
    {"op": "update_entity", "id": "seed", "properties": {"name": "locked"}}]}


def record(gw):
    path = gw.sqlite_path.parent / (gw.sqlite_path.name + ".neo4j-tx")
    return [line for line in path.read_text().splitlines() if line]


@pytest.mark.parametrize("api", ["tx", "query"])
def test_each_adapter_talks_to_the_api_it_names(gateway_factory, neo4j, api):
    gw = gateway_factory(args=["--neo4j-api", api, "--log-level", "debug"])
    r = gw.post("/v1/entities", {"id": f"a-{api}", "type": "Person", "properties": {"n": 1, "l": [1, 2]}})
    assert r.status == 201, r
    assert_entity_mirrored(gw.store, neo4j, f"a-{api}", {"version": 1})
    r = gw.get(f"/v1/entities/a-{api}?verify=true")
    assert r.status == 200 and r.json["consistency"]["status"] == "consistent", r
    log = gw.log_path.read_text(errors="replace")
    other = "query" if api == "tx" else "tx"
    assert REQUEST_LINE[api].search(log), log[-3000:]
    assert not REQUEST_LINE[other].search(log), f"the {api} adapter used the {other} API"


def test_an_unknown_api_is_refused_at_start():
    out = subprocess.run([BISTORE_BIN, "serve", "--listen", "127.0.0.1:0", "--neo4j-api", "bolt"],
                         capture_output=True, text=True, timeout=30, env=bistore_env(), stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert "--neo4j-api: 'bolt' is not tx or query" in out.stderr


@pytest.mark.parametrize("first,second", [("tx", "query"), ("query", "tx")])
def test_an_open_transaction_recorded_by_one_adapter_is_rolled_back_by_the_other(gateway_factory, neo4j,
                                                                                first, second):
    gw = gateway_factory(args=["--neo4j-api", first], env={"BISTORE_FAULT": "after_neo4j_statements:2"})
    assert gw.post("/v1/entities", {"id": "seed", "type": "Person", "properties": {"name": "seed"}}).status == 201
    # write 2 dies with its Neo4j transaction open, holding a lock on "seed"
    send_expecting_no_answer(gw, "POST", "/v1/transactions", VICTIM)
    gw.expect_fault_kill()
    left = record(gw)
    assert len(left) == 1 and PATHS[first].match(left[0]), left

    # A short timeout: a write that waited for the dead transaction's lock
    # (Neo4j keeps it for its idle timeout, 60 s) would fail.
    gw2 = gateway_factory(sqlite=gw.sqlite_path, args=["--neo4j-api", second, "--neo4j-timeout-ms", "5000"])
    assert left[0] not in record(gw2), "the recorded transaction is still recorded after recovery"
    assert_absent(gw2.store, neo4j, entity_ids=["victim-e"], rel_ids=[])
    r = gw2.patch("/v1/entities/seed", {"properties": {"name": "after"}})
    assert r.status == 200, r
    assert_entity_mirrored(gw2.store, neo4j, "seed", {"version": 2, "properties": {"name": "after"}})
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)


@pytest.mark.parametrize("first,second", [("tx", "query"), ("query", "tx")])
def test_an_intent_committed_under_one_adapter_is_replayed_by_the_other(gateway_factory, neo4j, first, second):
    gw = gateway_factory(args=["--neo4j-api", first], env={"BISTORE_FAULT": "after_sqlite_commit:2"})
    assert gw.post("/v1/entities", {"id": "seed", "type": "Person", "properties": {"name": "seed"}}).status == 201
    send_expecting_no_answer(gw, "POST", "/v1/transactions", VICTIM)
    gw.expect_fault_kill()
    assert record(gw), "the dead gateway recorded no open transaction"
    gw2 = gateway_factory(sqlite=gw.sqlite_path, args=["--neo4j-api", second, "--neo4j-timeout-ms", "5000"])
    assert record(gw2) == [] or all(PATHS[second].match(p) for p in record(gw2)), record(gw2)
    assert_entity_mirrored(gw2.store, neo4j, "victim-e", {"version": 1})
    assert_entity_mirrored(gw2.store, neo4j, "seed", {"version": 2, "properties": {"name": "locked"}})
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)


# The first request the gateway sends on an open Query API transaction.
QUERY_TX_RUN = re.compile(rb"POST /db/neo4j/query/v2/tx/([^/\s#]+) HTTP")


def neo4j_post(neo4j, method, path, body):
    conn = http.client.HTTPConnection(neo4j.host, neo4j.port, timeout=60)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Location"), resp.read()
    finally:
        conn.close()


def busy_transaction(gateway_factory, proxy_factory, neo4j):
    """A write on the Query API adapter whose Neo4j transaction another
    request holds, for real: the gateway's first statement is held at a
    proxy, transaction U locks a (:Blocker) node, and a second request on the
    gateway's transaction waits for that lock; then the held statement goes
    on. Returns (gateway, answer box, writer thread, U's path, the other
    request's thread and answer box) once the gateway met the busy
    transaction (or answered)."""
    neo4j.run("CREATE (:Blocker {k: 1})")
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, args=["--neo4j-api", "query", "--log-level", "debug"])
    status, location, _ = neo4j_post(neo4j, "POST", "/db/neo4j/tx",
                                     {"statements": [{"statement": "MATCH (b:Blocker) SET b.x = 1"}]})
    assert status == 201 and location, status
    u_path = location[location.index("/db/"):]
    proxy.hold_matching(QUERY_TX_RUN)
    answer = {}
    writer = threading.Thread(target=lambda: answer.setdefault(
        "r", gw.post("/v1/entities", {"id": "busy-e", "type": "Person", "properties": {"n": 1}},
                     fresh=True, timeout=60)), daemon=True)
    writer.start()
    assert proxy.wait_held(1, timeout=20), f"the gateway sent no statement:\n{gw.log_tail()}"
    tx_id = QUERY_TX_RUN.search(b"".join(proxy.held_log)).group(1).decode()
    intruder = {}
    other = threading.Thread(target=lambda: intruder.setdefault("r", neo4j_post(
        neo4j, "POST", f"/db/neo4j/query/v2/tx/{tx_id}", {"statement": "MATCH (b:Blocker) SET b.y = 1"})),
        daemon=True)
    other.start()
    poll(lambda: neo4j.run("SHOW TRANSACTIONS YIELD currentQuery, status "
                           "WHERE currentQuery CONTAINS 'b.y' AND status STARTS WITH 'Blocked' RETURN 1"),
         20, what="the other request to wait for the lock")
    proxy.release()
    poll(lambda: "r" in answer or "transaction accessed concurrently, retry 1 " in gw.log_path.read_text(
        errors="replace"), 20, what="the gateway to meet the busy transaction")
    return gw, answer, writer, u_path, other, intruder


def test_the_query_adapter_sends_again_a_request_neo4j_finds_on_a_busy_transaction(gateway_factory, proxy_factory,
                                                                                   neo4j):
    """The Query API refuses a request on a transaction another request holds
    (TransactionAccessedConcurrently), without running it; Neo4j 5.26 also
    refuses so a statement sent right after the one before (2,500 statements
    of one write met it in CI). The gateway sends its statement again until
    the transaction is free, and the write succeeds (before: a 502)."""
    gw, answer, writer, u_path, other, intruder = busy_transaction(gateway_factory, proxy_factory, neo4j)
    assert "r" not in answer, f"the gateway answered while its transaction was busy: {answer}"
    assert neo4j_post(neo4j, "DELETE", u_path, None)[0] == 200
    other.join(30)
    assert intruder["r"][0] == 202, intruder
    writer.join(60)
    r = answer.get("r")
    assert r is not None and r.status == 201, f"{r}\n{gw.log_tail()}"
    assert_entity_mirrored(gw.store, neo4j, "busy-e", {"version": 1})
    # The other request ran in the gateway's transaction, committed with it.
    assert neo4j.value("MATCH (b:Blocker) RETURN b.y") == 1
    neo4j.run("MATCH (b:Blocker) DELETE b")
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)


def test_a_transaction_busy_past_the_retries_is_a_503_with_nothing_written(gateway_factory, proxy_factory, neo4j):
    """Busy for longer than the retries (about 2.5 s): Neo4j refused no
    statement of the write, so it is a transient failure, 503 (retry), not
    a 502 naming an operation; nothing is written in either store."""
    gw, answer, writer, u_path, other, intruder = busy_transaction(gateway_factory, proxy_factory, neo4j)
    writer.join(30)  # U still holds the lock
    r = answer.get("r")
    assert r is not None and r.status == 503, f"{r}\n{gw.log_tail()}"
    assert "operation_index" not in (r.json.get("error") or {}), r.json
    assert neo4j_post(neo4j, "DELETE", u_path, None)[0] == 200
    other.join(30)
    assert_absent(gw.store, neo4j, entity_ids=["busy-e"], rel_ids=[])
    poll(lambda: neo4j.value("MATCH (b:Blocker) RETURN count(b)") == 1 and
         neo4j.value("MATCH (b:Blocker) RETURN b.y") is None, 20, what="the gateway's transaction to be rolled back")
    neo4j.run("MATCH (b:Blocker) DELETE b")
    poll(lambda: gw.get("/readyz").status == 200, 30, what="the gateway to be ready again")
    r = gw.post("/v1/entities", {"id": "after-e", "type": "Person", "properties": {"n": 2}})
    assert r.status == 201, r
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
