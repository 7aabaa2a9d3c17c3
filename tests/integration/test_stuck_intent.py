"""A committed intent that Neo4j refuses on replay (issue 9, defect 6).

The gateway is killed between SQLite's commit and Neo4j's (the intent is
committed and pending); behind its back, Neo4j gets a node with the same id,
so the replayed CREATE is refused by the uniqueness constraint, every time.
Such a deterministic refusal must not be retried for ever nor look like an
outage: the gateway names the stuck intent (seq, tx_id, operation, Neo4j's
error) in /readyz, the log and GET /v1/transactions, and `bistore resolve`
settles it through the protocol so the stores agree again (DESIGN.md s. 3,
invariant 9)."""

import re
import subprocess
import time

from harness import BISTORE_BIN, assert_entity_mirrored, assert_intents_settled, assert_stores_consistent, poll
from harness.common import bistore_env
from harness.faults import send_expecting_no_answer

STUCK_LOG_RE = re.compile(r"intent (\d+) .*refused by Neo4j")


def run_cli(*args, timeout=120):
    env = bistore_env()
    return subprocess.run([BISTORE_BIN, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def stuck_gateway(gateway_factory, neo4j, entity_id, planted):
    """A gateway whose intent creating `entity_id` is committed in SQLite and
    pending, with `planted` (Cypher creating a node of that id) run in Neo4j
    behind its back, restarted on the same SQLite file (not ready)."""
    gw = gateway_factory(env={"BISTORE_FAULT": "after_sqlite_commit:2"})
    assert gw.post("/v1/entities", {"id": "before", "type": "Person"}).status == 201  # seq 1
    send_expecting_no_answer(gw, "POST", "/v1/entities",
                             {"id": entity_id, "type": "Person", "properties": {"name": "from the gateway"}})
    gw.expect_fault_kill()
    # the killed gateway's open Neo4j transaction holds the id's index entry
    neo4j.terminate_other_transactions()
    neo4j.run(planted)
    pending = gw.store.pending_intents()
    assert [p["seq"] for p in pending] == [2], pending
    tx = [t for t in gw.store.transactions() if t["seq"] == 2][0]
    gw2 = gateway_factory(sqlite=gw.sqlite_path, ready=False)
    return gw2, tx


def stuck_readyz(gw):
    def check():
        r = gw.readyz()
        return r if r is not None and r.status == 503 and "refused" in r.json["error"]["message"] else None
    return poll(check, 30, what="/readyz to name the refused intent")


def test_a_refused_intent_is_named_and_not_retried(gateway_factory, neo4j):
    gw, tx = stuck_gateway(gateway_factory, neo4j, "poison_1", "CREATE (:Entity {id: 'poison_1'})")
    r = stuck_readyz(gw)
    message = r.json["error"]["message"]
    assert r.error_code() == "not_ready", r
    for part in ("intent 2", tx["tx_id"], "create_entity poison_1", "ConstraintValidationFailed",
                 "bistore resolve"):
        assert part in message, f"{part!r} not in /readyz: {message}"

    # writes are refused with the same reason, at once
    w = gw.post("/v1/entities", {"id": "later", "type": "Person"})
    assert w.status == 503 and "intent 2" in w.json["error"]["message"], w

    # the audit trail shows it pending, with Neo4j's refusal
    listed = gw.get("/v1/transactions?state=pending")
    assert listed.status == 200, listed
    items = {t["tx_id"]: t for t in listed.json["items"]}
    assert tx["tx_id"] in items, listed.json
    error = items[tx["tx_id"]]["error"]
    assert error and error["code"] == "neo4j_error" and "ConstraintValidationFailed" in error["message"], error
    one = gw.get(f"/v1/transactions/{tx['tx_id']}")
    assert one.status == 200 and one.json["state"] == "pending" and one.json["error"] == error, one

    # a deterministic refusal is not retried: a few seconds later it is still
    # the one refusal in the log (before the fix: a retry every second)
    time.sleep(4)
    log = gw.log_path.read_text(errors="replace")
    refusals = STUCK_LOG_RE.findall(log)
    assert refusals == ["2"], f"the refused intent was reported {len(refusals)} times:\n{gw.log_tail()}"
    assert "did not converge" not in log
    # nothing of the refused intent reached Neo4j, nothing later either
    assert neo4j.run("MATCH (n:Entity {id: 'poison_1'}) RETURN labels(n), n._v") == [[["Entity"], None]]
    assert neo4j.count_entity("later") == 0 and gw.store.entity("later") is None

    # `bistore resolve` lists it
    assert gw.terminate() == 0, gw.log_tail()
    out = run_cli("resolve", "--sqlite", str(gw.sqlite_path), "--neo4j-url", neo4j.url)
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "intent 2" in out.stdout and "create_entity poison_1" in out.stdout, out.stdout


def test_resolve_sqlite_wins_makes_neo4j_match(gateway_factory, neo4j):
    gw, tx = stuck_gateway(gateway_factory, neo4j, "poison_2", "CREATE (:Entity {id: 'poison_2', stray: true})")
    stuck_readyz(gw)
    assert gw.terminate() == 0, gw.log_tail()
    store_args = ["--sqlite", str(gw.sqlite_path), "--neo4j-url", neo4j.url]

    dry = run_cli("resolve", "--intent", "2", "--policy", "sqlite_wins", "--dry-run", *store_args)
    assert dry.returncode == 0, (dry.stdout, dry.stderr)
    assert "updated" in dry.stdout and "poison_2" in dry.stdout, dry.stdout
    assert neo4j.run("MATCH (n:Entity {id: 'poison_2'}) RETURN n.stray") == [[True]], "the dry run wrote"
    assert [p["seq"] for p in gw.store.pending_intents()] == [2]

    wrong = run_cli("resolve", "--intent", "1", "--policy", "sqlite_wins", *store_args)
    assert wrong.returncode == 2 and "intent 1" in wrong.stderr, (wrong.stdout, wrong.stderr)

    out = run_cli("resolve", "--intent", "2", "--policy", "sqlite_wins", *store_args)
    assert out.returncode == 0, (out.stdout, out.stderr)
    gw2 = gateway_factory(sqlite=gw.sqlite_path)
    assert_entity_mirrored(gw2.store, neo4j, "poison_2",
                           {"version": 1, "properties": {"name": "from the gateway"}})
    assert neo4j.run("MATCH (n:Entity {id: 'poison_2'}) RETURN n.stray, labels(n)") == [[None, ["Entity", "Person"]]]
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)
    # the decision is in the audit trail
    t = gw2.get(f"/v1/transactions/{tx['tx_id']}").json
    assert t["state"] == "applied", t
    assert t["error"]["resolution"]["policy"] == "sqlite_wins", t
    assert "ConstraintValidationFailed" in t["error"]["message"], t
    # and the gateway writes again
    assert gw2.post("/v1/entities", {"id": "after", "type": "Person"}).status == 201
    assert_entity_mirrored(gw2.store, neo4j, "after")


def test_resolve_neo4j_wins_makes_sqlite_match(gateway_factory, neo4j):
    gw, tx = stuck_gateway(gateway_factory, neo4j, "poison_3",
                           "CREATE (:Entity:Person {id: 'poison_3', name: 'by hand'})")
    stuck_readyz(gw)
    assert gw.terminate() == 0, gw.log_tail()
    out = run_cli("resolve", "--intent", "2", "--policy", "neo4j_wins", "--sqlite", str(gw.sqlite_path),
                  "--neo4j-url", neo4j.url)
    assert out.returncode == 0, (out.stdout, out.stderr)
    gw2 = gateway_factory(sqlite=gw.sqlite_path)
    row = gw2.store.entity("poison_3")
    assert row["properties"] == {"name": "by hand"} and row["type"] == "Person", row
    assert_entity_mirrored(gw2.store, neo4j, "poison_3", {"properties": {"name": "by hand"}})
    assert_stores_consistent(gw2.store, neo4j)
    assert_intents_settled(gw2.store, neo4j)


def test_resolve_refuses_what_it_cannot_make_agree(gateway_factory, neo4j):
    """neo4j_wins cannot adopt a node without a type label: refused, nothing written."""
    gw, tx = stuck_gateway(gateway_factory, neo4j, "poison_4", "CREATE (:Entity {id: 'poison_4'})")
    stuck_readyz(gw)
    assert gw.terminate() == 0, gw.log_tail()
    before = gw.store.dump()
    out = run_cli("resolve", "--intent", "2", "--policy", "neo4j_wins", "--sqlite", str(gw.sqlite_path),
                  "--neo4j-url", neo4j.url)
    assert out.returncode == 2 and "poison_4" in out.stderr, (out.stdout, out.stderr)
    assert gw.store.dump() == before
    assert [p["seq"] for p in gw.store.pending_intents()] == [2]
