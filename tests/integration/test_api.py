"""The HTTP contract (API.md), endpoint by endpoint, against a real Neo4j.

Every write is checked in BOTH stores read directly (Neo4j over its HTTP
endpoint, SQLite from the file), not only in the gateway's answer."""

import json
import re
import socket
import time
import urllib.parse
import uuid

import pytest

from conftest import (RFC3339_UTC_RE, UUID7_RE, assert_absent, assert_entity_mirrored,
                      assert_intents_settled, assert_relationship_mirrored, assert_stores_consistent, poll)

JSON = {"Content-Type": "application/json"}


# ----------------------------------------------------------------- helpers


def create_entity(gw, type="Person", properties=None, id=None, metadata=None, headers=None):
    body = {"type": type}
    if id is not None:
        body["id"] = id
    if properties is not None:
        body["properties"] = properties
    if metadata is not None:
        body["metadata"] = metadata
    r = gw.post("/v1/entities", body, headers=headers)
    assert r.status == 201, r
    return r.json


def create_relationship(gw, source, target, type="KNOWS", properties=None, id=None):
    body = {"type": type, "source": source, "target": target}
    if id is not None:
        body["id"] = id
    if properties is not None:
        body["properties"] = properties
    r = gw.post("/v1/relationships", body)
    assert r.status == 201, r
    return r.json


def error_of(r, status, code):
    assert r.status == status, f"expected {status} {code}, got {r!r}"
    assert r.error_code() == code, f"expected error code {code}, got {r.json}"
    assert isinstance(r.json["error"].get("message"), str) and r.json["error"]["message"], r.json
    return r.json["error"]


def snapshot(gw, neo4j):
    """Full dumps of both stores; aborted audit rows are left out (a refused
    transaction may add one, and that is checked separately)."""
    return gw.store.dump(with_aborted=False), neo4j.dump()


def assert_unchanged(gw, neo4j, before):
    s_before, n_before = before
    s_after, n_after = snapshot(gw, neo4j)
    assert s_after == s_before, "SQLite changed"
    assert n_after == n_before, "Neo4j changed"


def list_all(gw, path, limit, max_pages=50):
    """Follow `next` cursors; return (items, pages)."""
    items, pages, after = [], [], None
    for _ in range(max_pages):
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}limit={limit}" + (f"&after={urllib.parse.quote(after, safe='')}" if after else "")
        r = gw.get(url)
        assert r.status == 200, r
        assert set(r.json) >= {"items", "next"}, r.json
        assert len(r.json["items"]) <= limit, f"page larger than limit {limit}: {len(r.json['items'])}"
        pages.append(r.json["items"])
        items.extend(r.json["items"])
        after = r.json["next"]
        if after is None:
            return items, pages
        assert isinstance(after, str) and after, r.json
    pytest.fail(f"more than {max_pages} pages from {path}")


def parses_to(value, expected):
    if not isinstance(value, str):
        return False
    try:
        return json.loads(value) == expected
    except ValueError:
        return False


def uuid7_ms(u):
    return int(u.replace("-", "")[:12], 16)


def check_timestamps(obj):
    for key in ("created_at", "updated_at"):
        assert RFC3339_UTC_RE.match(obj[key]), f"{key} {obj[key]!r} is not RFC 3339 UTC"


# ------------------------------------------------------------- operations


def test_healthz(gateway):
    r = gateway.get("/healthz")
    assert r.status == 200, r


def test_readyz_when_ready(gateway):
    r = gateway.get("/readyz")
    assert r.status == 200, r


def test_openapi_yaml(gateway):
    r = gateway.get("/openapi.yaml")
    assert r.status == 200, r
    ctype = r.headers.get("Content-Type", "")
    assert "yaml" in ctype or ctype.startswith("text/"), ctype
    text = r.body.decode("utf-8")
    assert text.lstrip().startswith(("openapi:", "#", "---")), text[:200]
    assert "openapi:" in text
    for path in ("/v1/entities", "/v1/relationships", "/v1/transactions", "/v1/ids"):
        assert path in text, f"{path} missing from openapi.yaml"


# ----------------------------------------------------------------- routing


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"),
    ("GET", "/v1/nope"),
    ("POST", "/v2/entities"),
    ("GET", "/v1/entities/a/b"),
])
def test_unknown_path_is_404(gateway, method, path):
    r = gateway.request(method, path, body={} if method == "POST" else None)
    error_of(r, 404, "not_found")


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/v1/entities", {"GET", "POST"}),
    ("DELETE", "/v1/entities", {"GET", "POST"}),
    ("PUT", "/v1/entities/some-id", {"GET", "PATCH", "DELETE"}),
    ("POST", "/v1/entities/some-id", {"GET", "PATCH", "DELETE"}),
    ("PATCH", "/v1/relationships/some-id", {"GET", "DELETE"}),
    ("GET", "/v1/ids", {"POST"}),
    ("DELETE", "/v1/transactions", {"GET", "POST"}),
    ("POST", "/healthz", {"GET"}),
])
def test_wrong_method_is_405_with_allow(gateway, method, path, allowed):
    r = gateway.request(method, path, body={} if method in ("POST", "PUT", "PATCH") else None)
    error_of(r, 405, "method_not_allowed")
    allow = {m.strip().upper() for m in r.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= allow, f"Allow {allow} lacks {allowed - allow}"
    assert method not in allow


def test_uri_too_long_is_414(gateway):
    r = gateway.get("/v1/entities/" + "a" * 3000)
    assert r.status == 414, r
    if r.json is not None:
        assert isinstance(r.json.get("error"), dict), r.json
    # a URL of ordinary length is routed normally again (404: no such entity)
    r = gateway.get("/v1/entities/" + "a" * 100)
    assert r.status in (400, 404), r
    assert gateway.get("/healthz").status == 200


# ---------------------------------------------------------------- entities


def test_create_entity_with_id_lands_in_both_stores(gateway, neo4j):
    props = {"canonical_name": "Ada Lovelace", "confidence": 0.93, "surface_forms": ["Ada", "Lady Lovelace"]}
    meta = {"source_ref": "doc_17#p3", "tool_id": "T31"}
    r = gateway.post("/v1/entities", {"id": "entity_3f2a9c1b7d20", "type": "Person",
                                      "properties": props, "metadata": meta})
    assert r.status == 201, r
    body = r.json
    assert r.headers.get("Location", "").endswith("/v1/entities/entity_3f2a9c1b7d20"), r.headers.get("Location")
    assert r.headers.get("ETag") == '"1"'
    assert body["id"] == "entity_3f2a9c1b7d20" and body["type"] == "Person"
    assert body["properties"] == props and body["metadata"] == meta and body["version"] == 1
    check_timestamps(body)
    assert isinstance(body["tx_id"], str) and body["tx_id"]

    row = assert_entity_mirrored(gateway.store, neo4j, "entity_3f2a9c1b7d20",
                                 {"type": "Person", "properties": props, "version": 1})
    assert row["metadata"] == meta
    assert row["created_at"] == body["created_at"] and row["updated_at"] == body["updated_at"]
    # metadata is SQLite-only: nothing of it reaches Neo4j
    node = neo4j.entities()["entity_3f2a9c1b7d20"]["props"]
    assert "source_ref" not in node and "tool_id" not in node and "metadata" not in node
    tx = gateway.store.transaction(body["tx_id"])
    assert tx is not None and tx["state"] == "committed"
    assert_intents_settled(gateway.store, neo4j)


def test_create_entity_generates_uuid7(gateway, neo4j):
    before_ms = int(time.time() * 1000)
    body = create_entity(gateway, "Org", {"name": "Analytical Engines Ltd"})
    after_ms = int(time.time() * 1000)
    assert UUID7_RE.match(body["id"]), body["id"]
    assert before_ms - 5000 <= uuid7_ms(body["id"]) <= after_ms + 5000, "UUIDv7 timestamp is not now"
    assert body["metadata"] in (None, {})
    row = assert_entity_mirrored(gateway.store, neo4j, body["id"],
                                 {"type": "Org", "properties": {"name": "Analytical Engines Ltd"}, "version": 1})
    assert row["metadata"] in (None, {})
    # a second create gets another id
    other = create_entity(gateway, "Org", {"name": "Analytical Engines Ltd"})
    assert other["id"] != body["id"]
    assert_stores_consistent(gateway.store, neo4j)


def test_property_value_types_round_trip(gateway, neo4j):
    props = {"s": "Ada Łovelace ☃ \"quoted\" \\ back", "i": 42, "neg": -7, "f": 0.5, "b": True, "bf": False,
             "sa": ["a", "b"], "ia": [1, 2, 3], "fa": [0.5, 1.5], "ba": [True, False], "big": 2 ** 53 - 1}
    body = create_entity(gateway, "Person", props)
    assert body["properties"] == props
    assert_entity_mirrored(gateway.store, neo4j, body["id"], {"properties": props})
    r = gateway.get(f"/v1/entities/{body['id']}")
    assert r.status == 200 and r.json["properties"] == props


def test_create_entity_existing_id_is_409_and_audited_as_aborted(gateway, neo4j):
    create_entity(gateway, "Person", {"name": "first"}, id="dup-1")
    before = snapshot(gateway, neo4j)
    r = gateway.post("/v1/entities", {"id": "dup-1", "type": "Org", "properties": {"name": "second"}})
    error_of(r, 409, "entity_exists")
    assert_unchanged(gateway, neo4j, before)
    assert_entity_mirrored(gateway.store, neo4j, "dup-1", {"type": "Person", "properties": {"name": "first"}})
    aborted = gateway.get("/v1/transactions?state=aborted")
    assert aborted.status == 200, aborted
    assert len(aborted.json["items"]) == 1, aborted.json
    assert aborted.json["items"][0]["state"] == "aborted"
    assert [t["state"] for t in gateway.store.transactions()].count("aborted") == 1


def test_get_entity(gateway):
    body = create_entity(gateway, "Person", {"name": "Grace"}, id="grace", metadata={"k": "v"})
    r = gateway.get("/v1/entities/grace")
    assert r.status == 200, r
    for key in ("id", "type", "properties", "metadata", "version", "created_at", "updated_at"):
        assert r.json[key] == body[key], key
    error_of(gateway.get("/v1/entities/nobody-here"), 404, "not_found")


def test_get_entity_verify_detects_neo4j_edits(gateway, neo4j):
    create_entity(gateway, "Person", {"name": "Vera", "score": 1}, id="vera")
    r = gateway.get("/v1/entities/vera?verify=true")
    assert r.status == 200, r
    assert r.json["consistency"]["status"] == "consistent", r.json
    # an edit made behind the gateway's back
    neo4j.run("MATCH (n:Entity {id: 'vera'}) SET n.name = 'Tampered'")
    r = gateway.get("/v1/entities/vera?verify=true")
    assert r.status == 200 and r.json["consistency"]["status"] == "mismatch", r.json
    # the SQLite side still answers the plain read unchanged
    assert r.json["properties"] == {"name": "Vera", "score": 1}
    neo4j.run("MATCH (n:Entity {id: 'vera'}) DETACH DELETE n")
    r = gateway.get("/v1/entities/vera?verify=true")
    assert r.status == 200 and r.json["consistency"]["status"] == "missing_in_neo4j", r.json


def test_list_entities_keyset_pagination_and_type_filter(gateway):
    people = {create_entity(gateway, "Person", {"n": i}, id=f"p{i:02d}")["id"] for i in range(5)}
    orgs = {create_entity(gateway, "Org", {"n": i})["id"] for i in range(3)}
    items, pages = list_all(gateway, "/v1/entities?type=Person", limit=2)
    ids = [it["id"] for it in items]
    assert len(ids) == len(set(ids)), f"a page repeated items: {ids}"
    assert set(ids) == people
    assert all(it["type"] == "Person" for it in items)
    assert len(pages) <= 3, [len(p) for p in pages]
    assert sorted(it["properties"]["n"] for it in items) == list(range(5))
    items, _ = list_all(gateway, "/v1/entities", limit=3)
    assert sorted(it["id"] for it in items) == sorted(people | orgs)
    r = gateway.get("/v1/entities?type=Nobody")
    assert r.status == 200 and r.json["items"] == [] and r.json["next"] is None, r
    error_of(gateway.get("/v1/entities?limit=abc"), 400, "invalid_request")


def test_patch_if_match_merges_and_bumps_version(gateway, neo4j):
    create_entity(gateway, "Person", {"name": "Ada", "confidence": 0.5, "old_key": "x"}, id="ada",
                  metadata={"source_ref": "doc_1"})
    v1 = gateway.store.entity("ada")
    before = snapshot(gateway, neo4j)
    # If-Match naming a version that is not the current one changes nothing
    r = gateway.patch("/v1/entities/ada", {"properties": {"confidence": 0.97}}, headers={"If-Match": '"7"'})
    error_of(r, 412, "version_mismatch")
    assert_unchanged(gateway, neo4j, before)

    r = gateway.patch("/v1/entities/ada", {"properties": {"confidence": 0.97, "old_key": None},
                                           "metadata": {"tool_id": "T31"}}, headers={"If-Match": '"1"'})
    assert r.status == 200, r
    assert r.headers.get("ETag") == '"2"'
    assert r.json["version"] == 2
    assert r.json["properties"] == {"name": "Ada", "confidence": 0.97}
    assert r.json["metadata"] == {"tool_id": "T31"}  # metadata replaces
    row = assert_entity_mirrored(gateway.store, neo4j, "ada",
                                 {"version": 2, "properties": {"name": "Ada", "confidence": 0.97}})
    assert row["metadata"] == {"tool_id": "T31"}
    assert row["hash"] != v1["hash"], "hash unchanged although properties changed"
    assert row["created_at"] == v1["created_at"] and row["updated_at"] >= v1["updated_at"]
    assert "old_key" not in neo4j.entities()["ada"]["props"]

    # the old version is now stale
    before = snapshot(gateway, neo4j)
    r = gateway.patch("/v1/entities/ada", {"properties": {"confidence": 0.1}}, headers={"If-Match": '"1"'})
    error_of(r, 412, "version_mismatch")
    assert_unchanged(gateway, neo4j, before)
    assert_intents_settled(gateway.store, neo4j)


def test_patch_without_if_match_and_errors(gateway, neo4j):
    create_entity(gateway, "Person", {"a": 1, "b": 2}, id="pat")
    r = gateway.patch("/v1/entities/pat", {"properties": {"b": None, "c": [1, 2]}})
    assert r.status == 200, r
    assert r.json["version"] == 2 and r.json["properties"] == {"a": 1, "c": [1, 2]}
    assert_entity_mirrored(gateway.store, neo4j, "pat", {"version": 2, "properties": {"a": 1, "c": [1, 2]}})
    r = gateway.patch("/v1/entities/pat", {"properties": {"a": 5}})
    assert r.status == 200 and r.json["version"] == 3
    assert_entity_mirrored(gateway.store, neo4j, "pat", {"version": 3, "properties": {"a": 5, "c": [1, 2]}})
    error_of(gateway.patch("/v1/entities/ghost", {"properties": {"a": 1}}), 404, "not_found")
    before = snapshot(gateway, neo4j)
    error_of(gateway.patch("/v1/entities/pat", {"properties": {"nested": {"x": 1}}}), 400, "invalid_request")
    error_of(gateway.patch("/v1/entities/pat", {"properties": {"_h": "0"}}), 400, "invalid_request")
    error_of(gateway.patch("/v1/entities/pat", {"properties": {"id": "other"}}), 400, "invalid_request")
    error_of(gateway.patch("/v1/entities/pat", b'{"properties": {', headers=JSON), 400, "invalid_json")
    error_of(gateway.patch("/v1/entities/pat", {"properties": {"a": 1}}, headers={"Content-Type": "text/plain"}),
             415, "unsupported_media_type")
    assert_unchanged(gateway, neo4j, before)
    assert_stores_consistent(gateway.store, neo4j)


def test_delete_entity_removes_its_relationships_in_both_stores(gateway, neo4j):
    for eid in ("da", "db", "dc"):
        create_entity(gateway, "Person", {"name": eid}, id=eid)
    create_relationship(gateway, "da", "db", "KNOWS", id="r-ab")
    create_relationship(gateway, "dc", "da", "KNOWS", id="r-ca")
    create_relationship(gateway, "db", "dc", "KNOWS", id="r-bc")
    r = gateway.delete("/v1/entities/da")
    assert r.status == 204, r
    assert not r.body
    assert_absent(gateway.store, neo4j, entity_ids=["da"], rel_ids=["r-ab", "r-ca"])
    assert_entity_mirrored(gateway.store, neo4j, "db")
    assert_entity_mirrored(gateway.store, neo4j, "dc")
    assert_relationship_mirrored(gateway.store, neo4j, "r-bc")
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)
    error_of(gateway.get("/v1/entities/da"), 404, "not_found")
    error_of(gateway.get("/v1/relationships/r-ab"), 404, "not_found")
    error_of(gateway.delete("/v1/entities/da"), 404, "not_found")


def test_delete_entity_if_match(gateway, neo4j):
    create_entity(gateway, "Person", {"name": "x"}, id="dm")
    before = snapshot(gateway, neo4j)
    error_of(gateway.delete("/v1/entities/dm", headers={"If-Match": '"2"'}), 412, "version_mismatch")
    assert_unchanged(gateway, neo4j, before)
    assert gateway.delete("/v1/entities/dm", headers={"If-Match": '"1"'}).status == 204
    assert_absent(gateway.store, neo4j, entity_ids=["dm"])
    assert_intents_settled(gateway.store, neo4j)


def test_entity_idempotency_key(gateway, neo4j):
    key = f"idem-{uuid.uuid4()}"
    body = {"type": "Person", "properties": {"name": "Once"}}  # no id: a second write would get a new one
    first = gateway.post("/v1/entities", body, headers={"Idempotency-Key": key})
    assert first.status == 201, first
    txs = len(gateway.store.transactions())
    again = gateway.post("/v1/entities", body, headers={"Idempotency-Key": key})
    assert again.status == 201, again
    assert again.json == first.json
    assert again.headers.get("Location") == first.headers.get("Location")
    assert gateway.store.value("SELECT count(*) FROM entities") == 1
    assert neo4j.value("MATCH (n:Entity) RETURN count(n)") == 1
    assert len(gateway.store.transactions()) == txs
    # same key, different body
    before = snapshot(gateway, neo4j)
    r = gateway.post("/v1/entities", {"type": "Person", "properties": {"name": "Twice"}},
                     headers={"Idempotency-Key": key})
    error_of(r, 409, "idempotency_conflict")
    assert_unchanged(gateway, neo4j, before)
    # a key is scoped to method and path: the same key on another path is a new request
    r = gateway.post("/v1/transactions", {"operations": [{"op": "create_entity", "type": "Org"}]},
                     headers={"Idempotency-Key": key})
    assert r.status == 200, r
    assert neo4j.value("MATCH (n:Entity) RETURN count(n)") == 2
    # without a key the same body writes again
    assert gateway.post("/v1/entities", body).status == 201
    assert gateway.store.value("SELECT count(*) FROM entities") == 3
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)


INVALID_ENTITIES = {
    "cypher_injection_type": ({"type": "Person) DETACH DELETE n //"}, "type"),
    "type_starts_with_digit": ({"type": "1Person"}, "type"),
    "type_empty": ({"type": ""}, "type"),
    "type_too_long": ({"type": "P" * 65}, "type"),
    "type_backtick": ({"type": "Person`:Admin"}, "type"),
    "type_not_string": ({"type": 5}, "type"),
    "type_missing": ({"properties": {"a": 1}}, "type"),
    "key_with_dash": ({"type": "Person", "properties": {"bad-key": 1}}, "properties"),
    "key_starts_with_digit": ({"type": "Person", "properties": {"1abc": 1}}, "properties"),
    "key_injection": ({"type": "Person", "properties": {"a}) DETACH DELETE n //": 1}}, "properties"),
    "key_too_long": ({"type": "Person", "properties": {"k" * 65: 1}}, "properties"),
    "reserved_id_key": ({"type": "Person", "properties": {"id": "x"}}, "properties"),
    "reserved_underscore_key": ({"type": "Person", "properties": {"_x": 1}}, "properties"),
    "reserved_v_key": ({"type": "Person", "properties": {"_v": 9}}, "properties"),
    "nested_object_value": ({"type": "Person", "properties": {"nested": {"a": 1}}}, "properties"),
    "mixed_array_value": ({"type": "Person", "properties": {"mixed": [1, "a"]}}, "properties"),
    "array_of_objects": ({"type": "Person", "properties": {"objs": [{"a": 1}]}}, "properties"),
    "array_of_arrays": ({"type": "Person", "properties": {"arrs": [[1, 2]]}}, "properties"),
    "properties_not_object": ({"type": "Person", "properties": ["a"]}, "properties"),
    "metadata_not_object": ({"type": "Person", "metadata": "text"}, "metadata"),
    "id_with_space": ({"type": "Person", "id": "has space"}, "id"),
    "id_with_slash": ({"type": "Person", "id": "a/b"}, "id"),
    "id_with_quote": ({"type": "Person", "id": "a'b"}, "id"),
    "id_empty": ({"type": "Person", "id": ""}, "id"),
    "id_too_long": ({"type": "Person", "id": "x" * 129}, "id"),
    "id_not_string": ({"type": "Person", "id": 12}, "id"),
    # "." and ".." pass [A-Za-z0-9._:-]{1,128} but name no resource in a URL
    "id_dot": ({"type": "Person", "id": "."}, "id"),
    "id_dotdot": ({"type": "Person", "id": ".."}, "id"),
    # the common label: a node of type Entity would carry no type label
    "type_reserved_entity": ({"type": "Entity"}, "type"),
}


@pytest.mark.parametrize("case", sorted(INVALID_ENTITIES))
def test_invalid_entity_is_rejected_and_writes_nothing(gateway, neo4j, case):
    body, field = INVALID_ENTITIES[case]
    create_entity(gateway, "Person", {"name": "sentinel"}, id="sentinel")
    before = gateway.store.dump(), neo4j.dump()
    r = gateway.post("/v1/entities", body)
    err = error_of(r, 400, "invalid_request")
    if "field" in err:
        assert field in err["field"], f"field {err['field']!r} does not name {field!r}"
    # nothing written anywhere, not even an audit row: validation comes first
    assert (gateway.store.dump(), neo4j.dump()) == before
    assert_entity_mirrored(gateway.store, neo4j, "sentinel")
    listed = gateway.get("/v1/transactions")
    assert listed.status == 200 and len(listed.json["items"]) == 1, listed


def test_valid_identifier_edges_are_accepted(gateway, neo4j):
    eid = "A" + "z" * 126 + "9"  # 128 characters
    body = create_entity(gateway, "P" * 64, {"k" * 64: 1, "A_b9": "x"}, id=eid)
    assert body["id"] == eid
    assert_entity_mirrored(gateway.store, neo4j, eid, {"type": "P" * 64})
    body = create_entity(gateway, "Person", {}, id="a.b:c-d_e")
    assert_entity_mirrored(gateway.store, neo4j, "a.b:c-d_e", {"properties": {}})


def test_invalid_json_is_400(gateway, neo4j):
    before = gateway.store.dump(), neo4j.dump()
    for path in ("/v1/entities", "/v1/relationships", "/v1/transactions", "/v1/ids"):
        error_of(gateway.post(path, b'{"type": "Person",', headers=JSON), 400, "invalid_json")
        error_of(gateway.post(path, b'{"type": "Person"} trailing', headers=JSON), 400, "invalid_json")
        error_of(gateway.post(path, b'\xff\xfe{}', headers=JSON), 400, "invalid_json")
    r = gateway.post("/v1/entities", b"", headers=JSON)
    assert r.status == 400 and r.error_code() in ("invalid_json", "invalid_request"), r
    r = gateway.post("/v1/entities", b'["Person"]', headers=JSON)
    error_of(r, 400, "invalid_request")
    assert (gateway.store.dump(), neo4j.dump()) == before


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(gateway, neo4j, ctype):
    before = gateway.store.dump(), neo4j.dump()
    body = json.dumps({"type": "Person", "properties": {"name": "x"}}).encode()
    error_of(gateway.post("/v1/entities", body, headers={"Content-Type": ctype}), 415, "unsupported_media_type")
    error_of(gateway.post("/v1/transactions", json.dumps({"operations": [{"op": "create_entity", "type": "P"}]}),
                          headers={"Content-Type": ctype}), 415, "unsupported_media_type")
    assert (gateway.store.dump(), neo4j.dump()) == before


def test_json_content_type_with_charset_is_accepted(gateway, neo4j):
    r = gateway.post("/v1/entities", {"type": "Person", "id": "cs"},
                     headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 201, r
    assert_entity_mirrored(gateway.store, neo4j, "cs")


def test_limits_answer_413_and_write_nothing(gateway_factory, neo4j):
    gw = gateway_factory(args=["--max-body-bytes", "2048", "--max-operations", "5"])
    before = gw.store.dump(), neo4j.dump()
    big = {"type": "Person", "properties": {"blob": "x" * 5000}}
    error_of(gw.post("/v1/entities", big), 413, "payload_too_large")
    error_of(gw.post("/v1/entities", json.dumps(big), chunked=True), 413, "payload_too_large")
    six = {"operations": [{"op": "create_entity", "type": "Person", "id": f"lim{i}"} for i in range(6)]}
    assert len(json.dumps(six)) < 2048
    error_of(gw.post("/v1/transactions", six), 413, "payload_too_large")
    assert (gw.store.dump(), neo4j.dump()) == before
    assert_absent(gw.store, neo4j, entity_ids=[f"lim{i}" for i in range(6)])
    # at the limits exactly it works
    five = {"operations": six["operations"][:5]}
    r = gw.post("/v1/transactions", five)
    assert r.status == 200, r
    for i in range(5):
        assert_entity_mirrored(gw.store, neo4j, f"lim{i}")
    fits = {"type": "Person", "id": "fits", "properties": {"blob": "y" * 1900}}
    assert len(json.dumps(fits)) <= 2048
    assert gw.post("/v1/entities", fits).status == 201
    assert_stores_consistent(gw.store, neo4j)


# ------------------------------------------------------------ relationships


def test_create_relationship_lands_in_both_stores(gateway, neo4j):
    rtype = f"LINK_{uuid.uuid4().hex[:8].upper()}"  # a type never used before in this Neo4j
    create_entity(gateway, "Person", {"name": "Ada"}, id="ra")
    create_entity(gateway, "Org", {"name": "Engines"}, id="rb")
    r = gateway.post("/v1/relationships", {"id": "rel-1", "type": rtype, "source": "ra", "target": "rb",
                                           "properties": {"weight": 0.7, "roles": ["x", "y"]}})
    assert r.status == 201, r
    body = r.json
    assert body["id"] == "rel-1" and body["type"] == rtype
    assert body["source"] == "ra" and body["target"] == "rb"
    assert body["properties"] == {"weight": 0.7, "roles": ["x", "y"]} and body["version"] == 1
    check_timestamps(body)
    assert body["tx_id"]
    assert_relationship_mirrored(gateway.store, neo4j, "rel-1",
                                 {"type": rtype, "source_id": "ra", "target_id": "rb", "version": 1,
                                  "properties": {"weight": 0.7, "roles": ["x", "y"]}})
    # generated id
    gen = create_relationship(gateway, "rb", "ra", rtype)
    assert UUID7_RE.match(gen["id"]), gen["id"]
    assert_relationship_mirrored(gateway.store, neo4j, gen["id"], {"properties": {}})
    # uniqueness constraints: Entity.id, and one for the new relationship type
    cons = neo4j.run("SHOW CONSTRAINTS YIELD entityType, labelsOrTypes, properties, type "
                     "RETURN entityType, labelsOrTypes, properties, type")
    assert ["NODE", ["Entity"], ["id"], "UNIQUENESS"] in cons, cons
    assert ["RELATIONSHIP", [rtype], ["id"], "RELATIONSHIP_UNIQUENESS"] in cons, cons
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)


def test_relationship_missing_endpoint_is_404(gateway, neo4j):
    create_entity(gateway, "Person", id="only")
    before = snapshot(gateway, neo4j)
    error_of(gateway.post("/v1/relationships", {"type": "KNOWS", "source": "only", "target": "ghost"}),
             404, "not_found")
    error_of(gateway.post("/v1/relationships", {"type": "KNOWS", "source": "ghost", "target": "only"}),
             404, "not_found")
    assert_unchanged(gateway, neo4j, before)


def test_relationship_existing_id_is_409(gateway, neo4j):
    create_entity(gateway, "Person", id="x1")
    create_entity(gateway, "Person", id="x2")
    create_relationship(gateway, "x1", "x2", "KNOWS", id="dup-rel", properties={"n": 1})
    before = snapshot(gateway, neo4j)
    error_of(gateway.post("/v1/relationships", {"id": "dup-rel", "type": "KNOWS", "source": "x2", "target": "x1"}),
             409, "relationship_exists")
    # also when the duplicate has another type (Neo4j's constraints are per type)
    error_of(gateway.post("/v1/relationships", {"id": "dup-rel", "type": "LIKES", "source": "x2", "target": "x1"}),
             409, "relationship_exists")
    assert_unchanged(gateway, neo4j, before)
    assert_relationship_mirrored(gateway.store, neo4j, "dup-rel", {"source_id": "x1", "properties": {"n": 1}})


def test_get_and_delete_relationship(gateway, neo4j):
    create_entity(gateway, "Person", id="g1")
    create_entity(gateway, "Person", id="g2")
    made = create_relationship(gateway, "g1", "g2", "KNOWS", id="gr", properties={"since": 1999})
    r = gateway.get("/v1/relationships/gr")
    assert r.status == 200, r
    for key in ("id", "type", "source", "target", "properties", "version", "created_at", "updated_at"):
        assert r.json[key] == made[key], key
    error_of(gateway.get("/v1/relationships/none"), 404, "not_found")
    r = gateway.delete("/v1/relationships/gr")
    assert r.status == 204, r
    assert_absent(gateway.store, neo4j, rel_ids=["gr"])
    assert_entity_mirrored(gateway.store, neo4j, "g1")
    assert_entity_mirrored(gateway.store, neo4j, "g2")
    error_of(gateway.get("/v1/relationships/gr"), 404, "not_found")
    error_of(gateway.delete("/v1/relationships/gr"), 404, "not_found")
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)


@pytest.mark.parametrize("body", [
    {"type": "KNOWS]->() DETACH DELETE n //", "source": "v1", "target": "v2"},
    {"type": "1KNOWS", "source": "v1", "target": "v2"},
    {"type": "KNOWS", "source": "v1", "target": "v2", "properties": {"w": {"x": 1}}},
    {"type": "KNOWS", "source": "v1", "target": "v2", "properties": {"_w": 1}},
    {"type": "KNOWS", "source": "v1", "target": "v2", "properties": {"id": "x"}},
    {"type": "KNOWS", "source": "v1", "target": "v2", "id": "bad id"},
    {"type": "KNOWS", "source": "v1"},
    {"type": "KNOWS", "target": "v2"},
    {"type": "KNOWS", "source": "v 1", "target": "v2"},
], ids=["injection", "digit", "nested", "underscore", "reserved_id", "bad_id", "no_target", "no_source",
        "bad_source_id"])
def test_invalid_relationship_is_rejected(gateway, neo4j, body):
    create_entity(gateway, "Person", id="v1")
    create_entity(gateway, "Person", id="v2")
    before = gateway.store.dump(), neo4j.dump()
    error_of(gateway.post("/v1/relationships", body), 400, "invalid_request")
    assert (gateway.store.dump(), neo4j.dump()) == before


# ------------------------------------------------------------- transactions


def test_batch_with_refs_creates_the_same_graph_in_both(gateway, neo4j):
    create_entity(gateway, "Org", {"name": "Existing"}, id="org-existing")
    ops = [
        {"op": "create_entity", "ref": "a", "type": "Person", "properties": {"name": "Ada", "age": 36}},
        {"op": "create_entity", "ref": "b", "id": "entity_9c1b", "type": "Org", "properties": {"name": "AE"}},
        {"op": "create_relationship", "type": "WORKS_AT", "source": {"ref": "a"}, "target": {"ref": "b"},
         "properties": {"since": 1843}},
        {"op": "create_relationship", "id": "rel-x", "type": "ADVISES", "source": {"ref": "a"},
         "target": "org-existing"},
        {"op": "create_relationship", "type": "PARTNERS", "source": "org-existing", "target": {"ref": "b"}},
    ]
    prov = {"tool_id": "T34", "operation": "extract", "inputs": ["doc_17", "doc_18"]}
    r = gateway.post("/v1/transactions", {"operations": ops, "provenance": prov})
    assert r.status == 200, r
    body = r.json
    assert body["state"] == "committed" and body["neo4j"] == "applied" and body["tx_id"]
    res = body["results"]
    assert [x["op"] for x in res] == [o["op"] for o in ops]
    assert all(x["version"] == 1 for x in res)
    a_id, b_id = res[0]["id"], res[1]["id"]
    assert UUID7_RE.match(a_id) and b_id == "entity_9c1b" and res[3]["id"] == "rel-x"
    assert_entity_mirrored(gateway.store, neo4j, a_id,
                           {"type": "Person", "properties": {"name": "Ada", "age": 36}, "version": 1})
    assert_entity_mirrored(gateway.store, neo4j, b_id, {"type": "Org", "properties": {"name": "AE"}})
    assert_relationship_mirrored(gateway.store, neo4j, res[2]["id"],
                                 {"type": "WORKS_AT", "source_id": a_id, "target_id": b_id,
                                  "properties": {"since": 1843}})
    assert_relationship_mirrored(gateway.store, neo4j, "rel-x",
                                 {"type": "ADVISES", "source_id": a_id, "target_id": "org-existing",
                                  "properties": {}})
    assert_relationship_mirrored(gateway.store, neo4j, res[4]["id"],
                                 {"type": "PARTNERS", "source_id": "org-existing", "target_id": b_id})
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)
    tx = gateway.store.transaction(body["tx_id"])
    assert tx and tx["state"] == "committed"
    # provenance is stored in SQLite with the transaction (in whichever column)
    assert any(parses_to(v, prov) for v in tx.values()), f"provenance not found in {tx}"


def ten_operations(bad=None):
    """Ten operations against e1 (Person v1), e2 (Org v1), r0 (e1-WORKS_AT->e2);
    operation 6 is replaced by `bad` when given."""
    ops = [
        {"op": "create_entity", "ref": "a", "id": "n-a", "type": "Person", "properties": {"name": "A"}},
        {"op": "create_entity", "ref": "b", "id": "n-b", "type": "Org", "properties": {"name": "B"}},
        {"op": "create_relationship", "id": "n-r1", "type": "WORKS_AT", "source": {"ref": "a"},
         "target": {"ref": "b"}, "properties": {"since": 2020}},
        {"op": "update_entity", "id": "e1", "if_version": 1, "properties": {"name": "Ada L.", "extra": None}},
        {"op": "create_entity", "ref": "c", "id": "n-c", "type": "Person", "properties": {"name": "C"}},
        {"op": "create_relationship", "id": "n-r2", "type": "KNOWS", "source": {"ref": "c"}, "target": "e1"},
        {"op": "update_entity", "id": "e2", "properties": {"size": 10}},
        {"op": "delete_relationship", "id": "r0"},
        {"op": "delete_entity", "id": "e3"},
        {"op": "create_entity", "id": "n-d", "type": "Person", "properties": {"name": "D"}},
    ]
    if bad is not None:
        ops[6] = bad
    return {"operations": ops}


def seed_for_ten(gw):
    create_entity(gw, "Person", {"name": "Ada", "extra": 1}, id="e1")
    create_entity(gw, "Org", {"name": "Engines"}, id="e2")
    create_entity(gw, "Person", {"name": "Gone"}, id="e3")
    create_relationship(gw, "e1", "e2", "WORKS_AT", id="r0")
    create_relationship(gw, "e3", "e1", "KNOWS", id="r3")


def test_ten_operation_batch_applies_everything(gateway, neo4j):
    seed_for_ten(gateway)
    r = gateway.post("/v1/transactions", ten_operations())
    assert r.status == 200, r
    res = r.json["results"]
    assert len(res) == 10
    assert [x["op"] for x in res] == [o["op"] for o in ten_operations()["operations"]]
    assert [res[i]["id"] for i in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)] == \
        ["n-a", "n-b", "n-r1", "e1", "n-c", "n-r2", "e2", "r0", "e3", "n-d"]
    assert res[3]["version"] == 2 and res[6]["version"] == 2
    assert_entity_mirrored(gateway.store, neo4j, "e1", {"version": 2, "properties": {"name": "Ada L."}})
    assert_entity_mirrored(gateway.store, neo4j, "e2", {"version": 2, "properties": {"name": "Engines", "size": 10}})
    for eid in ("n-a", "n-b", "n-c", "n-d"):
        assert_entity_mirrored(gateway.store, neo4j, eid, {"version": 1})
    assert_relationship_mirrored(gateway.store, neo4j, "n-r1", {"source_id": "n-a", "target_id": "n-b"})
    assert_relationship_mirrored(gateway.store, neo4j, "n-r2", {"source_id": "n-c", "target_id": "e1"})
    assert_absent(gateway.store, neo4j, entity_ids=["e3"], rel_ids=["r0", "r3"])
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)


BAD_SEVENTH = {
    "injection_type": ({"op": "create_entity", "type": "Person) DETACH DELETE n //"}, 400, "invalid_request"),
    "nested_property": ({"op": "create_entity", "type": "Person", "properties": {"x": {"y": 1}}},
                        400, "invalid_request"),
    "reserved_key": ({"op": "update_entity", "id": "e2", "properties": {"_h": "x"}}, 400, "invalid_request"),
    "unknown_ref": ({"op": "create_relationship", "type": "KNOWS", "source": {"ref": "zz"}, "target": "e1"},
                    400, "invalid_request"),
    "unknown_op": ({"op": "merge_entity", "id": "e2"}, 400, "invalid_request"),
    "existing_id": ({"op": "create_entity", "id": "e1", "type": "Person"}, 409, "entity_exists"),
    # found while planning (400) or by the store (409): either way nothing is written
    "id_created_earlier_in_batch": ({"op": "create_entity", "id": "n-a", "type": "Person"},
                                    (409, 400), ("entity_exists", "invalid_request")),
    "existing_relationship_id": ({"op": "create_relationship", "id": "r3", "type": "KNOWS", "source": "e1",
                                  "target": "e2"}, 409, "relationship_exists"),
    "stale_version": ({"op": "update_entity", "id": "e2", "if_version": 5, "properties": {"x": 1}},
                      412, "version_mismatch"),
    "missing_endpoint": ({"op": "create_relationship", "type": "KNOWS", "source": "e1", "target": "ghost"},
                         404, "not_found"),
    "update_missing_entity": ({"op": "update_entity", "id": "ghost", "properties": {"x": 1}}, 404, "not_found"),
}


@pytest.mark.parametrize("case", sorted(BAD_SEVENTH))
def test_batch_with_bad_seventh_operation_changes_nothing(gateway, neo4j, case):
    bad, status, code = BAD_SEVENTH[case]
    seed_for_ten(gateway)
    before = snapshot(gateway, neo4j)
    r = gateway.post("/v1/transactions", ten_operations(bad))
    if isinstance(status, tuple):
        assert (r.status, r.error_code()) in zip(status, code), r
        err = r.json["error"]
    else:
        err = error_of(r, status, code)
    assert err.get("operation_index") == 6, err
    if "field" in err:
        assert err["field"].startswith("operations[6]"), err
    assert_unchanged(gateway, neo4j, before)
    assert_absent(gateway.store, neo4j, entity_ids=["n-a", "n-b", "n-c", "n-d"], rel_ids=["n-r1", "n-r2"])
    assert_entity_mirrored(gateway.store, neo4j, "e1", {"version": 1, "properties": {"name": "Ada", "extra": 1}})
    assert_entity_mirrored(gateway.store, neo4j, "e3")
    assert_relationship_mirrored(gateway.store, neo4j, "r0")
    assert_intents_settled(gateway.store, neo4j)
    if case in ("existing_id", "existing_relationship_id"):
        # reached the stores and was rolled back: audited as aborted
        aborted = gateway.get("/v1/transactions?state=aborted")
        assert aborted.status == 200 and len(aborted.json["items"]) == 1, aborted
    # the gateway is not wedged by the rollback
    assert gateway.post("/v1/transactions", ten_operations()).status == 200
    assert_stores_consistent(gateway.store, neo4j)


@pytest.mark.parametrize("body,index", [
    ({"operations": []}, None),
    ({}, None),
    ({"operations": {"op": "create_entity"}}, None),
    ({"operations": [{"op": "create_entity", "type": "Person", "ref": "a"},
                     {"op": "create_entity", "type": "Person", "ref": "a"}]}, 1),
    ({"operations": [{"op": "create_relationship", "type": "KNOWS", "source": {"ref": "later"}, "target": "x"},
                     {"op": "create_entity", "type": "Person", "ref": "later"}]}, 0),
    ({"operations": [{"op": "create_entity", "type": "Person"}, {"type": "Person"}]}, 1),
    ({"operations": [{"op": "update_entity", "properties": {"a": 1}}]}, 0),
    ({"operations": [{"op": "update_entity", "id": "x", "if_version": "one", "properties": {}}]}, 0),
    ({"operations": [{"op": "create_entity", "type": "Person"}], "provenance": "not an object"}, None),
], ids=["empty", "missing", "not_a_list", "duplicate_ref", "ref_before_definition", "op_missing",
        "update_without_id", "if_version_not_int", "provenance_not_object"])
def test_invalid_batch_is_400(gateway, neo4j, body, index):
    before = gateway.store.dump(), neo4j.dump()
    err = error_of(gateway.post("/v1/transactions", body), 400, "invalid_request")
    if index is not None:
        assert err.get("operation_index") == index, err
    assert (gateway.store.dump(), neo4j.dump()) == before


@pytest.mark.parametrize("op", [
    {"op": "cypher", "statement": "MATCH (n) DETACH DELETE n", "parameters": {}},
    {"op": "sql", "statement": "DELETE FROM entities", "parameters": []},
])
def test_raw_statements_are_forbidden_by_default(gateway, neo4j, op):
    create_entity(gateway, "Person", id="keep-me")
    before = snapshot(gateway, neo4j)
    r = gateway.post("/v1/transactions", {"operations": [{"op": "create_entity", "type": "Person"}, op]})
    err = error_of(r, 403, "forbidden")
    if "operation_index" in err:
        assert err["operation_index"] == 1
    assert_unchanged(gateway, neo4j, before)
    assert_entity_mirrored(gateway.store, neo4j, "keep-me")


def test_transaction_get_and_provenance(gateway, neo4j):
    prov = {"tool_id": "T34", "operation": "extract", "inputs": [{"doc": "d1"}, "d2"]}
    r = gateway.post("/v1/transactions", {"operations": [
        {"op": "create_entity", "ref": "a", "type": "Person"},
        {"op": "create_entity", "ref": "b", "type": "Person"},
        {"op": "create_relationship", "type": "KNOWS", "source": {"ref": "a"}, "target": {"ref": "b"}}],
        "provenance": prov})
    assert r.status == 200, r
    tx_id = r.json["tx_id"]
    g = gateway.get(f"/v1/transactions/{tx_id}")
    assert g.status == 200, g
    t = g.json
    assert t["tx_id"] == tx_id and t["state"] == "applied"
    assert t["provenance"] == prov
    assert t["error"] is None
    assert RFC3339_UTC_RE.match(t["created_at"]) and RFC3339_UTC_RE.match(t["applied_at"]), t
    assert t["applied_at"] >= t["created_at"]
    ops = t["operations"]
    assert (isinstance(ops, list) and len(ops) == 3) or ops == 3, ops
    assert gateway.store.transaction(tx_id)["state"] == "committed"
    # a transaction without provenance
    r2 = gateway.post("/v1/transactions", {"operations": [{"op": "create_entity", "type": "Org"}]})
    t2 = gateway.get(f"/v1/transactions/{r2.json['tx_id']}").json
    assert t2["provenance"] in (None, {}), t2
    error_of(gateway.get("/v1/transactions/01890000-0000-7000-8000-000000000000"), 404, "not_found")
    error_of(gateway.get("/v1/transactions/no-such-tx"), 404, "not_found")


def test_transactions_audit_list(gateway, neo4j):
    t1 = create_entity(gateway, "Person", id="au1")["tx_id"]
    t2 = gateway.post("/v1/transactions", {"operations": [
        {"op": "create_entity", "id": "au2", "type": "Person"},
        {"op": "create_relationship", "type": "KNOWS", "source": "au1", "target": "au2"}]}).json["tx_id"]
    dup = gateway.post("/v1/entities", {"id": "au1", "type": "Person", "properties": {"who": "dup"}})
    error_of(dup, 409, "entity_exists")
    t4 = create_relationship(gateway, "au2", "au1", "LIKES")["tx_id"]
    t5 = gateway.patch("/v1/entities/au2", {"properties": {"x": 1}}).json
    assert t5["version"] == 2

    items, pages = list_all(gateway, "/v1/transactions", limit=2)
    assert len(items) == 5, [i.get("tx_id") for i in items]
    assert len(pages) >= 3
    assert items[0]["tx_id"] == t1 and items[1]["tx_id"] == t2 and items[3]["tx_id"] == t4, \
        "not oldest first"
    assert items[2]["state"] == "aborted"
    assert len({i["tx_id"] for i in items}) == 5
    assert [i["state"] for i in items] == ["applied", "applied", "aborted", "applied", "applied"]

    aborted, _ = list_all(gateway, "/v1/transactions?state=aborted", limit=10)
    assert len(aborted) == 1 and aborted[0]["tx_id"] == items[2]["tx_id"]
    full = gateway.get(f"/v1/transactions/{aborted[0]['tx_id']}")
    assert full.status == 200 and full.json["state"] == "aborted", full
    assert full.json["error"] and "entity_exists" in json.dumps(full.json["error"]), full.json
    assert full.json["applied_at"] is None
    # none of the aborted transaction's data is anywhere
    assert gateway.store.entity("au1")["properties"] == {}
    assert "who" not in neo4j.entities()["au1"]["props"]

    committed, _ = list_all(gateway, "/v1/transactions?state=committed", limit=2)
    assert [i["tx_id"] for i in committed] == [i["tx_id"] for i in items if i["state"] != "aborted"]
    applied, _ = list_all(gateway, "/v1/transactions?state=applied", limit=100)
    assert [i["tx_id"] for i in applied] == [i["tx_id"] for i in committed]
    pending, _ = list_all(gateway, "/v1/transactions?state=pending", limit=100)
    assert pending == []
    # SQLite's audit table agrees
    states = {t["tx_id"]: t["state"] for t in gateway.store.transactions()}
    assert states == {i["tx_id"]: ("aborted" if i["state"] == "aborted" else "committed") for i in items}
    error_of(gateway.get("/v1/transactions?state=bogus"), 400, "invalid_request")


def test_transaction_idempotency_key(gateway, neo4j):
    key = f"tx-{uuid.uuid4()}"
    body = {"operations": [{"op": "create_entity", "ref": "a", "type": "Person", "properties": {"k": 1}},
                           {"op": "create_entity", "ref": "b", "type": "Person"},
                           {"op": "create_relationship", "type": "KNOWS", "source": {"ref": "a"},
                            "target": {"ref": "b"}}]}
    first = gateway.post("/v1/transactions", body, headers={"Idempotency-Key": key})
    assert first.status == 200, first
    second = gateway.post("/v1/transactions", body, headers={"Idempotency-Key": key})
    assert second.status == 200 and second.json == first.json, second
    assert gateway.store.value("SELECT count(*) FROM entities") == 2
    assert neo4j.value("MATCH (n:Entity) RETURN count(n)") == 2
    assert neo4j.value("MATCH ()-[r]->() RETURN count(r)") == 1
    assert len(gateway.store.transactions()) == 1
    changed = {"operations": body["operations"][:1]}
    error_of(gateway.post("/v1/transactions", changed, headers={"Idempotency-Key": key}), 409,
             "idempotency_conflict")
    assert gateway.store.value("SELECT count(*) FROM entities") == 2
    assert_stores_consistent(gateway.store, neo4j)
    assert_intents_settled(gateway.store, neo4j)


def test_batch_answer_and_stored_idempotency_result_keep_their_shape(gateway, neo4j):
    """A batch's answer is built from its results alone, whether or not the gateway
    keeps records for it; an Idempotency-Key's stored result still holds the full
    records of every operation."""
    ops = [{"op": "create_entity", "ref": "a", "type": "Person", "properties": {"k": 1}},
           {"op": "create_entity", "ref": "b", "type": "Person"},
           {"op": "create_relationship", "type": "KNOWS", "source": {"ref": "a"},
            "target": {"ref": "b"}, "properties": {"w": 0.5}}]
    plain = gateway.post("/v1/transactions", {"operations": ops})
    assert plain.status == 200, plain
    assert list(plain.json) == ["tx_id", "state", "neo4j", "results"]
    assert [r["op"] for r in plain.json["results"]] == [o["op"] for o in ops]
    assert all(list(r) == ["op", "id", "version"] and r["version"] == 1
               for r in plain.json["results"])

    key = f"tx-{uuid.uuid4()}"
    keyed = gateway.post("/v1/transactions", {"operations": ops}, headers={"Idempotency-Key": key})
    assert keyed.status == 200, keyed
    assert list(keyed.json) == list(plain.json)
    stored = json.loads(gateway.store.value(
        "SELECT result FROM bistore_idempotency WHERE key = ?", (key,)))
    assert stored["tx_id"] == keyed.json["tx_id"]
    assert stored["results"] == keyed.json["results"]
    ids = [r["id"] for r in keyed.json["results"]]
    records = stored["records"]
    assert [r["id"] for r in records] == ids
    assert records[0]["properties"] == {"k": 1} and records[0]["type"] == "Person"
    assert records[2]["source"] == ids[0] and records[2]["target"] == ids[1]
    assert records[2]["properties"] == {"w": 0.5}
    for r in records:
        assert r["version"] == 1
        assert RFC3339_UTC_RE.match(r["created_at"]) and r["created_at"] == r["updated_at"]
    assert_stores_consistent(gateway.store, neo4j)


# ---------------------------------------------------------------------- ids


def test_ids_are_fresh_uuid7s(gateway):
    before_ms = int(time.time() * 1000)
    r = gateway.post("/v1/ids", {"count": 5})
    assert r.status == 200, r
    ids = r.json["ids"]
    assert len(ids) == 5 and len(set(ids)) == 5
    for i in ids:
        assert UUID7_RE.match(i), i
        assert before_ms - 5000 <= uuid7_ms(i) <= int(time.time() * 1000) + 5000
    many = gateway.post("/v1/ids", {"count": 10000})
    assert many.status == 200, many
    big = many.json["ids"]
    assert len(big) == 10000 and len(set(big)) == 10000 and not set(big) & set(ids)
    assert all(UUID7_RE.match(i) for i in big)
    stamps = [uuid7_ms(i) for i in big]
    assert stamps == sorted(stamps), "UUIDv7 timestamps go backwards"


@pytest.mark.parametrize("body", [{"count": 0}, {"count": 10001}, {"count": -1}, {"count": "5"},
                                  {"count": 1.5}, {"count": None}])
def test_ids_count_bounds(gateway, body):
    error_of(gateway.post("/v1/ids", body), 400, "invalid_request")


def test_ids_from_the_gateway_are_usable_for_writes(gateway, neo4j):
    ids = gateway.post("/v1/ids", {"count": 3}).json["ids"]
    r = gateway.post("/v1/transactions", {"operations": [
        {"op": "create_entity", "id": ids[0], "type": "Person"},
        {"op": "create_entity", "id": ids[1], "type": "Person"},
        {"op": "create_relationship", "id": ids[2], "type": "KNOWS", "source": ids[0], "target": ids[1]}]})
    assert r.status == 200, r
    assert [x["id"] for x in r.json["results"]] == ids
    assert_entity_mirrored(gateway.store, neo4j, ids[0])
    assert_relationship_mirrored(gateway.store, neo4j, ids[2], {"source_id": ids[0], "target_id": ids[1]})
    # an id already used is a conflict, as for any client-supplied id
    error_of(gateway.post("/v1/entities", {"id": ids[0], "type": "Person"}), 409, "entity_exists")
    assert_stores_consistent(gateway.store, neo4j)


# ------------------------------------- input at the edges: path, query, log

ID_RULE_RE = re.compile(r"^(?!\.\.?$)[A-Za-z0-9._:-]{1,128}$")

# Path segments as sent on the wire (percent-encoded where it says so). Each
# decodes to something outside the id rule; "abc%00zzz" used to reach the
# handler as "abc" (libmicrohttpd hands over the decoded path as a C string).
BAD_SEGMENTS = ["abc%00zzz", "%00abc", "abc%00", "%00", "abc%0a", "abc%0Azzz", "abc%0d%0a", "abc%2Fzzz",
                "abc%2f", "%2Fabc", "..", ".", "%2E%2E", "%2e", "abc%20zzz", "abc%25", "abc%ff",
                "a" * 129, "abc%1b"]


def expect_invalid_path(r, field, what):
    """400 invalid_request naming the path parameter; collected, not raised."""
    if r.status != 400 or r.json is None or r.error_code() != "invalid_request" or \
            r.json["error"].get("field") != field:
        return [f"{what}: {r.status} {r.body[:160]!r}"]
    return []


def test_path_ids_are_checked_whole_and_nothing_is_touched(gateway, neo4j):
    """Every path parameter is decoded with its length and checked against the id
    rule: a NUL, a control byte, an encoded '/', a dot segment or an over-long id is
    400 invalid_request naming the parameter, and neither store changes."""
    create_entity(gateway, "Person", {"name": "Ada"}, id="abc")
    create_entity(gateway, "Person", {"name": "Bob"}, id="def")
    create_relationship(gateway, "abc", "def", "KNOWS", id="abc")  # a relationship named abc too
    tx_id = gateway.get("/v1/transactions?limit=1").json["items"][0]["tx_id"]
    run = gateway.post("/v1/reconciliations", {})
    assert run.status == 202, run
    rid = run.json["id"]
    poll(lambda: gateway.get(f"/v1/reconciliations/{rid}").json["state"] == "done", 60,
         what="the reconciliation to finish")
    before = gateway.store.dump(), neo4j.dump()
    problems = []
    for seg in BAD_SEGMENTS:
        problems += expect_invalid_path(gateway.get(f"/v1/entities/{seg}"), "id", f"GET entity {seg}")
        problems += expect_invalid_path(gateway.get(f"/v1/entities/{seg}?verify=true"), "id",
                                        f"GET entity {seg} verify")
        problems += expect_invalid_path(gateway.patch(f"/v1/entities/{seg}", {"properties": {"name": "X"}}),
                                        "id", f"PATCH entity {seg}")
        problems += expect_invalid_path(gateway.delete(f"/v1/entities/{seg}"), "id", f"DELETE entity {seg}")
        problems += expect_invalid_path(gateway.get(f"/v1/relationships/{seg}"), "id", f"GET relationship {seg}")
        problems += expect_invalid_path(gateway.delete(f"/v1/relationships/{seg}"), "id",
                                        f"DELETE relationship {seg}")
    for tail in ("%00zzz", "%00", "%0a", "%2F", "%2Fx"):
        problems += expect_invalid_path(gateway.get(f"/v1/transactions/{tx_id}{tail}"), "tx_id",
                                        f"GET transaction {tx_id}{tail}")
        problems += expect_invalid_path(gateway.get(f"/v1/reconciliations/{rid}{tail}"), "id",
                                        f"GET reconciliation {rid}{tail}")
        problems += expect_invalid_path(gateway.get(f"/v1/reconciliations/{rid}{tail}/findings"), "id",
                                        f"GET findings of {rid}{tail}")
    for seg in ("..", "%2E%2E", "."):
        problems += expect_invalid_path(gateway.get(f"/v1/transactions/{seg}"), "tx_id", f"GET transaction {seg}")
        problems += expect_invalid_path(gateway.get(f"/v1/reconciliations/{seg}/findings"), "id",
                                        f"GET findings of {seg}")
    assert problems == [], "\n".join(problems)
    # abc and its relationship are untouched, in both stores read directly
    assert (gateway.store.dump(), neo4j.dump()) == before
    assert_entity_mirrored(gateway.store, neo4j, "abc", {"version": 1, "properties": {"name": "Ada"}})
    assert_relationship_mirrored(gateway.store, neo4j, "abc", {"version": 1})
    # and an ordinary id, percent-encoded or not, still reaches them
    assert gateway.get("/v1/entities/abc").status == 200
    assert gateway.get("/v1/entities/%61bc").json["id"] == "abc"
    assert gateway.get(f"/v1/transactions/{tx_id}").status == 200
    assert gateway.get(f"/v1/reconciliations/{rid}/findings").status == 200
    assert gateway.delete("/v1/entities/abc").status == 204
    assert_absent(gateway.store, neo4j, entity_ids=["abc"], rel_ids=["abc"])
    assert_stores_consistent(gateway.store, neo4j)


def test_query_parameters_are_checked_whole(gateway, neo4j):
    """A decoded NUL in a query parameter no longer cuts it short: 400 naming it."""
    for i in range(3):
        create_entity(gateway, "Person", id=f"q{i}")
    page = gateway.get("/v1/entities?limit=1").json
    cursor = urllib.parse.quote(page["next"], safe="")
    run = gateway.post("/v1/reconciliations", {})
    rid = run.json["id"]
    poll(lambda: gateway.get(f"/v1/reconciliations/{rid}").json["state"] == "done", 60,
         what="the reconciliation to finish")
    cases = [
        ("/v1/entities?type=Person%00zzz", "type"),
        ("/v1/entities?type=Person%0a", "type"),
        ("/v1/entities?limit=1%00zz", "limit"),
        (f"/v1/entities?after={cursor}%00zz", "after"),
        ("/v1/entities/q0?verify=true%00x", "verify"),
        ("/v1/transactions?state=applied%00x", "state"),
        ("/v1/transactions?limit=2%00", "limit"),
        ("/v1/reconciliations?limit=5%00", "limit"),
        (f"/v1/reconciliations/{rid}/findings?kind=mismatch%00x", "kind"),
        (f"/v1/reconciliations/{rid}/findings?limit=5%00x", "limit"),
        ("/v1/entities?unknown=a%00b", "unknown"),
    ]
    before = gateway.store.dump(), neo4j.dump()
    problems = []
    for path, field in cases:
        r = gateway.get(path)
        if r.status != 400 or r.json is None or r.error_code() != "invalid_request" or \
                r.json["error"].get("field") != field:
            problems.append(f"GET {path}: {r.status} {r.body[:160]!r}")
    assert problems == [], "\n".join(problems)
    assert (gateway.store.dump(), neo4j.dump()) == before
    # the same parameters without the NUL work
    assert len(gateway.get("/v1/entities?type=Person&limit=2").json["items"]) == 2
    assert gateway.get(f"/v1/entities?after={cursor}").status == 200


def test_reserved_and_unreachable_identifiers_are_refused(gateway, neo4j):
    """Ids "." and ".." (no URL can name them) and the entity type Entity (the common
    label) are refused with 400 wherever they can come in; nothing is written."""
    create_entity(gateway, "Person", id="v1")
    create_entity(gateway, "Person", id="v2")
    before = gateway.store.dump(), neo4j.dump()
    for eid in (".", ".."):
        err = error_of(gateway.post("/v1/entities", {"id": eid, "type": "Person"}), 400, "invalid_request")
        assert err.get("field") == "id", err
        err = error_of(gateway.post("/v1/relationships", {"id": eid, "type": "KNOWS", "source": "v1",
                                                          "target": "v2"}), 400, "invalid_request")
        assert err.get("field") == "id", err
        err = error_of(gateway.post("/v1/relationships", {"type": "KNOWS", "source": eid, "target": "v2"}),
                       400, "invalid_request")
        assert err.get("field") == "source", err
        err = error_of(gateway.post("/v1/transactions", {"operations": [
            {"op": "create_entity", "type": "Person"},
            {"op": "update_entity", "id": eid, "properties": {"a": 1}}]}), 400, "invalid_request")
        assert (err.get("operation_index"), err.get("field")) == (1, "operations[1].id"), err
    err = error_of(gateway.post("/v1/entities", {"type": "Entity"}), 400, "invalid_request")
    assert err.get("field") == "type" and "Entity" in err["message"], err
    err = error_of(gateway.post("/v1/transactions", {"operations": [
        {"op": "create_entity", "type": "Person"},
        {"op": "create_entity", "id": "as-entity", "type": "Entity"}]}), 400, "invalid_request")
    assert (err.get("operation_index"), err.get("field")) == (1, "operations[1].type"), err
    err = error_of(gateway.get("/v1/entities?type=Entity"), 400, "invalid_request")
    assert err.get("field") == "type", err
    assert (gateway.store.dump(), neo4j.dump()) == before
    # a relationship type Entity names no label and stays allowed
    rel = create_relationship(gateway, "v1", "v2", "Entity")
    assert_relationship_mirrored(gateway.store, neo4j, rel["id"], {"type": "Entity"})
    # every id the gateway hands out passes the same rule
    ids = gateway.post("/v1/ids", {"count": 1000}).json["ids"]
    assert all(ID_RULE_RE.match(i) for i in ids)
    assert_stores_consistent(gateway.store, neo4j)


# The gateway's log lines: "<RFC 3339 ms>Z <LEVEL> [<request id>] <message>"; the
# harness adds its own "$ <command>" line at the top.
LOG_LINE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) \[[^\]\s]*\] \S")
FORGED = "2001-02-03T04:05:06.789Z INFO  [forged] admin key accepted"


def raw_http(gw, data):
    """Sends bytes as they are (http.client refuses control characters in a URL);
    returns (status, headers as bytes, body as bytes)."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    return status, head, body


def test_client_text_cannot_forge_a_log_line(gateway):
    """Paths, methods and X-Request-Id carrying CR, LF, ESC (encoded, or raw where
    HTTP lets them through) never start a line in the gateway's log or put a
    control character into it: they appear escaped."""
    gw = gateway
    enc = urllib.parse.quote("\r\n" + FORGED, safe="")
    sent = [
        # percent-encoded CR LF and a whole fake line, in an id and in a query value
        f"GET /v1/entities/abc{enc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        f"DELETE /v1/entities/{enc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        f"GET /nope{enc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        f"GET /v1/entities?type={enc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        # encoded ESC, DEL and invalid UTF-8
        b"GET /v1/entities/abc%1b[2K%7f%ff%c0%af HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        # raw ESC and a bare CR inside the request-target (a bare LF would end the line)
        b"GET /v1/entities/abc\x1b[31m\r" + FORGED.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /nope\x1b]0;title\x07\r" + FORGED.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        # a method with control characters
        b"G\x1b[1mET\r /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        # X-Request-Id with a bare CR, ESC and a fake line; another percent-encoded
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\r" + FORGED.encode() +
        b"\x1b[2K\r\nConnection: close\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc%0d%0a" + urllib.parse.quote(FORGED).encode() +
        b"\r\nConnection: close\r\n\r\n",
        # Idempotency-Key with control characters
        b"POST /v1/entities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Idempotency-Key: k\x1b[2K\r" + FORGED.encode() + b"\r\nContent-Length: 17\r\n"
        b"Connection: close\r\n\r\n{\"type\":\"Person\"}",
    ]
    answers = [raw_http(gw, data) for data in sent]
    for data, (status, head, _) in zip(sent, answers):
        assert status is not None and status < 500, f"{data!r} -> {head!r}"
        rid = re.search(rb"\r\nX-Request-Id: ([^\r\n]*)", head)
        if rid:  # a request id that is not an id is replaced, never echoed
            assert UUID7_RE.match(rid.group(1).decode()), f"{data!r} -> X-Request-Id {rid.group(1)!r}"
    assert gw.get("/healthz").status == 200
    log = gw.log_path.read_bytes()
    lines = log.split(b"\n")
    assert lines[-1] == b"", "the log does not end with a newline"
    bad = [ln for ln in lines[1:-1] if not LOG_LINE_RE.match(ln.decode("utf-8", errors="replace"))]
    assert bad == [], "log lines without the normal prefix:\n" + "\n".join(repr(b) for b in bad)
    assert lines[0].startswith(b"$ "), lines[0]
    controls = sorted({chr(c) for c in log if (c < 0x20 and c != 0x0a) or c == 0x7f})
    assert controls == [], f"control characters in the log: {controls!r}"
    assert b"\n" + FORGED.encode() not in log and not log.startswith(FORGED.encode())
    text = log.decode("utf-8")  # invalid UTF-8 is escaped too
    # what the client sent is there, escaped: percent-encoded as it came, raw bytes as \xHH
    assert f"GET /v1/entities/abc{enc} -> 400" in text, text
    assert "GET /v1/entities/abc%1b[2K%7f%ff%c0%af -> 400" in text, text
    assert "GET /v1/entities/abc\\x1b[31m\\x0d" + FORGED + " -> 400" in text, text
    assert "GET /nope\\x1b]0;title\\x07\\x0d" + FORGED + " -> 404" in text, text
    assert "G\\x1b[1mET\\x0d /healthz -> 405" in text or "G\\x1b[1mET\\x0d /healthz -> 404" in text, text
