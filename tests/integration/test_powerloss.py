"""Power loss (DESIGN.md invariant 8; issue 9 item 4), end to end: the real
gateway runs on the SQLite fault shim (stores/sqlite/testvfs.h) in power-loss mode.
At the cut point (the n-th write or sync of the database or the WAL, counted
from the moment the writer turned ready) a random subset of the writes not
yet synced reaches the disk, some torn at sector boundaries, and the gateway
is SIGKILLed. It is restarted on the same file without the shim; every write
it acknowledged must then be in SQLite and, after recovery, in Neo4j; the
file must pass integrity_check and the stores must agree.

The cut points come from a traced run of the same writes without a cut: the
first commit, then around every checkpoint (from its first copy to the
database's sync) and every WAL restart (from the new header to the next
sync of the WAL): the windows where a write that was not synced can take
acknowledged data with it. The shim's autocheckpoint=AUTOCHECKPOINT makes
them come every few transactions instead of every 1,000 pages (the same
checkpoint code with the same sync flags, only more often: see
tests/unit/test_powerloss.c), so the cuts land on checkpoints run by a
client commit and by a mark, and on restarts by either.

CI runs CUTS cut points; BISTORE_TEST_POWERLOSS_CUTS=N runs N (the windows'
other calls, then points spread over the whole run)."""

import os
import re

import pytest

from harness import CONNECTION_ERRORS, Gateway, assert_intents_settled, assert_stores_consistent

CUTS = int(os.environ.get("BISTORE_TEST_POWERLOSS_CUTS", "20"))
TXNS = 30  # transactions of the traced run; a cut run stops at its cut
ENTITIES = 6  # per transaction, 1,500 bytes of properties each, and one relationship
AUTOCHECKPOINT = 32  # pages
ARGS = ["--validate-interval", "0"]

TRACE_RE = re.compile(r"testvfs: #(\d+) (write|sync|truncate|checkpoint of) (db|wal|journal) at (\d+), (\d+) bytes")
ARMED = "testvfs: ready reached"


def txn_ids(t):
    return [f"pl-{t:04d}-{j:02d}" for j in range(ENTITIES)], f"pl-{t:04d}-r"


def txn_body(t):
    ids, rel = txn_ids(t)
    ops = [{"op": "create_entity", "ref": f"e{j}", "id": eid, "type": "Doc",
            "properties": {"t": t, "j": j, "body": chr(ord("a") + (t + j) % 26) * 1500}}
           for j, eid in enumerate(ids)]
    ops.append({"op": "create_relationship", "id": rel, "type": "CITES", "source": {"ref": "e0"},
                "target": {"ref": "e1"}})
    return {"operations": ops}


def spec(cut, seed, extra=""):
    return f"powerloss,cut={cut},seed={seed},torn,after=ready,autocheckpoint={AUTOCHECKPOINT}{extra}"


def parse_trace(log_text):
    """[(number, what, file, offset)] of the modelled calls after the shim armed."""
    at = log_text.find(ARMED)
    assert at >= 0, "the shim never armed (no 'ready reached' line)"
    return [(int(m[1]), m[2], m[3], int(m[4])) for m in TRACE_RE.finditer(log_text, at)]


def windows(calls):
    """The numbered ranges where unsynced writes may carry acknowledged data."""
    found = []
    for i, (num, what, kind, off) in enumerate(calls):
        if what == "checkpoint of":
            end = next((n for n, w, k, _ in calls[i:] if w == "sync" and k == "db"), None)
            if end:
                found.append((num + 1, end))
        elif what == "write" and kind == "wal" and off == 0:
            end = next((n for n, w, k, _ in calls[i:] if w == "sync" and k == "wal"), None)
            if end:
                found.append((num, end))
    return found


def plan_cuts(calls, count):
    """count cut points: the first WAL sync, each window's first calls and last,
    its middle, then points spread evenly over the run."""
    last = max(n for n, *_ in calls)
    first_sync = next(n for n, w, k, _ in calls if w == "sync" and k == "wal")
    per_window = [sorted({lo, min(lo + 1, hi), (lo + hi) // 2, max(hi - 1, lo), hi}) for lo, hi in windows(calls)]
    picked = [first_sync]
    for rank in range(max((len(c) for c in per_window), default=0)):
        picked += [c[rank] for c in per_window if rank < len(c)]
    step = max(1, last // max(count, 1))
    picked += list(range(step, last, step))
    out = []
    for cut in picked:
        if cut not in out and cut <= last - 5:  # the cut runs must reach it
            out.append(cut)
    assert len(out) >= count, f"only {len(out)} cut points in a run of {last} calls"
    return out[:count]


@pytest.fixture(scope="module")
def cut_plan(neo4j, tmp_path_factory):
    """Runs the writes once through the shim without a cut, traced."""
    neo4j.ensure_running()
    neo4j.wipe()
    home = tmp_path_factory.mktemp("powerloss-trace")
    gw = Gateway(home / "trace.sqlite", neo4j.url, home / "gateway.log", args=ARGS,
                 env={"BISTORE_SQLITE_FAULT": spec(10 ** 9, 1, ",trace")})
    gw.start()
    try:
        for t in range(TXNS):
            r = gw.post("/v1/transactions", txn_body(t))
            assert r.status == 200, r
    finally:
        code = gw.terminate()
    assert code == 0, f"traced gateway exit status {code}:\n{gw.log_tail()}"
    calls = parse_trace(gw.log_path.read_text(errors="replace"))
    checkpoints = sum(1 for _, w, *_ in calls if w == "checkpoint of")
    assert checkpoints >= 5, f"{checkpoints} checkpoints in {len(calls)} calls: make the run longer"
    cuts = plan_cuts(calls, CUTS)
    print(f"\npowerloss: traced run of {TXNS} transactions: {len(calls)} writes and syncs, "
          f"{checkpoints} checkpoints, {len(windows(calls))} windows; cut points {cuts}")
    return cuts


def write_until_cut(gw):
    """Writes until the shim kills the gateway; the acknowledged transactions and
    the one in flight when it died."""
    acked = []
    for t in range(TXNS + 50):
        try:
            r = gw.post("/v1/transactions", txn_body(t), fresh=True)
        except CONNECTION_ERRORS:
            return acked, t
        assert r.status == 200, (t, r)
        acked.append(t)
    pytest.fail(f"the gateway outlived its cut point after {len(acked)} transactions:\n{gw.log_tail()}")


@pytest.mark.parametrize("k", range(CUTS))
def test_power_cut_loses_no_acknowledged_write(gateway_factory, neo4j, cut_plan, k):
    cut = cut_plan[k]
    gw = gateway_factory(args=ARGS, env={"BISTORE_SQLITE_FAULT": spec(cut, k + 1)})
    acked, in_flight = write_until_cut(gw)
    gw.expect_fault_kill()
    assert "testvfs: power cut at call" in gw.log_path.read_text(errors="replace")

    gw2 = gateway_factory(sqlite=gw.sqlite_path, args=ARGS)  # no shim; waits for /readyz
    store = gw2.store
    assert store.query("PRAGMA integrity_check") == [{"integrity_check": "ok"}]
    s_ent, s_rel = set(store.entities()), set(store.relationships())
    lost = [t for t in acked if not (set(txn_ids(t)[0]) <= s_ent and txn_ids(t)[1] in s_rel)]
    assert lost == [], f"cut {cut}: acknowledged transactions lost: {lost} of {len(acked)}"
    ids, rel = txn_ids(in_flight)
    there = sum(e in s_ent for e in ids) + (rel in s_rel)
    assert there in (0, len(ids) + 1), f"cut {cut}: the transaction in flight is half there ({there})"
    assert_stores_consistent(store, neo4j)  # so every acknowledged write is in Neo4j too
    assert_intents_settled(store, neo4j)
    print(f"cut {cut}: {len(acked)} acknowledged transactions ({len(acked) * ENTITIES} entities) "
          f"all in both stores; the one in flight {'committed' if there else 'absent'}")
