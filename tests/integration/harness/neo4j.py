"""The session Neo4j: process control (scripts/neo4j.sh) and its HTTP transaction API."""

import http.client
import json
import os
import re
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from harness.common import CONNECTION_ERRORS, NEO4J_API, NEO4J_SH, NEO4J_START_TIMEOUT, poll

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
        self.warm_up(rounds=5)  # a gateway's first write after a restart must not time out

    def warm_up(self, rounds=20):
        """A just-started JVM answers its first transactions slowly; tests that
        give the gateway a short Neo4j timeout must not pay for that. The
        explicit transactions go through the API of the session's adapter
        (the Query API runs over Bolt's channel, cold on its own)."""
        for i in range(rounds):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            headers = {"Content-Type": "application/json"}
            statement = {"statement": "MERGE (w:HarnessWarmUp {k: 1}) SET w.n = $i "
                                      "WITH w CREATE (:HarnessWarmUp {k: 2, i: $i})", "parameters": {"i": i}}
            try:
                if NEO4J_API == "query":
                    conn.request("POST", f"/db/{self.database}/query/v2/tx", body="{}", headers=headers)
                    tx = json.loads(conn.getresponse().read())["transaction"]["id"]
                    path = f"/db/{self.database}/query/v2/tx/{tx}"
                    conn.request("POST", path, body=json.dumps(statement), headers=headers)
                    conn.getresponse().read()
                    commit = path + "/commit"
                else:
                    conn.request("POST", f"/db/{self.database}/tx", body=json.dumps({"statements": [statement]}),
                                 headers=headers)
                    commit = urllib.parse.urlsplit(json.loads(conn.getresponse().read())["commit"]).path
                conn.request("POST", commit, body="{}", headers=headers)
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
