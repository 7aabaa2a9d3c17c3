"""Helpers of the API tests: writes through the gateway, error answers,
snapshots of both stores, pagination, held request bodies."""

import json
import select
import socket
import urllib.parse

import pytest

from harness.common import RFC3339_UTC_RE

JSON = {"Content-Type": "application/json"}


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


def error_of(r, status, code, field=None):
    """r is the error status and code, with a message (and field, when given)."""
    assert r.status == status, f"expected {status} {code}, got {r!r}"
    assert r.error_code() == code, f"expected error code {code}, got {r.json}"
    err = r.json["error"]
    assert isinstance(err.get("message"), str) and err["message"], r.json
    if field is not None:
        assert err.get("field") == field, f"expected field {field!r}, got {r.json}"
    return err


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


def hold_body(port, length, source="127.0.0.1"):
    """A socket whose request announced a body of length bytes and sent one:
    the gateway holds that much of --max-body-memory until it closes. Retried
    while the memory of a request answered just before is not yet given back
    (the gateway then answers 503 at once)."""
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
        s.sendall(b"POST /v1/entities HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Type: application/json\r\nContent-Length: " + str(length).encode() +
                  b"\r\n\r\n{")
        ready, _, _ = select.select([s], [], [], 0.5)
        if not ready:  # no answer: held
            return s
        s.close()
    raise AssertionError(f"a body of {length} bytes was never held")
