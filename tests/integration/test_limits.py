"""Request-level limits (issue 13, item 3): JSON nesting depth, property
string length, properties per entity or relationship, and the writer's queue
depth. Each is configurable, answered with a JSON error naming the limit (and
the field), and leaves both stores untouched."""

import json
import threading
import time

from harness import assert_absent, assert_entity_mirrored, poll
from harness.api import assert_unchanged, create_entity, error_of, hold_body, list_all, snapshot
from harness.faults import HeldWriter, join_all


def nested(depth):
    """A body whose metadata nests arrays so the body is `depth` deep."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return '{"id":"deep","type":"Person","metadata":{"x":' + inner + "}}"


def test_json_nesting_deeper_than_the_limit_is_refused_before_parsing(gateway_factory, neo4j):
    gw = gateway_factory(args=["--max-json-depth", "8"])
    before = snapshot(gw, neo4j)
    err = error_of(gw.post("/v1/entities", nested(9)), 400, "invalid_request")
    assert "8 deep" in err["message"] and "--max-json-depth" in err["message"], err
    # brackets inside strings do not count
    body = '{"id":"flat","type":"Person","properties":{"s":"' + "[" * 100 + '"}}'
    assert gw.post("/v1/entities", body).status == 201
    assert_entity_mirrored(gw.store, neo4j, "flat")
    r = gw.post("/v1/entities", nested(8))
    assert r.status == 201, r
    assert_entity_mirrored(gw.store, neo4j, "deep")
    assert gw.store.entity("deep") is not None


def test_the_default_depth_refuses_a_hostile_nesting_without_a_crash(gateway, neo4j):
    before = snapshot(gateway, neo4j)
    for body in ('{"x":' + "[" * 100000 + "]" * 100000 + "}", '{"x":' + "{\"a\":" * 65 + "1" + "}" * 66):
        err = error_of(gateway.post("/v1/ids", body), 400, "invalid_request")
        assert "64 deep" in err["message"], err
        error_of(gateway.post("/v1/transactions", body), 400, "invalid_request")
    assert gateway.get("/healthz").status == 200
    assert_unchanged(gateway, neo4j, before)


def test_a_property_string_over_the_limit_is_refused_naming_the_field(gateway_factory, neo4j):
    gw = gateway_factory(args=["--max-string-bytes", "1000"])
    create_entity(gw, id="a")
    create_entity(gw, id="b")
    before = snapshot(gw, neo4j)
    big = "x" * 1001
    error_of(gw.post("/v1/entities", {"id": "c", "type": "Person", "properties": {"name": big}}),
             400, "invalid_request", field="properties.name")
    error_of(gw.patch("/v1/entities/a", {"properties": {"bio": big}}),
             400, "invalid_request", field="properties.bio")
    error_of(gw.post("/v1/relationships", {"type": "KNOWS", "source": "a", "target": "b",
                                           "properties": {"note": big}}),
             400, "invalid_request", field="properties.note")
    ops = [{"op": "create_entity", "id": f"t{i}", "type": "Person"} for i in range(3)]
    ops.append({"op": "create_entity", "id": "t3", "type": "Person",
                "properties": {"tags": ["ok", big]}})
    err = error_of(gw.post("/v1/transactions", {"operations": ops}), 400, "invalid_request",
                   field="operations[3].properties.tags")
    assert "1000 bytes" in err["message"], err
    assert_unchanged(gw, neo4j, before)
    # at the limit (counted in bytes, UTF-8) it is stored
    edge = "é" * 500
    r = gw.post("/v1/entities", {"id": "c", "type": "Person", "properties": {"name": edge}})
    assert r.status == 201, r
    assert_entity_mirrored(gw.store, neo4j, "c")
    err = error_of(gw.post("/v1/entities", {"id": "d", "type": "Person",
                                            "properties": {"name": edge + "e"}}),
                   400, "invalid_request", field="properties.name")
    assert_absent(gw.store, neo4j, entity_ids=["d"])


def test_more_properties_than_the_limit_are_refused_naming_the_field(gateway_factory, neo4j):
    gw = gateway_factory(args=["--max-properties", "5"])
    create_entity(gw, id="a")
    before = snapshot(gw, neo4j)
    six = {f"p{i}": i for i in range(6)}
    err = error_of(gw.post("/v1/entities", {"id": "b", "type": "Person", "properties": six}),
                   400, "invalid_request", field="properties")
    assert "more than 5 properties" in err["message"], err
    error_of(gw.post("/v1/relationships", {"type": "KNOWS", "source": "a", "target": "a",
                                           "properties": six}),
             400, "invalid_request", field="properties")
    ops = [{"op": "create_entity", "id": "x", "type": "Person"},
           {"op": "create_entity", "id": "y", "type": "Person", "properties": six}]
    error_of(gw.post("/v1/transactions", {"operations": ops}), 400, "invalid_request",
             field="operations[1].properties")
    assert_unchanged(gw, neo4j, before)
    five = {f"p{i}": i for i in range(5)}
    assert gw.post("/v1/entities", {"id": "b", "type": "Person", "properties": five}).status == 201
    assert_entity_mirrored(gw.store, neo4j, "b")


def test_a_full_writer_queue_answers_503_at_once_and_the_held_writes_complete(
        gateway_factory, proxy_factory, neo4j):
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, args=["--neo4j-timeout-ms", "60000", "--max-queue", "2"])
    n = 10
    answers = [None] * n

    def one(i):
        answers[i] = gw.request("POST", "/v1/entities", body={"id": f"q{i}", "type": "Person"},
                                fresh=True, timeout=90)

    with HeldWriter(gw, proxy):
        threads = []
        for i in range(n):
            t = threading.Thread(target=one, args=(i,))
            t.start()
            threads.append(t)
        # the refused ones answer while Neo4j is still held; wait for them
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(a is not None for a in answers) < n - 4:
            time.sleep(0.1)
        early = [answers[i] for i in range(n) if answers[i] is not None]
    join_all(threads)

    refused = [i for i in range(n) if answers[i].status == 503]
    accepted = [i for i in range(n) if answers[i].status == 201]
    assert sorted(refused + accepted) == list(range(n)), answers
    # at most the queue (2) and one group the writer may already hold wait
    assert len(refused) >= n - 4, answers
    # those answered while Neo4j was held were all refused, at once
    assert len(early) >= n - 4 and all(a.status == 503 for a in early), early
    for i in refused:
        err = error_of(answers[i], 503, "overloaded")
        assert "--max-queue" in err["message"], err
        assert answers[i].headers.get("Retry-After") == "1", answers[i].headers
    assert_absent(gw.store, neo4j, entity_ids=[f"q{i}" for i in refused])
    assert accepted, "the queued writes must complete once Neo4j answers"
    for i in accepted:
        assert_entity_mirrored(gw.store, neo4j, f"q{i}")


def test_a_list_page_ends_early_at_the_page_byte_budget_and_the_cursor_goes_on(
        gateway_factory, neo4j, tmp_path):
    gw = gateway_factory(args=["--max-page-bytes", "65536"])
    ids = [f"page-{i:02d}" for i in range(10)]
    for i in ids:
        create_entity(gw, id=i, properties={"pad": "p" * 20000})
    # one entity larger than the whole budget still makes a page of its own
    create_entity(gw, id="page-zz-huge", properties={"pad": "h" * 100000})
    items, pages = list_all(gw, "/v1/entities?type=Person", limit=100)
    assert [e["id"] for e in items] == ids + ["page-zz-huge"]
    sizes = [len(p) for p in pages]
    # 3 entities of ~20 KB fit in 64 KiB, a 4th would not
    assert sizes == [3, 3, 3, 1, 1], sizes
    for p in pages:
        assert len(json.dumps(p)) <= 65536 or len(p) == 1, len(json.dumps(p))
    # the transactions list keeps to the budget too
    # (a file of its own: one process writes a file at a time)
    gw2 = gateway_factory(sqlite=tmp_path / "second.sqlite", args=["--max-page-bytes", "4096"])
    for i in range(40):
        create_entity(gw2, id=f"tx-page-{i:02d}")
    txs, tx_pages = list_all(gw2, "/v1/transactions", limit=1000)
    assert len(txs) >= 40 and len({t["tx_id"] for t in txs}) == len(txs)
    assert len(tx_pages) > 1 and all(len(json.dumps(p)) <= 2 * 4096 for p in tx_pages), \
        [len(json.dumps(p)) for p in tx_pages]


def ints_body(n):
    """A body of n JSON values: a tree of about 40-80 bytes each from 2 bytes of text."""
    return ('{"x":[' + ",".join(["1"] * (n - 1)) + ']}').encode()


def test_a_body_whose_parse_would_pass_the_request_memory_is_refused_before_parsing(
        gateway_factory, neo4j):
    # 48 MiB for all requests; 500,000 values (1 MB of text) take about 42 MB
    # to hold and parse, 1,000,000 values about 84 MB
    gw = gateway_factory(args=["--max-body-memory", str(48 << 20)])
    before = snapshot(gw, neo4j)
    r = gw.request("POST", "/v1/ids", body=ints_body(1_000_000), fresh=True)
    err = error_of(r, 413, "payload_too_large")
    assert "--max-body-memory" in err["message"], err
    # alone, the smaller one is parsed (and refused for what it says)
    r = gw.request("POST", "/v1/ids", body=ints_body(500_000), fresh=True)
    error_of(r, 400, "invalid_request", "x")
    # beside a held 16 MiB body it does not fit: 503 at once, Retry-After
    s = hold_body(gw.port, 16 << 20)
    try:
        r = gw.request("POST", "/v1/ids", body=ints_body(500_000), fresh=True)
        err = error_of(r, 503, "overloaded")
        assert "--max-body-memory" in err["message"], err
        assert r.headers.get("Retry-After") == "1", r.headers
    finally:
        s.close()
    poll(lambda: gw.request("POST", "/v1/ids", body=ints_body(500_000), fresh=True).status == 400,
         timeout=20, interval=0.5, what="the parse fits again once the held body is gone")
    assert_unchanged(gw, neo4j, before)
    create_entity(gw, id="parsed-after-the-budget")
    assert_entity_mirrored(gw.store, neo4j, "parsed-after-the-budget")
