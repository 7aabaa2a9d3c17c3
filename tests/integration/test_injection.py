"""The injection corpus (issue 13, item 5): hostile strings in every place a
client can put text. Each is refused with 400 naming the field, or stored
verbatim as a value (read back byte-identical from both stores); and nothing
else changes in either store: a full snapshot of both (every node and
relationship with its labels/type and properties in Neo4j, every row of
every SQLite table) is taken before and after each batch and compared."""

import http.client
import socket
import urllib.parse

import pytest

from harness.api import create_entity

CORPUS = [
    "`", "``", "'", '"', "{", "}", "{}", "${x}", "a\nb", "a\r\nb", "a\x00b", "\x00",
    "P\u0435rson",              # Cyrillic e in "Person"
    "\uff30\uff45\uff52\uff53\uff4f\uff4e",  # fullwidth "Person"
    "Per\u202eson", "Per\u200dson", "Per\u200bson", "\ufeffPerson",
    "}) DETACH DELETE n //", "Person`) DETACH DELETE n //",
    "'; DROP TABLE entities; --", '"; DROP TABLE entities; --',
    "../", "../../etc/passwd", "%2F", "%00", "..%2F", "a/b", "a\\b",
    "x" * 100_000, "\U0001F600", " ", "",
]
IDS = CORPUS + ["a b", "a?b", "a#b", "a%b"]


def full_snapshot(gw, neo4j):
    """Every row of every SQLite table, every node and relationship in Neo4j."""
    tables = [r["name"] for r in gw.store.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    sqlite = {t: sorted(repr(sorted(r.items())) for r in gw.store.query(f'SELECT * FROM "{t}"'))
              for t in tables}
    nodes = sorted(repr((sorted(labels), sorted(props.items())))
                   for labels, props in neo4j.run("MATCH (n) RETURN labels(n), properties(n)"))
    rels = sorted(repr((t, sorted(props.items()), a, b)) for t, props, a, b in neo4j.run(
        "MATCH (a)-[r]->(b) RETURN type(r), properties(r), elementId(a), elementId(b)"))
    return sqlite, nodes, rels


def assert_same(before, after):
    for name, b, a in zip(("SQLite", "Neo4j nodes", "Neo4j relationships"), before, after):
        if isinstance(b, dict):
            for t in sorted(set(b) | set(a)):
                assert a.get(t) == b.get(t), f"{name} table {t} changed"
        else:
            assert a == b, f"{name} changed"


def refused(r, field, s=""):
    """400 naming the field; a NUL in a JSON body may be refused by the JSON
    parser itself (invalid_json, before any field is read)."""
    assert r.status == 400, f"expected 400 on {field}, got {r!r}"
    err = r.json["error"]
    if "\x00" in s and err["code"] == "invalid_json":
        return
    assert err["code"] == "invalid_request", r.json
    if field is not None:
        assert str(err.get("field", "")).startswith(field), f"field {field!r}: {r.json}"


def test_entity_and_relationship_types_refused(gateway, neo4j):
    a = create_entity(gateway)["id"]
    b = create_entity(gateway)["id"]
    before = full_snapshot(gateway, neo4j)
    for s in CORPUS:
        refused(gateway.post("/v1/entities", {"type": s}), "type", s)
        refused(gateway.post("/v1/relationships", {"type": s, "source": a, "target": b}), "type", s)
        refused(gateway.post("/v1/entities", {"type": "Person", "properties": {s: 1}}), "properties", s)
        refused(gateway.post("/v1/entities", {"type": "Person", "id": s}), "id", s)
    assert_same(before, full_snapshot(gateway, neo4j))


def test_property_values_stored_verbatim(gateway, neo4j):
    for s in CORPUS:
        r = gateway.post("/v1/entities", {"type": "Person", "properties": {"v": s, "arr": [s, s]}})
        if "\x00" in s:
            refused(r, None, s)
            continue
        assert r.status == 201, r
        eid = r.json["id"]
        got = gateway.get(f"/v1/entities/{eid}")
        assert got.status == 200 and got.json["properties"]["v"] == s, got
        assert gateway.store.entities()[eid]["properties"]["v"] == s
        node = neo4j.entities()[eid]["props"]
        assert node["v"] == s and list(node["arr"]) == [s, s]


def test_query_parameters_and_path_ids(gateway, neo4j):
    create_entity(gateway)
    before = full_snapshot(gateway, neo4j)
    for s in CORPUS:
        s = s[:10_000]  # a longer URL: test_huge_url_is_a_json_error
        q = urllib.parse.quote(s, safe="")
        for path, field in ((f"/v1/entities?type={q}", "type"), (f"/v1/entities?label={q}", None),
                            (f"/v1/entities?after={q}", "after"), (f"/v1/entities?limit={q}", "limit"),
                            (f"/v1/transactions?state={q}", "state"),
                            (f"/v1/transactions?after={q}", "after")):
            r = gateway.get(path)
            if r.status == 414:
                assert len(path) > 2048 and r.error_code() == "uri_too_long", (path[:80], r)
                continue
            assert r.status in (200, 400), (path[:80], r)
            if r.status == 400 and field is not None:
                refused(r, field, s)
        for base in ("/v1/entities/", "/v1/relationships/", "/v1/transactions/"):
            r = gateway.get(base + q)
            if r.status == 414:
                assert len(base + q) > 2048 and r.error_code() == "uri_too_long", (base, r)
                continue
            assert r.status in (400, 404), (base, s[:40], r)
            r = gateway.delete(base + q) if base != "/v1/transactions/" else r
            assert r.status in (400, 404, 405), (base, s[:40], r)
    assert_same(before, full_snapshot(gateway, neo4j))


def test_headers(gateway, neo4j):
    before = full_snapshot(gateway, neo4j)
    for s in CORPUS:
        if any(c in s for c in "\r\n\x00") or len(s) > 8000 or not s.isascii():
            continue  # http.client refuses these; raw bytes below
        r = gateway.get("/healthz", headers={"X-Request-Id": s})
        assert r.status == 200, r
        r = gateway.post("/v1/entities", {"type": s}, headers={"Idempotency-Key": s})
        assert r.status == 400, r
    assert_same(before, full_snapshot(gateway, neo4j))


RAW = [
    b'{"type": "Person", "properties": {"v": "\xc0\xaf"}}',         # overlong '/'
    b'{"type": "Person", "properties": {"v": "\xff\xfe"}}',         # invalid UTF-8
    b'{"type": "P\xc0\xafrson"}',
    b'{"type": "Person", "properties": {"v": "a\x00b"}}',           # raw NUL in a string
    b'{"type": "Person", "id": "..\xc0\xaf..\xc0\xafx"}',
]


@pytest.mark.parametrize("body", RAW, ids=range(len(RAW)))
def test_raw_bytes_refused(gateway, neo4j, body):
    before = full_snapshot(gateway, neo4j)
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    conn.request("POST", "/v1/entities", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400, (resp.status, resp.read())
    resp.read()
    conn.close()
    for line in (b"GET /v1/entities/..%2F..%2F HTTP/1.1\r\n", b"GET /v1/entities/a%00b HTTP/1.1\r\n",
                 b"GET /v1/entities/\xc0\xaf HTTP/1.1\r\n", b"GET /v1/entities?type=P\xd0\xb5rson HTTP/1.1\r\n"):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as s:
            s.sendall(line + b"Host: 127.0.0.1\r\nConnection: close\r\nX-Request-Id: a\x01b\r\n\r\n")
            head = s.recv(64)
        assert head.split(b" ")[1] in (b"400", b"404"), (line, head)
    assert_same(before, full_snapshot(gateway, neo4j))


@pytest.mark.xfail(strict=True, reason="known defect: a URL past libmicrohttpd's connection "
                   "memory (about 32 KB) gets its HTML 414 page, not the JSON uri_too_long error")
def test_huge_url_is_a_json_error(gateway):
    r = gateway.get("/v1/entities?type=" + "x" * 100_000)
    assert r.status == 414 and r.error_code() == "uri_too_long", r


@pytest.mark.parametrize("value", ['"+1"', '" 1"', "+1", '"01x"', '"99999999999999999999"',
                                   "-1", '"0"'])
def test_if_match_only_digits(gateway, neo4j, value):
    """If-Match is a version as ETag quotes it: digits only (no sign, blank or
    overflow, which strtoll alone let through as version 1 or LLONG_MAX)."""
    eid = create_entity(gateway)["id"]
    before = full_snapshot(gateway, neo4j)
    refused(gateway.patch(f"/v1/entities/{eid}", {"properties": {"v": 1}},
                          headers={"If-Match": value}), "If-Match")
    refused(gateway.delete(f"/v1/entities/{eid}", headers={"If-Match": value}), "If-Match")
    assert_same(before, full_snapshot(gateway, neo4j))
