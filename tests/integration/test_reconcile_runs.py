"""Reconciliation runs inside a gateway: interrupted, stopped, failing with
Neo4j, one at a time, beside client writes; the API's errors and pages; the
periodic validation."""

import json
import re
import signal
import sqlite3
import threading
import urllib.parse
import uuid
from collections import Counter

import pytest

from harness import assert_intents_settled, assert_stores_consistent, Gateway, poll
from harness.api import error_of
from harness.reconcile import (KIND_COUNTER, start_run, get_run, wait_run, check_run_shape, all_findings,
                               reconcile, assert_clean, repair_transactions, dmg_neo4j_node_deleted,
                               dmg_neo4j_property_edited, dmg_sqlite_relationship_deleted)


# ------------------------------------------------------ 6. interrupted run


def test_interrupted_repair_is_marked_failed_and_leaves_whole_batches(gateway_factory, proxy_factory, neo4j,
                                                                       tmp_path):
    """SIGKILL during a sqlite_wins repair of 600 Neo4j-only nodes, with a repair
    batch committed in SQLite (the commit point) whose Neo4j commit is held back:
    after a restart the run is failed/interrupted, the intent is replayed, and
    Neo4j has lost whole batches only, as many as the audit trail says."""
    total = 600
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url)
    r = gw.post("/v1/entities", {"id": "keep", "type": "Person", "properties": {"name": "Keep"}})
    assert r.status == 201, r
    neo4j.run("UNWIND range(1, $n) AS i CREATE (n:Entity:Bulk {id: 'bulk-' + right('0000' + toString(i), 4), "
              "n: i, _v: 1, _h: '0123456789abcdef'})", n=total)

    def bulk():
        return neo4j.value("MATCH (n:Bulk) RETURN count(n)")

    def committed_batches():
        return [t for t in gw.store.transactions()
                if t["provenance"] and json.loads(t["provenance"]).get("run") == rid]

    # Hold every Neo4j commit of the writer; let them through one by one until the
    # held one belongs to a repair batch after at least one applied batch.
    commit = re.compile(rb"POST /db/[^/ ]+/(?:query/v2/)?tx/[^/ ]+/commit")
    proxy.hold_matching(commit)
    rid = start_run(gw, mode="fast", repair="sqlite_wins")
    seen = 0
    for _ in range(50):
        if not proxy.wait_held(seen + 1, timeout=60):
            pytest.fail(f"no further commit was sent (run {get_run(gw, rid)}):\n{gw.log_tail()}")
        if len(gw.store.pending_intents()) == 1 and len(committed_batches()) >= 2:
            break
        seen = len(proxy.held_log)
        proxy.release()
        proxy.hold_matching(commit)
    else:
        pytest.fail("never held the commit of a second repair batch")
    assert get_run(gw, rid)["state"] == "running"
    pending = gw.store.pending_intents()
    assert len(pending) == 1, f"expected the held batch to be committed in SQLite: {pending}"
    k = len(committed_batches())
    assert 2 <= k < total // 100, f"{k} repair transactions committed"
    assert bulk() == total - 100 * (k - 1), f"Neo4j has {bulk()} bulk nodes with {k - 1} batches applied"
    gw.kill()
    proxy.release(deliver=False)  # the held commit never reaches Neo4j
    proxy.pass_through()

    gw2 = gateway_factory(sqlite=gw.sqlite_path, neo4j_url=proxy.url)
    run = wait_run(gw2, rid, timeout=30, expect="failed")
    assert isinstance(run["error"], str) and run["error"].startswith("interrupted"), run
    assert run["finished_at"] is not None
    # the committed batch was replayed: whole batches only, as the intent log says
    assert_intents_settled(gw2.store, neo4j)
    left = bulk()
    print(f"killed with {k} repair batches committed, the last one held before its Neo4j commit; {left} left")
    assert left == total - 100 * k, f"{left} bulk nodes left after {k} committed batches"
    assert left % 100 == 0
    findings = all_findings(gw2, rid)
    assert len(findings) == total, len(findings)
    assert Counter(f["action"] for f in findings) == Counter({"deleted": 100 * k, "none": total - 100 * k})
    deleted = {f["id"] for f in findings if f["action"] == "deleted"}
    still = {row[0] for row in neo4j.run("MATCH (n:Bulk) RETURN n.id")}
    assert deleted.isdisjoint(still) and len(deleted) + len(still) == total
    assert {o["id"] for t in repair_transactions(gw2, rid) for o in t["operations"]} == deleted
    assert gw2.store.entity("keep") is not None and neo4j.count_entity("keep") == 1

    # a new run finishes the job
    run2, findings2 = reconcile(gw2, mode="fast", repair="sqlite_wins")
    assert run2["summary"]["only_in_neo4j"] == left and run2["summary"]["repaired"] == left, run2["summary"]
    assert bulk() == 0
    assert_stores_consistent(gw2.store, neo4j)
    assert_clean(gw2, neo4j, "deep")




# ------------------------------------------------------------ 8. API errors


@pytest.mark.parametrize("body,field", [
    ({"mode": "slow"}, "mode"),
    ({"mode": 1}, "mode"),
    ({"mode": None}, "mode"),
    ({"repair": "both"}, "repair"),
    ({"repair": True}, "repair"),
    ({"dry_run": "yes"}, "dry_run"),
    ({"dry_run": 1}, "dry_run"),
    ({"mode": "deep", "policy": "sqlite_wins"}, "policy"),
])
def test_invalid_reconciliation_request_is_400_with_field(gateway, body, field):
    r = gateway.post("/v1/reconciliations", body)
    error_of(r, 400, "invalid_request", field)
    r = gateway.get("/v1/reconciliations")
    assert r.status == 200 and r.json["items"] == [], f"a refused request started a run: {r.json}"


def test_reconciliation_body_must_be_json_object(gateway):
    r = gateway.post("/v1/reconciliations", "[1, 2]")
    assert r.status == 400, r
    r = gateway.post("/v1/reconciliations", "{nope")
    error_of(r, 400, "invalid_json")
    r = gateway.post("/v1/reconciliations", {})
    assert r.status == 202, r
    run = wait_run(gateway, r.json["id"])
    assert (run["mode"], run["repair"], run["dry_run"]) == ("fast", "none", False), run
    # No body at all is the same as {} (openapi.yaml: the body is optional).
    r = gateway.post("/v1/reconciliations")
    assert r.status == 202, r
    run = wait_run(gateway, r.json["id"])
    assert (run["mode"], run["repair"], run["dry_run"]) == ("fast", "none", False), run


def test_unknown_run_is_404(gateway):
    for rid in (str(uuid.uuid4()), "01a21584-3485-7001-851f-963a6d1acb40", "not-an-id"):
        error_of(gateway.get(f"/v1/reconciliations/{rid}"), 404, "not_found")
        error_of(gateway.get(f"/v1/reconciliations/{rid}/findings"), 404, "not_found")


def test_second_run_while_one_is_running_is_409(gateway_factory, proxy_factory, neo4j):
    """The run's scan is held at the proxy, so it is still running when the second POST comes."""
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url)
    r = gw.post("/v1/entities", {"id": "a", "type": "Person", "properties": {"name": "A"}})
    assert r.status == 201, r
    proxy.hold_matching(b"ORDER BY n.id")
    rid = start_run(gw, mode="deep")
    try:
        assert proxy.wait_held(1, timeout=30), f"the run never scanned:\n{gw.log_tail()}"
        assert get_run(gw, rid)["state"] == "running"
        for body in ({"mode": "fast"}, {"mode": "deep", "repair": "sqlite_wins"},
                     {"repair": "neo4j_wins", "dry_run": True}):
            r = gw.post("/v1/reconciliations", body)
            error_of(r, 409, "reconciliation_running")
        # reads still work meanwhile, and the list shows one run
        r = gw.get("/v1/reconciliations")
        assert r.status == 200 and [x["id"] for x in r.json["items"]] == [rid], r.json
        assert r.json["items"][0]["state"] == "running"
    finally:
        proxy.stop_matching()
        proxy.release()
    run = wait_run(gw, rid)
    assert run["summary"]["entities_sqlite"] == 1 and run["summary"]["entities_neo4j"] == 1, run
    # once finished, a new run may start
    rid2 = start_run(gw)
    wait_run(gw, rid2)


def second_client(gw):
    """Another keep-alive connection to the same gateway (one per thread)."""
    c = Gateway(gw.sqlite_path, gw.neo4j_url, gw.log_path)
    c.port = gw.port
    return c


def test_concurrent_starts_start_exactly_one_run(gateway_factory, proxy_factory, neo4j):
    """Issue 9 item 3: N starts released together by a barrier give one 202 and
    N-1 409s, and one run exists. The scan is held at the proxy, so the run that
    won is still running when the others ask (a finished run would let another
    start, rightly). Before the fix the busy check and the claim were two lock
    sections with the run's set-up between them: 8 of 8 starts answered 202 and
    the runs overwritten in the gateway were never joined (the harness also
    needs exit 0 on SIGTERM, under ASan too)."""
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url)
    r = gw.post("/v1/entities", {"id": "a", "type": "Person", "properties": {"name": "A"}})
    assert r.status == 201, r
    proxy.hold_matching(b"ORDER BY n.id")
    n = 8
    barrier = threading.Barrier(n)
    answers = [None] * n

    def start(i):
        c = second_client(gw)
        try:
            barrier.wait(30)
            answers[i] = c.post("/v1/reconciliations", {"mode": "fast"})
        finally:
            c._drop_conn()

    threads = [threading.Thread(target=start, args=(i,), daemon=True) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(a is not None for a in answers), answers
        statuses = sorted(a.status for a in answers)
        print(f"{n} concurrent starts answered {statuses}")
        assert statuses == [202] + [409] * (n - 1), f"{n} concurrent starts answered {statuses}"
        for a in answers:
            if a.status == 409:
                error_of(a, 409, "reconciliation_running")
        rid = next(a.json["id"] for a in answers if a.status == 202)
        r = gw.get("/v1/reconciliations")
        assert r.status == 200 and [x["id"] for x in r.json["items"]] == [rid], r.json
    finally:
        proxy.stop_matching()
        proxy.release()
    run = wait_run(gw, rid)
    assert run["summary"]["entities_sqlite"] == 1 and run["summary"]["entities_neo4j"] == 1, run
    r = gw.get("/v1/reconciliations")
    assert r.status == 200 and [(x["id"], x["state"]) for x in r.json["items"]] == [(rid, "done")], r.json
    assert gw.terminate() == 0, f"exit status on SIGTERM:\n{gw.log_tail()}"


def start_run_held_after_strays(gw, proxy, neo4j, strays, real=3000):
    """`strays` Neo4j-only nodes that sort before `real` entities written through
    the gateway; starts a deep run (which pages through both stores, 1,000 rows
    a page; a fast run compares range checksums first) and returns its id once
    the scan waits at the proxy for the first Neo4j page whose `after` is a real
    id (the pages before held every stray), with every full re-check batch
    stored."""
    for start in range(0, real, 1000):
        ops = [{"op": "create_entity", "id": f"e-{i:05d}", "type": "Item", "properties": {"n": i}}
               for i in range(start, start + 1000)]
        r = gw.post("/v1/transactions", {"operations": ops})
        assert r.status == 200, r
    neo4j.run("UNWIND range(0, $n - 1) AS i CREATE (:Entity:Stray {id: 'a-stray-' + right('0000' + toString(i), 4),"
              " _v: 1, _h: '0123456789abcdef'})", n=strays)
    assert real > 1000, "a page must follow the first one that starts at a stray"
    proxy.hold_matching(re.compile(rb'"after": ?"e-'))
    rid = start_run(gw, mode="deep")
    assert proxy.wait_held(1, timeout=60), f"the scan never asked for its second page:\n{gw.log_tail()}"
    run = get_run(gw, rid)
    assert run["state"] == "running", run
    assert run["summary"]["only_in_neo4j"] == strays // 256 * 256, run["summary"]
    return rid


def test_writes_keep_working_while_a_run_stores_thousands_of_findings(gateway_factory, proxy_factory, neo4j):
    """Issue 9 item 2: a run's bookkeeping must not hold SQLite's write lock
    across Neo4j reads (DESIGN.md invariant 7).

    3,000 nodes exist only in Neo4j and sort before the 3,000 real entities, so
    a deep scan's first four Neo4j pages (1,000 rows each) yield them all:
    eleven re-check batches of 256 are confirmed and stored, 184 candidates wait
    for the next batch. The scan's next page (its `after` is a real id) is held
    at the proxy for as long as the test likes. Old code: the run's own SQLite
    connection began a write transaction at the first stored finding and kept
    it until the next re-check, i.e. across the held page read, so a client
    write waited out the 10 s busy timeout and answered 500 "database is
    locked", and `BEGIN IMMEDIATE` from outside could not get the lock; that is
    certain, not a timing matter, because the page stays held. New code: the
    findings are stored by the writer in short transactions, so while the scan
    waits nothing holds the lock."""
    strays = 3000
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url)
    rid = start_run_held_after_strays(gw, proxy, neo4j, strays)
    writer = second_client(gw)
    try:
        for i in range(10):
            r = writer.post("/v1/entities", {"id": f"w-{i:03d}", "type": "Item", "properties": {"n": i}})
            assert r.status == 201, f"write {i} while the scan waits for Neo4j: {r!r}"
            probe = sqlite3.connect(str(gw.sqlite_path), timeout=5, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                pytest.fail(f"BEGIN IMMEDIATE with a 5 s busy timeout while the scan waits: {exc}")
            finally:
                probe.close()
        assert get_run(gw, rid)["state"] == "running"
    finally:
        writer._drop_conn()
        proxy.stop_matching()
        proxy.release()
    run = wait_run(gw, rid)
    findings = all_findings(gw, rid)
    assert run["summary"] == dict(run["summary"], only_in_neo4j=strays, only_in_sqlite=0, mismatched=0,
                                  duplicate_ids=0, missing_ids=0, repaired=0), run["summary"]
    assert len(findings) == strays and all(f["kind"] == "only_in_neo4j" for f in findings), len(findings)
    assert sorted(f["id"] for f in findings) == [f"a-stray-{i:04d}" for i in range(strays)]
    stored = gw.store.query("SELECT count(*) AS n, count(DISTINCT f.id) AS ids, min(f.n) AS lo, max(f.n) AS hi"
                            " FROM bistore_findings f JOIN bistore_reconciliations r ON f.run_n = r.n"
                            " WHERE r.id = ?", (rid,))
    assert stored == [{"n": strays, "ids": strays, "lo": 1, "hi": strays}], stored
    for i in range(10):
        assert gw.store.count_entity(f"w-{i:03d}") == 1 and neo4j.count_entity(f"w-{i:03d}") == 1


def test_run_stopped_by_sigterm_records_its_end(gateway_factory, proxy_factory, neo4j):
    """SIGTERM while a run waits for a Neo4j page: once the page comes, the run
    stops and still records "failed" and the findings stored so far, through
    the writer, which runs bookkeeping until the run is joined; exit 0."""
    strays = 600
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url)
    rid = start_run_held_after_strays(gw, proxy, neo4j, strays, real=4500)
    gw.proc.send_signal(signal.SIGTERM)
    # logged once the gateway is stopping (so the run cannot finish "done")
    poll(lambda: f"reconciliation {rid}: waiting for it to stop" in gw.log_tail(10), 30,
         what="the gateway to wait for the run")
    proxy.release()
    code = gw.terminate(timeout=60)
    assert code == 0, f"exit status {code}:\n{gw.log_tail()}"
    row = gw.store.query("SELECT n, state, error, summary, finished_at FROM bistore_reconciliations WHERE id = ?",
                         (rid,))
    assert len(row) == 1 and row[0]["state"] == "failed", row
    assert "shutting down" in row[0]["error"] and row[0]["finished_at"], row
    stored = strays // 256 * 256
    assert json.loads(row[0]["summary"])["only_in_neo4j"] == stored, row
    assert gw.store.value("SELECT count(*) FROM bistore_findings WHERE run_n = ?", (row[0]["n"],)) == stored


def test_run_fails_cleanly_when_neo4j_goes_away(gateway_factory, proxy_factory, neo4j):
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, args=["--neo4j-timeout-ms", "2000"])
    r = gw.post("/v1/entities", {"id": "a", "type": "Person", "properties": {"name": "A"}})
    assert r.status == 201, r
    proxy.hold_matching(b"ORDER BY n.id")
    rid = start_run(gw, mode="deep", repair="sqlite_wins")
    assert proxy.wait_held(1, timeout=30), f"the run never scanned:\n{gw.log_tail()}"
    proxy.refuse()                # Neo4j is gone: the held scan is cut, new connections fail
    proxy.release(deliver=False)
    run = wait_run(gw, rid, timeout=60, expect="failed")
    assert isinstance(run["error"], str) and run["error"], run
    assert repair_transactions(gw) == []
    assert gw.store.entity("a") is not None and neo4j.count_entity("a") == 1
    # Neo4j back: a new run works
    proxy.pass_through()
    gw.wait_ready(30)
    run, findings = reconcile(gw, mode="deep")
    assert findings == [] and run["summary"]["entities_neo4j"] == 1, run


def test_findings_pagination_and_kind_filter(ctx, neo4j):
    gw = ctx.gw
    dmg_neo4j_node_deleted(ctx)                      # only_in_sqlite t1
    dmg_neo4j_property_edited(ctx)                   # mismatch p1
    dmg_sqlite_relationship_deleted(ctx)             # only_in_neo4j r2
    neo4j.run("UNWIND range(1, 4) AS i CREATE (n:Entity:Stray {n: i})")  # 4 missing_id
    neo4j.run("UNWIND range(1, 3) AS i CREATE (n:Entity:Extra {id: 'extra-' + i, _v: 1, "
              "_h: '0123456789abcdef'})")         # 3 only_in_neo4j
    run, findings = reconcile(gw, mode="deep")
    kinds = Counter(f["kind"] for f in findings)
    assert kinds == Counter({"only_in_sqlite": 1, "mismatch": 1, "only_in_neo4j": 4, "missing_id": 4}), kinds

    # limit=1: every finding exactly once, in the same order as one big page
    paged = all_findings(gw, run["id"], limit=1)
    assert paged == findings, "pages of one differ from one page"
    assert len(paged) == 10
    # limit=3 as well
    assert all_findings(gw, run["id"], limit=3) == findings

    for kind in KIND_COUNTER:
        only = all_findings(gw, run["id"], kind=kind, limit=2)
        assert only == [f for f in findings if f["kind"] == kind], kind
    r = gw.get(f"/v1/reconciliations/{run['id']}/findings?kind=bogus")
    error_of(r, 400, "invalid_request", "kind")
    for bad in ("0", "x", "1001"):
        error_of(gw.get(f"/v1/reconciliations/{run['id']}/findings?limit={bad}"), 400, "invalid_request", "limit")
    error_of(gw.get(f"/v1/reconciliations/{run['id']}/findings?after=nonsense"), 400, "invalid_request", "after")


def test_runs_list_newest_first_with_pagination(gateway):
    ids = []
    for mode in ("fast", "deep", "fast"):
        ids.append(start_run(gateway, mode=mode))
        wait_run(gateway, ids[-1])
    r = gateway.get("/v1/reconciliations")
    assert r.status == 200 and [x["id"] for x in r.json["items"]] == ids[::-1], r.json
    for x in r.json["items"]:
        check_run_shape(x)
    seen, after = [], None
    for _ in range(10):
        r = gateway.get("/v1/reconciliations?limit=1" + (f"&after={urllib.parse.quote(after, safe='')}"
                                                         if after else ""))
        assert r.status == 200 and len(r.json["items"]) <= 1, r
        seen += [x["id"] for x in r.json["items"]]
        after = r.json["next"]
        if after is None:
            break
    assert seen == ids[::-1], seen


# ----------------------------------------------------------- more behaviour


def test_periodic_validation_starts_fast_runs(gateway_factory, neo4j):
    gw = gateway_factory(args=["--validate-interval", "1"])
    r = gw.post("/v1/entities", {"id": "a", "type": "Person", "properties": {"name": "A"}})
    assert r.status == 201, r

    def a_finished_run():
        items = gw.get("/v1/reconciliations").json["items"]
        return next((x for x in items if x["state"] != "running"), None)
    run = poll(a_finished_run, 15, interval=0.2, what="a periodic validation run")
    assert (run["mode"], run["repair"], run["dry_run"], run["state"]) == ("fast", "none", False, "done"), run
    assert run["summary"]["entities_sqlite"] == 1
    assert neo4j.count_entity("a") == 1 and gw.store.count_entity("a") == 1


def test_writes_during_a_deep_run_are_not_reported(gateway, neo4j):
    """Writes racing the scan go through the gateway, so the stores always agree:
    the run must not report them (candidates are re-read before they count)."""
    gw = gateway
    ops = [{"op": "create_entity", "id": f"e{i:04d}", "type": "Item", "properties": {"n": i}} for i in range(800)]
    ops += [{"op": "create_relationship", "id": f"l{i:04d}", "type": "NEXT", "source": f"e{i:04d}",
             "target": f"e{i + 1:04d}"} for i in range(799)]
    r = gw.post("/v1/transactions", {"operations": ops})
    assert r.status == 200, r
    writer = Gateway(  # a second client connection, for the writer thread
        gw.sqlite_path, gw.neo4j_url, gw.log_path)
    writer.port = gw.port
    stop = threading.Event()
    errors = []
    done = [0]

    def write():
        i = 0
        while not stop.is_set():
            done[0] = i
            try:
                eid = f"e{(i * 37) % 800:04d}"
                r = writer.patch(f"/v1/entities/{eid}", {"properties": {"n": -i}})
                if r.status != 200:
                    errors.append(r)
                r = writer.post("/v1/entities", {"id": f"w{i:05d}", "type": "Item", "properties": {"n": i}})
                if r.status != 201:
                    errors.append(r)
                r = writer.delete(f"/v1/relationships/l{(i * 13) % 799:04d}")
                if r.status not in (204, 404):
                    errors.append(r)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            i += 1

    t = threading.Thread(target=write, daemon=True)
    t.start()
    try:
        poll(lambda: done[0] >= 3, 30, what="the writer to get going")
        at_start = done[0]
        rid = start_run(gw, mode="deep")
        wait_run(gw, rid)
        at_end = done[0]
        findings = all_findings(gw, rid)
    finally:
        stop.set()
        t.join(30)
        writer._drop_conn()
    assert errors == [], errors[:5]
    assert at_end > at_start, "no write happened while the run was going on"
    assert findings == [], f"a deep run beside ordinary writes reported {findings[:5]}"
    assert_stores_consistent(gw.store, neo4j)
    assert_clean(gw, neo4j, "deep")
