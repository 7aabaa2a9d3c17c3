"""SQLite failing under the commit protocol (issue 9, defect 5), through the
SQLite fault shim (BISTORE_SQLITE_FAULT, stores/sqlite/testvfs.h).

SQLITE_FULL, SQLITE_IOERR and SQLITE_NOMEM can roll a whole transaction
back by themselves. In a group, the next member's SAVEPOINT would then
begin a transaction of its own, which its RELEASE commits before Neo4j saw
anything; the group's COMMIT fails and every member hears 500 while some of
them are durable. And a COMMIT that fails in its fsync may be durable all
the same (WAL recovery brings it back at the next start): its outcome is
unknown, and only an Idempotency-Key retry can tell it."""

import re
import time

import pytest

from harness import CONNECTION_ERRORS, assert_intents_settled, assert_stores_consistent, poll
from harness.faults import HeldWriter, join_all, send_in_order

# a member whose rows do not fit SQLite's page cache (2 MB): applying it
# spills dirty pages to the WAL in the middle of the transaction
BIG_PROPS = 60
BIG_ENTITIES = 900


def big_batch(tag):
    return {"operations": [{"op": "create_entity", "id": f"{tag}-{i:04d}", "type": "Bulk",
                            "properties": {f"p{j}": "x" * 90 for j in range(BIG_PROPS)}}
                           for i in range(BIG_ENTITIES)]}


def small(tag):
    return {"id": tag, "type": "Small", "properties": {"tag": tag}}


def wal_writes_in_group(gw):
    """The shim's traced WAL writes, by number."""
    return [int(n) for n in re.findall(r"testvfs: #(\d+) write wal", gw.log_path.read_text(errors="replace"))]


def group_after_blocker(gw, proxy, tag):
    """A group of [a big batch that spills, two small creates] behind a held
    blocker; returns their answers."""
    with HeldWriter(gw, proxy):
        threads, answers = send_in_order(gw, [
            ("POST", "/v1/transactions", big_batch(tag), None),
            ("POST", "/v1/entities", small(f"{tag}-s1"), {"Idempotency-Key": f"{tag}-s1"}),
            ("POST", "/v1/entities", small(f"{tag}-s2"), {"Idempotency-Key": f"{tag}-s2"})], gap=0.5)
        time.sleep(1.0)
    join_all(threads)
    return answers


def shim_gateway(gateway_factory, proxy_factory, spec):
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, args=["--neo4j-timeout-ms", "60000"],
                         env={"BISTORE_SQLITE_FAULT": spec})
    return gw, proxy


def in_sqlite(gw, eid):
    return gw.store.entity(eid) is not None


@pytest.mark.parametrize("rc,code", [("full", "storage_full"), ("ioerr_write", "storage_error")])
def test_an_sqlite_error_that_rolls_back_the_group_fails_every_member(gateway_factory, proxy_factory, neo4j,
                                                                      rc, code):
    """The first member spills its rows to the WAL mid-transaction and that
    write fails: SQLite rolls the whole transaction back. Before the fix the
    two members after it began and committed transactions of their own
    (answered 500 all the same, yet durable) and every later write failed on
    a duplicate intent seq."""
    # counting starts after the blocker's SQLite commit: its Neo4j commit is
    # then in flight and its mark goes with the group's commit, so the first
    # WAL write after it is the big member's spill
    gw, proxy = shim_gateway(gateway_factory, proxy_factory,
                             f"error,op=write,file=wal,rc={rc},nth=1,after=after_sqlite_commit")
    big, s1, s2 = group_after_blocker(gw, proxy, "g")
    assert "fails with" in gw.log_path.read_text(errors="replace"), "the shim's error never fired"
    for a in (big, s1, s2):
        assert a.status >= 500 and a.error_code() == code, a
    # nothing of the group is anywhere, and the gateway writes on
    assert not in_sqlite(gw, "g-s1") and not in_sqlite(gw, "g-s2") and not in_sqlite(gw, "g-0000")
    after = gw.post("/v1/entities", small("after"))
    assert after.status == 201, after
    # the members' retries (same keys) write them once
    for tag in ("g-s1", "g-s2"):
        r = gw.post("/v1/entities", small(tag), headers={"Idempotency-Key": tag})
        assert r.status == 201 and r.headers.get("Idempotent-Replayed") is None, r
    assert gw.terminate() == 0, gw.log_tail()
    gw2 = gateway_factory(sqlite=gw.sqlite_path)
    for tag in ("after", "g-s1", "g-s2"):
        assert in_sqlite(gw2, tag) and neo4j.count_entity(tag) == 1, tag
    assert gw2.store.value("SELECT count(*) FROM entities WHERE type = 'Bulk'") == 0
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)
    assert "SQLite rolled back the group's transaction" in gw.log_path.read_text(errors="replace")


def test_a_commit_whose_fsync_failed_has_an_unknown_outcome(gateway_factory, proxy_factory, neo4j):
    """The group's COMMIT writes its frames and then fails in the fsync: the
    answer says the outcome is unknown (not a plain 500), and a retry with
    the same Idempotency-Key answers the real outcome: here the transaction
    was not durable in this process, so the retry writes it, once."""
    gw, proxy = shim_gateway(gateway_factory, proxy_factory,
                             "error,op=sync,file=wal,nth=1,after=after_neo4j_statements:2")
    assert gw.post("/v1/entities", small("first")).status == 201
    r = gw.post("/v1/entities", small("u1"), headers={"Idempotency-Key": "u1"})
    assert r.status == 500 and r.error_code() == "outcome_unknown", r
    assert "Idempotency-Key" in r.json["error"]["message"], r.json
    gw.wait_ready(30)
    again = gw.post("/v1/entities", small("u1"), headers={"Idempotency-Key": "u1"})
    assert again.status in (200, 201), again
    assert gw.post("/v1/entities", small("u2")).status == 201  # the log's seqs are in step
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
    assert gw.store.value("SELECT count(*) FROM entities WHERE id = 'u1'") == 1


def test_a_commit_whose_fsync_failed_may_come_back_and_is_then_found_by_its_key(gateway_factory,
                                                                                proxy_factory, neo4j):
    """Same failure, then the gateway dies before writing anything else: at
    the next start SQLite's WAL recovery brings the transaction back, its
    intent is replayed, and the client's retry with the same key gets the
    stored answer instead of a second write."""
    gw, proxy = shim_gateway(gateway_factory, proxy_factory,
                             "error,op=sync,file=wal,nth=1,after=after_neo4j_statements:2")
    assert gw.post("/v1/entities", small("first")).status == 201
    r = gw.post("/v1/transactions", {"operations": [{"op": "create_entity", "type": "Small",
                                                     "properties": {"tag": "back"}}]},
                headers={"Idempotency-Key": "back"})
    assert r.status == 500 and r.error_code() == "outcome_unknown", r
    gw.kill()
    gw2 = gateway_factory(sqlite=gw.sqlite_path)
    again = gw2.post("/v1/transactions", {"operations": [{"op": "create_entity", "type": "Small",
                                                          "properties": {"tag": "back"}}]},
                     headers={"Idempotency-Key": "back"})
    assert again.status == 200, again
    rows = gw2.store.query("SELECT id FROM entities WHERE json_extract(properties, '$.tag') = 'back'")
    assert len(rows) == 1, rows
    assert again.json["results"][0]["id"] == rows[0]["id"]
    poll(lambda: not gw2.store.pending_intents(), 30, what="the intent to be replayed")
    assert neo4j.count_entity(rows[0]["id"]) == 1
    assert_stores_consistent(gw2.store, neo4j)


# Each step of the protocol that does SQLite I/O, failing (the shim counts
# from the second group that reaches the point: the first is the warm-up
# write): the spec, and what the failing write's client must hear.
STEPS = {
    "commit_wal_write_full": ("error,op=write,file=wal,rc=full,after=after_neo4j_statements:2",
                              {507: "storage_full"}),
    "commit_wal_write_ioerr": ("error,op=write,file=wal,rc=ioerr_write,after=after_neo4j_statements:2",
                               {500: "storage_error"}),
    "commit_later_frame": ("error,op=write,file=wal,nth=3,rc=ioerr_write,after=after_neo4j_statements:2",
                           {500: "storage_error"}),
    "commit_fsync": ("error,op=sync,file=wal,rc=ioerr_fsync,after=after_neo4j_statements:2",
                     {500: "outcome_unknown"}),
    "mark_applied": ("error,op=write,file=wal,rc=ioerr_write,after=after_neo4j_commit:2", {201: None}),
    "mark_disk_full": ("error,op=write,file=wal,rc=full,times=forever,after=after_neo4j_commit:2",
                       {201: None}),
    "checkpoint_write": ("error,op=write,file=db,after=ready,autocheckpoint=4", {201: None}),
    "checkpoint_sync": ("error,op=sync,file=db,after=ready,autocheckpoint=4", {201: None}),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_step_of_the_protocol_failing_in_sqlite_tells_the_truth(gateway_factory, neo4j, step):
    """At each step, the failing write's answer says what happened: a 2xx is
    in both stores (after a restart too), a definite error left nothing in
    either, outcome_unknown is settled by a retry with the same key. The
    gateway then writes again (or says in /readyz why it cannot)."""
    spec, expect = STEPS[step]
    gw = gateway_factory(env={"BISTORE_SQLITE_FAULT": spec})
    assert gw.post("/v1/entities", small("warm")).status == 201
    answers = {}
    for i in range(6):
        tag = f"w{i}"
        try:
            answers[tag] = gw.post("/v1/entities", small(tag), headers={"Idempotency-Key": tag})
        except CONNECTION_ERRORS as exc:  # never: the gateway must answer
            pytest.fail(f"{tag}: no answer ({exc}):\n{gw.log_tail()}")
    first = answers["w0"]
    status, code = next(iter(expect.items()))
    assert first.status == status, (step, first)
    if code:
        assert first.error_code() == code, (step, first)
    if step != "mark_disk_full":
        assert "fails with" in gw.log_path.read_text(errors="replace"), "the shim's error never fired"
    # the rest of the writes: each answer true in itself (checked below)
    for tag, a in answers.items():
        assert a.status in (201, 500, 503, 507), (tag, a)
    gw.kill()  # whatever the process had in memory is gone
    gw2 = gateway_factory(sqlite=gw.sqlite_path)
    for tag, a in answers.items():
        if a.status == 201:
            assert gw2.store.count_entity(tag) == 1 and neo4j.count_entity(tag) == 1, (tag, a)
        elif a.error_code() != "outcome_unknown":
            assert gw2.store.count_entity(tag) == 0 and neo4j.count_entity(tag) == 0, (tag, a)
        # every key ends with one outcome: its retry is a 2xx, written once
        r = gw2.post("/v1/entities", small(tag), headers={"Idempotency-Key": tag})
        assert r.status in (200, 201), (tag, r)
        assert gw2.store.count_entity(tag) == 1, tag
        if a.status == 201:
            assert r.json["tx_id"] == a.json["tx_id"], (tag, a.json, r.json)
    assert_stores_consistent(gw2.store, neo4j)
    poll(lambda: not gw2.store.pending_intents(), 30, what="pending intents replayed")
    assert_intents_settled(gw2.store, neo4j)
    assert gw2.store.value("PRAGMA integrity_check") == "ok"
