"""The HTTP contract (API.md) at its edges: /v1/ids, and input at the edges
(path segments, query parameters, headers, the log lines a request causes)."""

import re
import socket
import time
import urllib.parse

import pytest

from harness import (assert_absent, assert_entity_mirrored, assert_relationship_mirrored,
                     assert_stores_consistent, poll, UUID7_RE)
from harness.api import create_entity, create_relationship, error_of, uuid7_ms


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
        f"GET /v1/entities/abc{enc} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
        f"DELETE /v1/entities/{enc} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
        f"GET /nope{enc} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
        f"GET /v1/entities?type={enc} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
        # encoded ESC, DEL and invalid UTF-8
        b"GET /v1/entities/abc%1b[2K%7f%ff%c0%af HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        # raw ESC and a bare CR inside the request-target (a bare LF would end the line)
        b"GET /v1/entities/abc\x1b[31m\r" + FORGED.encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /nope\x1b]0;title\x07\r" + FORGED.encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        # a method with control characters
        b"G\x1b[1mET\r /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        # X-Request-Id with a bare CR, ESC and a fake line; another percent-encoded
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: abc\r" + FORGED.encode() +
        b"\x1b[2K\r\nConnection: close\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: abc%0d%0a" + urllib.parse.quote(FORGED).encode() +
        b"\r\nConnection: close\r\n\r\n",
        # Idempotency-Key with control characters
        b"POST /v1/entities HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
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
