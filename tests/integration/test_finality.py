"""An answer is final only once its transaction is decided (DESIGN.md s. 3,
invariant 6). In a group, a member that leaves early (an idempotent repeat,
a 404/409/412 found inside the group's SQLite transaction) may have been
answered from rows of members that the group then rolls back; such an answer
must be recomputed or turned into an error, never kept.

The writer is made to take the requests of each scenario as one group by
holding it busy first: a create whose Neo4j request is held at a fault proxy
until every request of the scenario is queued behind it."""

import re
import time

from harness import assert_intents_settled, assert_stores_consistent
from harness.faults import HeldWriter, join_all, send_in_order

REFUSED_GROUP_RE = re.compile(r"group commit: Neo4j refused a group of (\d+)")




def poison_relationship_type(gw, neo4j, rtype):
    """Makes the uniqueness constraint of relationship type `rtype` impossible
    to create: two relationships of that type with one id, behind the
    gateway's back. Returns two entity ids to use as endpoints."""
    for eid in ("dup-a", "dup-b"):
        r = gw.post("/v1/entities", {"id": eid, "type": "Thing"})
        assert r.status == 201, r
    neo4j.run(f"MATCH (a:Entity {{id: 'dup-a'}}), (b:Entity {{id: 'dup-b'}}) "
              f"CREATE (a)-[:{rtype} {{id: 'x'}}]->(b), (a)-[:{rtype} {{id: 'x'}}]->(b)")
    return "dup-a", "dup-b"


def assert_refused_group(gw, size):
    """The scenario's requests formed one group, which Neo4j refused and the
    writer retried one by one (else the test proved nothing)."""
    refused = [int(n) for n in REFUSED_GROUP_RE.findall(gw.log_path.read_text(errors="replace"))]
    assert size in refused, f"the {size} requests did not form one refused group: {refused}"


def unpoison(neo4j):
    neo4j.run("MATCH ()-[r:DUPT]->() DELETE r")


def held_gateway(gateway_factory, proxy_factory):
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, args=["--neo4j-timeout-ms", "60000"])
    return gw, proxy


def test_idempotent_repeats_of_a_rolled_back_group_are_not_acknowledged(gateway_factory, proxy_factory,
                                                                       neo4j):
    """Issue 9, defect 1, as reproduced: eight creates with one Idempotency-Key
    in one group; the first applies, the seven others find its (uncommitted)
    idempotency row; the group rolls back because the new type's constraint
    cannot be created. Before the fix the seven answered 201 Idempotent-Replayed
    for a relationship that does not exist."""
    gw, proxy = held_gateway(gateway_factory, proxy_factory)
    src, dst = poison_relationship_type(gw, neo4j, "DUPT")
    body = {"type": "DUPT", "source": src, "target": dst}
    headers = {"Idempotency-Key": "one-key"}
    with HeldWriter(gw, proxy):
        threads, answers = send_in_order(gw, [("POST", "/v1/relationships", body, headers)] * 8, gap=0.1)
        time.sleep(0.5)  # the last one is queued too
    join_all(threads)

    for a in answers:
        if 200 <= a.status < 300:
            rid = a.json["id"]
            assert gw.store.relationship(rid) is not None and neo4j.count_relationship(rid) == 1, \
                f"acknowledged {a.status} {a.json} (replayed={a.headers.get('Idempotent-Replayed')}) " \
                f"for relationship {rid}, which is in neither store"
        else:
            assert a.status == 502 and a.error_code() == "neo4j_error", a
    assert not [a for a in answers if 200 <= a.status < 300], "no create of DUPT can succeed"
    assert gw.store.query("SELECT count(*) AS n FROM relationships WHERE type = 'DUPT'")[0]["n"] == 0
    assert gw.store.query("SELECT count(*) AS n FROM bistore_idempotency")[0]["n"] == 0
    assert_intents_settled(gw.store, neo4j)
    assert_refused_group(gw, 8)


def test_conflicts_found_against_a_rolled_back_member_are_recomputed(gateway_factory, proxy_factory, neo4j):
    """404, 409 and 412 computed against rows of a member the group then rolls
    back are not answers: each is recomputed once that member is gone."""
    gw, proxy = held_gateway(gateway_factory, proxy_factory)
    src, dst = poison_relationship_type(gw, neo4j, "DUPT")
    for eid in ("y", "z"):
        assert gw.post("/v1/entities", {"id": eid, "type": "Thing", "properties": {"n": 0}}).status == 201
    poison = {"op": "create_relationship", "type": "DUPT", "source": src, "target": dst}
    first = {"operations": [
        {"op": "create_entity", "id": "x", "type": "Thing"},             # -> 409 for the create below
        {"op": "update_entity", "id": "y", "properties": {"n": 1}},      # -> 412 for If-Match "1" below
        {"op": "delete_entity", "id": "z"},                              # -> 404 for the patch of z below
        poison]}                                                          # rolls the group back
    later = [
        ("POST", "/v1/entities", {"id": "x", "type": "Thing"}, None),
        ("PATCH", "/v1/entities/y", {"properties": {"n": 2}}, {"If-Match": '"1"'}),
        ("PATCH", "/v1/entities/z", {"properties": {"n": 3}}, None),
    ]
    with HeldWriter(gw, proxy):
        threads, answers = send_in_order(gw, [("POST", "/v1/transactions", first, None)] + later)
        time.sleep(0.5)
    join_all(threads)

    batch, create_x, patch_y, patch_z = answers
    assert batch.status == 502 and batch.error_code() == "neo4j_error", batch
    assert create_x.status == 201, f"409 from a create of x that was rolled back: {create_x}"
    assert patch_y.status == 200 and patch_y.json["version"] == 2, \
        f"412 against a version that was rolled back: {patch_y}"
    assert patch_z.status == 200 and patch_z.json["version"] == 2, \
        f"404 against a delete that was rolled back: {patch_z}"
    unpoison(neo4j)
    assert gw.store.entity("x")["version"] == 1 and neo4j.count_entity("x") == 1
    assert gw.store.entity("y")["properties"] == {"n": 2}
    assert gw.store.entity("z")["properties"] == {"n": 3}
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
    assert_refused_group(gw, 4)


def test_a_failed_constraint_creation_fails_only_its_own_member(gateway_factory, proxy_factory, neo4j):
    """A relationship type whose constraint cannot be created fails the request
    that uses it, not the whole group: the others are retried one by one, as
    for any group Neo4j refuses. Before the fix all six answered 502."""
    gw, proxy = held_gateway(gateway_factory, proxy_factory)
    src, dst = poison_relationship_type(gw, neo4j, "DUPT")
    requests = [("POST", "/v1/relationships", {"type": "DUPT", "source": src, "target": dst}, None)]
    requests += [("POST", "/v1/entities", {"id": f"ok-{i}", "type": "Thing", "properties": {"n": i}}, None)
                 for i in range(5)]
    with HeldWriter(gw, proxy):
        threads, answers = send_in_order(gw, requests, gap=0.1)
        time.sleep(0.5)
    join_all(threads)

    assert answers[0].status == 502 and answers[0].error_code() == "neo4j_error", answers[0]
    assert "constraint" in answers[0].json["error"]["message"], answers[0].json
    for i, a in enumerate(answers[1:]):
        assert a.status == 201, (i, a)
        assert gw.store.entity(f"ok-{i}") is not None and neo4j.count_entity(f"ok-{i}") == 1
    unpoison(neo4j)
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
    assert_refused_group(gw, 6)
