"""Raw statements in POST /v1/transactions (API.md "Raw statements"): a
service's own Cypher and SQL in the same atomic transaction as the gateway's
operations, off unless --allow-raw-statements.

Every check reads both stores directly: the SQLite file with python's sqlite3
(gw.store), Neo4j through the harness (neo4j.run)."""

import sqlite3

import pytest

from harness import assert_entity_mirrored, assert_intents_settled, assert_stores_consistent
from harness.faults import HeldWriter, join_all, send_expecting_no_answer, send_in_order

RAW = ["--allow-raw-statements"]


def sql(statement, *parameters):
    return {"op": "sql", "statement": statement, "parameters": list(parameters)}


def cypher(statement, **parameters):
    return {"op": "cypher", "statement": statement, "parameters": parameters}


def tx(gw, *operations, headers=None):
    return gw.post("/v1/transactions", {"operations": list(operations)}, headers=headers)


def assert_error(r, status, code, index, field=None):
    assert r.status == status, r
    err = r.json["error"]
    assert err["code"] == code, r
    assert err.get("operation_index") == index, r
    if field is not None:
        assert err.get("field") == field, r


def service_rows(gw, table):
    """The rows of a service's own table, read from the SQLite file ([] when it does not exist)."""
    con = sqlite3.connect(f"file:{gw.sqlite_path}?mode=ro", uri=True)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    except sqlite3.OperationalError as exc:
        assert "no such table" in str(exc), exc
        return []
    finally:
        con.close()


def both_stores(gw, neo4j, *tables):
    """Everything observable in both stores, the service's tables included."""
    return {"sqlite": gw.store.dump(with_aborted=False), "neo4j": neo4j.dump(),
            "tables": {t: service_rows(gw, t) for t in tables}}


@pytest.fixture
def raw_gw(gateway_factory):
    """A gateway with raw statements on and a service table workflow_state."""
    gw = gateway_factory(args=RAW)
    r = tx(gw, sql("CREATE TABLE workflow_state(doc TEXT NOT NULL, step TEXT NOT NULL)"))
    assert r.status == 200, r
    return gw


# ------------------------------------------------------------ off by default


def test_raw_statements_forbidden_without_the_flag(gateway, neo4j):
    before = both_stores(gateway, neo4j)
    for i, op in enumerate([cypher("CREATE (:Doc {id: 'd1'})"), sql("CREATE TABLE t(a)")]):
        r = tx(gateway, {"op": "create_entity", "id": f"e{i}", "type": "Person"}, op)
        assert_error(r, 403, "forbidden", 1, "operations[1].op")
        assert "--allow-raw-statements" in r.json["error"]["message"]
    assert both_stores(gateway, neo4j) == before
    assert neo4j.value("MATCH (d:Doc) RETURN count(d)") == 0


def test_the_flag_from_the_environment(gateway_factory, neo4j):
    gw = gateway_factory(env={"BISTORE_ALLOW_RAW_STATEMENTS": "true"})
    r = tx(gw, cypher("CREATE (d:Doc {id: $id}) RETURN d.id AS id", id="d1"))
    assert r.status == 200, r
    assert r.json["results"] == [{"op": "cypher", "rows": [{"id": "d1"}]}]


# ------------------------------------------------------------------ success


def test_raw_statements_commit_with_the_operations(raw_gw, neo4j):
    gw = raw_gw
    r = tx(gw,
           {"op": "create_entity", "ref": "doc", "id": "entity_doc17", "type": "Document",
            "properties": {"title": "doc 17"}},
           sql("INSERT INTO workflow_state(doc, step) VALUES (?, ?)", "doc_17", "extract"),
           cypher("CREATE (s:Stage {doc: $doc, stage: $s}) RETURN s.doc AS doc, s.stage AS stage",
                  doc="entity_doc17", s="extracted"),
           sql("SELECT doc, step FROM workflow_state WHERE doc = ?", "doc_17"),
           sql("UPDATE workflow_state SET step = ? WHERE doc = ?", "link", "doc_17"))
    assert r.status == 200, r
    assert r.json["state"] == "committed" and r.json["neo4j"] == "applied", r
    res = r.json["results"]
    assert res[0] == {"op": "create_entity", "id": "entity_doc17", "version": 1}
    assert res[1] == {"op": "sql", "rows": [], "rowcount": 1}
    assert res[2] == {"op": "cypher", "rows": [{"doc": "entity_doc17", "stage": "extracted"}]}
    assert res[3] == {"op": "sql", "rows": [{"doc": "doc_17", "step": "extract"}], "rowcount": 0}
    assert res[4] == {"op": "sql", "rows": [], "rowcount": 1}
    # read back from each store directly
    assert service_rows(gw, "workflow_state") == [("doc_17", "link")]
    assert neo4j.run("MATCH (s:Stage) RETURN s.doc, s.stage") == [["entity_doc17", "extracted"]]
    assert_entity_mirrored(gw.store, neo4j, "entity_doc17", {"version": 1})
    assert_intents_settled(gw.store, neo4j)
    # the intent keeps the Cypher (replayed from it); the audit trail the statements
    intent = gw.store.intents()[-1]
    assert "CREATE (s:Stage" in str(intent["statements"]), intent
    audit = gw.get(f"/v1/transactions/{r.json['tx_id']}").json
    assert {"op": "sql", "statement": "INSERT INTO workflow_state(doc, step) VALUES (?, ?)"} \
        in audit["operations"], audit


def test_sql_beside_one_gateway_operation(raw_gw, neo4j):
    """One data statement of the gateway's own travels joined to the guard;
    the SQL beside it changes nothing of that."""
    r = tx(raw_gw, sql("INSERT INTO workflow_state VALUES ('j', 'joined')"),
           {"op": "create_entity", "id": "joined-e", "type": "Person"},
           sql("SELECT step FROM workflow_state"))
    assert r.status == 200, r
    assert r.json["results"][2] == {"op": "sql", "rows": [{"step": "joined"}], "rowcount": 0}
    assert_entity_mirrored(raw_gw.store, neo4j, "joined-e")
    assert service_rows(raw_gw, "workflow_state") == [("j", "joined")]


def test_parameters_are_parameters(raw_gw, neo4j):
    hostile = "x'); DROP TABLE workflow_state; --"
    r = tx(raw_gw, sql("INSERT INTO workflow_state VALUES (?, ?)", hostile, "s"),
           cypher("CREATE (d:Doc {name: $n}) RETURN d.name AS n", n="x'}) DETACH DELETE n //"))
    assert r.status == 200, r
    assert service_rows(raw_gw, "workflow_state") == [(hostile, "s")]
    assert neo4j.run("MATCH (d:Doc) RETURN d.name") == [["x'}) DETACH DELETE n //"]]


def test_sql_values_and_parameter_count(raw_gw):
    r = tx(raw_gw, sql("SELECT ? AS s, ? AS i, ? AS f, ? AS t, ? AS n", "a", 7, 1.5, True, None))
    assert r.status == 200, r
    assert r.json["results"][0]["rows"] == [{"s": "a", "i": 7, "f": 1.5, "t": 1, "n": None}]
    r = tx(raw_gw, sql("SELECT ?, ?", 1))
    assert_error(r, 400, "invalid_request", 0, "operations[0].parameters")
    r = tx(raw_gw, sql("SELECT 1; SELECT 2"))
    assert_error(r, 400, "invalid_request", 0, "operations[0].statement")
    r = tx(raw_gw, sql("SELECT x'00' AS b"))
    assert_error(r, 400, "invalid_request", 0, "operations[0].statement")


def test_an_idempotent_repeat_writes_once(raw_gw, neo4j):
    body = {"operations": [cypher("MERGE (c:Counter {id: 'k'}) SET c.count = coalesce(c.count, 0) + 1"
                                  " RETURN c.count AS count")]}
    first = raw_gw.post("/v1/transactions", body, headers={"Idempotency-Key": "raw-1"})
    assert first.status == 200 and first.json["results"][0]["rows"] == [{"count": 1}], first
    again = raw_gw.post("/v1/transactions", body, headers={"Idempotency-Key": "raw-1"})
    assert again.status == 200 and again.headers.get("Idempotent-Replayed") == "true", again
    assert again.json["tx_id"] == first.json["tx_id"]
    assert again.json["results"] == [{"op": "cypher"}], "rows come back on first execution only"
    assert neo4j.value("MATCH (c:Counter {id: 'k'}) RETURN c.count") == 1


# ----------------------------------------------------------------- rollback


FAILING = {
    "sql": (sql("INSERT INTO no_such_table VALUES (1)"), 400, "invalid_request"),
    "cypher": (cypher("CREATE (m:Marker {n: 1}) RETURN m.n +"), 400, "neo4j_error"),
}


def batch_with_failure(kind, position):
    ops = [sql("INSERT INTO workflow_state VALUES ('d', 'one')"),
           cypher("CREATE (:Marker {n: 2})"),
           {"op": "create_entity", "id": "rb-e", "type": "Person"},
           sql("INSERT INTO workflow_state VALUES ('d', 'two')")]
    at = {"first": 0, "middle": 2, "last": len(ops)}[position]
    ops.insert(at, FAILING[kind][0])
    return ops, at


@pytest.mark.parametrize("kind", ["sql", "cypher"])
@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_a_failing_statement_rolls_back_both_stores(raw_gw, neo4j, kind, position):
    gw = raw_gw
    before = both_stores(gw, neo4j, "workflow_state")
    ops, at = batch_with_failure(kind, position)
    r = tx(gw, *ops)
    _, status, code = FAILING[kind]
    assert_error(r, status, code, at, f"operations[{at}].statement")
    assert both_stores(gw, neo4j, "workflow_state") == before
    assert neo4j.value("MATCH (m:Marker) RETURN count(m)") == 0
    assert gw.store.count_entity("rb-e") == 0
    # and the gateway goes on writing
    assert tx(gw, sql("INSERT INTO workflow_state VALUES ('after', 'ok')")).status == 200
    assert_intents_settled(gw.store, neo4j)


def test_transaction_rollback(raw_gw, neo4j):
    """The plan's test_transaction_rollback, against bistore: SQL INSERT +
    Cypher CREATE + an invalid last Cypher statement leave both stores
    exactly as they were."""
    gw = raw_gw
    before = both_stores(gw, neo4j, "workflow_state")
    r = tx(gw, sql("INSERT INTO workflow_state(doc, step) VALUES (?, ?)", "doc_1", "extract"),
           cypher("CREATE (n:Entity)"),
           cypher("INVALID QUERY"))
    assert_error(r, 400, "neo4j_error", 2, "operations[2].statement")
    assert service_rows(gw, "workflow_state") == []  # sqlite_count() == 0
    assert neo4j.value("MATCH (n:Entity) RETURN count(n)") == 0  # neo4j_count() == 0
    assert both_stores(gw, neo4j, "workflow_state") == before


def test_a_statement_that_rolls_back_the_whole_transaction(raw_gw, neo4j):
    """INSERT OR ROLLBACK ends SQLite's transaction by itself (not through
    the authorizer): the gateway notices, and nothing of the batch stays."""
    gw = raw_gw
    assert tx(gw, sql("CREATE TABLE uniq(k TEXT PRIMARY KEY)"), sql("INSERT INTO uniq VALUES ('a')")).status == 200
    before = both_stores(gw, neo4j, "workflow_state", "uniq")
    r = tx(gw, {"op": "create_entity", "id": "orb-e", "type": "Person"},
           sql("INSERT INTO workflow_state VALUES ('d', 's')"),
           sql("INSERT OR ROLLBACK INTO uniq VALUES ('a')"))
    assert_error(r, 400, "invalid_request", 2, "operations[2].statement")
    assert both_stores(gw, neo4j, "workflow_state", "uniq") == before
    assert tx(gw, sql("INSERT INTO uniq VALUES ('b')")).status == 200
    assert service_rows(gw, "uniq") == [("a",), ("b",)]


def test_a_cypher_division_by_zero_is_the_clients_error(raw_gw, neo4j):
    """The guard refuses with an ArithmeticError too; the watermark tells them apart."""
    r = tx(raw_gw, sql("INSERT INTO workflow_state VALUES ('z', 'z')"), cypher("RETURN 1 / 0 AS x"))
    assert_error(r, 400, "neo4j_error", 1, "operations[1].statement")
    assert service_rows(raw_gw, "workflow_state") == []
    assert raw_gw.readyz().status == 200
    assert tx(raw_gw, cypher("CREATE (:Doc)")).status == 200


# ------------------------------------------------ the authorizer's denials


DENIED_SQL = [
    ("INSERT INTO entities(id, type, properties, version, hash, created_at, updated_at)"
     " VALUES ('x', 'P', '{}', 1, 'h', 't', 't')", "entities"),
    ("UPDATE entities SET version = 9", "entities"),
    ("DELETE FROM relationships", "relationships"),
    ("DELETE FROM bistore_intents", "bistore_intents"),
    ("INSERT INTO bistore_meta VALUES ('k', 'v')", "bistore_meta"),
    ("UPDATE Bistore_Transactions SET state = 'aborted'", "bistore_transactions"),
    ("DROP TABLE entities", "entities"),
    ("ALTER TABLE entities ADD COLUMN x", "entities"),
    ("ALTER TABLE relationships RENAME TO r2", "relationships"),
    ("CREATE INDEX e_type ON entities(type)", "entities"),
    ("CREATE UNIQUE INDEX my_idx ON bistore_intents(tx_id)", "bistore_intents"),
    ("DROP INDEX entities_type_id", "entities"),
    ("CREATE TABLE bistore_mine(a)", "bistore_mine"),
    ("CREATE VIEW sqlite_v AS SELECT 1", "sqlite_v"),
    ("CREATE TEMP TABLE entities(id)", "TEMP"),
    ("CREATE TEMP VIEW v AS SELECT 1", "TEMP"),
    ("CREATE TEMP TRIGGER t AFTER INSERT ON main.entities BEGIN SELECT 1; END", "trigger"),
    ("CREATE TRIGGER t AFTER INSERT ON workflow_state BEGIN DELETE FROM entities; END", "trigger"),
    ("ATTACH DATABASE ':memory:' AS other", "ATTACH"),
    ("DETACH DATABASE temp", "DETACH"),
    ("VACUUM INTO '/tmp/bistore-raw-copy.db'", "VACUUM"),
    ("/* c */ vacuum", "VACUUM"),
    ("VACUUM", "VACUUM"),
    ("PRAGMA writable_schema = ON", "PRAGMA"),
    ("PRAGMA foreign_keys = OFF", "PRAGMA"),
    ("SELECT * FROM pragma_table_info('entities')", "PRAGMA"),
    ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
    ("INSERT INTO sqlite_master VALUES ('table', 'x', 'x', 0, 'CREATE TABLE x(a)')", "sqlite_master"),
    ("UPDATE sqlite_master SET sql = 'CREATE TABLE x(a)' WHERE name = 'entities'", "sqlite_master"),
    ("DELETE FROM sqlite_stat1", "sqlite_stat1"),
    ("ANALYZE", "sqlite_stat1"),
    ("ANALYZE workflow_state", "sqlite_stat1"),
    ("COMMIT", "COMMIT"),
    ("ROLLBACK", "ROLLBACK"),
    ("SAVEPOINT s", "SAVEPOINT"),
    ("RELEASE s", "RELEASE"),
    ("CREATE VIRTUAL TABLE f USING fts5(a)", "virtual"),
    ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
     "INSERT INTO workflow_state SELECT x, x FROM c", None),  # stopped by the time limit
]


@pytest.mark.parametrize("statement,named", DENIED_SQL, ids=[s[:40] for s, _ in DENIED_SQL])
def test_every_authorizer_denial(raw_gw, neo4j, statement, named):
    gw = raw_gw
    before = both_stores(gw, neo4j, "workflow_state")
    seq = gw.store.max_intent_seq()
    r = tx(gw, sql("INSERT INTO workflow_state VALUES ('d', 'before the denial')"),
           cypher("CREATE (:Marker)"), sql(statement))
    assert_error(r, 400, "invalid_request", 2, "operations[2].statement")
    message = r.json["error"]["message"]
    if named:
        assert named.lower() in message.lower(), message
    assert both_stores(gw, neo4j, "workflow_state") == before
    assert gw.store.max_intent_seq() == seq
    assert neo4j.value("MATCH (m:Marker) RETURN count(m)") == 0
    # the gateway's own writes still work after each denial
    r = tx(gw, {"op": "create_entity", "id": "after-denial", "type": "Person"})
    assert r.status == 200, r
    assert_stores_consistent(gw.store, neo4j)


def test_a_service_manages_its_own_tables(raw_gw):
    ops = [sql("CREATE TABLE notes(id INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT)"),
           sql("CREATE INDEX notes_doc ON notes(doc)"),
           sql("INSERT INTO notes(doc) VALUES (?)", "d1"),
           sql("CREATE VIEW note_docs AS SELECT doc FROM notes"),
           sql("ALTER TABLE notes ADD COLUMN extra TEXT"),
           sql("SELECT count(*) AS n FROM entities"),  # reading the gateway's tables is allowed
           sql("SELECT doc FROM note_docs")]
    r = tx(raw_gw, *ops)
    assert r.status == 200, r
    assert r.json["results"][6]["rows"] == [{"doc": "d1"}]
    assert service_rows(raw_gw, "notes") == [(1, "d1", None)]
    r = tx(raw_gw, sql("DROP VIEW note_docs"), sql("DROP TABLE notes"))
    assert r.status == 200, r
    assert service_rows(raw_gw, "notes") == []


# ------------------------------------------------------ the Cypher scan


REFUSED_CYPHER = [
    ("MATCH (w:_BistoreWatermark) DETACH DELETE w", {}),
    ("MATCH (w:`_BistoreWatermark`) SET w.seq = 0", {}),
    ("MATCH (w) WHERE any(l IN labels(w) WHERE l = '_bistorewatermark') DELETE w", {}),
    ("MATCH (n:Entity) SET n._v = 1", {}),
    ("MATCH (n:Entity) SET n.`_h` = 'x'", {}),
    ("MATCH (n:Entity) SET n['_v'] = 2", {}),
    ("MATCH (n:Entity) REMOVE n._h", {}),
    ("MATCH (n:Entity) SET n += $props", {"props": {"_v": 7}}),
    ("MATCH (n) SET n:$($label)", {"label": "_BistoreWatermark"}),
]


@pytest.mark.parametrize("statement,params", REFUSED_CYPHER, ids=[s[:40] for s, _ in REFUSED_CYPHER])
def test_cypher_touching_the_gateways_own_is_refused(raw_gw, neo4j, statement, params):
    gw = raw_gw
    assert tx(gw, {"op": "create_entity", "id": "e1", "type": "Person"}).status == 200
    before = both_stores(gw, neo4j, "workflow_state")
    r = tx(gw, sql("INSERT INTO workflow_state VALUES ('d', 's')"), cypher(statement, **params))
    field = "operations[1].parameters" if params else "operations[1].statement"
    assert_error(r, 400, "invalid_request", 1, field)
    assert both_stores(gw, neo4j, "workflow_state") == before


def test_parameter_names_may_look_like_reserved_ones(raw_gw, neo4j):
    r = tx(raw_gw, cypher("CREATE (d:Doc {v: $_v}) RETURN d.v AS v", _v=3))
    assert r.status == 200 and r.json["results"][0]["rows"] == [{"v": 3}], r


# ------------------------------------------- replay exactly once after a crash


@pytest.mark.parametrize("point", ["after_sqlite_commit", "after_neo4j_commit"])
def test_raw_cypher_is_replayed_exactly_once(gateway_factory, neo4j, point):
    # write 1: the service table and the counter; write 2: the victim
    gw = gateway_factory(args=RAW, env={"BISTORE_FAULT": f"{point}:2"})
    r = tx(gw, sql("CREATE TABLE workflow_state(doc TEXT, step TEXT)"),
           cypher("CREATE (:Counter {id: 'c', count: 0})"))
    assert r.status == 200, r
    send_expecting_no_answer(gw, "POST", "/v1/transactions", {"operations": [
        sql("INSERT INTO workflow_state VALUES ('d', 'counted')"),
        cypher("MATCH (c:Counter {id: 'c'}) SET c.count = c.count + 1")]})
    gw.expect_fault_kill()
    assert len(gw.store.pending_intents()) == 1
    expected_before = 1 if point == "after_neo4j_commit" else 0
    assert neo4j.value("MATCH (c:Counter {id: 'c'}) RETURN c.count") == expected_before

    gw2 = gateway_factory(sqlite=gw.sqlite_path, args=RAW)
    assert neo4j.value("MATCH (c:Counter {id: 'c'}) RETURN c.count") == 1, "applied exactly once"
    assert service_rows(gw2, "workflow_state") == [("d", "counted")]
    assert_intents_settled(gw2.store, neo4j)
    # a later write does not apply it again
    assert tx(gw2, cypher("MATCH (c:Counter {id: 'c'}) RETURN c.count AS n")).json["results"] == \
        [{"op": "cypher", "rows": [{"n": 1}]}]


# ------------------------------------------------------------ group commit


def test_a_raw_transaction_commits_alone_in_a_burst(gateway_factory, proxy_factory, neo4j):
    """Three writes queued behind a held one: a create, a raw Cypher that
    counts Person nodes, a create. Grouped, the two creates would run as one
    UNWIND ahead of the Cypher, which would count 2; alone, it sees what its
    place in the order says: 1."""
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, args=RAW + ["--neo4j-timeout-ms", "60000"])
    count = {"operations": [cypher("MATCH (p:Person) RETURN count(p) AS n")]}
    with HeldWriter(gw, proxy):
        threads, answers = send_in_order(gw, [
            ("POST", "/v1/entities", {"id": "burst-a", "type": "Person"}, None),
            ("POST", "/v1/transactions", count, None),
            ("POST", "/v1/entities", {"id": "burst-c", "type": "Person"}, None)])
    join_all(threads)
    assert [a.status for a in answers] == [201, 200, 201], answers
    assert answers[1].json["results"] == [{"op": "cypher", "rows": [{"n": 1}]}], answers[1]
    assert_stores_consistent(gw.store, neo4j)
