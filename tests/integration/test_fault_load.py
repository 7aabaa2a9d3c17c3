"""Fault under load (issue 13, item 6): 32 client threads write (creates,
If-Match updates and deletes of entities and relationships, batches with
refs; every write with an Idempotency-Key) while, in turn, the gateway is
SIGKILLed and restarted (BISTORE_TEST_FAULTLOAD_KILLS times, default 30),
the session Neo4j is stopped and started again, the fault proxy between
gateway and Neo4j adds latency, resets its connections and blackholes
traffic, and the filesystem of the SQLite file (a 32 MiB tmpfs mounted
here) fills up with a filler file.

The proxy is the project's own tests/integration/proxy.py (latency mode
added for this test), not toxiproxy: it needs nothing downloaded, the other
fault tests already use it, and it runs in-process, so the faults switch
at exact moments of the test.

Each thread owns its own ids, so its model of them (version, alive) is
exact: an acknowledged answer (2xx) updates the model, a refusal (4xx, 503,
507, 500 storage_error: nothing written per the contract) leaves it, and an
unknown outcome (no answer, a reset, a timeout, 500 outcome_unknown) is
retried with the same Idempotency-Key until a final answer comes; if none
comes before the thread's deadline, the objects it touched are "uncertain"
(either outcome accepted, for them only). Afterwards (a last SIGKILL and
restart, recovery done): every acknowledged state is in both stores,
deleted objects are gone from both, nothing is in one store only, versions
seen by clients never went backwards, and a deep reconciliation finds no
disagreement. A part whose fault cannot be made here (no mount, no Neo4j
home) is not passed: the test ends skipped, naming it, after every check.
"""

import http.client
import json
import os
import random
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter

import pytest

from harness import CONNECTION_ERRORS, assert_intents_settled, assert_stores_consistent, poll
from harness.reconcile import assert_clean

CLIENTS = 32
KILLS = int(os.environ.get("BISTORE_TEST_FAULTLOAD_KILLS", "30"))
CLIENT_TIMEOUT = 15.0  # seconds per request; the gateway's Neo4j timeout is 2 s
RESOLVE_BUDGET = 60.0  # seconds a thread retries one unknown outcome once the faults are over
NEVER_WRITTEN = (400, 404, 409, 412, 503, 507)


STATS_LOCK = threading.Lock()


def bump(stats, counter, key):
    with STATS_LOCK:
        stats[counter][key] += 1


def acked(stats):
    with STATS_LOCK:
        return sum(stats["acknowledged"].values())


def full_answers(stats):
    with STATS_LOCK:
        return dict(stats["while_full"])


class NotSent(Exception):
    """No gateway listened: the request never left (not an unknown outcome)."""


class Current:
    """The port of the gateway now serving (None while it is down)."""

    def __init__(self):
        self.port = None
        self.lock = threading.Lock()


class Client(threading.Thread):
    def __init__(self, n, current, stop, stats, full_window):
        super().__init__(name=f"client-{n}", daemon=True)
        self.n, self.current, self.stop, self.stats = n, current, stop, stats
        self.full_window = full_window
        self.rng = random.Random(1000 + n)
        self.seq = 0
        self.entities = {}  # id -> {"version": int, "alive": bool, "certain": bool}
        self.rels = {}  # id -> {"source", "target", "alive", "certain"}
        self.seen = {}  # id -> last version acknowledged to this client
        self.problems = []
        self.conn = None
        self.conn_port = None

    # ---- HTTP
    def send(self, method, path, body, headers):
        port = self.current.port
        if port is None:
            raise NotSent()
        if self.conn is None or self.conn_port != port:
            if self.conn is not None:
                self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
            self.conn_port = port
        data = json.dumps(body).encode() if body is not None else None
        hdrs = dict(headers)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=hdrs)
            resp = self.conn.getresponse()
            raw = resp.read()
        except ConnectionRefusedError:  # nothing listens: the request never left
            self.conn.close()
            self.conn = None
            raise NotSent()
        except CONNECTION_ERRORS:
            self.conn.close()
            self.conn = None
            raise
        if resp.will_close:
            self.conn.close()
            self.conn = None
        try:
            js = json.loads(raw) if raw else None
        except ValueError:
            js = None
        return resp.status, js

    def write(self, kind, method, path, body, headers=None):
        """One write with its own Idempotency-Key: ('ack', json) | ('refused', status) | ('unknown', None)."""
        hdrs = {"Idempotency-Key": str(uuid.uuid4()), **(headers or {})}
        bump(self.stats, "attempted", kind)
        first = True
        deadline = None
        while True:
            try:
                status, js = self.send(method, path, body, hdrs)
            except NotSent:
                time.sleep(0.1)
                continue
            except CONNECTION_ERRORS:
                status, js = None, None
            code = (js or {}).get("error", {}).get("code") if isinstance(js, dict) else None
            if self.full_window.is_set() and status is not None and status >= 500:
                bump(self.stats, "while_full", f"{status} {code}")
            if status is not None and 200 <= status < 300:
                bump(self.stats, "acknowledged", kind)
                if not first:
                    bump(self.stats, "unknown_resolved", kind)
                return "ack", js
            if status in NEVER_WRITTEN or (status == 500 and code == "storage_error"):
                if first:
                    bump(self.stats, "refused", f"{status} {code}")
                    if status >= 500:
                        time.sleep(0.2)  # back off while the gateway refuses
                    return "refused", status
                # A retry with the same key: the first attempt committed (its
                # answer comes back) or did not (this one runs now), so
                # 404/409/412 cannot happen; 503/507 say nothing of the first.
                if status in (404, 409, 412):
                    self.problems.append(f"{method} {path}: retry with the same key answered {status} {code}")
                    bump(self.stats, "unresolved", kind)
                    return "unknown", None
            # unknown outcome (no answer, timeout, outcome_unknown, 5xx): retry, same key
            if first:
                bump(self.stats, "unknown", kind)
                first = False
            if deadline is None and self.stop.is_set():
                deadline = time.monotonic() + RESOLVE_BUDGET
            if deadline is not None and time.monotonic() > deadline:
                bump(self.stats, "unresolved", kind)
                return "unknown", None
            time.sleep(0.2 + self.rng.random() * 0.3)

    # ---- model
    def saw(self, oid, version):
        last = self.seen.get(oid)
        if last is not None and version <= last:
            self.problems.append(f"{oid}: version {version} acknowledged after {last}")
        self.seen[oid] = version

    def new_id(self, what):
        self.seq += 1
        return f"fl-{self.n}-{what}{self.seq}"

    def alive_entities(self):
        return [e for e, m in self.entities.items() if m["alive"] and m["certain"]]

    def forget_entity(self, eid):
        self.entities[eid]["alive"] = False
        for m in self.rels.values():
            if m["alive"] and eid in (m["source"], m["target"]):
                m["alive"] = False

    def uncertain_entity(self, eid):
        self.entities[eid]["certain"] = False
        for m in self.rels.values():
            if eid in (m["source"], m["target"]):
                m["certain"] = False

    def op_create(self):
        eid = self.new_id("e")
        body = {"id": eid, "type": "Load", "properties": {"c": self.n, "k": 0}}
        self.entities[eid] = {"version": 1, "alive": False, "certain": True}
        out, js = self.write("create_entity", "POST", "/v1/entities", body)
        if out == "ack":
            self.entities[eid]["alive"] = True
            self.saw(eid, js["version"])
            if js["version"] != 1:
                self.problems.append(f"{eid}: created with version {js['version']}")
        elif out == "unknown":
            self.uncertain_entity(eid)

    def op_update(self, eid):
        m = self.entities[eid]
        body = {"properties": {"k": m["version"] + 1, "r": self.rng.randrange(1000)}}
        out, js = self.write("update_entity", "PATCH", f"/v1/entities/{eid}", body,
                             {"If-Match": f'"{m["version"]}"'})
        if out == "ack":
            if js["version"] != m["version"] + 1:
                self.problems.append(f"{eid}: update of version {m['version']} answered {js['version']}")
            self.saw(eid, js["version"])
            m["version"] = js["version"]
        elif out == "refused" and js in (404, 412):
            self.problems.append(f"{eid}: update with the current If-Match refused {js}")
        elif out == "unknown":
            self.uncertain_entity(eid)

    def op_delete(self, eid):
        m = self.entities[eid]
        out, js = self.write("delete_entity", "DELETE", f"/v1/entities/{eid}", None,
                             {"If-Match": f'"{m["version"]}"'})
        if out == "ack":
            self.forget_entity(eid)
        elif out == "refused" and js in (404, 412):
            self.problems.append(f"{eid}: delete with the current If-Match refused {js}")
        elif out == "unknown":
            self.uncertain_entity(eid)

    def op_relationship(self, src, dst):
        rid = self.new_id("r")
        body = {"id": rid, "type": "LOADS", "source": src, "target": dst, "properties": {"c": self.n}}
        self.rels[rid] = {"source": src, "target": dst, "alive": False, "certain": True}
        out, js = self.write("create_relationship", "POST", "/v1/relationships", body)
        if out == "ack":
            self.rels[rid]["alive"] = True
            self.saw(rid, js["version"])
        elif out == "unknown":
            self.rels[rid]["certain"] = False

    def op_delete_relationship(self, rid):
        out, _ = self.write("delete_relationship", "DELETE", f"/v1/relationships/{rid}", None)
        if out == "ack":
            self.rels[rid]["alive"] = False
        elif out == "unknown":
            self.rels[rid]["certain"] = False

    def op_batch(self, upd):
        a, b, r = self.new_id("e"), self.new_id("e"), self.new_id("r")
        ops = [{"op": "create_entity", "ref": "a", "id": a, "type": "Load", "properties": {"c": self.n, "k": 0}},
               {"op": "create_entity", "ref": "b", "id": b, "type": "Load", "properties": {"c": self.n, "k": 0}},
               {"op": "create_relationship", "ref": "r", "id": r, "type": "LOADS",
                "source": {"ref": "a"}, "target": {"ref": "b"}},
               {"op": "update_entity", "id": {"ref": "b"}, "properties": {"k": 2}}]
        if upd is not None:
            ops.append({"op": "update_entity", "id": upd, "if_version": self.entities[upd]["version"],
                        "properties": {"k": self.entities[upd]["version"] + 1}})
        for e in (a, b):
            self.entities[e] = {"version": 1, "alive": False, "certain": True}
        self.rels[r] = {"source": a, "target": b, "alive": False, "certain": True}
        out, js = self.write("batch", "POST", "/v1/transactions",
                             {"operations": ops, "provenance": {"tool_id": "faultload"}})
        if out == "ack":
            res = js["results"]
            self.entities[a].update(alive=True, version=res[0]["version"])
            self.entities[b].update(alive=True, version=res[3]["version"])
            self.rels[r]["alive"] = True
            self.saw(a, res[0]["version"])
            self.saw(b, res[1]["version"])
            self.saw(b, res[3]["version"])
            self.saw(r, res[2]["version"])
            if upd is not None:
                self.saw(upd, res[4]["version"])
                self.entities[upd]["version"] = res[4]["version"]
        elif out == "unknown":
            for e in (a, b) + ((upd,) if upd else ()):
                self.uncertain_entity(e)
            self.rels[r]["certain"] = False

    def run(self):
        try:
            while not self.stop.is_set():
                alive = self.alive_entities()
                live_rels = [r for r, m in self.rels.items() if m["alive"] and m["certain"]]
                roll = self.rng.random()
                if roll < 0.25 or len(alive) < 2:
                    self.op_create()
                elif roll < 0.50:
                    self.op_update(self.rng.choice(alive))
                elif roll < 0.60:
                    self.op_delete(self.rng.choice(alive))
                elif roll < 0.75:
                    src, dst = self.rng.sample(alive, 2)
                    self.op_relationship(src, dst)
                elif roll < 0.82 and live_rels:
                    self.op_delete_relationship(self.rng.choice(live_rels))
                else:
                    self.op_batch(self.rng.choice(alive) if self.rng.random() < 0.5 else None)
                time.sleep(self.rng.random() * 0.05)
        except Exception as exc:  # a bug of the test: report it, do not hang
            self.problems.append(f"client {self.n} crashed: {exc!r}")


def fill(path):
    """Write zeros to `path` until the filesystem is full."""
    chunk = b"\0" * 65536
    # Unbuffered: a buffered file's close() would flush what the full disk
    # refused and raise ENOSPC out of the with.
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass


def test_fault_load(gateway_factory, proxy_factory, fresh_neo4j, tmp_path):
    neo4j = fresh_neo4j
    skipped = []
    fs = tmp_path / "fs"
    fs.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(fs)],
                             capture_output=True, text=True).returncode == 0
    if not mounted:
        skipped.append("(d) disk full: cannot mount a tmpfs")
        print("\nSKIPPED (d) disk full: mount -t tmpfs failed", flush=True)
    if not neo4j.controllable:
        skipped.append("(b) Neo4j stop/start: no Neo4j home (BISTORE_TEST_NEO4J_HOME)")
        print("\nSKIPPED (b) Neo4j stop/start: Neo4j home unknown", flush=True)
    try:
        _run(gateway_factory, proxy_factory, neo4j, fs, skipped)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(fs)], check=False)
    if skipped:
        pytest.skip("checks held, but these parts did not run: " + "; ".join(skipped))


def _run(gateway_factory, proxy_factory, neo4j, fs, skipped):
    proxy = proxy_factory()
    sqlite = fs / "bistore.sqlite"
    args = ("--neo4j-timeout-ms", "2000")
    current = Current()
    faults = Counter()
    stats = {k: Counter() for k in ("attempted", "acknowledged", "refused", "unknown", "unknown_resolved",
                                    "unresolved", "while_full")}
    stop, full_window = threading.Event(), threading.Event()
    rng = random.Random(int(os.environ.get("BISTORE_TEST_FAULTLOAD_SEED", "13")))

    gw = gateway_factory(sqlite=sqlite, neo4j_url=proxy.url, args=args)
    current.port = gw.port
    clients = [Client(i, current, stop, stats, full_window) for i in range(CLIENTS)]
    for c in clients:
        c.start()

    def restart():
        nonlocal gw
        current.port = None
        gw.kill()
        faults["gateway SIGKILL"] += 1
        gw = gateway_factory(sqlite=sqlite, neo4j_url=proxy.url, args=args)
        current.port = gw.port

    # the other faults, each once, between kills
    extra = {KILLS * 1 // 6: "latency", KILLS * 2 // 6: "reset", KILLS * 3 // 6: "blackhole",
             KILLS * 4 // 6: "neo4j", KILLS * 5 // 6: "full"}
    for k in range(KILLS):
        time.sleep(0.2 + rng.random() * 0.6)
        restart()
        what = extra.get(k)
        if what == "latency":
            proxy.latency(0.3)
            time.sleep(3)
            proxy.pass_through()
            faults["proxy latency 300 ms for 3 s"] += 1
        elif what == "reset":
            for _ in range(5):
                time.sleep(0.3)
                proxy.close_all()
                faults["proxy connection reset"] += 1
        elif what == "blackhole":
            proxy.blackhole()
            time.sleep(3)
            proxy.pass_through()
            proxy.close_all()
            faults["proxy blackhole 3 s"] += 1
        elif what == "neo4j" and neo4j.controllable:
            neo4j.stop()
            time.sleep(1)
            neo4j.start()
            faults["Neo4j stop/start"] += 1
        elif what == "full" and not skipped_full(skipped):
            filler = fs / "filler"
            fill(filler)
            full_window.set()
            # until the gateway says so (SQLite reuses WAL space: it may take
            # a while for a write to need a new page)
            poll(lambda: any(k.startswith("507") for k in full_answers(stats)), 30,
                 what="a 507 storage_full while the disk is full")
            time.sleep(2)
            full_window.clear()
            before = acked(stats)
            filler.unlink()
            faults["disk full"] += 1
            # writes resume once there is room again
            poll(lambda: acked(stats) > before + 20, 60,
                 what="writes to resume after the filler was removed")
    time.sleep(1)
    stop.set()
    for c in clients:
        c.join(RESOLVE_BUDGET + 60)
        assert not c.is_alive(), f"{c.name} never finished"
    # the last crash: recovery of whatever was in flight
    restart()
    poll(lambda: _settled(gw, neo4j), 60, what="intents settled after the last restart")

    problems = [p for c in clients for p in c.problems]
    checked = Counter()
    store = gw.store
    s_ent, n_ent = store.entities(), neo4j.entities()
    s_rel, n_rel = store.relationships(), neo4j.relationships()
    for c in clients:
        for eid, m in c.entities.items():
            if not m["certain"]:
                checked["uncertain entities"] += 1
                continue
            if m["alive"]:
                checked["entities present"] += 1
                if eid not in s_ent or eid not in n_ent:
                    problems.append(f"acknowledged entity {eid} missing: sqlite {eid in s_ent}, neo4j {eid in n_ent}")
                elif s_ent[eid]["version"] != m["version"]:
                    problems.append(f"{eid}: version {s_ent[eid]['version']} in SQLite, acknowledged {m['version']}")
            else:
                checked["entities absent"] += 1
                if eid in s_ent or eid in n_ent:
                    problems.append(f"entity {eid} (deleted or never acknowledged) present: "
                                    f"sqlite {eid in s_ent}, neo4j {eid in n_ent}")
        for rid, m in c.rels.items():
            if not m["certain"]:
                checked["uncertain relationships"] += 1
                continue
            key = "present" if m["alive"] else "absent"
            checked[f"relationships {key}"] += 1
            if m["alive"] != (rid in s_rel) or m["alive"] != (rid in n_rel):
                problems.append(f"relationship {rid}: acknowledged {key}, sqlite {rid in s_rel}, neo4j {rid in n_rel}")
    run = None
    try:
        assert_stores_consistent(store, neo4j)
        run = assert_clean(gw, neo4j, mode="deep")
    finally:
        figures = {
            "operations attempted": sum(stats["attempted"].values()),
            "by kind": dict(stats["attempted"]),
            "acknowledged": sum(stats["acknowledged"].values()),
            "refused (status code)": dict(stats["refused"]),
            "unknown outcome": sum(stats["unknown"].values()),
            "unknown, resolved by a retry with the same key": sum(stats["unknown_resolved"].values()),
            "unknown, never resolved": sum(stats["unresolved"].values()),
            "5xx answers while the disk was full": dict(stats["while_full"]),
            "faults injected": dict(faults),
            "objects checked": dict(checked),
            "model disagreements": len(problems),
            "deep reconciliation": (run or {}).get("summary"),
        }
        print("\nfault-load figures: " + json.dumps(figures, indent=1), flush=True)
    assert not problems, "\n".join(problems[:40])
    wrong = [k for k in stats["while_full"] if not k.startswith(("507 storage_full", "503"))]
    assert not wrong, f"a full disk answered {dict(stats['while_full'])}"
    assert faults["gateway SIGKILL"] >= KILLS
    assert sum(stats["acknowledged"].values()) > 0


def test_full_disk_answers_507_and_writes_nothing(gateway_factory, fresh_neo4j, tmp_path):
    """Found by test_fault_load: with the SQLite file's disk full, writes
    failed on the Neo4j transaction record (SQLITE_PATH.neo4j-tx) and were
    answered 502 neo4j_error ("Neo4j refused a statement") instead of 507
    storage_full; nothing may be written, and writes resume once there is room."""
    fs = tmp_path / "fs"
    fs.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(fs)]).returncode != 0:
        pytest.skip("SKIPPED: cannot mount a tmpfs for the full disk")
    try:
        gw = gateway_factory(sqlite=fs / "bistore.sqlite")
        r = gw.post("/v1/entities", {"id": "before", "type": "Load"})
        assert r.status == 201, r
        fill(fs / "filler")
        answers = [gw.post("/v1/entities", {"id": f"full{i}", "type": "Load"}) for i in range(5)]
        answers.append(gw.post("/v1/transactions", {"operations": [
            {"op": "create_entity", "ref": "a", "id": "fullb", "type": "Load"},
            {"op": "update_entity", "id": "before", "properties": {"k": 1}}]}))
        for a in answers:
            assert (a.status, a.error_code()) in ((507, "storage_full"), (503, "neo4j_unavailable")), a
        assert any(a.status == 507 for a in answers), answers
        assert gw.store.entity("before")["version"] == 1
        assert_stores_consistent(gw.store, fresh_neo4j)
        (fs / "filler").unlink()
        r = gw.post("/v1/entities", {"id": "after", "type": "Load"})
        assert r.status == 201, r
        assert_stores_consistent(gw.store, fresh_neo4j)
        assert sorted(gw.store.entities()) == ["after", "before"]
        gw.terminate()
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=False)


def skipped_full(skipped):
    return any(s.startswith("(d)") for s in skipped)


def _settled(gw, neo4j):
    r = gw.readyz()
    if r is None or r.status != 200:
        return False
    try:
        assert_intents_settled(gw.store, neo4j)
    except AssertionError:
        return False
    return True
