"""Reconciliation (API.md "Reconciliation", DESIGN.md section 5) against a real Neo4j.

Every scenario damages one store behind the gateway's back (Cypher straight to
Neo4j, SQL straight to the SQLite file), asks the gateway (or `bistore check` /
`bistore repair`) what it sees, and checks both stores read directly."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import urllib.parse
import uuid
from collections import Counter

import pytest

from conftest import (BISTORE_BIN, RFC3339_UTC_RE, UUID7_RE, Gateway, assert_intents_settled,
                      assert_stores_consistent, poll)

RUN_KEYS = {"id", "state", "mode", "repair", "dry_run", "started_at", "finished_at", "progress", "summary",
            "error"}
SUMMARY_KEYS = ("entities_sqlite", "entities_neo4j", "relationships_sqlite", "relationships_neo4j",
                "only_in_sqlite", "only_in_neo4j", "mismatched", "duplicate_ids", "missing_ids", "repaired")
FINDING_KEYS = {"kind", "object", "id", "sqlite", "neo4j", "action"}
KIND_COUNTER = {"only_in_sqlite": "only_in_sqlite", "only_in_neo4j": "only_in_neo4j", "mismatch": "mismatched",
                "duplicate_id": "duplicate_ids", "missing_id": "missing_ids"}
RUN_TIMEOUT = 120.0
CONSTRAINT = "bistore_entity_id"
CREATE_CONSTRAINT = f"CREATE CONSTRAINT {CONSTRAINT} IF NOT EXISTS FOR (n:Entity) REQUIRE n.id IS UNIQUE"


# ----------------------------------------------------------------- helpers


def error_of(r, status, code, field=None):
    assert r.status == status, f"expected {status} {code}, got {r!r}"
    assert r.error_code() == code, f"expected error code {code}, got {r.json}"
    err = r.json["error"]
    assert isinstance(err.get("message"), str) and err["message"], r.json
    if field is not None:
        assert err.get("field") == field, f"expected field {field!r}, got {r.json}"
    return err


def start_run(gw, **body):
    r = gw.post("/v1/reconciliations", body)
    assert r.status == 202, r
    run = r.json
    assert set(run) >= {"id", "state"}, run
    assert UUID7_RE.match(run["id"]), run
    assert run["state"] == "running", run
    assert r.headers.get("Location") == f"/v1/reconciliations/{run['id']}", dict(r.headers)
    return run["id"]


def get_run(gw, rid):
    r = gw.get(f"/v1/reconciliations/{rid}")
    assert r.status == 200, r
    return r.json


def wait_run(gw, rid, timeout=RUN_TIMEOUT, expect="done"):
    def finished():
        run = get_run(gw, rid)
        return run if run["state"] != "running" else None
    run = poll(finished, timeout, interval=0.05, what=f"reconciliation {rid} to finish")
    check_run_shape(run)
    if expect:
        assert run["state"] == expect, f"run ended {run['state']}: {run}\n{gw.log_tail(30)}"
    return run


def check_run_shape(run):
    assert set(run) == RUN_KEYS, f"run keys {sorted(run)}"
    assert run["state"] in ("running", "done", "failed"), run
    assert run["mode"] in ("fast", "deep") and run["repair"] in ("none", "sqlite_wins", "neo4j_wins"), run
    assert isinstance(run["dry_run"], bool), run
    assert RFC3339_UTC_RE.match(run["started_at"]), run
    if run["state"] == "running":
        assert run["finished_at"] is None, run
    else:
        assert RFC3339_UTC_RE.match(run["finished_at"] or ""), run
        assert run["finished_at"] >= run["started_at"], run
    assert set(run["progress"]) == {"scanned", "total"}, run
    assert all(isinstance(v, int) and v >= 0 for v in run["progress"].values()), run
    assert set(run["summary"]) == set(SUMMARY_KEYS), f"summary keys {sorted(run['summary'])}"
    assert all(isinstance(v, int) and v >= 0 for v in run["summary"].values()), run
    if run["state"] == "done":
        assert run["error"] is None, run


def all_findings(gw, rid, kind=None, limit=1000, max_pages=2000):
    items, after = [], None
    for _ in range(max_pages):
        q = {"limit": str(limit)}
        if kind:
            q["kind"] = kind
        if after:
            q["after"] = after
        r = gw.get(f"/v1/reconciliations/{rid}/findings?{urllib.parse.urlencode(q)}")
        assert r.status == 200, r
        assert set(r.json) == {"items", "next"}, r.json
        assert len(r.json["items"]) <= limit, r.json
        for f in r.json["items"]:
            assert set(f) == FINDING_KEYS, f"finding keys {sorted(f)}: {f}"
            assert f["kind"] in KIND_COUNTER and f["object"] in ("entity", "relationship"), f
            assert f["action"] in ("none", "created", "updated", "deleted"), f
        items.extend(r.json["items"])
        after = r.json["next"]
        if after is None:
            return items
        assert isinstance(after, str) and after, r.json
    pytest.fail(f"more than {max_pages} pages of findings")


def reconcile(gw, mode="fast", repair="none", dry_run=False, timeout=RUN_TIMEOUT):
    """One run to its end: (run, findings)."""
    rid = start_run(gw, mode=mode, repair=repair, dry_run=dry_run)
    run = wait_run(gw, rid, timeout)
    assert (run["id"], run["mode"], run["repair"], run["dry_run"]) == (rid, mode, repair, dry_run), run
    findings = all_findings(gw, rid)
    # the counters agree with the findings
    by_kind = Counter(f["kind"] for f in findings)
    for kind, counter in KIND_COUNTER.items():
        assert run["summary"][counter] == by_kind[kind], \
            f"summary {counter}={run['summary'][counter]} but {by_kind[kind]} {kind} findings: {findings}"
    if repair == "none" or dry_run:
        assert run["summary"]["repaired"] == 0, run
    else:
        taken = sum(1 for f in findings if f["action"] != "none")
        assert run["summary"]["repaired"] == taken, f"repaired {run['summary']['repaired']} != {taken} actions"
    if repair == "none":
        assert all(f["action"] == "none" for f in findings), findings
    return run, findings


def keyed(findings):
    return sorted((f["kind"], f["object"], f["id"] or "") for f in findings)


def store_counts(gw, neo4j):
    """The counters a run must report, read from both stores directly."""
    return {
        "entities_sqlite": gw.store.value("SELECT count(*) FROM entities"),
        "entities_neo4j": neo4j.value("MATCH (n:Entity) RETURN count(n)"),
        "relationships_sqlite": gw.store.value("SELECT count(*) FROM relationships"),
        "relationships_neo4j": neo4j.value("MATCH (:Entity)-[r]->(:Entity) RETURN count(r)"),
    }


def assert_clean(gw, neo4j, mode="deep"):
    """A run of `mode` reports nothing, with counters equal to both stores' contents."""
    run, findings = reconcile(gw, mode=mode)
    assert findings == [], f"{mode} run still reports {findings}"
    expected = dict(store_counts(gw, neo4j), only_in_sqlite=0, only_in_neo4j=0, mismatched=0, duplicate_ids=0,
                    missing_ids=0, repaired=0)
    assert run["summary"] == expected, run["summary"]
    return run


def sqlite_write(path, sql, params=()):
    """Writes the gateway's SQLite file behind its back (autocommit, foreign keys off)."""
    conn = sqlite3.connect(str(path), timeout=15, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        cur = conn.execute(sql, params)
        assert cur.rowcount >= 1, f"{sql!r} changed nothing"
    finally:
        conn.close()


def list_transactions(gw):
    items, after = [], None
    for _ in range(1000):
        url = "/v1/transactions?limit=100" + (f"&after={urllib.parse.quote(after, safe='')}" if after else "")
        r = gw.get(url)
        assert r.status == 200, r
        items.extend(r.json["items"])
        after = r.json["next"]
        if after is None:
            return items
    pytest.fail("too many pages of transactions")


def repair_transactions(gw, rid=None):
    out = []
    for t in list_transactions(gw):
        prov = t.get("provenance")
        if isinstance(prov, dict) and prov.get("tool") == "reconciliation" and (rid is None or prov.get("run") == rid):
            out.append(t)
    return out


def run_cli(*args, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BISTORE_")}
    return subprocess.run([BISTORE_BIN, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def entity_constraint_exists(neo4j):
    rows = neo4j.run("SHOW CONSTRAINTS YIELD name, labelsOrTypes, properties "
                     "WHERE 'Entity' IN labelsOrTypes AND properties = ['id'] RETURN name")
    return bool(rows)


def restore_entity_constraint(neo4j):
    """Deletes all but one node of each duplicated entity id, then recreates the constraint."""
    if entity_constraint_exists(neo4j):
        return
    neo4j.terminate_other_transactions()
    neo4j.run("MATCH (n:Entity) WHERE n.id IS NOT NULL WITH n.id AS id, collect(n) AS ns "
              "WHERE size(ns) > 1 UNWIND ns[1..] AS extra DETACH DELETE extra")
    neo4j.run(CREATE_CONSTRAINT)
    assert entity_constraint_exists(neo4j)


@pytest.fixture
def entity_constraint(fresh_neo4j):
    """Whatever a test does to the Entity id constraint, it exists again afterwards."""
    yield fresh_neo4j
    restore_entity_constraint(fresh_neo4j)


# ------------------------------------------------------------ the data set

ENTITIES = {
    "p1": {"type": "Person", "properties": {"name": "Ada", "age": 36, "tags": ["math", "poetry"]},
           "metadata": {"source_ref": "doc_17#p3", "tool_id": "T31"}},
    "p2": {"type": "Person", "properties": {"name": "Bob", "score": 0.5, "nick": "bobby"}},
    "o1": {"type": "Org", "properties": {"name": "Acme", "founded": 1900, "public": True}},
    "d1": {"type": "Document", "properties": {"title": "Notes", "pages": 12}},
    "t1": {"type": "Topic", "properties": {"label": "physics", "weight": 1.5}},  # no relationships
}
RELATIONSHIPS = {
    "r1": {"type": "WORKS_AT", "source": "p1", "target": "o1", "properties": {"since": 2001}},
    "r2": {"type": "KNOWS", "source": "p1", "target": "p2", "properties": {"weight": 0.7}},
    "r3": {"type": "MENTIONS", "source": "d1", "target": "p2", "properties": {"count": 3}},
}
FINAL_P2 = {"name": "Bob", "score": 0.9, "alias": "B."}


class Ctx:
    """A gateway holding the standard data set, and a snapshot of it."""

    def __init__(self, gw, neo4j):
        self.gw, self.neo4j, self.store = gw, neo4j, gw.store
        self.single = True  # one damage only: the checks may insist nothing else changed
        build_store(gw)
        assert_stores_consistent(self.store, neo4j)
        self.sql_entities = self.store.entities()
        self.sql_rels = self.store.relationships()
        self.neo_entities = neo4j.entities()
        self.neo_rels = neo4j.relationships()


def build_store(gw):
    """Three types of entities with properties, relationships, an update and a delete,
    all through the gateway."""
    p1 = ENTITIES["p1"]
    r = gw.post("/v1/entities", {"id": "p1", **p1})
    assert r.status == 201, r
    ops = [{"op": "create_entity", "id": eid, "type": e["type"], "properties": e["properties"]}
           for eid, e in ENTITIES.items() if eid != "p1"]
    ops.append({"op": "create_entity", "id": "x1", "type": "Person", "properties": {"name": "Gone"}})
    ops += [{"op": "create_relationship", "id": rid, "type": rel["type"], "source": rel["source"],
             "target": rel["target"], "properties": rel["properties"]} for rid, rel in RELATIONSHIPS.items()]
    ops.append({"op": "create_relationship", "id": "r4", "type": "KNOWS", "source": "p2", "target": "x1",
                "properties": {"weight": 0.1}})
    r = gw.post("/v1/transactions", {"operations": ops, "provenance": {"tool_id": "test"}})
    assert r.status == 200 and r.json["state"] == "committed", r
    r = gw.patch("/v1/entities/p2", {"properties": {"score": 0.9, "nick": None, "alias": "B."}})
    assert r.status == 200 and r.json["version"] == 2, r
    r = gw.delete("/v1/entities/x1")
    assert r.status == 204, r


@pytest.fixture
def ctx(gateway, neo4j):
    return Ctx(gateway, neo4j)


def base_summary(**changes):
    s = {"entities_sqlite": 5, "entities_neo4j": 5, "relationships_sqlite": 3, "relationships_neo4j": 3,
         "only_in_sqlite": 0, "only_in_neo4j": 0, "mismatched": 0, "duplicate_ids": 0, "missing_ids": 0,
         "repaired": 0}
    s.update(changes)
    return s


# ------------------------------------------------------------------ damages
#
# Each damage: `apply(ctx)` changes one store directly; `found` is the findings
# (kind, object, id) both modes report (`fast_blind`: a fast run sees nothing);
# `summary` the count changes besides the findings' counters; `actions` the
# action(s) each policy takes (one for all findings, or per id); `check[policy]`
# checks the repaired stores (besides assert_stores_consistent and a clean deep run).

STRAY_PROPS = {"name": "stray", "n": 7}


def dmg_neo4j_node_deleted(c):
    c.neo4j.run("MATCH (n:Entity {id: 't1'}) DETACH DELETE n")


def dmg_neo4j_stray_node(c):
    c.neo4j.run("CREATE (n:Entity:Stray) SET n = $p", p=STRAY_PROPS)


def dmg_neo4j_duplicate_id(c):
    c.neo4j.run(f"DROP CONSTRAINT {CONSTRAINT}")
    props = dict(c.neo_entities["t1"]["props"], label="copy")
    c.neo4j.run("CREATE (n:Entity:Topic) SET n = $p", p=props)
    assert c.neo4j.count_entity("t1") == 2


def dmg_neo4j_property_edited(c):
    c.neo4j.run("MATCH (n:Entity {id: 'p1'}) SET n.name = 'Edited'")


def dmg_neo4j_version_changed(c):
    c.neo4j.run("MATCH (n:Entity {id: 'p1'}) SET n._v = 9")


def dmg_sqlite_row_deleted(c):
    sqlite_write(c.store.path, "DELETE FROM entities WHERE id = 't1'")


def dmg_sqlite_property_edited(c):
    sqlite_write(c.store.path, "UPDATE entities SET properties = json_set(properties, '$.name', 'Edited') "
                               "WHERE id = 'p1'")


def dmg_neo4j_relationship_deleted(c):
    c.neo4j.run("MATCH ()-[r {id: 'r2'}]->() DELETE r")


def dmg_sqlite_relationship_deleted(c):
    sqlite_write(c.store.path, "DELETE FROM relationships WHERE id = 'r2'")


def dmg_neo4j_relationship_edited(c):
    c.neo4j.run("MATCH ()-[r {id: 'r1'}]->() SET r.since = 1999")


def dmg_neo4j_linked_node_deleted(c):  # p2 has r2 (p1->p2) and r3 (d1->p2): they go with it
    c.neo4j.run("MATCH (n:Entity {id: 'p2'}) DETACH DELETE n")


def dmg_neo4j_relationship_rewired(c):  # r1 p1->o1 becomes p1->p2, same id, _v, _h, properties
    c.neo4j.run("MATCH (a:Entity {id: 'p1'})-[r {id: 'r1'}]->(:Entity {id: 'o1'}) MATCH (b:Entity {id: 'p2'}) "
                "WITH a, b, r, properties(r) AS props DELETE r "
                "CREATE (a)-[r2:WORKS_AT]->(b) SET r2 = props")
    assert c.neo4j.relationships()["r1"]["target"] == "p2"


def dmg_neo4j_label_changed(c):
    c.neo4j.run("MATCH (n:Entity {id: 't1'}) REMOVE n:Topic SET n:Subject")


def dmg_neo4j_stray_relationship(c):
    c.neo4j.run("MATCH (a:Entity {id: 'p2'}), (b:Entity {id: 'o1'}) CREATE (a)-[:LIKES {stars: 4}]->(b)")


# ---- checks of the repaired stores (besides assert_stores_consistent and a clean deep run)

def neo_node(c, eid):
    rows = c.neo4j.run("MATCH (n:Entity {id: $id}) RETURN labels(n), properties(n)", id=eid)
    assert len(rows) == 1, f"{eid}: {len(rows)} nodes in Neo4j"
    return {"labels": set(rows[0][0]), "props": rows[0][1]}


def chk_node_recreated(c):  # sqlite_wins after the node was deleted in Neo4j
    assert neo_node(c, "t1") == c.neo_entities["t1"], "t1 not re-created as it was"
    assert c.store.entity("t1") == c.sql_entities["t1"], "SQLite t1 changed"


def chk_t1_gone(c):
    assert c.store.count_entity("t1") == 0 and c.neo4j.count_entity("t1") == 0


def chk_stray_deleted(c):
    assert c.neo4j.value("MATCH (n:Entity) WHERE n.id IS NULL RETURN count(n)") == 0
    assert c.neo4j.value("MATCH (n:Stray) RETURN count(n)") == 0
    if c.single:
        assert c.store.entities() == c.sql_entities


def chk_stray_adopted(c):
    rows = c.neo4j.run("MATCH (n:Stray) RETURN n.id, labels(n), properties(n)")
    assert len(rows) == 1, rows
    new_id = rows[0][0]
    assert isinstance(new_id, str) and UUID7_RE.match(new_id), f"adopted node id {new_id!r} is not a UUIDv7"
    row = c.store.entity(new_id)
    assert row is not None, f"no SQLite row for the adopted node {new_id}"
    assert row["type"] == "Stray" and row["properties"] == STRAY_PROPS, row
    assert set(rows[0][1]) == {"Entity", "Stray"}
    if c.single:
        for eid, before in c.sql_entities.items():
            assert c.store.entity(eid) == before, f"SQLite {eid} changed"


def chk_duplicate_sqlite_wins(c):
    assert c.neo4j.count_entity("t1") == 1
    assert neo_node(c, "t1")["props"]["label"] == "physics"
    assert c.store.entity("t1") == c.sql_entities["t1"]


def chk_duplicate_neo4j_wins(c):
    assert c.neo4j.count_entity("t1") == 1
    node = neo_node(c, "t1")
    assert node["props"]["label"] in ("physics", "copy"), node
    assert c.store.entity("t1")["properties"]["label"] == node["props"]["label"]


def chk_p1_restored_in_neo4j(c):
    assert neo_node(c, "p1")["props"]["name"] == "Ada"
    row = c.store.entity("p1")
    assert row == c.sql_entities["p1"], f"SQLite p1 changed: {row}"


def chk_p1_edited_adopted(c):
    row = c.store.entity("p1")
    assert row["properties"] == dict(ENTITIES["p1"]["properties"], name="Edited"), row
    assert row["type"] == "Person"
    assert row["metadata"] == ENTITIES["p1"]["metadata"], "neo4j_wins lost the SQLite-only metadata"
    assert row["created_at"] == c.sql_entities["p1"]["created_at"], row
    assert neo_node(c, "p1")["props"]["name"] == "Edited"


def chk_p1_version_sqlite_wins(c):
    assert neo_node(c, "p1")["props"]["_v"] == c.sql_entities["p1"]["version"]
    assert c.store.entity("p1") == c.sql_entities["p1"]


def chk_p1_version_neo4j_wins(c):
    row = c.store.entity("p1")
    assert row["properties"] == ENTITIES["p1"]["properties"], row
    assert row["metadata"] == ENTITIES["p1"]["metadata"], row


def chk_row_recreated(c):  # neo4j_wins after the SQLite row was deleted
    row = c.store.entity("t1")
    assert row is not None, "t1 not re-created in SQLite"
    before = c.sql_entities["t1"]
    assert (row["type"], row["properties"], row["version"], row["hash"]) == \
           (before["type"], before["properties"], before["version"], before["hash"]), row
    assert neo_node(c, "t1") == c.neo_entities["t1"], "Neo4j t1 changed"


def chk_sqlite_edit_pushed(c):  # sqlite_wins after SQLite's properties were edited
    row = c.store.entity("p1")
    assert row["properties"]["name"] == "Edited", row
    assert row["hash"] != c.sql_entities["p1"]["hash"], "the edited row kept its stale hash"
    assert neo_node(c, "p1")["props"]["name"] == "Edited"


def chk_sqlite_edit_reverted(c):  # neo4j_wins after SQLite's properties were edited
    row = c.store.entity("p1")
    assert row["properties"] == ENTITIES["p1"]["properties"], row
    assert row["metadata"] == ENTITIES["p1"]["metadata"], row
    assert neo_node(c, "p1")["props"]["name"] == "Ada"


def chk_rel_recreated_in_neo4j(c):
    rels = c.neo4j.relationships()
    assert rels.get("r2") == c.neo_rels["r2"], f"r2 not re-created as it was: {rels.get('r2')}"
    assert c.store.relationship("r2") == c.sql_rels["r2"]


def chk_r2_gone(c):
    assert c.store.count_relationship("r2") == 0 and c.neo4j.count_relationship("r2") == 0
    assert c.store.entity("p1") and c.store.entity("p2"), "the endpoints went with the relationship"


def chk_rel_recreated_in_sqlite(c):
    row = c.store.relationship("r2")
    assert row is not None, "r2 not re-created in SQLite"
    before = c.sql_rels["r2"]
    for k in ("type", "source_id", "target_id", "properties", "version", "hash"):
        assert row[k] == before[k], f"r2 {k}: {row[k]!r} != {before[k]!r}"
    assert c.neo4j.relationships()["r2"] == c.neo_rels["r2"]


def chk_r1_restored(c):
    assert c.neo4j.relationships()["r1"]["props"]["since"] == 2001
    assert c.store.relationship("r1") == c.sql_rels["r1"]


def chk_r1_edit_adopted(c):
    row = c.store.relationship("r1")
    assert row["properties"] == {"since": 1999}, row
    assert (row["source_id"], row["target_id"], row["type"]) == ("p1", "o1", "WORKS_AT"), row


def chk_stray_rel_deleted(c):
    assert c.neo4j.value("MATCH ()-[r:LIKES]->() RETURN count(r)") == 0
    if c.single:
        assert c.store.relationships() == c.sql_rels


def chk_stray_rel_adopted(c):
    rows = c.neo4j.run("MATCH (a)-[r:LIKES]->(b) RETURN r.id, a.id, b.id")
    assert len(rows) == 1, rows
    rid = rows[0][0]
    assert isinstance(rid, str) and UUID7_RE.match(rid), f"adopted relationship id {rid!r}"
    row = c.store.relationship(rid)
    assert row is not None, f"no SQLite row for adopted relationship {rid}"
    assert (row["type"], row["source_id"], row["target_id"], row["properties"]) == ("LIKES", "p2", "o1",
                                                                                     {"stars": 4}), row


def chk_linked_node_recreated(c):
    assert neo_node(c, "p2") == c.neo_entities["p2"]
    rels = c.neo4j.relationships()
    for rid in ("r2", "r3"):
        assert rels.get(rid) == c.neo_rels[rid], f"{rid} not re-created as it was: {rels.get(rid)}"
    assert c.store.entities() == c.sql_entities and c.store.relationships() == c.sql_rels


def chk_linked_node_gone(c):
    assert c.store.count_entity("p2") == 0 and c.neo4j.count_entity("p2") == 0
    for rid in ("r2", "r3"):
        assert c.store.count_relationship(rid) == 0 and c.neo4j.count_relationship(rid) == 0, rid
    assert set(c.store.entities()) == {"p1", "o1", "d1", "t1"}
    assert set(c.store.relationships()) == {"r1"}


def chk_rewire_reverted(c):
    rel = c.neo4j.relationships()["r1"]
    assert (rel["source"], rel["target"]) == ("p1", "o1"), rel
    assert rel == c.neo_rels["r1"]
    assert c.store.relationship("r1") == c.sql_rels["r1"]


def chk_rewire_adopted(c):
    row = c.store.relationship("r1")
    assert (row["source_id"], row["target_id"], row["type"], row["properties"]) == \
           ("p1", "p2", "WORKS_AT", {"since": 2001}), row
    assert c.neo4j.count_relationship("r1") == 1


def chk_label_restored(c):
    assert neo_node(c, "t1") == c.neo_entities["t1"]
    assert c.store.entity("t1") == c.sql_entities["t1"]


def chk_label_adopted(c):
    row = c.store.entity("t1")
    assert row["type"] == "Subject" and row["properties"] == ENTITIES["t1"]["properties"], row
    assert neo_node(c, "t1")["labels"] == {"Entity", "Subject"}


E, R = "entity", "relationship"
DAMAGES = {
    "neo4j_node_deleted": dict(
        apply=dmg_neo4j_node_deleted, found=[("only_in_sqlite", E, "t1")], summary={"entities_neo4j": 4},
        actions={"sqlite_wins": "created", "neo4j_wins": "deleted"},
        check={"sqlite_wins": chk_node_recreated, "neo4j_wins": chk_t1_gone}),
    "neo4j_stray_node": dict(
        apply=dmg_neo4j_stray_node, found=[("missing_id", E, None)], summary={"entities_neo4j": 6},
        actions={"sqlite_wins": "deleted", "neo4j_wins": "created"},
        check={"sqlite_wins": chk_stray_deleted, "neo4j_wins": chk_stray_adopted}),
    "neo4j_duplicate_id": dict(
        apply=dmg_neo4j_duplicate_id, found=[("duplicate_id", E, "t1")], summary={"entities_neo4j": 6},
        actions={"sqlite_wins": ("updated", "deleted"), "neo4j_wins": ("updated", "deleted")},
        check={"sqlite_wins": chk_duplicate_sqlite_wins, "neo4j_wins": chk_duplicate_neo4j_wins}),
    "neo4j_property_edited": dict(
        apply=dmg_neo4j_property_edited, found=[("mismatch", E, "p1")], fast_blind=True, summary={},
        actions={"sqlite_wins": "updated", "neo4j_wins": "updated"},
        check={"sqlite_wins": chk_p1_restored_in_neo4j, "neo4j_wins": chk_p1_edited_adopted}),
    "neo4j_version_changed": dict(
        apply=dmg_neo4j_version_changed, found=[("mismatch", E, "p1")], summary={},
        actions={"sqlite_wins": "updated", "neo4j_wins": "updated"},
        check={"sqlite_wins": chk_p1_version_sqlite_wins, "neo4j_wins": chk_p1_version_neo4j_wins}),
    "sqlite_row_deleted": dict(
        apply=dmg_sqlite_row_deleted, found=[("only_in_neo4j", E, "t1")], summary={"entities_sqlite": 4},
        actions={"sqlite_wins": "deleted", "neo4j_wins": "created"},
        check={"sqlite_wins": chk_t1_gone, "neo4j_wins": chk_row_recreated}),
    "sqlite_property_edited": dict(
        apply=dmg_sqlite_property_edited, found=[("mismatch", E, "p1")], fast_blind=True, summary={},
        actions={"sqlite_wins": "updated", "neo4j_wins": "updated"},
        check={"sqlite_wins": chk_sqlite_edit_pushed, "neo4j_wins": chk_sqlite_edit_reverted}),
    "neo4j_relationship_deleted": dict(
        apply=dmg_neo4j_relationship_deleted, found=[("only_in_sqlite", R, "r2")],
        summary={"relationships_neo4j": 2},
        actions={"sqlite_wins": "created", "neo4j_wins": "deleted"},
        check={"sqlite_wins": chk_rel_recreated_in_neo4j, "neo4j_wins": chk_r2_gone}),
    "sqlite_relationship_deleted": dict(
        apply=dmg_sqlite_relationship_deleted, found=[("only_in_neo4j", R, "r2")],
        summary={"relationships_sqlite": 2},
        actions={"sqlite_wins": "deleted", "neo4j_wins": "created"},
        check={"sqlite_wins": chk_r2_gone, "neo4j_wins": chk_rel_recreated_in_sqlite}),
    "neo4j_relationship_edited": dict(
        apply=dmg_neo4j_relationship_edited, found=[("mismatch", R, "r1")], fast_blind=True, summary={},
        actions={"sqlite_wins": "updated", "neo4j_wins": "updated"},
        check={"sqlite_wins": chk_r1_restored, "neo4j_wins": chk_r1_edit_adopted}),
    "neo4j_linked_node_deleted": dict(
        apply=dmg_neo4j_linked_node_deleted,
        found=[("only_in_sqlite", E, "p2"), ("only_in_sqlite", R, "r2"), ("only_in_sqlite", R, "r3")],
        summary={"entities_neo4j": 4, "relationships_neo4j": 1},
        # neo4j_wins: deleting the row of p2 deletes its relationships' rows with it
        actions={"sqlite_wins": "created", "neo4j_wins": {"p2": "deleted", "r2": ("deleted", "none"),
                                                          "r3": ("deleted", "none")}},
        check={"sqlite_wins": chk_linked_node_recreated, "neo4j_wins": chk_linked_node_gone}),
    "neo4j_relationship_rewired": dict(
        apply=dmg_neo4j_relationship_rewired, found=[("mismatch", R, "r1")], summary={},
        actions={"sqlite_wins": "updated", "neo4j_wins": "updated"},
        check={"sqlite_wins": chk_rewire_reverted, "neo4j_wins": chk_rewire_adopted}),
    "neo4j_label_changed": dict(
        apply=dmg_neo4j_label_changed, found=[("mismatch", E, "t1")], fast_blind=True, summary={},
        actions={"sqlite_wins": "updated", "neo4j_wins": "updated"},
        check={"sqlite_wins": chk_label_restored, "neo4j_wins": chk_label_adopted}),
    "neo4j_stray_relationship": dict(
        apply=dmg_neo4j_stray_relationship, found=[("missing_id", R, None)], summary={"relationships_neo4j": 4},
        actions={"sqlite_wins": "deleted", "neo4j_wins": "created"},
        check={"sqlite_wins": chk_stray_rel_deleted, "neo4j_wins": chk_stray_rel_adopted}),
}


def allowed_actions(damage, policy, finding):
    want = DAMAGES[damage]["actions"][policy]
    if isinstance(want, dict):
        want = want[finding["id"]]
    return want if isinstance(want, tuple) else (want,)


def expected_summary(damage, mode):
    d = DAMAGES[damage]
    s = base_summary(**d["summary"])
    if not (mode == "fast" and d.get("fast_blind")):
        for kind, _, _ in d["found"]:
            s[KIND_COUNTER[kind]] += 1
    return s


def check_finding_content(c, f):
    """The finding carries what each store holds."""
    kind = f["kind"]
    if kind == "missing_id":
        assert f["id"] is None and f["sqlite"] is None, f
        n = f["neo4j"]
        assert isinstance(n, dict) and isinstance(n.get("element_id"), str) and n["element_id"], f
        assert isinstance(n.get("properties"), dict), f
        if f["object"] == "entity":
            assert sorted(n.get("labels") or []) == ["Entity", "Stray"], f
            assert n["properties"] == STRAY_PROPS, f
        else:
            assert n["properties"] == {"stars": 4}, f
    elif kind == "duplicate_id":
        assert isinstance(f["sqlite"], dict) and f["sqlite"].get("id") == f["id"], f
        assert isinstance(f["neo4j"], dict) and f["neo4j"].get("count") == 2, f
        assert isinstance(f["neo4j"].get("nodes"), list) and len(f["neo4j"]["nodes"]) == 2, f
        eids = {n.get("element_id") for n in f["neo4j"]["nodes"]}
        assert len(eids) == 2 and None not in eids, f
    elif kind == "only_in_sqlite":
        assert f["neo4j"] is None and isinstance(f["sqlite"], dict), f
        assert f["sqlite"].get("id") == f["id"], f
        rows = c.sql_entities if f["object"] == "entity" else c.sql_rels
        assert f["sqlite"].get("version") == rows[f["id"]]["version"], f
        assert f["sqlite"].get("hash") == rows[f["id"]]["hash"], f
    elif kind == "only_in_neo4j":
        assert f["sqlite"] is None and isinstance(f["neo4j"], dict), f
        assert f["neo4j"].get("id") == f["id"], f
    else:
        assert isinstance(f["sqlite"], dict) and isinstance(f["neo4j"], dict), f
        assert f["sqlite"].get("id") == f["id"] and f["neo4j"].get("id") == f["id"], f


# ------------------------------------------------------- 1. consistent store


def test_consistent_store_has_no_findings_in_either_mode(ctx, neo4j):
    gw = ctx.gw
    counts = store_counts(gw, neo4j)
    assert counts == {"entities_sqlite": 5, "entities_neo4j": 5, "relationships_sqlite": 3,
                      "relationships_neo4j": 3}, counts
    runs = []
    for mode in ("fast", "deep"):
        run, findings = reconcile(gw, mode=mode)
        assert findings == [], f"{mode}: {findings}"
        assert run["summary"] == base_summary(), f"{mode}: {run['summary']}"
        assert run["error"] is None and run["dry_run"] is False and run["repair"] == "none"
        assert run["progress"]["scanned"] == run["progress"]["total"] > 0, run["progress"]
        runs.append(run)
    # nothing was written by a report-only run
    assert repair_transactions(gw) == []
    assert_stores_consistent(gw.store, neo4j)
    # the list shows both runs, newest first
    r = gw.get("/v1/reconciliations")
    assert r.status == 200, r
    assert set(r.json) == {"items", "next"}, r.json
    assert [x["id"] for x in r.json["items"]] == [runs[1]["id"], runs[0]["id"]], r.json
    assert r.json["items"][0] == get_run(gw, runs[1]["id"])


# ------------------------------------------------ 2. each damage is reported


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damage_is_reported_as_exactly_one_finding(entity_constraint, ctx, neo4j, damage):
    d = DAMAGES[damage]
    d["apply"](ctx)
    expected = sorted((k, o, i or "") for k, o, i in d["found"])
    for mode in ("fast", "deep"):
        run, findings = reconcile(ctx.gw, mode=mode)
        want = [] if (mode == "fast" and d.get("fast_blind")) else expected
        assert keyed(findings) == want, f"{mode} run of {damage}: {findings}"
        assert run["summary"] == expected_summary(damage, mode), f"{mode}: {run['summary']}"
        for f in findings:
            assert f["action"] == "none", f
            check_finding_content(ctx, f)
    # a report changes nothing
    assert repair_transactions(ctx.gw) == []


# --------------------------------------------------- 3. each damage, repaired


@pytest.mark.parametrize("policy", ["sqlite_wins", "neo4j_wins"])
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damage_is_repaired_by_policy(entity_constraint, ctx, neo4j, damage, policy):
    d = DAMAGES[damage]
    d["apply"](ctx)
    run, findings = reconcile(ctx.gw, mode="deep", repair=policy)
    assert keyed(findings) == sorted((k, o, i or "") for k, o, i in d["found"]), findings
    for f in findings:
        want = allowed_actions(damage, policy, f)
        assert f["action"] in want, f"{damage}/{policy}: action {f['action']!r} on {f['id']}, expected {want}"
    assert run["summary"]["repaired"] >= 1, run["summary"]
    if damage == "neo4j_duplicate_id":
        # the duplicate is gone: the constraint can be created again
        neo4j.run(CREATE_CONSTRAINT)
    d["check"][policy](ctx)
    assert_stores_consistent(ctx.store, neo4j)
    assert_intents_settled(ctx.store, neo4j)
    # audited as one committed transaction of this run
    txs = repair_transactions(ctx.gw, run["id"])
    assert len(txs) == 1, txs
    assert txs[0]["provenance"] == {"tool": "reconciliation", "run": run["id"], "policy": policy}, txs[0]
    assert_clean(ctx.gw, neo4j, "deep")


# -------------------------------------------------------------- 4. dry run

SEVERAL = ["neo4j_node_deleted", "neo4j_stray_node", "neo4j_property_edited", "sqlite_relationship_deleted"]


def snapshot(gw, neo4j):
    return gw.store.dump(), neo4j.dump()


@pytest.mark.parametrize("policy", ["sqlite_wins", "neo4j_wins"])
def test_dry_run_writes_nothing_and_shows_the_plan(ctx, neo4j, policy):
    gw = ctx.gw
    ctx.single = False
    for name in SEVERAL:
        DAMAGES[name]["apply"](ctx)
    expected = {(k, o, i or ""): DAMAGES[name]["actions"][policy] for name in SEVERAL
                for k, o, i in DAMAGES[name]["found"]}
    before = snapshot(gw, neo4j)

    run, findings = reconcile(gw, mode="deep", repair=policy, dry_run=True)
    assert run["summary"]["repaired"] == 0, run["summary"]
    plan = {(f["kind"], f["object"], f["id"] or ""): f["action"] for f in findings}
    assert plan == expected, f"dry run plan {plan}"
    after = snapshot(gw, neo4j)
    assert after[0] == before[0], "the dry run changed SQLite"
    assert after[1] == before[1], "the dry run changed Neo4j"
    assert repair_transactions(gw) == []

    # the same run for real does what the dry run announced
    run2, findings2 = reconcile(gw, mode="deep", repair=policy)
    done = {(f["kind"], f["object"], f["id"] or ""): f["action"] for f in findings2}
    assert done == plan, f"real run {done} != dry run {plan}"
    assert run2["summary"]["repaired"] == len(SEVERAL), run2["summary"]
    for name in SEVERAL:
        DAMAGES[name]["check"][policy](ctx)
    assert_stores_consistent(ctx.store, neo4j)
    assert_clean(gw, neo4j, "deep")


# ----------------------------------------------------------------- 5. audit


@pytest.mark.parametrize("policy", ["sqlite_wins", "neo4j_wins"])
def test_repairs_are_audited_as_transactions(ctx, neo4j, policy):
    gw = ctx.gw
    ctx.single = False
    for name in SEVERAL:
        DAMAGES[name]["apply"](ctx)
    before = list_transactions(gw)
    run, findings = reconcile(gw, mode="deep", repair=policy)
    assert run["summary"]["repaired"] == len(SEVERAL)
    after = list_transactions(gw)
    new = after[len(before):]
    assert after[:len(before)] == before or [t["tx_id"] for t in after[:len(before)]] == \
        [t["tx_id"] for t in before], "the audit trail changed its past"
    assert len(new) == 1, f"expected one repair transaction (one batch), got {new}"
    tx = new[0]
    assert tx["provenance"] == {"tool": "reconciliation", "run": run["id"], "policy": policy}, tx
    assert tx["state"] in ("committed", "applied"), tx
    assert tx["error"] is None, tx
    ops = Counter((o.get("op"), o.get("object"), o.get("id"), o.get("action")) for o in tx["operations"])
    # an adopted id-less node is audited under the id it was given
    want = Counter(("repair", f["object"], f["id"] if f["id"] is not None else (f["neo4j"] or {}).get("adopted_id"),
                    f["action"]) for f in findings if f["action"] != "none")
    assert ops == want, f"operations {tx['operations']} vs findings {findings}"
    for o in tx["operations"]:
        assert set(o) == {"op", "object", "id", "action"}, o
    r = gw.get(f"/v1/transactions/{tx['tx_id']}")
    assert r.status == 200 and r.json["provenance"] == tx["provenance"], r
    # the same in SQLite's audit table, read directly
    row = gw.store.transaction(tx["tx_id"])
    assert row is not None and row["state"] == "committed", row
    assert json.loads(row["provenance"]) == tx["provenance"], row
    assert Counter((o["op"], o["object"], o["id"], o["action"]) for o in json.loads(row["operations"])) == want
    assert_intents_settled(gw.store, neo4j)
    # a report-only run is not a transaction
    reconcile(gw, mode="deep")
    assert len(list_transactions(gw)) == len(after)


def test_repair_batches_hold_one_hundred_findings(gateway, neo4j):
    """250 findings: three transactions of 100, 100 and 50 operations."""
    neo4j.run("UNWIND range(1, 250) AS i CREATE (n:Entity:Bulk {id: 'bulk-' + right('0000' + toString(i), 4), "
              "n: i, _v: 1, _h: '0123456789abcdef'})")
    run, findings = reconcile(gateway, repair="sqlite_wins")
    assert len(findings) == 250 and all(f["kind"] == "only_in_neo4j" and f["action"] == "deleted"
                                        for f in findings)
    txs = repair_transactions(gateway, run["id"])
    assert sorted(len(t["operations"]) for t in txs) == [50, 100, 100], [len(t["operations"]) for t in txs]
    assert {o["id"] for t in txs for o in t["operations"]} == {f["id"] for f in findings}
    assert neo4j.value("MATCH (n:Bulk) RETURN count(n)") == 0
    assert_intents_settled(gateway.store, neo4j)


def test_findings_across_scan_page_boundaries(entity_constraint, gateway, neo4j):
    """2,500 entities: a deep scan reads them in several pages per store (keyset
    pagination); damages sit on the page edges, a duplicate id straddles one."""
    gw = gateway
    n = 2500
    for start in range(0, n, 1250):
        ops = [{"op": "create_entity", "id": f"e{i:05d}", "type": "Item", "properties": {"n": i}}
               for i in range(start, start + 1250)]
        r = gw.post("/v1/transactions", {"operations": ops})
        assert r.status == 200, r
    neo4j.run("MATCH (n:Entity) WHERE n.id IN ['e01000', 'e02000'] DETACH DELETE n")   # only_in_sqlite
    sqlite_write(gw.store.path, "DELETE FROM entities WHERE id IN ('e00998', 'e01999')")  # only_in_neo4j
    neo4j.run(f"DROP CONSTRAINT {CONSTRAINT}")
    neo4j.run("MATCH (n:Entity) WHERE n.id IN ['e00999', 'e01001'] CREATE (m:Entity:Item) SET m = properties(n)")
    neo4j.run("MATCH (n:Entity {id: 'e01500'}) SET n.n = -1")                             # deep: mismatch
    expected = sorted([("only_in_sqlite", E, "e01000"), ("only_in_sqlite", E, "e02000"),
                       ("only_in_neo4j", E, "e00998"), ("only_in_neo4j", E, "e01999"),
                       ("duplicate_id", E, "e00999"), ("duplicate_id", E, "e01001"),
                       ("mismatch", E, "e01500")])
    for mode in ("fast", "deep"):
        run, findings = reconcile(gw, mode=mode)
        want = [f for f in expected if mode == "deep" or f[0] != "mismatch"]
        assert keyed(findings) == want, f"{mode}: {keyed(findings)}"
        assert run["summary"]["entities_sqlite"] == n - 2 and run["summary"]["entities_neo4j"] == n - 2 + 2, run
        assert run["progress"]["scanned"] >= n - 2, run["progress"]
    run, findings = reconcile(gw, mode="deep", repair="sqlite_wins")
    assert keyed(findings) == expected and run["summary"]["repaired"] == len(expected), findings
    neo4j.run(CREATE_CONSTRAINT)
    assert_stores_consistent(gw.store, neo4j)
    assert neo4j.value("MATCH (n:Entity) RETURN count(n)") == n - 2
    assert_clean(gw, neo4j, "deep")


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
    commit = re.compile(rb"POST /db/[^/ ]+/tx/\d+/commit")
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


# ------------------------------------------------------------------- 7. CLI


def test_cli_check_and_repair(ctx, neo4j):
    gw = ctx.gw
    store_args = ["--sqlite", str(gw.sqlite_path), "--neo4j-url", neo4j.url]
    out = run_cli("check", *store_args)
    assert out.returncode == 0, f"check on a clean store: {out.returncode}\n{out.stdout}\n{out.stderr}"
    out = run_cli("check", "--deep", *store_args)
    assert out.returncode == 0, f"deep check on a clean store: {out.returncode}\n{out.stdout}\n{out.stderr}"

    # a node deleted behind the gateway's back (the gateway keeps serving)
    dmg_neo4j_node_deleted(ctx)
    out = run_cli("check", *store_args)
    assert out.returncode == 1, f"check after damage: {out.returncode}\n{out.stdout}\n{out.stderr}"
    lines = [ln for ln in out.stdout.splitlines() if "t1" in ln]
    assert lines and "only_in_sqlite" in lines[0], out.stdout
    assert gw.get("/readyz").status == 200

    # a property edit only a deep check sees
    dmg_neo4j_property_edited(ctx)
    out = run_cli("check", *store_args)
    assert out.returncode == 1 and "p1" not in out.stdout, out.stdout
    out = run_cli("check", "--deep", *store_args)
    assert out.returncode == 1, out
    assert any("p1" in ln and "mismatch" in ln for ln in out.stdout.splitlines()), out.stdout
    assert any("t1" in ln and "only_in_sqlite" in ln for ln in out.stdout.splitlines()), out.stdout

    # a dry-run repair changes nothing
    assert gw.terminate() == 0
    before = (gw.store.dump(), neo4j.dump())
    out = run_cli("repair", "--policy", "sqlite_wins", "--deep", "--dry-run", *store_args)
    assert out.returncode == 0, f"{out.returncode}\n{out.stdout}\n{out.stderr}"
    assert (gw.store.dump(), neo4j.dump()) == before, "repair --dry-run wrote something"

    # repair with the gateway stopped
    out = run_cli("repair", "--policy", "sqlite_wins", "--deep", *store_args)
    assert out.returncode == 0, f"repair: {out.returncode}\n{out.stdout}\n{out.stderr}"
    chk_node_recreated(ctx)
    chk_p1_restored_in_neo4j(ctx)
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
    for deep in ((), ("--deep",)):
        out = run_cli("check", *deep, *store_args)
        assert out.returncode == 0, f"check{deep} after repair: {out.returncode}\n{out.stdout}\n{out.stderr}"


def test_cli_errors_exit_2(tmp_path):
    out = run_cli("check", "--sqlite", str(tmp_path / "x.sqlite"), "--neo4j-url", "http://127.0.0.1:1")
    assert out.returncode == 2, f"unreachable Neo4j: {out.returncode}\n{out.stdout}\n{out.stderr}"
    out = run_cli("repair", "--policy", "bogus", "--sqlite", str(tmp_path / "x.sqlite"),
                  "--neo4j-url", "http://127.0.0.1:1")
    assert out.returncode == 2, f"bad policy: {out.returncode}\n{out.stdout}\n{out.stderr}"
    out = run_cli("check", "--sqlite", str(tmp_path / "no" / "such" / "dir" / "x.sqlite"),
                  "--neo4j-url", "http://127.0.0.1:1")
    assert out.returncode == 2, f"bad SQLite path: {out.returncode}\n{out.stdout}\n{out.stderr}"


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
    the gateway; starts a fast run and returns its id once the scan waits at the
    proxy for its second Neo4j page (its `after` is a real id; the first page,
    5,000 rows, held every stray), with every full re-check batch stored."""
    for start in range(0, real, 1000):
        ops = [{"op": "create_entity", "id": f"e-{i:05d}", "type": "Item", "properties": {"n": i}}
               for i in range(start, start + 1000)]
        r = gw.post("/v1/transactions", {"operations": ops})
        assert r.status == 200, r
    neo4j.run("UNWIND range(0, $n - 1) AS i CREATE (:Entity:Stray {id: 'a-stray-' + right('0000' + toString(i), 4),"
              " _v: 1, _h: '0123456789abcdef'})", n=strays)
    assert strays + real > 5000 and strays < 5000, "the strays must fill part of the first page only"
    proxy.hold_matching(re.compile(rb'"after": ?"e-'))
    rid = start_run(gw, mode="fast")
    assert proxy.wait_held(1, timeout=60), f"the scan never asked for its second page:\n{gw.log_tail()}"
    run = get_run(gw, rid)
    assert run["state"] == "running", run
    assert run["summary"]["only_in_neo4j"] == strays // 256 * 256, run["summary"]
    return rid


def test_writes_keep_working_while_a_run_stores_thousands_of_findings(gateway_factory, proxy_factory, neo4j):
    """Issue 9 item 2: a run's bookkeeping must not hold SQLite's write lock
    across Neo4j reads (DESIGN.md invariant 7).

    3,000 nodes exist only in Neo4j and sort before the 3,000 real entities, so
    a fast scan's first Neo4j page (5,000 rows) yields them all: eleven
    re-check batches of 256 are confirmed and stored, 184 candidates wait for
    the next batch. The scan's next page (its `after` is a real id) is held at
    the proxy for as long as the test likes. Old code: the run's own SQLite
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


# ------------------------------------------- ids the API cannot address

ID_RULE_RE = re.compile(r"^(?!\.\.?$)[A-Za-z0-9._:-]{1,128}$")
LONG_ID = "L" * 200  # over 128 characters: a fixed buffer would cut it to 128


def plant_unaddressable(neo4j):
    """Items written straight to Neo4j under ids outside the id rule, and one whose
    own id is fine but whose source node's is not."""
    for eid in (LONG_ID, "a/b", "has space"):
        neo4j.run("CREATE (n:Entity:Person {id: $id, name: 'planted', _v: 1, _h: '0123456789abcdef'})", id=eid)
    neo4j.run("MATCH (a:Entity {id: 'e1'}), (b:Entity {id: 'e2'}) "
              "CREATE (a)-[:KNOWS {id: 'r/1', _v: 1, _h: '0123456789abcdef'}]->(b)")
    neo4j.run("MATCH (a:Entity {id: $long}), (b:Entity {id: 'e1'}) "
              "CREATE (a)-[:KNOWS {id: 'r-long', _v: 1, _h: '0123456789abcdef'}]->(b)", long=LONG_ID)
    return {(LONG_ID, "entity"), ("a/b", "entity"), ("has space", "entity"), ("r/1", "relationship"),
            ("r-long", "relationship")}


def test_neo4j_wins_never_adopts_an_id_the_api_cannot_address(gateway, neo4j):
    """neo4j_wins makes SQLite rows from Neo4j items; an id over 128 characters
    (or an endpoint's), or one with '/' or a space, would become a SQLite row that
    is cut or that no URL reaches. Those findings keep their whole id, get action
    "none" (the reason is logged), and neither store changes for them; sqlite_wins
    deletes them."""
    gw = gateway
    for eid in ("e1", "e2"):
        assert gw.post("/v1/entities", {"id": eid, "type": "Person", "properties": {"name": eid}}).status == 201
    planted = plant_unaddressable(neo4j)
    sql_before = gw.store.entities(), gw.store.relationships()

    for dry_run in (True, False):
        run, findings = reconcile(gw, mode="deep", repair="neo4j_wins", dry_run=dry_run)
        got = {(f["id"], f["object"]): f for f in findings}
        assert set(got) == planted, f"findings {sorted(got)}"
        for key, f in got.items():
            assert (f["kind"], f["action"]) == ("only_in_neo4j", "none"), f"dry_run={dry_run}: {f}"
        assert run["summary"]["repaired"] == 0, run
    # SQLite: nothing adopted, in particular no row under a cut or unaddressable id
    ids = list(gw.store.entities()) + list(gw.store.relationships())
    assert [i for i in ids if not ID_RULE_RE.match(i)] == [], ids
    assert gw.store.count_entity(LONG_ID[:128]) == 0, "the long id was adopted cut to 128 characters"
    assert (gw.store.entities(), gw.store.relationships()) == sql_before, "SQLite rows changed"
    # Neo4j: the planted items keep their ids
    assert neo4j.count_entity(LONG_ID) == 1 and neo4j.count_entity(LONG_ID[:128]) == 0
    assert neo4j.count_entity("a/b") == 1 and neo4j.count_entity("has space") == 1
    assert neo4j.count_relationship("r/1") == 1 and neo4j.count_relationship("r-long") == 1
    log = gw.log_path.read_text(errors="replace")
    for needle in ("'a/b'", "'has space'", "'r/1'", "'r-long'", LONG_ID):
        assert re.search(r"WARN .*reconciliation .*" + re.escape(needle) + r".*(id|endpoint)", log), \
            f"no logged reason for {needle}:\n{gw.log_tail(30)}"

    # sqlite_wins removes them from Neo4j (r-long goes with its source node)
    run, findings = reconcile(gw, mode="fast", repair="sqlite_wins")
    actions = {(f["id"], f["object"]): f["action"] for f in findings}
    assert set(actions) == planted, actions
    assert all(a == "deleted" for k, a in actions.items() if k != ("r-long", "relationship")), actions
    assert actions[("r-long", "relationship")] in ("deleted", "none"), actions
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
    assert_clean(gw, neo4j)


def test_an_entity_of_type_entity_left_by_an_earlier_version_is_not_rewritten(gateway, neo4j):
    """The type Entity is refused on create now; a record an earlier version stored
    with it (a node with the one label Entity) is reported by deep runs, and no
    policy rewrites it (sqlite_wins used to "update" the node to the same single
    label on every run): action "none", the reason logged."""
    gw = gateway
    assert gw.post("/v1/entities", {"id": "legacy", "type": "Person", "properties": {"n": 1}}).status == 201
    assert gw.post("/v1/entities", {"id": "fine", "type": "Person"}).status == 201
    sqlite_write(gw.sqlite_path, "UPDATE entities SET type = 'Entity' WHERE id = 'legacy'")
    neo4j.run("MATCH (n:Entity {id: 'legacy'}) REMOVE n:Person")
    before = gw.store.entities(), neo4j.entities()
    for policy in ("sqlite_wins", "neo4j_wins"):
        run, findings = reconcile(gw, mode="deep", repair=policy)
        assert [(f["kind"], f["id"], f["action"]) for f in findings] == [("mismatch", "legacy", "none")], \
            f"{policy}: {findings}"
    assert (gw.store.entities(), neo4j.entities()) == before
    log = gw.log_path.read_text(errors="replace")
    assert re.search(r"WARN .*sqlite_wins leaves entity 'legacy' as it is: .*type", log), gw.log_tail(20)
    assert re.search(r"WARN .*cannot adopt node", log), gw.log_tail(20)
    # it can still be deleted, and then the stores agree
    assert gw.delete("/v1/entities/legacy").status == 204
    assert_stores_consistent(gw.store, neo4j)
