"""`bistore promote` (README "Replication"): the store's watermark moves to a
new epoch, the Neo4j transactions holding its lock are terminated, and the
promoted SQLite file takes the epoch. Every other copy of the store is then
fenced: its guard refuses (the epoch is part of it), its recovery reads the
epoch and refuses writes, and nothing it sends reaches either store."""

import re
import sqlite3
import threading

import pytest

from harness import CONNECTION_ERRORS, assert_intents_settled, assert_stores_consistent, poll
from harness.api import create_entity
from harness.reconcile import assert_clean, run_cli

TX_COMMIT = re.compile(rb"POST /db/[^ ]*/tx/[^/ ]+/commit")


def copy_store(src, dst):
    """A consistent copy of a gateway's file (as a restore of its replica gives)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def promote(path, neo4j_url):
    r = run_cli("promote", "--sqlite", str(path), "--neo4j-url", neo4j_url, "--log-format", "text")
    assert r.returncode == 0, f"promote failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    m = re.search(r"primary at epoch (\d+)", r.stdout)
    assert m, r.stdout
    return int(m.group(1)), r.stderr


def watermark(neo4j):
    return neo4j.run("MATCH (w:_BistoreWatermark) RETURN w.seq, w.epoch")


def test_a_running_primary_is_fenced_by_a_promotion(gateway_factory, fresh_neo4j, tmp_path):
    old = gateway_factory(sqlite=tmp_path / "old.sqlite")
    create_entity(old, id="before", type="Doc")
    new_file = copy_store(old.sqlite_path, tmp_path / "new.sqlite")

    epoch, _ = promote(new_file, fresh_neo4j.url)
    assert epoch == 1
    assert [row[1] for row in watermark(fresh_neo4j)] == [1]
    # The old primary's next write fails its guard: nothing of it anywhere.
    r = old.post("/v1/entities", {"id": "deposed", "type": "Doc"})
    assert (r.status, r.error_code()) == (503, "not_ready"), r
    assert "fenced" in r.json["error"]["message"], r
    assert old.store.count_entity("deposed") == 0
    assert fresh_neo4j.value("MATCH (n:Entity {id: 'deposed'}) RETURN count(n)") == 0
    ready = old.readyz()
    assert ready.status == 503 and "fenced" in ready.json["error"]["message"], ready
    # and it stays so: the next one is refused before it is written.
    r = old.post("/v1/entities", {"id": "deposed-2", "type": "Doc"})
    assert r.status == 503, r
    assert old.store.count_entity("deposed-2") == 0
    old.terminate()

    # The promoted copy serves, at the new epoch.
    new = gateway_factory(sqlite=new_file)
    create_entity(new, id="after", type="Doc")
    assert [row[1] for row in watermark(fresh_neo4j)] == [1]
    assert_stores_consistent(new.store, fresh_neo4j)
    assert_clean(new, fresh_neo4j, mode="deep")

    # The old primary restarted on its own file: fenced from the start.
    again = gateway_factory(sqlite=tmp_path / "old.sqlite", ready=False)
    poll(lambda: (r := again.readyz()) is not None and r.status == 503 and "fenced" in r.json["error"]["message"],
         timeout=20, what="the old primary to say it is fenced")
    r = again.post("/v1/entities", {"id": "deposed-3", "type": "Doc"})
    assert r.status == 503, r
    assert fresh_neo4j.value("MATCH (n:Entity {id: 'deposed-3'}) RETURN count(n)") == 0


def test_promote_terminates_the_transaction_a_lost_primary_left_holding_the_watermark(
        gateway_factory, proxy_factory, fresh_neo4j, tmp_path):
    proxy = proxy_factory()
    old = gateway_factory(sqlite=tmp_path / "old.sqlite", neo4j_url=proxy.url)
    create_entity(old, id="before", type="Doc")
    new_file = copy_store(old.sqlite_path, tmp_path / "new.sqlite")
    # A write whose Neo4j commit never arrives: its transaction ran the
    # guard (it holds the watermark's lock) when its gateway is lost.
    proxy.hold_matching(TX_COMMIT)
    t = threading.Thread(target=lambda: _quietly(old.post, "/v1/entities", {"id": "lost", "type": "Doc"}),
                         daemon=True)
    t.start()
    assert proxy.wait_held(1, timeout=20), old.log_tail()
    old.kill()
    proxy.release(deliver=False)

    epoch, stderr = promote(new_file, fresh_neo4j.url)
    assert epoch == 1
    assert "terminated Neo4j transaction" in stderr, stderr
    new = gateway_factory(sqlite=new_file)  # ready within READY_TIMEOUT, not Neo4j's 60 s idle timeout
    create_entity(new, id="after", type="Doc")
    assert fresh_neo4j.value("MATCH (n:Entity {id: 'lost'}) RETURN count(n)") == 0
    assert new.store.count_entity("lost") == 0  # the copy was taken before it
    assert_intents_settled(new.store, fresh_neo4j)
    assert_stores_consistent(new.store, fresh_neo4j)
    # A second promotion moves the epoch on again; the first copy is fenced too.
    third = copy_store(new_file, tmp_path / "third.sqlite")
    new.terminate()
    assert promote(third, fresh_neo4j.url)[0] == 2
    fenced = gateway_factory(sqlite=new_file, ready=False)
    poll(lambda: (r := fenced.readyz()) is not None and r.status == 503 and "fenced" in r.json["error"]["message"],
         timeout=20, what="the once-promoted copy to be fenced")


def test_promote_refuses_a_copy_older_than_what_neo4j_holds(gateway_factory, fresh_neo4j, tmp_path):
    """The copy was taken, then the old primary wrote on: promote fences it,
    finds Neo4j's watermark past the copy's log and refuses (the copy lacks
    acknowledged writes); a copy taken now, after the fence, has them all."""
    old = gateway_factory(sqlite=tmp_path / "old.sqlite")
    create_entity(old, id="in-both-copies", type="Doc")
    stale = copy_store(old.sqlite_path, tmp_path / "stale.sqlite")
    create_entity(old, id="only-in-the-later-copy", type="Doc")
    r = run_cli("promote", "--sqlite", str(stale), "--neo4j-url", fresh_neo4j.url, "--log-format", "text")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "restore the replica again" in r.stderr, r.stderr
    # the old primary is fenced all the same: nothing more is acknowledged
    resp = old.post("/v1/entities", {"id": "after-the-fence", "type": "Doc"})
    assert resp.status == 503, resp
    assert fresh_neo4j.value("MATCH (n:Entity {id: 'after-the-fence'}) RETURN count(n)") == 0
    old.terminate()
    fresh = copy_store(old.sqlite_path, tmp_path / "fresh.sqlite")
    epoch, _ = promote(fresh, fresh_neo4j.url)
    assert epoch == 2
    new = gateway_factory(sqlite=fresh)
    for eid in ("in-both-copies", "only-in-the-later-copy"):
        assert new.get(f"/v1/entities/{eid}").status == 200
    assert_stores_consistent(new.store, fresh_neo4j)


def _quietly(fn, *args):
    try:
        fn(*args, timeout=60)
    except CONNECTION_ERRORS:
        pass


def test_one_process_at_a_time_writes_a_file(gateway_factory, fresh_neo4j, tmp_path, request):
    """promote, repair, resolve and a second gateway refuse a file a gateway
    serves (its flock on <file>.neo4j-tx), before they write anything: a
    promotion there would roll back the serving gateway's Neo4j transactions
    and move its own epoch under it. The gateway serves on, and once it has
    stopped the same promote works."""
    gw = gateway_factory(sqlite=tmp_path / "primary.sqlite")
    create_entity(gw, id="before", type="Doc")
    before = watermark(fresh_neo4j)
    for args in (["promote"], ["repair", "--policy", "sqlite_wins"], ["resolve"]):
        r = run_cli(*args, "--sqlite", str(gw.sqlite_path), "--neo4j-url", fresh_neo4j.url,
                    "--log-format", "text")
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert "open in another bistore process" in r.stderr, (args, r.stderr)
    assert watermark(fresh_neo4j) == before, "a refused tool wrote to Neo4j"
    with pytest.raises(AssertionError, match="open in another bistore process"):
        gateway_factory(sqlite=gw.sqlite_path, ready=False)  # exits 1 before it listens
    gw_second = request.node._bistore_gateways[-1]
    gw_second.deliberately_stopped = True  # its exit is the point
    assert gw_second.proc.returncode == 1
    create_entity(gw, id="after", type="Doc")
    assert gw.terminate() == 0
    epoch, _ = promote(gw.sqlite_path, fresh_neo4j.url)
    assert epoch == 1
