"""A gateway whose SQLite file a real Litestream replicates (--replica-socket;
README "Replication"): a write is acknowledged, and committed to Neo4j, only
once Litestream says the replica holds it. So the loss of the primary's
machine (gateway and Litestream SIGKILLed, the file given up) loses no
acknowledged write: a restore of the replica holds every one, and a gateway
started on the restored file (same Neo4j) recovers into stores that agree.
A write Litestream does not confirm (frozen, gone) is not acknowledged:
503 replication_unavailable, nothing in Neo4j, and it takes effect once the
replication is back (its intent is replayed then), which a retry with its
Idempotency-Key learns."""

import http.client
import json
import re
import shutil
import threading
import time

import pytest

from harness import Store, assert_intents_settled, assert_stores_consistent, poll
from harness.litestream import Litestream
from harness.reconcile import assert_clean
from test_promote import promote

WRITERS = 8
PER_WRITER = 40


@pytest.fixture
def litestream_factory(tmp_path):
    made = []

    def make(db_path, name="litestream"):
        ls = Litestream(db_path, tmp_path / name)
        made.append(ls)
        return ls

    yield make
    for ls in made:
        ls.close()


def replicated_gateway(gateway_factory, litestream_factory, tmp_path, args=()):
    """A gateway on a fresh file, then Litestream on that file: the gateway is
    not ready until Litestream answers (its recovery waits for the replica)."""
    db = tmp_path / "primary.sqlite"
    ls = litestream_factory(db)
    gw = gateway_factory(sqlite=db, args=["--replica-socket", ls.socket, *args], ready=False)
    poll(lambda: not_ready_for_replication(gw), timeout=10, what="/readyz: 503 for the replica")
    ls.start()
    gw.wait_ready()
    return gw, ls


def not_ready_for_replication(gw):
    r = gw.readyz()
    return r is not None and r.status == 503 and "replication: " in r.json["error"]["message"]


def post(port, path, body, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def takes_effect_once(gw, neo4j, body, key):
    """A write that was not acknowledged takes effect once the gateway is ready
    again (its intent replayed into Neo4j), and its Idempotency-Key's retry
    answers the stored outcome: created once."""
    gw.wait_ready()
    eid = body["id"]
    poll(lambda: neo4j.value("MATCH (n:Entity {id: $id}) RETURN count(n)", id=eid) == 1, timeout=30,
         what=f"{eid} replayed into Neo4j")
    status, again = post(gw.port, "/v1/entities", body, key)
    assert status == 201 and again["id"] == eid, again
    assert gw.store.count_entity(eid) == 1


def test_every_acknowledged_write_survives_the_loss_of_the_primary(gateway_factory, litestream_factory,
                                                                    tmp_path, fresh_neo4j):
    gw, ls = replicated_gateway(gateway_factory, litestream_factory, tmp_path, args=["--replica-timeout", "1"])
    acked, refused, lock, stop = [], [], threading.Lock(), threading.Event()

    def writer(w):
        for i in range(PER_WRITER):
            if stop.is_set():
                return
            a, b = f"r-{w}-{i}-a", f"r-{w}-{i}-b"
            body = {"operations": [
                {"op": "create_entity", "ref": "a", "id": a, "type": "Doc", "properties": {"w": w, "i": i}},
                {"op": "create_entity", "ref": "b", "id": b, "type": "Doc", "properties": {"w": w, "i": i}},
                {"op": "create_relationship", "id": f"r-{w}-{i}-ab", "type": "CITES",
                 "source": {"ref": "a"}, "target": {"ref": "b"}}]}
            try:
                status, answer = post(gw.port, "/v1/transactions", body, timeout=30)
            except OSError:
                return  # the primary is gone: this one's outcome is unknown
            with lock:
                if status == 200:
                    acked.append((w, i))
                elif status == 503:
                    refused.append((w, i, answer["error"]["code"]))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    # Litestream freezes for a while under the load: the groups whose wait
    # fails (the committer's, with groups behind them) are not acknowledged.
    poll(lambda: len(acked) >= WRITERS * PER_WRITER // 6, timeout=120, what="a sixth of the writes acknowledged")
    ls.freeze()
    poll(lambda: any(code == "replication_unavailable" for (_, _, code) in refused), timeout=30,
         what="a write the frozen replica did not confirm")
    ls.thaw()
    # The machine is lost while the writers write: both processes at once,
    # right after an acknowledgement, inside Litestream's own 1 s interval.
    poll(lambda: len(acked) >= WRITERS * PER_WRITER // 2, timeout=120, what="half the writes acknowledged")
    gw.kill()
    ls.kill()
    stop.set()
    for t in threads:
        t.join(60)
    assert len(acked) >= WRITERS * PER_WRITER // 2

    restored = ls.restore(tmp_path / "restored.sqlite")
    store = Store(restored)
    assert store.value("PRAGMA integrity_check") == "ok"
    have = {row["id"] for row in store.query("SELECT id FROM entities")}
    rels = {row["id"] for row in store.query("SELECT id FROM relationships")}
    lost = [(w, i) for (w, i) in acked if f"r-{w}-{i}-a" not in have or f"r-{w}-{i}-b" not in have
            or f"r-{w}-{i}-ab" not in rels]
    assert lost == [], f"{len(lost)} of {len(acked)} acknowledged transactions are not in the replica: {lost[:10]}"
    # Neo4j never holds an intent the replica lacks: its watermark is at or
    # behind the restored log, so a gateway on the restored file recovers.
    watermark = fresh_neo4j.value("MATCH (w:_BistoreWatermark) RETURN max(w.seq)")
    assert watermark <= store.max_intent_seq(), (watermark, store.max_intent_seq())

    # The restored file becomes the primary: the fence moves the watermark
    # to epoch 1 and terminates the lost primary's open Neo4j transaction
    # (its statements ran, its commit never came; it would hold the
    # watermark's lock until Neo4j's 60 s idle timeout), so the new
    # gateway recovers at once.
    epoch, _ = promote(restored, fresh_neo4j.url)
    assert epoch == 1
    ls2 = litestream_factory(restored, "litestream-2")
    gw2 = gateway_factory(sqlite=restored, args=["--replica-socket", ls2.socket], ready=False)
    ls2.start()
    gw2.wait_ready()
    assert_intents_settled(gw2.store, fresh_neo4j)
    assert_stores_consistent(gw2.store, fresh_neo4j)
    assert_clean(gw2, fresh_neo4j, mode="deep")
    for (w, i) in acked:
        assert gw2.get(f"/v1/entities/r-{w}-{i}-a").status == 200
    # The lost machine comes back with its old file: fenced, it writes nothing.
    old = gateway_factory(sqlite=gw.sqlite_path, ready=False)
    poll(lambda: (r := old.readyz()) is not None and r.status == 503 and "fenced" in r.json["error"]["message"],
         timeout=20, what="the old primary to say it is fenced")
    status, answer = post(old.port, "/v1/entities", {"id": "from-the-old-primary", "type": "Doc"})
    assert status == 503, answer
    assert fresh_neo4j.value("MATCH (n:Entity {id: 'from-the-old-primary'}) RETURN count(n)") == 0


def test_a_write_litestream_does_not_confirm_is_not_acknowledged(gateway_factory, litestream_factory,
                                                                 tmp_path, fresh_neo4j):
    gw, ls = replicated_gateway(gateway_factory, litestream_factory, tmp_path, args=["--replica-timeout", "1"])
    assert post(gw.port, "/v1/entities", {"id": "before", "type": "Doc"})[0] == 201

    ls.freeze()  # answers nothing: the wait times out
    key = {"Idempotency-Key": "frozen-1"}
    body = {"id": "frozen", "type": "Doc", "properties": {"n": 1}}
    t0 = time.monotonic()
    status, answer = post(gw.port, "/v1/entities", body, key)
    waited = time.monotonic() - t0
    assert (status, answer["error"]["code"]) == (503, "replication_unavailable"), answer
    assert waited < 10, waited  # --replica-timeout 1, and curl's grace after it
    # Committed in SQLite (its intent pending), not in Neo4j.
    assert gw.store.count_entity("frozen") == 1
    assert fresh_neo4j.value("MATCH (n:Entity {id: 'frozen'}) RETURN count(n)") == 0
    assert [i["seq"] for i in gw.store.pending_intents()] == [gw.store.max_intent_seq()]
    assert not_ready_for_replication(gw), gw.readyz()
    # Meanwhile a write is refused, and nothing of it written.
    status, answer = post(gw.port, "/v1/entities", {"id": "refused", "type": "Doc"})
    assert status == 503, answer
    assert gw.store.count_entity("refused") == 0

    ls.thaw()
    takes_effect_once(gw, fresh_neo4j, body, key)
    assert_intents_settled(gw.store, fresh_neo4j)
    assert_stores_consistent(gw.store, fresh_neo4j)

    # Litestream gone (its socket answers no one): refused at once, not acknowledged.
    ls.kill()
    status, answer = post(gw.port, "/v1/entities", {"id": "gone", "type": "Doc"})
    assert (status, answer["error"]["code"]) == (503, "replication_unavailable"), answer
    assert fresh_neo4j.value("MATCH (n:Entity {id: 'gone'}) RETURN count(n)") == 0
    # Back: the write it did not confirm takes effect.
    ls2 = litestream_factory(gw.sqlite_path, "litestream-2")
    shutil.rmtree(ls2.sock_dir, ignore_errors=True)
    ls2.socket, ls2.sock_dir = ls.socket, ls.sock_dir  # the path the gateway was given
    ls2.config.write_text(ls.config.read_text())
    ls2.start()
    gw.wait_ready()
    poll(lambda: fresh_neo4j.value("MATCH (n:Entity {id: 'gone'}) RETURN count(n)") == 1, timeout=20,
         what="the unconfirmed write replayed into Neo4j")
    assert_stores_consistent(gw.store, fresh_neo4j)


TX_COMMIT = re.compile(rb"POST /db/[^ ]*/tx/[^/ ]+/commit")


def test_a_write_neo4j_did_not_commit_is_not_acknowledged_with_a_replica(gateway_factory, litestream_factory,
                                                                        proxy_factory, tmp_path, fresh_neo4j):
    """Without a replica a Neo4j commit that fails after the commit point is
    answered 202 (pending: this gateway replays it). With one, a promotion
    may fence this gateway before it replays, from a copy restored before
    the replica had the write, so the answer is 503 commit_in_doubt; the
    write still takes effect here, and its key's retry says so."""
    proxy = proxy_factory()
    db = tmp_path / "primary.sqlite"
    ls = litestream_factory(db)
    gw = gateway_factory(sqlite=db, neo4j_url=proxy.url,
                         args=["--replica-socket", ls.socket, "--neo4j-timeout-ms", "3000"], ready=False)
    ls.start()
    gw.wait_ready()
    proxy.hold_matching(TX_COMMIT)
    outcome = {}
    key = {"Idempotency-Key": "in-doubt-1"}
    body = {"id": "in-doubt", "type": "Doc"}
    t = threading.Thread(target=lambda: outcome.update(r=post(gw.port, "/v1/entities", body, key)))
    t.start()
    assert proxy.wait_held(1, timeout=20), gw.log_tail()
    proxy.release(deliver=False)  # the commit never reaches Neo4j; its connection is cut
    t.join(30)
    status, answer = outcome["r"]
    assert (status, answer["error"]["code"]) == (503, "commit_in_doubt"), answer
    assert gw.store.count_entity("in-doubt") == 1
    proxy.pass_through()
    takes_effect_once(gw, fresh_neo4j, body, key)
    assert_stores_consistent(gw.store, fresh_neo4j)
