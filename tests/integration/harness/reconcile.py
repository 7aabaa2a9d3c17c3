"""Helpers of the reconciliation tests: runs started and awaited through the
API, the data set, each kind of damage made behind the gateway's back (Cypher
straight to Neo4j, SQL straight to the file), and the checks of what each
policy repaired."""

import sqlite3
import subprocess
import urllib.parse
from collections import Counter

import pytest

from harness.asserts import assert_stores_consistent
from harness.common import BISTORE_BIN, RFC3339_UTC_RE, UUID7_RE, bistore_env, poll

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
    env = bistore_env()
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
