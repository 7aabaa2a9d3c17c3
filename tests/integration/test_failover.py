"""Failover (README "Replication"): a primary and a standby, each running
its own real Litestream (--replica-dir), against the one real Neo4j.

16 writers write continuously through the Python client, which knows both
gateways' addresses and retries with the same Idempotency-Key. The primary
is SIGKILLed (with its Litestream: a machine lost), and in another run its
data folder is deleted too (a disk lost); the standby takes over once the
lease runs out, and a new standby is started beside it for the next round.
Afterwards every acknowledged write is in both stores exactly once, the
stores agree field by field, a deep reconciliation finds nothing, and the
test prints the time from each kill to the first write the new primary
accepted. BISTORE_TEST_FAILOVERS sets the rounds of the long run (20 or
more; the suite's run does FAILOVERS_SHORT).

Also: the old primary restarted on its file after the promotion is fenced
(/readyz and the metrics say so, a write answers 503 and reaches no store),
and it rejoins as a standby on a new path, from which SIGUSR1 promotes it
on demand, which in turn deposes the gateway it replaced."""

import os
import shutil
import signal
import statistics
import threading
import time

import pytest

from harness import assert_intents_settled, assert_stores_consistent, poll
from harness.litestream import litestream_binary
from harness.pyclient import bistore
from harness.reconcile import assert_clean

WRITERS = 16
FAILOVERS_SHORT = 3
LEASE_S = 2
WRITES_PER_ROUND = 60  # acknowledged writes between two failovers, at least
# "takes over in seconds": the lease, the fence, the catch-up and recovery
# measure about 2.3 s here; a takeover slower than this is a defect, not noise
TAKEOVER_BOUND_S = 15


class Cluster:
    """The gateways of one test: the primary, its standby, the replica folder."""

    def __init__(self, gateway_factory, tmp_path):
        self.factory = gateway_factory
        self.tmp = tmp_path
        self.replicas = tmp_path / "replicas"
        self.replicas.mkdir()
        self.litestream = litestream_binary()
        self.nodes = 0

    def _args(self, primary=None):
        args = ["--replica-dir", str(self.replicas), "--litestream", self.litestream]
        if primary:
            args += ["--standby-of", primary.url, "--lease-timeout", str(LEASE_S)]
        return args

    def new_dir(self):
        self.nodes += 1
        d = self.tmp / f"node-{self.nodes}"
        d.mkdir()
        return d

    def primary(self, data_dir=None):
        d = data_dir or self.new_dir()
        return self.factory(sqlite=d / "bistore.sqlite", args=self._args())

    def standby(self, primary, data_dir=None):
        d = data_dir or self.new_dir()
        gw = self.factory(sqlite=d / "bistore.sqlite", args=self._args(primary), ready=False)
        poll(lambda: role(gw) == "standby", timeout=30, what="the standby's /readyz")
        return gw


def role(gw):
    r = gw.readyz()
    if r is None:
        return None
    if r.status == 200:
        return r.json["role"]
    return r.json.get("role")


def serving(gw):
    """Ready as the primary (/readyz 200)."""
    r = gw.readyz()
    return r is not None and r.status == 200 and r.json["role"] == "primary"


def metric_role(gw):
    r = gw.request("GET", "/metrics")
    assert r.status == 200
    text = r.body.decode() if isinstance(r.body, bytes) else r.body
    lines = [ln for ln in text.splitlines() if ln.startswith("bistore_role{") and ln.endswith(" 1")]
    assert len(lines) == 1, lines
    return lines[0].split('"')[1]


class Writers:
    """WRITERS threads creating entities through a client with both
    addresses; each acknowledged write is recorded with when it came."""

    def __init__(self, addresses):
        self.lock = threading.Lock()
        self.addresses = list(addresses)
        self.generation = 0
        self.acked = {}  # id -> (writer, n)
        self.ack_times = []  # (monotonic, address)
        self.failures = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(WRITERS)]

    def point_at(self, addresses):
        with self.lock:
            self.addresses = list(addresses)
            self.generation += 1

    def _client(self):
        with self.lock:
            addresses, gen = list(self.addresses), self.generation
        policy = bistore.RetryPolicy(deadline=60.0, backoff=0.05, max_backoff=0.3)
        return bistore.Client(addresses, retry=policy, timeout=10.0), gen

    def _run(self, w):
        try:
            self._write(w)
        except Exception as exc:  # a writer that dies is a failure, not a stall
            with self.lock:
                self.failures.append((w, None, repr(exc)))

    def _write(self, w):
        client, gen = self._client()
        n = 0
        while not self.stop.is_set():
            if gen != self.generation:
                client.close()
                client, gen = self._client()
            n += 1
            try:
                e = client.create_entity("Paper", {"writer": w, "n": n})
            except bistore.BistoreError as exc:
                with self.lock:
                    self.failures.append((w, n, repr(exc)))
                continue
            with self.lock:
                self.acked[e["id"]] = (w, n)
                self.ack_times.append((time.monotonic(), client.current_address))
        client.close()

    def start(self):
        for t in self.threads:
            t.start()

    def count(self):
        with self.lock:
            return len(self.acked)

    def first_ack_after(self, t0, address):
        with self.lock:
            times = [t for t, a in self.ack_times if t > t0 and a == address]
        return min(times) if times else None

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(90)
        assert not any(t.is_alive() for t in self.threads), "a writer did not stop"


def wait_writes(writers, more, timeout=60):
    target = writers.count() + more

    def enough():
        assert not writers.failures, writers.failures[:5]
        return writers.count() >= target
    poll(enough, timeout=timeout, what=f"{more} more acknowledged writes")


def run_failovers(cluster, neo4j, rounds, lose_disk):
    primary = cluster.primary()
    standby = cluster.standby(primary)
    writers = Writers([primary.url, standby.url])
    writers.start()
    times = []
    try:
        for i in range(rounds):
            wait_writes(writers, WRITES_PER_ROUND)
            primary.kill()
            t0 = time.monotonic()
            if lose_disk:
                shutil.rmtree(primary.sqlite_path.parent)
            poll(lambda: serving(standby), timeout=60, what=f"round {i + 1}: the standby's takeover")
            first = poll(lambda: writers.first_ack_after(t0, standby.url), timeout=60,
                         what=f"round {i + 1}: a write accepted by the new primary")
            times.append(first - t0)
            primary, standby = standby, cluster.standby(standby)
            writers.point_at([primary.url, standby.url])
        wait_writes(writers, WRITES_PER_ROUND)
    finally:
        writers.finish()
    return primary, standby, writers, times


def check_every_ack(primary, neo4j, writers):
    """Every acknowledged write exactly once in both stores; the stores agree."""
    poll(lambda: primary.readyz().status == 200, timeout=30, what="the last primary ready")
    store = primary.store
    s_ent, n_ent = store.entities(), neo4j.entities()
    missing = [eid for eid in writers.acked if eid not in s_ent or eid not in n_ent]
    assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    for eid in list(writers.acked)[:: max(1, len(writers.acked) // 200)]:
        assert store.count_entity(eid) == 1 and neo4j.count_entity(eid) == 1, eid
    # each (writer, n) at most once: a retried write took effect once
    seen = {}
    for eid, row in s_ent.items():
        key = (row["properties"]["writer"], row["properties"]["n"])
        assert key not in seen, f"write {key} took effect twice: {seen[key]} and {eid}"
        seen[key] = eid
    assert_stores_consistent(store, neo4j)
    assert_intents_settled(store, neo4j)
    assert_clean(primary, neo4j, mode="deep")


def report(name, times, writers):
    print(f"\n{name}: {len(times)} failovers, kill to first accepted write: median "
          f"{statistics.median(times):.2f} s, worst {max(times):.2f} s (lease {LEASE_S} s); "
          f"{len(writers.acked)} writes acknowledged, {len(writers.failures)} calls given up")


def rounds():
    return int(os.environ.get("BISTORE_TEST_FAILOVERS", FAILOVERS_SHORT))


@pytest.mark.parametrize("lose_disk", [False, True], ids=["kill", "kill-and-lose-disk"])
def test_failover_loses_no_acknowledged_write(gateway_factory, fresh_neo4j, tmp_path, lose_disk):
    cluster = Cluster(gateway_factory, tmp_path)
    primary, standby, writers, times = run_failovers(cluster, fresh_neo4j, rounds(), lose_disk)
    report("lost disk" if lose_disk else "SIGKILL", times, writers)
    assert max(times) < TAKEOVER_BOUND_S, times
    assert writers.failures == [], writers.failures[:5]
    check_every_ack(primary, fresh_neo4j, writers)
    assert role(standby) == "standby" and metric_role(standby) == "standby"
    assert metric_role(primary) == "primary"


def test_old_primary_is_fenced_and_rejoins_as_standby(gateway_factory, fresh_neo4j, tmp_path, request):
    cluster = Cluster(gateway_factory, tmp_path)
    old_dir = cluster.new_dir()
    old = cluster.primary(old_dir)
    standby = cluster.standby(old)
    status, _, body = old.request("POST", "/v1/entities", {"type": "Paper", "properties": {"n": 1}})
    assert status == 201, body
    first = body["id"]
    old.kill()
    poll(lambda: serving(standby), timeout=60, what="the takeover")
    new = standby
    assert new.readyz().json["epoch"] == 1

    # Its file is not a standby's copy: a standby refuses it, untouched.
    before = (old_dir / "bistore.sqlite").read_bytes()
    with pytest.raises(AssertionError, match="is not a standby's copy"):
        gateway_factory(sqlite=old_dir / "bistore.sqlite", args=cluster._args(new), ready=False)
    request.node._bistore_gateways[-1].deliberately_stopped = True  # it exits 1: the point
    assert (old_dir / "bistore.sqlite").read_bytes() == before

    # The old primary on its own file again: fenced, writes nothing.
    again = gateway_factory(sqlite=old_dir / "bistore.sqlite", args=cluster._args(), ready=False)
    poll(lambda: role(again) == "fenced", timeout=30, what="the old primary's /readyz: fenced")
    assert "fenced" in again.readyz().json["error"]["message"]
    assert metric_role(again) == "fenced"
    status, _, body = again.request("POST", "/v1/entities", {"type": "Paper", "properties": {"n": 2}})
    assert status == 503, body
    assert fresh_neo4j.value("MATCH (e:Entity) RETURN count(e)") == 1
    assert again.store.value("SELECT count(*) FROM entities") == 1, "the fenced gateway wrote SQLite"
    assert again.terminate() == 0

    # ... and rejoins as the new primary's standby, on a new path.
    rejoined = cluster.standby(new)
    assert metric_role(rejoined) == "standby"
    status, _, body = new.request("POST", "/v1/entities", {"type": "Paper", "properties": {"n": 3}})
    assert status == 201, body
    third = body["id"]
    status, _, body = rejoined.request("GET", f"/v1/entities/{third}")
    assert (status, body["error"]["code"]) == (503, "standby")

    # Promotion on demand: SIGUSR1 while the primary still runs. The
    # primary is fenced at its next write, which it does not acknowledge.
    rejoined.proc.send_signal(signal.SIGUSR1)
    poll(lambda: serving(rejoined), timeout=60, what="the promotion on SIGUSR1")
    assert rejoined.readyz().json["epoch"] == 2
    status, _, body = new.request("POST", "/v1/entities", {"type": "Paper", "properties": {"n": 4}})
    assert status == 503, body
    poll(lambda: role(new) == "fenced", timeout=30, what="the deposed primary's /readyz")
    ns = [e["properties"]["n"] for e in new.store.entities().values()]
    assert 4 not in ns, "the deposed primary kept the write it refused"
    status, _, body = rejoined.request("GET", f"/v1/entities/{third}")
    assert status == 200, body
    status, _, body = rejoined.request("GET", f"/v1/entities/{first}")
    assert status == 200, body
    assert_stores_consistent(rejoined.store, fresh_neo4j)
    assert fresh_neo4j.value("MATCH (e:Entity) RETURN count(e)") == 2
    assert_clean(rejoined, fresh_neo4j, mode="deep")


def test_of_two_standbys_one_takes_over(gateway_factory, fresh_neo4j, tmp_path):
    """Two standbys of one primary: when it dies, one takes over; the other
    finds the epoch moved (its fence is refused, or it sees the new replica)
    and stays a standby, however long the old primary stays silent."""
    cluster = Cluster(gateway_factory, tmp_path)
    primary = cluster.primary()
    first, second = cluster.standby(primary), cluster.standby(primary)
    status, _, body = primary.request("POST", "/v1/entities", {"type": "Paper", "properties": {"n": 1}})
    assert status == 201, body
    primary.kill()
    winner = poll(lambda: next((g for g in (first, second) if serving(g)), None), timeout=60,
                  what="a takeover")
    loser = second if winner is first else first
    time.sleep(3 * LEASE_S)  # long past the lease: it still must not take over
    assert role(loser) == "standby", loser.readyz()
    assert serving(winner)
    assert winner.readyz().json["epoch"] == 1
    status, _, body = winner.request("POST", "/v1/entities", {"type": "Paper", "properties": {"n": 2}})
    assert status == 201, body
    assert_stores_consistent(winner.store, fresh_neo4j)
    assert fresh_neo4j.value("MATCH (w:_BistoreWatermark) RETURN w.epoch") == 1


def test_litestream_runs_as_the_gateways_child_without_its_secrets(gateway_factory, fresh_neo4j, tmp_path):
    """--replica-dir: Litestream is the gateway's child, in a process group
    of its own (a Ctrl-C to the gateway's group does not cut the replica
    while the writer finishes), without the BISTORE_* environment (the
    Neo4j password), and it dies with a SIGKILLed gateway."""
    cluster = Cluster(gateway_factory, tmp_path)
    d = cluster.new_dir()
    gw = gateway_factory(sqlite=d / "bistore.sqlite", args=cluster._args(),
                         env={"BISTORE_NEO4J_PASSWORD": "not-for-litestream"})
    pid = gw.proc.pid
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    assert len(children) == 1, children
    child = int(children[0])
    assert "litestream" in open(f"/proc/{child}/cmdline").read()
    env = open(f"/proc/{child}/environ", "rb").read()
    assert b"not-for-litestream" not in env and b"BISTORE_" not in env
    assert os.getpgid(child) == child != os.getpgid(pid)
    gw.kill()
    poll(lambda: not os.path.exists(f"/proc/{child}") or "Z" in open(f"/proc/{child}/stat").read().split()[2],
         timeout=10, what="litestream gone with its gateway")


def test_a_takeover_cut_short_after_its_fence_resumes_on_restart(gateway_factory, fresh_neo4j, tmp_path):
    """The fence is the point of no return: the old primary is deposed. A
    standby that dies after it (here: its Litestream wrapper SIGKILLs it at
    the catch-up's `litestream ltx`) has written "fenced <epoch>" into its
    .standby; restarted with the same flags it takes over from its copy
    (never following the old replica again, fencing from that epoch) and
    serves every acknowledged write."""
    cluster = Cluster(gateway_factory, tmp_path)
    primary = cluster.primary()
    wrapper = tmp_path / "litestream-dies-at-ltx"
    wrapper.write_text('#!/bin/sh\nif [ "$1" = ltx ]; then kill -9 "$PPID"; exit 1; fi\n'
                       f'exec "{cluster.litestream}" "$@"\n')
    wrapper.chmod(0o755)
    d = cluster.new_dir()
    flags = ["--replica-dir", str(cluster.replicas), "--standby-of", primary.url, "--lease-timeout", str(LEASE_S)]
    doomed = gateway_factory(sqlite=d / "bistore.sqlite", args=[*flags, "--litestream", str(wrapper)], ready=False)
    poll(lambda: role(doomed) == "standby", timeout=30, what="the standby")
    ids = []
    for n in range(5):
        status, _, body = primary.request("POST", "/v1/entities", {"type": "Paper", "properties": {"n": n}})
        assert status == 201, body
        ids.append(body["id"])
    primary.kill()
    assert doomed.proc.wait(60) == -signal.SIGKILL, doomed.log_tail()
    doomed.deliberately_stopped = True
    assert fresh_neo4j.value("MATCH (w:_BistoreWatermark) RETURN w.epoch") == 1, "the fence came first"
    assert (d / "bistore.sqlite.standby").read_text().strip() == "fenced 1"

    again = gateway_factory(sqlite=d / "bistore.sqlite", args=[*flags, "--litestream", cluster.litestream],
                            ready=False)
    poll(lambda: serving(again), timeout=60, what="the resumed takeover")
    assert again.readyz().json["epoch"] == 2
    for eid in ids:
        status, _, body = again.request("GET", f"/v1/entities/{eid}")
        assert status == 200, body
    assert_stores_consistent(again.store, fresh_neo4j)
    assert not (d / "bistore.sqlite.standby").exists()
    assert "resuming the takeover" in again.log_path.read_text() or "taken over again" in again.log_path.read_text()


def test_a_promotion_asked_for_before_the_first_copy_waits_for_it(gateway_factory, fresh_neo4j, tmp_path):
    """SIGUSR1 to a standby whose follower has not finished its first
    restore (a wrapper makes `litestream restore` start 2 s late): the
    promotion stays asked for and happens once the copy is complete, with
    the primary's write in it (it used to be dropped: no copy to read)."""
    cluster = Cluster(gateway_factory, tmp_path)
    primary = cluster.primary()
    status, _, body = primary.request("POST", "/v1/entities", {"type": "Paper", "properties": {"n": 1}})
    assert status == 201, body
    wrapper = tmp_path / "litestream-slow-restore"
    wrapper.write_text('#!/bin/sh\nif [ "$1" = restore ]; then sleep 2; fi\n'
                       f'exec "{cluster.litestream}" "$@"\n')
    wrapper.chmod(0o755)
    d = cluster.new_dir()
    sb = gateway_factory(sqlite=d / "bistore.sqlite", ready=False,
                         args=["--replica-dir", str(cluster.replicas), "--litestream", str(wrapper),
                               "--standby-of", primary.url, "--lease-timeout", "30"])
    poll(lambda: role(sb) == "standby", timeout=30, what="the standby")
    assert not (d / "bistore.sqlite-txid").exists(), "the copy came too soon for this test"
    sb.proc.send_signal(signal.SIGUSR1)
    poll(lambda: serving(sb), timeout=60, what="the promotion once the copy is there")
    assert sb.readyz().json["epoch"] == 1
    status, _, body = sb.request("GET", f"/v1/entities/{body['id']}")
    assert status == 200, body
    status, _, _ = primary.request("POST", "/v1/entities", {"type": "Paper", "properties": {"n": 2}})
    assert status == 503
