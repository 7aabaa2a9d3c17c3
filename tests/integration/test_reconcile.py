"""Reconciliation (API.md "Reconciliation", DESIGN.md section 5) against a real Neo4j.

Every scenario damages one store behind the gateway's back (Cypher straight to
Neo4j, SQL straight to the SQLite file), asks the gateway (or `bistore check` /
`bistore repair`) what it sees, and checks both stores read directly.

Here: each damage found, repaired by each policy, dry runs, the audit, and
what no repair may write (ids the API cannot address)."""

import json
import re
from collections import Counter

import pytest

from harness import assert_intents_settled, assert_stores_consistent
from harness.api import snapshot
from harness.reconcile import (E, CONSTRAINT, CREATE_CONSTRAINT, get_run, reconcile, keyed, store_counts,
                               assert_clean, sqlite_write, list_transactions, repair_transactions,
                               base_summary, DAMAGES, allowed_actions, expected_summary,
                               check_finding_content)


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
