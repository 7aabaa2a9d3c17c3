"""openapi.yaml as the gateway serves it (GET /openapi.yaml) says what the
gateway takes: for each sample the spec's schema accepts a value exactly
when the gateway does (a refusal is 400 naming the field). Each sample is
one schemathesis found the spec allowing and the gateway refusing
(tests/integration/schemathesis_run.py, "schema-valid request rejected"),
beside a control the spec and the gateway both take."""

import copy
import urllib.parse

import jsonschema
import pytest
import yaml

from harness.api import create_entity, error_of


def spec_of(gateway):
    r = gateway.get("/openapi.yaml")
    assert r.status == 200, r
    return yaml.safe_load(r.body.decode("utf-8"))


def resolved(doc, node):
    """node with every local $ref inlined (the samples' schemas have no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolved(doc, target)
        return {k: resolved(doc, v) for k, v in node.items()}
    if isinstance(node, list):
        return [resolved(doc, v) for v in node]
    return node


def spec_accepts(doc, pointer, value):
    node = doc
    for part in pointer.split("/"):
        node = node[part]
    schema = resolved(doc, copy.deepcopy(node))
    # OpenAPI 3.0's schema objects are JSON Schema draft 4 (plus `nullable`).
    return jsonschema.Draft4Validator(schema).is_valid(value)


def agree(doc, pointer, value, r, field):
    accepted = spec_accepts(doc, pointer, value)
    if accepted:
        assert r.status < 400, f"the spec ({pointer}) accepts {value!r}, the gateway refused it: {r!r}"
    else:
        assert r.status == 400, f"the spec ({pointer}) refuses {value!r}, the gateway took it: {r!r}"
        if field is not None:
            assert r.json["error"].get("field") == field, r
    return accepted


IDEMPOTENCY_KEY = "components/parameters/IdempotencyKey/schema"
IF_MATCH = "components/parameters/IfMatch/schema"
AFTER = "components/parameters/After/schema"
TRANSACTION = "components/schemas/TransactionRequest"
PROPERTY_VALUE = "components/schemas/PropertyValue"


@pytest.mark.parametrize("key", ["batch-0042", "batch 0042"])
def test_idempotency_key_spec_matches_gateway(gateway, key):
    """The gateway takes 0x21..0x7E only (no space): the spec said 0x20..0x7E."""
    doc = spec_of(gateway)
    r = gateway.post("/v1/entities", {"type": "Person"}, headers={"Idempotency-Key": key})
    assert agree(doc, IDEMPOTENCY_KEY, key, r, "Idempotency-Key") == (" " not in key)


@pytest.mark.parametrize("version", ['"1"', '"1234567890123456789"'])
def test_if_match_spec_matches_gateway(gateway, version):
    """At most 18 digits (no overflow): the spec allowed any number of them."""
    doc = spec_of(gateway)
    e = create_entity(gateway, "Person")
    r = gateway.patch(f"/v1/entities/{e['id']}", {"properties": {"a": 1}}, headers={"If-Match": version})
    assert agree(doc, IF_MATCH, version, r, "If-Match") == (len(version) <= 20)


@pytest.mark.parametrize("ops", [[{"op": "create_entity", "type": "Person"}], []])
def test_empty_operations_spec_matches_gateway(gateway, ops):
    """An empty batch is refused: the spec had no minItems."""
    doc = spec_of(gateway)
    body = {"operations": ops}
    r = gateway.post("/v1/transactions", body)
    assert agree(doc, TRANSACTION, body, r, "operations") == bool(ops)


def test_after_spec_matches_gateway(gateway):
    """`after` is URL-safe base64: the spec took any string."""
    doc = spec_of(gateway)
    for _ in range(3):
        create_entity(gateway, "Person")
    first = gateway.get("/v1/entities?limit=1")
    assert first.status == 200 and first.json["next"], first
    for after, ours in ((first.json["next"], True), ("not*a*cursor", False)):
        r = gateway.get("/v1/entities?limit=1&after=" + urllib.parse.quote(after, safe=""))
        assert agree(doc, AFTER, after, r, "after") == ours


@pytest.mark.parametrize("value", ["ab", "a\u0000b", ["a", "b\u0000"]])
def test_property_string_spec_matches_gateway(gateway, value):
    """No U+0000 in a property string (the JSON parser holds none: 400
    invalid_json): the spec took any string."""
    doc = spec_of(gateway)
    r = gateway.post("/v1/entities", {"type": "Person", "properties": {"p": value}})
    nul = "\u0000" in (value if isinstance(value, str) else "".join(value))
    assert agree(doc, PROPERTY_VALUE, value, r, None) == (not nul)
    if nul:
        error_of(r, 400, "invalid_json")
