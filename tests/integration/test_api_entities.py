"""The HTTP contract (API.md) against a real Neo4j: the operations endpoints,
routing, and /v1/entities. Every write is checked in BOTH stores read directly
(Neo4j over its HTTP endpoint, SQLite from the file), not only in the
gateway's answer."""

import json
import time
import uuid

import pytest

from harness import (assert_absent, assert_entity_mirrored, assert_intents_settled,
                     assert_relationship_mirrored, assert_stores_consistent, UUID7_RE)
from harness.api import (JSON, create_entity, create_relationship, error_of, snapshot, assert_unchanged,
                         list_all, uuid7_ms, check_timestamps)


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


def test_patch_and_delete_honour_idempotency_key(gateway, neo4j):
    """A PATCH or DELETE whose answer was lost (outcome_unknown, a reset) is
    retried with its key: the first answer comes back, not 412 or 404 (the
    fault-under-load test met those before PATCH and DELETE kept keys)."""
    assert gateway.post("/v1/entities", {"id": "ik1", "type": "Person"}).status == 201
    assert gateway.post("/v1/entities", {"id": "ik2", "type": "Person"}).status == 201
    assert gateway.post("/v1/relationships", {"id": "ikr", "type": "KNOWS", "source": "ik1",
                                              "target": "ik2"}).status == 201
    patch = {"properties": {"n": 1}}
    hdrs = {"Idempotency-Key": "patch-1", "If-Match": '"1"'}
    first = gateway.patch("/v1/entities/ik1", patch, headers=hdrs)
    assert first.status == 200 and first.json["version"] == 2, first
    txs = len(gateway.store.transactions())
    again = gateway.patch("/v1/entities/ik1", patch, headers=hdrs)
    assert again.status == 200, again
    assert again.json == first.json and again.headers.get("ETag") == '"2"', again
    assert again.headers.get("Idempotent-Replayed") == "true", again
    assert len(gateway.store.transactions()) == txs
    # the same key with another body or another If-Match
    before = snapshot(gateway, neo4j)
    error_of(gateway.patch("/v1/entities/ik1", {"properties": {"n": 2}}, headers=hdrs), 409,
             "idempotency_conflict")
    error_of(gateway.patch("/v1/entities/ik1", patch,
                           headers={"Idempotency-Key": "patch-1", "If-Match": '"2"'}), 409,
             "idempotency_conflict")
    assert_unchanged(gateway, neo4j, before)
    # scoped to the method and the path: the same key on another entity is new
    r = gateway.patch("/v1/entities/ik2", patch, headers=hdrs)
    assert r.status == 200 and r.json["version"] == 2, r
    for path, h in (("/v1/relationships/ikr", {"Idempotency-Key": "del-r"}),
                    ("/v1/entities/ik1", {"Idempotency-Key": "del-e", "If-Match": '"2"'})):
        assert gateway.delete(path, headers=h).status == 204
        r = gateway.delete(path, headers=h)
        assert r.status == 204 and r.headers.get("Idempotent-Replayed") == "true", r
        assert gateway.delete(path).status == 404  # without the key: gone
    assert gateway.store.value("SELECT count(*) FROM entities") == 1
    assert neo4j.value("MATCH (n:Entity) RETURN count(n)") == 1
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
