"""Crashes and outages (DESIGN.md sections 3 and 4): the gateway killed at each
point of the commit protocol, a commit delivered after recovery, Neo4j
stopped, frozen or unreachable after the commit point.

Invariants checked after every scenario, reading both stores directly:
every acknowledged transaction is in both stores exactly once; the killed or
failed transaction is in both stores entirely or in neither; no intent stays
pending; the watermark equals the highest intent seq."""

import re
import threading
import time

import pytest

from harness import (CONNECTION_ERRORS, Gateway, assert_absent, assert_entity_mirrored, assert_intents_settled,
                      assert_relationship_mirrored, assert_stores_consistent, poll)
from harness.faults import send_expecting_no_answer

# The commit of an explicit Neo4j transaction (POST /db/<db>/tx/<n>/commit):
# sent by the gateway only after SQLite's COMMIT, the commit point.
TX_COMMIT = re.compile(rb"POST /db/[^ ]*/tx/[^/ ]+/commit")

# Short enough that a lost Neo4j answer shows quickly, long enough that an
# ordinary write on a busy two-core machine does not time out.
SHORT_NEO4J_TIMEOUT_MS = "3000"

COMMIT_POINT_PASSED = {"after_sqlite_commit", "after_neo4j_commit"}
FAULT_POINTS = ["after_begin", "after_neo4j_statements", "after_sqlite_commit", "after_neo4j_commit"]


def acknowledged_writes(gw):
    """Two acknowledged write transactions; returns what they wrote."""
    r = gw.post("/v1/entities", {"id": "ack-e1", "type": "Person", "properties": {"name": "one"}})
    assert r.status == 201, r
    r = gw.post("/v1/transactions", {"operations": [
        {"op": "create_entity", "ref": "x", "id": "ack-e2", "type": "Org", "properties": {"name": "two"}},
        {"op": "create_relationship", "id": "ack-r1", "type": "WORKS_AT", "source": "ack-e1",
         "target": {"ref": "x"}}]})
    assert r.status == 200 and r.json["neo4j"] == "applied", r
    return {"entities": ["ack-e1", "ack-e2"], "relationships": ["ack-r1"]}


# The write that gets killed (or loses its Neo4j commit): a create, a
# relationship to an acknowledged entity and an update of another one, so a
# half-applied transaction would show in more than one way.
VICTIM = {"operations": [
    {"op": "create_entity", "ref": "f", "id": "victim-e", "type": "Person", "properties": {"name": "victim"}},
    {"op": "create_relationship", "id": "victim-r", "type": "WORKS_AT", "source": {"ref": "f"},
     "target": "ack-e2"},
    {"op": "update_entity", "id": "ack-e1", "properties": {"name": "one-updated"}}],
    "provenance": {"tool_id": "fault-test"}}


@pytest.fixture(scope="session")
def warmed_neo4j(neo4j, tmp_path_factory):
    """Runs the writes of these scenarios once through a gateway with the
    default Neo4j timeout, so the relationship-type constraints exist and the
    JVM is warm before a test starts a gateway with a timeout of a second or
    two (creating a constraint alone can take longer than that)."""
    neo4j.ensure_running()
    neo4j.wipe()  # a previous test's data would collide with these ids
    home = tmp_path_factory.mktemp("warm-up")
    gw = Gateway(home / "warm.sqlite", neo4j.url, home / "gateway.log")
    gw.start()
    try:
        acknowledged_writes(gw)
        r = gw.post("/v1/transactions", VICTIM)
        assert r.status == 200, r
    finally:
        code = gw.terminate()
    assert code == 0, f"warm-up gateway exit status {code}:\n{gw.log_tail()}"
    return neo4j


def assert_acknowledged_present(gw, neo4j, acked):
    for eid in acked["entities"]:
        assert_entity_mirrored(gw.store, neo4j, eid)
    for rid in acked["relationships"]:
        assert_relationship_mirrored(gw.store, neo4j, rid)


def assert_victim_applied(gw, neo4j):
    assert_entity_mirrored(gw.store, neo4j, "victim-e", {"version": 1, "properties": {"name": "victim"}})
    assert_relationship_mirrored(gw.store, neo4j, "victim-r", {"source_id": "victim-e", "target_id": "ack-e2"})
    assert_entity_mirrored(gw.store, neo4j, "ack-e1", {"version": 2, "properties": {"name": "one-updated"}})


def assert_victim_absent(gw, neo4j):
    assert_absent(gw.store, neo4j, entity_ids=["victim-e"], rel_ids=["victim-r"])
    assert_entity_mirrored(gw.store, neo4j, "ack-e1", {"version": 1, "properties": {"name": "one"}})



def readyz_status(gw):
    r = gw.readyz()
    return None if r is None else r.status


def committed_tx_ids(store):
    return [t["tx_id"] for t in store.transactions("committed")]


def assert_gateway_still_writes(gw, neo4j, eid):
    r = gw.post("/v1/entities", {"id": eid, "type": "Person", "properties": {"after": True}})
    assert r.status == 201, r
    assert_entity_mirrored(gw.store, neo4j, eid)
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)


# ------------------------------------------------------- kill at each point


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_kill_at_fault_point_then_recover(gateway_factory, neo4j, point):
    gw = gateway_factory(env={"BISTORE_FAULT": f"{point}:3"})
    acked = acknowledged_writes(gw)  # write transactions 1 and 2
    acked_txs = committed_tx_ids(gw.store)
    assert len(acked_txs) == 2
    send_expecting_no_answer(gw, "POST", "/v1/transactions", VICTIM)  # write transaction 3
    gw.expect_fault_kill()

    # Before recovery: the stores show exactly the state the fault point names.
    store = gw.store
    if point in COMMIT_POINT_PASSED:
        assert store.count_entity("victim-e") == 1, "SQLite commit point passed but the row is missing"
        assert store.entity("ack-e1")["version"] == 2
        assert len(store.pending_intents()) == 1, store.pending_intents()
    else:
        assert store.count_entity("victim-e") == 0 and store.entity("ack-e1")["version"] == 1
        assert store.pending_intents() == []
        assert committed_tx_ids(store) == acked_txs
    if point == "after_neo4j_commit":
        assert neo4j.count_entity("victim-e") == 1, "Neo4j commit should have happened before the kill"
        assert neo4j.watermarks()[0]["seq"] == store.pending_intents()[0]["seq"]
    else:
        assert neo4j.count_entity("victim-e") == 0, "Neo4j shows data of an uncommitted transaction"
        assert neo4j.entities()["ack-e1"]["props"]["_v"] == 1

    # Restart on the same SQLite file, no fault; recovery must finish.
    gw2 = gateway_factory(sqlite=gw.sqlite_path)
    assert_acknowledged_present(gw2, neo4j, acked)
    if point in COMMIT_POINT_PASSED:
        assert_victim_applied(gw2, neo4j)
        victim_txs = [t for t in committed_tx_ids(gw2.store) if t not in acked_txs]
        assert len(victim_txs) == 1, victim_txs
        t = gw2.get(f"/v1/transactions/{victim_txs[0]}")
        assert t.status == 200 and t.json["state"] == "applied", t
        assert t.json["provenance"] == VICTIM["provenance"]
    else:
        assert_victim_absent(gw2, neo4j)
        assert committed_tx_ids(gw2.store) == acked_txs
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)
    listed = gw2.get("/v1/transactions?state=pending")
    assert listed.status == 200 and listed.json["items"] == [], listed
    # the recovered gateway writes normally (no lock left behind by the dead one)
    assert_gateway_still_writes(gw2, neo4j, "after-recovery")


def test_fault_without_count_fires_on_first_write(gateway_factory, neo4j):
    gw = gateway_factory(env={"BISTORE_FAULT": "after_sqlite_commit"})
    # reads are not write transactions: they must not trigger the hook
    assert gw.get("/v1/entities").status == 200
    assert gw.post("/v1/ids", {"count": 2}).status == 200
    send_expecting_no_answer(gw, "POST", "/v1/entities",
                             {"id": "first-e", "type": "Person", "properties": {"n": 1}})
    gw.expect_fault_kill()
    gw2 = gateway_factory(sqlite=gw.sqlite_path)
    assert_entity_mirrored(gw2.store, neo4j, "first-e", {"version": 1, "properties": {"n": 1}})
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)


def test_repeated_crashes_lose_nothing(gateway_factory, neo4j):
    """Crash after the commit point, then crash the recovered gateway on its
    next write as well: both killed transactions end up applied exactly once."""
    gw = gateway_factory(env={"BISTORE_FAULT": "after_sqlite_commit:2"})
    assert gw.post("/v1/entities", {"id": "rc-1", "type": "Person"}).status == 201
    send_expecting_no_answer(gw, "POST", "/v1/entities", {"id": "rc-2", "type": "Person"})
    gw.expect_fault_kill()
    # after_begin: a point the start-up replay of rc-2 cannot reach, so the count is unambiguous
    gw2 = gateway_factory(sqlite=gw.sqlite_path, env={"BISTORE_FAULT": "after_begin:2"})
    assert gw2.post("/v1/entities", {"id": "rc-3", "type": "Person"}).status == 201
    send_expecting_no_answer(gw2, "POST", "/v1/entities", {"id": "rc-4", "type": "Person"})
    gw2.expect_fault_kill()
    gw3 = gateway_factory(sqlite=gw.sqlite_path)
    for eid in ("rc-1", "rc-2", "rc-3"):
        assert_entity_mirrored(gw3.store, neo4j, eid)
    assert_absent(gw3.store, neo4j, entity_ids=["rc-4"])
    assert_stores_consistent(gw3.store, neo4j)
    assert_intents_settled(gw3.store, neo4j)
    assert_gateway_still_writes(gw3, neo4j, "rc-5")


# ------------------------------------------- a commit delivered after recovery


@pytest.mark.parametrize("restart_via", ["direct", "proxy"])
def test_held_commit_delivered_after_recovery_applies_once(gateway_factory, proxy_factory, neo4j, restart_via):
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url)
    acked = acknowledged_writes(gw)
    proxy.hold_matching(TX_COMMIT)
    outcome = {}

    def victim():
        try:
            outcome["response"] = gw.request("POST", "/v1/transactions", body=VICTIM, fresh=True, timeout=60)
        except CONNECTION_ERRORS as exc:
            outcome["error"] = exc

    t = threading.Thread(target=victim, daemon=True)
    t.start()
    assert proxy.wait_held(1, timeout=20), f"the gateway never sent a Neo4j commit:\n{gw.log_tail()}"
    # The commit is on its way (held): SQLite has committed, the intent is pending.
    poll(lambda: gw.store.count_entity("victim-e") == 1, 5, what="the victim to be committed in SQLite")
    assert len(gw.store.pending_intents()) == 1
    gw.kill()
    t.join(30)
    assert "response" not in outcome, f"the killed gateway answered: {outcome}"

    if restart_via == "proxy":
        proxy.stop_matching()  # new requests pass; the held commit stays held
        gw2 = gateway_factory(sqlite=gw.sqlite_path, neo4j_url=proxy.url)
    else:
        gw2 = gateway_factory(sqlite=gw.sqlite_path)
    assert proxy.held_count() >= 1, "the held commit got lost before recovery finished"
    assert_acknowledged_present(gw2, neo4j, acked)
    assert_victim_applied(gw2, neo4j)
    assert_intents_settled(gw2.store, neo4j)
    seq_after_recovery = gw2.store.max_intent_seq()

    # Now the dead gateway's commit arrives at Neo4j, late.
    assert proxy.release() >= 1
    assert proxy.wait_released_answered(30), "Neo4j never answered the late commit"
    assert_acknowledged_present(gw2, neo4j, acked)
    assert_victim_applied(gw2, neo4j)
    assert neo4j.count_entity("victim-e") == 1 and neo4j.count_relationship("victim-r") == 1
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)
    assert gw2.store.max_intent_seq() == seq_after_recovery
    assert_gateway_still_writes(gw2, neo4j, "after-late-commit")


# ------------------------- a commit in flight, the next group's statements behind it


@pytest.mark.parametrize("flight", ["lands", "never_lands"])
def test_kill_with_a_commit_in_flight_and_the_next_group_behind_it(gateway_factory, proxy_factory, neo4j,
                                                                   flight):
    """Group k's Neo4j commit is in flight (held at the proxy) and group
    k+1's statements wait in Neo4j behind its watermark lock; the gateway is
    killed the moment k+1's statements are answered (behind_flight), before
    the writer took k's outcome. lands: k's commit is let through first, so
    Neo4j commits k (its client may hear 200 "applied" before the kill) and
    k+1's statements pass its guard. never_lands: k's commit stays held, and
    times out (its client may hear 200 "pending") while k+1's statements
    time out behind the lock. Either way k is committed in SQLite and
    applied exactly once after recovery, and k+1 is in neither store and
    never answered."""
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, env={"BISTORE_FAULT": "behind_flight"},
                         args=["--neo4j-timeout-ms", SHORT_NEO4J_TIMEOUT_MS])
    acked = acknowledged_writes(gw)  # one at a time: never behind a flight
    proxy.hold_matching(TX_COMMIT)
    answers = {}

    def write(name, path, body):
        try:
            answers[name] = gw.request("POST", path, body=body, fresh=True, timeout=60)
        except CONNECTION_ERRORS as exc:
            answers[name] = exc

    k = threading.Thread(target=write, args=("k", "/v1/transactions", VICTIM), daemon=True)
    k.start()
    assert proxy.wait_held(1, timeout=20), f"the gateway never sent a Neo4j commit:\n{gw.log_tail()}"
    poll(lambda: gw.store.count_entity("victim-e") == 1, 5, what="the victim to be committed in SQLite")
    behind = threading.Thread(target=write, args=(
        "behind", "/v1/entities", {"id": "behind-e", "type": "Person", "properties": {"n": 1}}), daemon=True)
    behind.start()
    if flight == "lands":
        time.sleep(1.0)  # its statements are in Neo4j by now, waiting for the lock
        assert proxy.release() == 1
    gw.expect_fault_kill(timeout=30)
    for t in (k, behind):
        t.join(30)
    assert not hasattr(answers.get("behind"), "status"), f"behind was answered: {answers['behind']}"
    got = answers.get("k")
    if hasattr(got, "status"):  # past the commit point: the committer may answer before the kill
        assert got.status == 200 and got.json["state"] == "committed", got
        assert got.json["neo4j"] == ("applied" if flight == "lands" else "pending"), got

    # Before recovery: k is committed in SQLite, not marked; k+1 is nowhere.
    store = gw.store
    assert store.count_entity("victim-e") == 1 and store.count_entity("behind-e") == 0
    pending = store.pending_intents()
    assert len(pending) == 1, pending
    assert neo4j.count_entity("behind-e") == 0, "Neo4j shows data of an uncommitted transaction"
    if flight == "lands":
        assert neo4j.count_entity("victim-e") == 1, "k's commit was let through before the kill"
        assert neo4j.watermarks()[0]["seq"] == pending[0]["seq"]
    else:
        assert neo4j.count_entity("victim-e") == 0, "k's commit is still held"

    gw2 = gateway_factory(sqlite=gw.sqlite_path)  # straight to Neo4j: a held commit stays held
    if flight == "never_lands":
        assert proxy.held_count() >= 1
    assert_acknowledged_present(gw2, neo4j, acked)
    assert_victim_applied(gw2, neo4j)
    assert_absent(gw2.store, neo4j, entity_ids=["behind-e"])
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)
    if flight == "never_lands":  # the dead gateway's commit arrives late: a transaction long gone
        assert proxy.release() >= 1
        assert proxy.wait_released_answered(30), "Neo4j never answered the late commit"
        assert neo4j.count_entity("victim-e") == 1 and neo4j.count_relationship("victim-r") == 1
        assert_stores_consistent(gw2.store, neo4j)
        assert_intents_settled(gw2.store, neo4j)
    assert_gateway_still_writes(gw2, neo4j, "after-flight")


# ------------------------------------- lost Neo4j commit, replayed in place


@pytest.mark.parametrize("failure", ["commit_times_out", "neo4j_unreachable"])
def test_pending_intent_is_applied_when_neo4j_returns_without_restart(warmed_neo4j, gateway_factory,
                                                                      proxy_factory, neo4j, failure):
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, args=["--neo4j-timeout-ms", SHORT_NEO4J_TIMEOUT_MS])
    acked = acknowledged_writes(gw)
    proxy.hold_matching(TX_COMMIT)
    if failure == "commit_times_out":
        r = gw.post("/v1/transactions", VICTIM, timeout=60)
    else:
        box = {}

        def write():
            try:
                box["r"] = gw.post("/v1/transactions", VICTIM, fresh=True, timeout=60)
            except CONNECTION_ERRORS as exc:
                box["error"] = exc

        t = threading.Thread(target=write, daemon=True)
        t.start()
        assert proxy.wait_held(1, timeout=20), f"the gateway never sent a Neo4j commit:\n{gw.log_tail()}"
        proxy.refuse()  # Neo4j is gone: the held commit is cut, new connections fail
        t.join(60)
        assert "r" in box, f"no answer to the write whose Neo4j commit failed: {box}"
        r = box["r"]
    # Committed at the commit point, so acknowledged, with Neo4j pending.
    assert r.status == 200, r
    assert r.json["state"] == "committed" and r.json["neo4j"] == "pending", r.json
    tx_id = r.json["tx_id"]
    assert gw.store.count_entity("victim-e") == 1
    assert [p["tx_id"] for p in gw.store.pending_intents()] == [tx_id]
    assert neo4j.count_entity("victim-e") == 0
    t = gw.get(f"/v1/transactions/{tx_id}")
    assert t.status == 200 and t.json["state"] == "pending", t
    listed = gw.get("/v1/transactions?state=pending")
    assert [i["tx_id"] for i in listed.json["items"]] == [tx_id], listed
    if failure == "neo4j_unreachable":
        poll(lambda: readyz_status(gw) == 503, 15, what="/readyz to report Neo4j unreachable")

    # Neo4j comes back; the gateway is NOT restarted and gets no new write.
    proxy.release(deliver=False)
    proxy.pass_through()
    # Well under Neo4j's 30 s idle timeout: the gateway must end its own
    # abandoned Neo4j transaction (it holds the watermark lock), not wait it out.
    poll(lambda: gw.store.pending_intents() == [], 20, interval=0.2,
         what="the pending intent to be applied without a restart")
    assert gw.alive()
    assert_acknowledged_present(gw, neo4j, acked)
    assert_victim_applied(gw, neo4j)
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
    t = gw.get(f"/v1/transactions/{tx_id}")
    assert t.status == 200 and t.json["state"] == "applied" and t.json["applied_at"], t
    gw.wait_ready(30)
    assert_gateway_still_writes(gw, neo4j, "after-pending")


def test_neo4j_blackholed_before_commit_point_writes_nothing(warmed_neo4j, gateway_factory, proxy_factory, neo4j):
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, args=["--neo4j-timeout-ms", SHORT_NEO4J_TIMEOUT_MS])
    acked = acknowledged_writes(gw)
    before = gw.store.dump(with_aborted=False)
    n_before = neo4j.dump()
    proxy.blackhole()
    proxy.close_all()  # kept-alive connections into the black hole as well
    started = time.monotonic()
    r = gw.post("/v1/transactions", VICTIM, timeout=60)
    assert r.status == 503 and r.error_code() == "neo4j_unavailable", r
    assert time.monotonic() - started < 15, "a write to an unanswering Neo4j must fail fast"
    assert gw.store.dump(with_aborted=False) == before
    assert neo4j.dump() == n_before
    proxy.pass_through()
    gw.wait_ready(30)
    assert_acknowledged_present(gw, neo4j, acked)
    assert_victim_absent(gw, neo4j)
    assert_gateway_still_writes(gw, neo4j, "after-blackhole")


# ------------------------------------------------ the real Neo4j goes away


@pytest.mark.neo4j_restart
def test_neo4j_stopped_writes_503_and_nothing_written(warmed_neo4j, gateway_factory, neo4j):
    neo4j.require_control()
    gw = gateway_factory()
    acked = acknowledged_writes(gw)
    before = gw.store.dump(with_aborted=False)
    try:
        neo4j.stop()
        poll(lambda: readyz_status(gw) == 503, 20, what="/readyz to answer 503 with Neo4j stopped")
        ready = gw.get("/readyz")
        assert ready.status == 503 and ready.error_code(), ready
        assert gw.get("/healthz").status == 200  # the process still serves
        for method, path, body in [
                ("POST", "/v1/entities", {"id": "down-e", "type": "Person"}),
                ("POST", "/v1/transactions", VICTIM),
                ("PATCH", "/v1/entities/ack-e1", {"properties": {"name": "changed"}}),
                ("DELETE", "/v1/entities/ack-e2", None),
                ("POST", "/v1/relationships", {"type": "KNOWS", "source": "ack-e1", "target": "ack-e2"})]:
            started = time.monotonic()
            r = gw.request(method, path, body=body)
            assert r.status == 503 and r.error_code() == "neo4j_unavailable", (method, path, r)
            assert time.monotonic() - started < 15, f"{method} {path} did not fail fast"
        assert gw.store.dump(with_aborted=False) == before, "SQLite changed while Neo4j was down"
        assert gw.store.pending_intents() == []
        assert gw.alive()
    finally:
        neo4j.ensure_running()
    gw.wait_ready(60)
    assert_acknowledged_present(gw, neo4j, acked)
    assert_absent(gw.store, neo4j, entity_ids=["down-e", "victim-e"])
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
    assert_gateway_still_writes(gw, neo4j, "after-neo4j-restart")


@pytest.mark.neo4j_restart
def test_neo4j_frozen_writes_503_then_recovers(warmed_neo4j, gateway_factory, neo4j):
    neo4j.require_control()
    gw = gateway_factory(args=["--neo4j-timeout-ms", SHORT_NEO4J_TIMEOUT_MS])
    acked = acknowledged_writes(gw)
    before = gw.store.dump(with_aborted=False)
    try:
        neo4j.sigstop()
        started = time.monotonic()
        r = gw.post("/v1/entities", {"id": "frozen-e", "type": "Person"}, timeout=60)
        assert r.status == 503 and r.error_code() == "neo4j_unavailable", r
        assert time.monotonic() - started < 15, "a write to a hung Neo4j must time out fast"
        assert gw.store.dump(with_aborted=False) == before
    finally:
        neo4j.sigcont()
    gw.wait_ready(60)

    # Writes work again (a retry of a 503 is safe: nothing was written).
    def write_once():
        r = gw.post("/v1/entities", {"id": "thawed-e", "type": "Person"}, timeout=60)
        assert r.status in (201, 503), r
        return r.status == 201
    poll(write_once, 60, interval=0.5, what="writes to succeed after Neo4j resumed")
    assert_acknowledged_present(gw, neo4j, acked)
    assert_absent(gw.store, neo4j, entity_ids=["frozen-e"])
    assert_entity_mirrored(gw.store, neo4j, "thawed-e")
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)


# ------------------------------------------- replay of many intents, batched


def test_replay_of_thousands_of_intents_in_several_batches(gateway_factory, neo4j):
    """Intents pending the way a crash after the commit point leaves them
    (their nodes absent from Neo4j, the watermark behind), more than one
    replay batch (2,000) of them: the restart applies every one, once, in
    order, the next batch built while Neo4j runs the one before."""
    import concurrent.futures
    import sqlite3

    gw = gateway_factory()
    n = 4500
    ids = [f"rp-{i:05d}" for i in range(n)]

    def create(eid):
        return gw.request("POST", "/v1/entities", body={"id": eid, "type": "Person", "properties": {"k": eid}},
                          fresh=True).status

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert set(pool.map(create, ids)) == {201}
    assert gw.terminate() == 0, gw.log_tail()

    # Stage the crash: the last n intents pending, their nodes gone from Neo4j.
    top = gw.store.max_intent_seq()
    base = top - n
    for i in range(0, n, 1000):
        neo4j.run("MATCH (e:Entity) WHERE e.id IN $ids DETACH DELETE e", ids=ids[i:i + 1000])
    store_id = gw.store.query("SELECT value FROM bistore_meta WHERE key = 'store_id'")[0]["value"]
    neo4j.run("MATCH (w:_BistoreWatermark {store: $s}) SET w.seq = $seq", s=store_id, seq=base)
    conn = sqlite3.connect(str(gw.sqlite_path))
    conn.execute("UPDATE bistore_intents SET applied_at = NULL WHERE seq > ?", (base,))
    conn.commit()
    conn.close()
    assert len(gw.store.pending_intents()) == n

    gw2 = gateway_factory(sqlite=gw.sqlite_path, args=["--log-level", "info"])
    assert neo4j.value("MATCH (e:Entity) WHERE e.id STARTS WITH 'rp-' RETURN count(e)") == n
    assert neo4j.value("MATCH (e:Entity) WHERE e.id STARTS WITH 'rp-' "
                       "RETURN count(DISTINCT e.id)") == n, "an intent was applied twice"
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)
    batches = re.findall(r"replayed intents (\d+)\.\.(\d+)", gw2.log_path.read_text(errors="replace"))
    spans = [(int(a), int(b)) for a, b in batches]
    assert len(spans) >= 3, spans
    assert spans[0][0] == base + 1 and spans[-1][1] == top, spans
    assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:])), f"not contiguous, in order: {spans}"


# ----------------------------------------- the guard joined to the data statement


def test_watermark_moved_behind_the_gateway_refuses_the_write(gateway_factory, neo4j):
    """A single create travels joined to the guard. When Neo4j's watermark is
    not where the gateway expects (another writer moved it), the guard fails
    the whole statement: nothing of the write reaches either store."""
    gw = gateway_factory()
    assert gw.post("/v1/entities", {"id": "wm-a", "type": "Person"}).status == 201
    store_id = gw.store.query("SELECT value FROM bistore_meta WHERE key = 'store_id'")[0]["value"]
    top = gw.store.max_intent_seq()
    neo4j.run("MATCH (w:_BistoreWatermark {store: $s}) SET w.seq = $seq", s=store_id, seq=top + 5)
    r = gw.post("/v1/entities", {"id": "wm-b", "type": "Person"})
    assert r.status == 503 and r.error_code() == "neo4j_unavailable", r
    assert "watermark" in r.json["error"]["message"], r.json
    assert gw.store.entity("wm-b") is None and neo4j.count_entity("wm-b") == 0
    assert gw.store.max_intent_seq() == top


def test_missing_watermark_node_is_named_and_nothing_is_written(gateway_factory, neo4j):
    gw = gateway_factory()
    assert gw.post("/v1/entities", {"id": "wm-c", "type": "Person"}).status == 201
    store_id = gw.store.query("SELECT value FROM bistore_meta WHERE key = 'store_id'")[0]["value"]
    top = gw.store.max_intent_seq()
    neo4j.run("MATCH (w:_BistoreWatermark {store: $s}) DELETE w", s=store_id)
    r = gw.post("/v1/entities", {"id": "wm-d", "type": "Person"})
    assert r.status == 502 and r.error_code() == "neo4j_error", r
    assert "watermark node" in r.json["error"]["message"], r.json
    assert gw.store.entity("wm-d") is None and neo4j.count_entity("wm-d") == 0
    assert gw.store.max_intent_seq() == top
