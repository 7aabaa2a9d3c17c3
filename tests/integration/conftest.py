"""Harness for bistore's integration and fault tests (real Neo4j, real gateway).

One Neo4j serves the whole run (started here with scripts/neo4j.sh in a
temporary home, or taken from BISTORE_TEST_NEO4J_URL / _HOME). Every test
gets Neo4j wiped of data (constraints kept) and a fresh SQLite file; the
gateway binary is $BISTORE_BIN (default build/bistore), so CI can point the
suite at a sanitizer build.

Test modules use the fixtures below and import the helpers directly:
`from conftest import assert_stores_consistent, ...`.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NEO4J_SH = REPO / "scripts" / "neo4j.sh"
BISTORE_BIN = os.environ.get("BISTORE_BIN", str(REPO / "build" / "bistore"))

# Deadlines, generous enough for a sanitizer build on two cores.
READY_TIMEOUT = float(os.environ.get("BISTORE_TEST_READY_TIMEOUT", "30"))
REQUEST_TIMEOUT = float(os.environ.get("BISTORE_TEST_REQUEST_TIMEOUT", "30"))
NEO4J_START_TIMEOUT = 150.0

UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HASH_RE = re.compile(r"^[0-9a-f]{16}$")
RFC3339_UTC_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")
LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")

CONNECTION_ERRORS = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine,
                     http.client.IncompleteRead, socket.timeout, OSError)


def poll(predicate, timeout, interval=0.05, what="condition"):
    """Call predicate() until it returns a truthy value; return that value.
    Fails the test with `what` if the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError as exc:  # let predicates assert; keep the last one
            last_exc = exc
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f}s waiting for {what}"
            if last_exc is not None:
                msg += f"; last check: {last_exc}"
            pytest.fail(msg)
        time.sleep(interval)


# --------------------------------------------------------------------- Neo4j


class Neo4jError(Exception):
    def __init__(self, errors):
        super().__init__("; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors))
        self.errors = errors


class Neo4j:
    """A Neo4j server reached over its HTTP transaction API (auth off)."""

    def __init__(self, url, home=None, database="neo4j", owned=False):
        parsed = urllib.parse.urlsplit(url)
        self.url = url.rstrip("/")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port
        self.home = Path(home) if home else None
        self.database = database
        self.owned = owned

    # ---- process control (needs the home folder of scripts/neo4j.sh)
    @property
    def controllable(self):
        return self.home is not None

    def require_control(self):
        if not self.controllable:
            pytest.skip("Neo4j home unknown (set BISTORE_TEST_NEO4J_HOME): cannot stop/start it")

    def pid(self):
        try:
            return int((self.home / "pid").read_text().strip())
        except (OSError, ValueError, TypeError):
            return None

    def process_alive(self):
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def start(self, timeout=NEO4J_START_TIMEOUT):
        """Start it (again) on the same HTTP port and wait until it answers."""
        self.require_control()
        port = self.port if self.port else 0
        out = subprocess.run([str(NEO4J_SH), "start", str(self.home), str(port)],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"neo4j.sh start failed ({out.returncode}): {out.stderr}\n{out.stdout}")
        m = re.search(r"http=(\d+)", out.stdout)
        if not m:
            raise RuntimeError(f"neo4j.sh start printed no port: {out.stdout!r}")
        bound = int(m.group(1))
        if self.port and bound != self.port:
            raise RuntimeError(f"Neo4j restarted on port {bound}, expected {self.port}")
        self.port = bound
        self.url = f"http://127.0.0.1:{bound}"
        self.wait_up(timeout)

    def warm_up(self, rounds=20):
        """A just-started JVM answers its first transactions slowly; tests that
        give the gateway a short Neo4j timeout must not pay for that."""
        for i in range(rounds):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                conn.request("POST", f"/db/{self.database}/tx", body=json.dumps({"statements": [
                    {"statement": "MERGE (w:HarnessWarmUp {k: 1}) SET w.n = $i "
                                  "WITH w CREATE (:HarnessWarmUp {k: 2, i: $i})", "parameters": {"i": i}}]}),
                    headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                commit = json.loads(resp.read())["commit"]
                conn.request("POST", urllib.parse.urlsplit(commit).path, body="{}",
                             headers={"Content-Type": "application/json"})
                conn.getresponse().read()
            finally:
                conn.close()
        self.run("MATCH (w:HarnessWarmUp) DELETE w")

    def stop(self, timeout=90):
        self.require_control()
        self.sigcont()  # a stopped JVM cannot handle SIGTERM
        subprocess.run([str(NEO4J_SH), "stop", str(self.home)], capture_output=True, text=True,
                       timeout=timeout, check=True)
        poll(lambda: not self.answers(), 15, what="Neo4j to stop answering")

    def sigstop(self):
        self.require_control()
        os.kill(self.pid(), signal.SIGSTOP)

    def sigcont(self):
        pid = self.pid() if self.controllable else None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def ensure_running(self):
        """Make sure the server answers again (after a test stopped or froze it)."""
        if self.controllable:
            self.sigcont()
            if not self.process_alive():
                self.start()
        self.wait_up(NEO4J_START_TIMEOUT)

    def answers(self, timeout=2.0):
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            return resp.status == 200
        except CONNECTION_ERRORS:
            return False

    def wait_up(self, timeout=60):
        def ok():
            if not self.answers():
                return False
            try:
                self.run("RETURN 1")
            except (Neo4jError, *CONNECTION_ERRORS):
                return False
            return True
        poll(ok, timeout, interval=0.2, what=f"Neo4j at {self.url} to answer")

    # ---- queries
    def run_many(self, statements, timeout=30):
        """Run [(cypher, params), ...] in one auto-committed transaction;
        return a list of results, each a list of rows (lists)."""
        body = json.dumps({"statements": [{"statement": s, "parameters": p or {}} for s, p in statements]})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("POST", f"/db/{self.database}/tx/commit", body=body,
                         headers={"Content-Type": "application/json", "Accept": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise Neo4jError([{"code": f"HTTP {resp.status}", "message": data[:500].decode(errors="replace")}])
        doc = json.loads(data)
        if doc.get("errors"):
            raise Neo4jError(doc["errors"])
        return [[d["row"] for d in r["data"]] for r in doc["results"]]

    def run(self, statement, **params):
        return self.run_many([(statement, params)])[0]

    def value(self, statement, **params):
        rows = self.run(statement, **params)
        assert len(rows) == 1 and len(rows[0]) == 1, f"expected one value from {statement!r}, got {rows!r}"
        return rows[0][0]

    def open_transactions(self):
        """Ids of the transactions running now (open HTTP ones included), but this one."""
        rows = self.run("SHOW TRANSACTIONS YIELD transactionId, currentQuery, status "
                        "WHERE NOT currentQuery STARTS WITH 'SHOW TRANSACTIONS' "
                        "AND status = 'Running' RETURN transactionId")
        return [r[0] for r in rows]

    def terminate_other_transactions(self):
        rows = self.run("SHOW TRANSACTIONS YIELD transactionId, currentQuery, status "
                        "WHERE NOT currentQuery STARTS WITH 'SHOW TRANSACTIONS' "
                        "AND NOT status STARTS WITH 'Terminated' RETURN transactionId")
        ids = [r[0] for r in rows]
        if ids:
            try:
                self.run("TERMINATE TRANSACTIONS $ids", ids=ids)
            except Neo4jError:
                pass  # one finished meanwhile
        return ids

    def wipe(self):
        """Delete every node and relationship (constraints stay). Orphaned
        transactions of killed gateways would block the delete on their locks,
        so they are terminated first."""
        self.terminate_other_transactions()
        deadline = time.monotonic() + 60
        while True:
            try:
                self.run("MATCH (n) DETACH DELETE n", timeout=15)
                break
            except (Neo4jError, *CONNECTION_ERRORS):
                if time.monotonic() > deadline:
                    raise
                self.terminate_other_transactions()
                time.sleep(0.2)
        assert self.value("MATCH (n) RETURN count(n)") == 0

    # ---- reading the bistore layout
    def entities(self):
        """{id: {"labels": set, "props": dict}} of every (:Entity) node; fails on a duplicate id."""
        out = {}
        for nid, labels, props in self.run("MATCH (n:Entity) RETURN n.id, labels(n), properties(n)"):
            assert nid not in out, f"duplicate Entity id {nid!r} in Neo4j"
            out[nid] = {"labels": set(labels), "props": props}
        return out

    def relationships(self):
        """{id: {"type", "source", "target", "props"}} of every relationship between entities."""
        out = {}
        for rid, rtype, src, dst, props in self.run(
                "MATCH (a:Entity)-[r]->(b:Entity) RETURN r.id, type(r), a.id, b.id, properties(r)"):
            assert rid not in out, f"duplicate relationship id {rid!r} in Neo4j"
            out[rid] = {"type": rtype, "source": src, "target": dst, "props": props}
        return out

    def count_entity(self, entity_id):
        return self.value("MATCH (n:Entity {id: $id}) RETURN count(n)", id=entity_id)

    def count_relationship(self, rel_id):
        return self.value("MATCH ()-[r {id: $id}]->() RETURN count(r)", id=rel_id)

    def watermarks(self):
        return [{"store": s, "seq": q} for s, q in
                self.run("MATCH (w:_BistoreWatermark) RETURN w.store, w.seq")]

    def other_nodes(self):
        """Nodes that are neither entities nor gateway bookkeeping."""
        return self.run("MATCH (n) WHERE NOT n:Entity AND NONE(l IN labels(n) WHERE l STARTS WITH '_Bistore') "
                        "RETURN labels(n), properties(n)")

    def dump(self):
        """Everything observable, for before/after comparisons."""
        return {
            "entities": self.entities(),
            "relationships": self.relationships(),
            "watermarks": sorted(self.watermarks(), key=lambda w: str(w["store"])),
            "other_nodes": self.other_nodes(),
            "all_relationships": self.value("MATCH ()-[r]->() RETURN count(r)"),
            "all_nodes": self.value("MATCH (n) RETURN count(n)"),
        }


# -------------------------------------------------------------------- SQLite


class Store:
    """Reads a gateway's SQLite file directly, read-only (a new connection per call,
    so every read sees the latest committed state)."""

    def __init__(self, path):
        self.path = Path(path)

    def query(self, sql, params=()):
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    def value(self, sql, params=()):
        rows = self.query(sql, params)
        assert len(rows) == 1 and len(rows[0]) == 1, f"expected one value from {sql!r}, got {rows!r}"
        return next(iter(rows[0].values()))

    @staticmethod
    def _json(text):
        return None if text is None else json.loads(text)

    def entities(self):
        out = {}
        for r in self.query("SELECT * FROM entities ORDER BY id"):
            r["properties"] = self._json(r["properties"])
            r["metadata"] = self._json(r["metadata"])
            out[r["id"]] = r
        return out

    def entity(self, entity_id):
        return self.entities().get(entity_id)

    def relationships(self):
        out = {}
        for r in self.query("SELECT * FROM relationships ORDER BY id"):
            r["properties"] = self._json(r["properties"])
            out[r["id"]] = r
        return out

    def relationship(self, rel_id):
        return self.relationships().get(rel_id)

    def count_entity(self, entity_id):
        return self.value("SELECT count(*) FROM entities WHERE id = ?", (entity_id,))

    def count_relationship(self, rel_id):
        return self.value("SELECT count(*) FROM relationships WHERE id = ?", (rel_id,))

    def transactions(self, state=None):
        rows = self.query("SELECT * FROM bistore_transactions ORDER BY rowid")
        return [r for r in rows if state is None or r["state"] == state]

    def transaction(self, tx_id):
        rows = self.query("SELECT * FROM bistore_transactions WHERE tx_id = ?", (tx_id,))
        assert len(rows) <= 1, f"tx {tx_id} recorded {len(rows)} times"
        return rows[0] if rows else None

    def intents(self):
        return self.query("SELECT * FROM bistore_intents ORDER BY seq")

    def pending_intents(self):
        return self.query("SELECT * FROM bistore_intents WHERE applied_at IS NULL ORDER BY seq")

    def max_intent_seq(self):
        return self.value("SELECT max(seq) FROM bistore_intents")

    def dump(self, with_aborted=True):
        """Entities, relationships, transactions and intents, for before/after comparisons.
        with_aborted=False leaves aborted audit rows out (a refused transaction may add one)."""
        txs = self.transactions()
        if not with_aborted:
            txs = [t for t in txs if t["state"] != "aborted"]
        return {"entities": self.entities(), "relationships": self.relationships(),
                "transactions": txs, "intents": self.intents()}


# ------------------------------------------------------------------- gateway


class Response:
    """status, headers (case-insensitive), json (or None), raw body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        ctype = headers.get("Content-Type", "") or ""
        self.json = None
        if body and "json" in ctype:
            try:
                self.json = json.loads(body)
            except ValueError as exc:
                raise AssertionError(f"response says {ctype} but is not JSON: {body[:300]!r}") from exc

    def __iter__(self):  # status, headers, json = gw.request(...)
        return iter((self.status, self.headers, self.json))

    def error_code(self):
        assert isinstance(self.json, dict) and isinstance(self.json.get("error"), dict), \
            f"expected an error body, got {self.status} {self.body[:300]!r}"
        return self.json["error"].get("code")

    def __repr__(self):
        return f"<Response {self.status} {self.body[:400]!r}>"


class Gateway:
    """One bistore process: `bistore serve --listen 127.0.0.1:0 ...`."""

    def __init__(self, sqlite_path, neo4j_url, log_path, args=(), env=None, binary=None):
        self.sqlite_path = Path(sqlite_path)
        self.neo4j_url = neo4j_url
        self.log_path = Path(log_path)
        self.args = list(args)
        self.env = dict(env or {})
        self.binary = binary or BISTORE_BIN
        self.proc = None
        self.port = None
        self.deliberately_stopped = False
        self._conn = None
        self.store = Store(self.sqlite_path)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    # ---- lifecycle
    def start(self, ready=True, timeout=READY_TIMEOUT):
        if not os.access(self.binary, os.X_OK):
            pytest.fail(f"gateway binary {self.binary} missing or not executable (build it or set BISTORE_BIN)")
        cmd = [self.binary, "serve", "--listen", "127.0.0.1:0", "--sqlite", str(self.sqlite_path),
               "--neo4j-url", self.neo4j_url, *self.args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BISTORE_")}
        env.update(self.env)
        log = open(self.log_path, "ab")
        log.write(("$ " + " ".join(cmd) + (f"   [env {self.env}]" if self.env else "") + "\n").encode())
        log.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()
        self.port = self._wait_port(timeout)
        if ready:
            self.wait_ready(timeout)
        return self

    def _wait_port(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            m = LISTEN_RE.search(self.log_path.read_text(errors="replace"))
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode} before listening:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway printed no 'listening on' line in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)

    def readyz(self):
        try:
            return self.request("GET", "/readyz", timeout=5)
        except CONNECTION_ERRORS:
            return None

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode} while waiting for "
                                     f"/readyz:\n{self.log_tail()}")
            last = self.readyz()
            if last is not None and last.status == 200:
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz not 200 after {timeout}s (last: {last!r}):\n{self.log_tail()}")
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, as a crash would."""
        self.deliberately_stopped = True
        self._drop_conn()
        if self.alive():
            self.proc.kill()
        self.proc.wait(30)

    def terminate(self, timeout=20):
        """SIGTERM; returns the exit code (None if it had to be SIGKILLed)."""
        self.deliberately_stopped = True
        self._drop_conn()
        if not self.alive():
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            return None

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def expect_fault_kill(self, timeout=20):
        """The fault hook must have SIGKILLed the process."""
        self.deliberately_stopped = True
        self._drop_conn()
        code = self.wait_exit(timeout)
        assert code == -signal.SIGKILL, \
            f"expected the fault hook to SIGKILL the gateway, exit status {code}:\n{self.log_tail()}"

    def log_tail(self, lines=60):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ---- HTTP
    def _drop_conn(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT, fresh=False,
                retry=True, chunked=False):
        """Send one request; returns a Response (iterable as status, headers, json).

        body: dict/list (sent as JSON), bytes/str (sent as is) or None.
        Content-Type defaults to application/json when there is a body; a
        header given as None is left out. The keep-alive connection is reused
        and, if the gateway closed it meanwhile, reopened once (retry=False or
        fresh=True: a new connection and no retry, for requests expected to
        kill the gateway). chunked=True sends the body with chunked encoding.
        """
        hdrs = {}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        for k, v in (headers or {}).items():
            hdrs = {hk: hv for hk, hv in hdrs.items() if hk.lower() != k.lower()}
            if v is not None:
                hdrs[k] = v
        if fresh:
            retry = False
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            reused = self._conn is not None and not fresh
            if fresh:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            else:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                conn = self._conn
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            try:
                if chunked:
                    data = body or b""
                    pieces = [data[i:i + 1000] for i in range(0, len(data), 1000)]
                    conn.request(method, path, body=iter(pieces), headers=hdrs, encode_chunked=True)
                else:
                    conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except CONNECTION_ERRORS as exc:
                conn.close()
                if not fresh:
                    self._conn = None
                # Only a kept-alive connection the gateway closed meanwhile is
                # worth a second try; a timeout or a fresh connection is not.
                if attempt + 1 < attempts and reused and not isinstance(exc, TimeoutError):
                    continue
                raise
            if fresh or resp.will_close:
                conn.close()
                if not fresh:
                    self._conn = None
            return Response(resp.status, resp.headers, data)
        raise AssertionError("unreachable")

    # convenience wrappers
    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


# ---------------------------------------------------------- shared assertions


def assert_entity_mirrored(store, neo4j, entity_id, expect=None):
    """The entity is in both stores exactly once, with the same type, properties,
    version and hash; `expect` (type/properties/version) is checked too."""
    assert store.count_entity(entity_id) == 1, f"entity {entity_id} not in SQLite exactly once"
    assert neo4j.count_entity(entity_id) == 1, f"entity {entity_id} not in Neo4j exactly once"
    row = store.entity(entity_id)
    node = neo4j.entities()[entity_id]
    _compare_entity(entity_id, row, node)
    if expect:
        for key in ("type", "properties", "version"):
            if key in expect:
                assert row[key] == expect[key], f"SQLite {key} of {entity_id}: {row[key]!r} != {expect[key]!r}"
    return row


def assert_relationship_mirrored(store, neo4j, rel_id, expect=None):
    assert store.count_relationship(rel_id) == 1, f"relationship {rel_id} not in SQLite exactly once"
    assert neo4j.count_relationship(rel_id) == 1, f"relationship {rel_id} not in Neo4j exactly once"
    row = store.relationship(rel_id)
    rel = neo4j.relationships()[rel_id]
    _compare_relationship(rel_id, row, rel)
    if expect:
        for key in ("type", "properties", "version", "source_id", "target_id"):
            if key in expect:
                assert row[key] == expect[key], f"SQLite {key} of {rel_id}: {row[key]!r} != {expect[key]!r}"
    return row


def assert_absent(store, neo4j, entity_ids=(), rel_ids=()):
    for eid in entity_ids:
        assert store.count_entity(eid) == 0, f"entity {eid} is in SQLite"
        assert neo4j.count_entity(eid) == 0, f"entity {eid} is in Neo4j"
    for rid in rel_ids:
        assert store.count_relationship(rid) == 0, f"relationship {rid} is in SQLite"
        assert neo4j.count_relationship(rid) == 0, f"relationship {rid} is in Neo4j"


def _compare_entity(eid, row, node):
    assert node["labels"] == {"Entity", row["type"]}, f"labels of {eid}: {node['labels']} vs type {row['type']}"
    props = dict(node["props"])
    assert props.pop("id", None) == eid
    v, h = props.pop("_v", None), props.pop("_h", None)
    assert v == row["version"], f"{eid}: Neo4j _v {v!r} != SQLite version {row['version']!r}"
    assert h == row["hash"], f"{eid}: Neo4j _h {h!r} != SQLite hash {row['hash']!r}"
    assert HASH_RE.match(str(row["hash"])), f"{eid}: hash {row['hash']!r} is not 16 hex chars"
    assert props == row["properties"], f"{eid}: Neo4j properties {props!r} != SQLite {row['properties']!r}"


def _compare_relationship(rid, row, rel):
    assert rel["type"] == row["type"], f"{rid}: Neo4j type {rel['type']} != SQLite {row['type']}"
    assert rel["source"] == row["source_id"] and rel["target"] == row["target_id"], \
        f"{rid}: Neo4j {rel['source']}->{rel['target']} != SQLite {row['source_id']}->{row['target_id']}"
    props = dict(rel["props"])
    assert props.pop("id", None) == rid
    v, h = props.pop("_v", None), props.pop("_h", None)
    assert v == row["version"], f"{rid}: Neo4j _v {v!r} != SQLite version {row['version']!r}"
    assert h == row["hash"], f"{rid}: Neo4j _h {h!r} != SQLite hash {row['hash']!r}"
    assert HASH_RE.match(str(row["hash"])), f"{rid}: hash {row['hash']!r} is not 16 hex chars"
    assert props == row["properties"], f"{rid}: Neo4j properties {props!r} != SQLite {row['properties']!r}"


def assert_stores_consistent(store, neo4j):
    """Both stores hold exactly the same entities and relationships, field by field."""
    s_ent, n_ent = store.entities(), neo4j.entities()
    assert set(s_ent) == set(n_ent), (f"entity ids differ: only SQLite {sorted(set(s_ent) - set(n_ent))}, "
                                      f"only Neo4j {sorted(set(n_ent) - set(s_ent))}")
    for eid in s_ent:
        _compare_entity(eid, s_ent[eid], n_ent[eid])
    s_rel, n_rel = store.relationships(), neo4j.relationships()
    assert set(s_rel) == set(n_rel), (f"relationship ids differ: only SQLite {sorted(set(s_rel) - set(n_rel))}, "
                                      f"only Neo4j {sorted(set(n_rel) - set(s_rel))}")
    for rid in s_rel:
        _compare_relationship(rid, s_rel[rid], n_rel[rid])
    assert neo4j.value("MATCH ()-[r]->() RETURN count(r)") == len(s_rel), "Neo4j has extra relationships"
    assert neo4j.other_nodes() == [], "Neo4j has nodes that are neither entities nor bookkeeping"


def assert_intents_settled(store, neo4j):
    """No intent pending, and the watermark sits at the highest intent seq."""
    pending = store.pending_intents()
    assert pending == [], f"pending intents remain: {[(p['seq'], p['tx_id']) for p in pending]}"
    marks = neo4j.watermarks()
    assert len(marks) == 1, f"expected one watermark node, found {marks}"
    top = store.max_intent_seq()
    if top is None:
        assert marks[0]["seq"] in (0, None), f"no intents but watermark {marks[0]}"
    else:
        assert marks[0]["seq"] == top, f"watermark {marks[0]['seq']} != highest intent seq {top}"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def neo4j():
    url = os.environ.get("BISTORE_TEST_NEO4J_URL")
    if url:
        server = Neo4j(url, home=os.environ.get("BISTORE_TEST_NEO4J_HOME"), owned=False)
        server.ensure_running()
        yield server
        return
    home = tempfile.mkdtemp(prefix="bistore-neo4j-")
    server = Neo4j("http://127.0.0.1:0", home=home, owned=True)
    server.port = None
    try:
        server.start()
        server.warm_up()
        yield server
    finally:
        try:
            if server.process_alive():
                server.stop()
        finally:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fresh_neo4j(neo4j):
    """The session Neo4j, running, answering and wiped; running again after the test."""
    neo4j.ensure_running()
    neo4j.wipe()
    yield neo4j
    neo4j.ensure_running()


@pytest.fixture
def gateway_factory(request, fresh_neo4j, tmp_path):
    """start(sqlite=None, neo4j_url=None, args=(), env=None, ready=True) -> Gateway.

    Every gateway started here is stopped at the end of the test; one that is
    still running must exit 0 on SIGTERM (so a sanitizer build reports leaks
    and errors as failures)."""
    started = []
    request.node._bistore_gateways = started
    default_sqlite = tmp_path / "bistore.sqlite"

    def start(sqlite=None, neo4j_url=None, args=(), env=None, ready=True):
        gw = Gateway(sqlite or default_sqlite, neo4j_url or fresh_neo4j.url,
                     tmp_path / f"gateway-{len(started) + 1}.log", args=args, env=env)
        started.append(gw)
        gw.start(ready=ready)
        return gw

    yield start
    problems = []
    for gw in started:
        if gw.proc is None:
            continue
        if gw.alive():
            code = gw.terminate()
            if code != 0:
                problems.append(f"{gw.log_path.name}: exit status {code} on SIGTERM\n{gw.log_tail(40)}")
        elif not gw.deliberately_stopped:
            problems.append(f"{gw.log_path.name}: died unexpectedly with {gw.proc.returncode}\n{gw.log_tail(40)}")
    if problems:
        pytest.fail("gateway shutdown problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def gateway(gateway_factory):
    """A fresh gateway on a fresh SQLite file, Neo4j wiped."""
    return gateway_factory()


@pytest.fixture
def proxy_factory(fresh_neo4j):
    from proxy import FaultProxy
    proxies = []

    def make():
        p = FaultProxy("127.0.0.1", fresh_neo4j.port)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):  # teardown errors carry their own log tail
        for gw in getattr(item, "_bistore_gateways", []):
            report.sections.append((f"gateway log {gw.log_path.name} ({report.when})", gw.log_tail(80)))
