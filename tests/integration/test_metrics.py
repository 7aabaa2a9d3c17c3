"""GET /metrics, GET /v1/stats and the request log lines: after a scripted
mix of committed, aborted (400, 409, 412) and failed (503 while Neo4j is
frozen) write transactions, both report exactly those counts; /metrics is
read with prometheus_client's own text parser."""

import json
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import poll

WRITE_ROUTES = {"entities.create", "entities.patch", "entities.delete", "relationships.create",
                "relationships.delete", "transactions.create"}


def scrape(gw):
    r = gw.get("/metrics")
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    return families


def samples(families, name):
    """{(sample name, frozenset(labels)): value} of one family."""
    return {(s.name, frozenset(s.labels.items())): s.value for s in families[name].samples}


def value(families, family, sample=None, **labels):
    return samples(families, family)[(sample or family, frozenset(labels.items()))]


def transactions(families):
    return {o: value(families, "bistore_transactions", "bistore_transactions_total", outcome=o)
            for o in ("committed", "aborted", "failed")}


def scripted_mix(gw, neo4j):
    """Runs the mix; returns {outcome: count} and the HTTP statuses of the writes."""
    statuses = []

    def write(method, path, body=None, headers=None, expect=None, **kw):
        r = gw.request(method, path, body=body, headers=headers, **kw)
        assert expect is None or r.status == expect, (method, path, r)
        statuses.append(r.status)
        return r

    write("POST", "/v1/entities", {"id": "m-a", "type": "Person"}, expect=201)
    write("POST", "/v1/entities", {"id": "m-b", "type": "Person"}, expect=201)
    write("POST", "/v1/relationships", {"id": "m-r", "type": "KNOWS", "source": "m-a", "target": "m-b"},
          expect=201)
    write("PATCH", "/v1/entities/m-a", {"properties": {"x": 1}}, expect=200)
    write("POST", "/v1/transactions", {"operations": [
        {"op": "create_entity", "id": "m-c", "type": "Person"},
        {"op": "create_entity", "id": "m-d", "type": "Person"}]}, expect=200)
    write("DELETE", "/v1/entities/m-d", expect=204)
    # aborted: 400, 409 (the id exists: an ID conflict), 412
    write("POST", "/v1/entities", {"type": 7}, expect=400)
    write("POST", "/v1/entities", {"id": "m-a", "type": "Person"}, expect=409)
    write("PATCH", "/v1/entities/m-a", {"properties": {"x": 2}}, headers={"If-Match": '"9"'}, expect=412)
    # reads are not transactions
    assert gw.get("/v1/entities/m-a").status == 200
    assert gw.get("/v1/entities/no-such").status == 404
    assert gw.get("/no/such/path/7f3a").status == 404
    # failed: Neo4j frozen
    neo4j.sigstop()
    try:
        write("POST", "/v1/entities", {"id": "m-frozen1", "type": "Person"}, expect=503, timeout=60)
        write("POST", "/v1/entities", {"id": "m-frozen2", "type": "Person"}, expect=503, timeout=60)
    finally:
        neo4j.sigcont()
    gw.wait_ready(60)
    return {"committed": 6, "aborted": 3, "failed": 2}, statuses


@pytest.mark.neo4j_restart
def test_metrics_and_stats_count_the_scripted_mix(gateway_factory, neo4j):
    neo4j.require_control()
    # the default Neo4j timeout (5 s): the relationship's new type makes a
    # constraint first, which can take seconds on a busy machine
    gw = gateway_factory(args=["--validate-interval", "0"])
    # the gateway's own start (recovery) is not a transaction
    assert transactions(scrape(gw)) == {"committed": 0, "aborted": 0, "failed": 0}
    want, statuses = scripted_mix(gw, neo4j)
    fam = scrape(gw)
    assert transactions(fam) == want
    n = sum(want.values())
    for hist in ("bistore_transaction_duration_seconds",):
        assert value(fam, hist, hist + "_count") == n
        assert value(fam, hist, hist + "_bucket", le="+Inf") == n
        assert value(fam, hist, hist + "_sum") > 0
    assert value(fam, "bistore_id_conflicts", "bistore_id_conflicts_total") == 1
    assert value(fam, "bistore_neo4j_request_duration_seconds",
                 "bistore_neo4j_request_duration_seconds_count") > 0
    assert value(fam, "bistore_group_commit_size", "bistore_group_commit_size_count") >= 6
    assert value(fam, "bistore_intents_pending") == 0

    # requests by route template and status: never the raw path
    http = samples(fam, "bistore_http_requests")
    by = {}
    for (_, labels), v in http.items():
        labels = dict(labels)
        by[(labels["route"], labels["status"])] = v
    assert by[("entities.create", "201")] == 2  # m-c and m-d went by transactions
    assert by[("entities.create", "409")] == 1
    assert by[("entities.create", "400")] == 1
    assert by[("entities.create", "503")] == 2
    assert by[("entities.patch", "412")] == 1
    assert by[("entities.get", "404")] == 1
    assert by[("unmatched", "404")] == 1
    assert not any("m-a" in route or "/" in route for route, _ in by), by
    writes = sum(v for (route, _), v in by.items() if route in WRITE_ROUTES)
    assert writes == n == len(statuses)

    stats = gw.get("/v1/stats")
    assert stats.status == 200, stats
    s = stats.json
    assert set(s["windows"]) == {"1m", "5m", "15m"}
    for name, w in s["windows"].items():
        assert {k: w[k] for k in ("committed", "aborted", "failed")} == want, (name, w)
        assert w["transactions"] == n
        assert w["success_rate"] == pytest.approx(6 / n)
        assert w["failure_rate"] == pytest.approx(2 / n)
        assert w["throughput_tx_s"] > 0
        lat = w["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"], lat
        assert w["id_conflicts"] == 1
        assert w["rollbacks"] >= 0 and w["rollback_rate"] is not None
    # the first 503 waited for the Neo4j timeout (5 s): p99 is that one
    assert s["windows"]["1m"]["latency_ms"]["p99"] >= 1000
    assert s["pending_intents"] == 0 and s["oldest_pending_s"] == 0
    assert s["last_reconciliation"] is None
    assert isinstance(s["alerts"], list)


def test_stats_last_reconciliation_and_empty_windows(gateway):
    s = gateway.get("/v1/stats").json
    w = s["windows"]["1m"]
    assert w["transactions"] == 0 and w["success_rate"] is None and w["latency_ms"]["p50"] is None
    r = gateway.post("/v1/reconciliations", {"mode": "fast"})
    assert r.status == 202, r
    run_id = r.json["id"]
    poll(lambda: gateway.get(f"/v1/reconciliations/{run_id}").json["state"] != "running", 30,
         what="the reconciliation to finish")
    last = gateway.get("/v1/stats").json["last_reconciliation"]
    assert last["id"] == run_id and last["state"] == "done" and last["disagreements"] == 0, last
    assert set(last["summary"]) >= {"only_in_sqlite", "only_in_neo4j", "mismatched"}
    fam = scrape(gateway)
    poll(lambda: value(scrape(gateway), "bistore_reconciliation_findings", kind="mismatched") == 0, 10,
         what="the findings gauge")
    assert {dict(labels)["kind"] for (_, labels) in samples(fam, "bistore_reconciliation_findings")} == {
        "only_in_sqlite", "only_in_neo4j", "mismatched", "duplicate_ids", "missing_ids"}


def test_json_request_log_lines(gateway_factory):
    gw = gateway_factory(args=["--log-format", "json"])
    rid = "0190a5f4-0000-7000-8000-00000000abcd"
    r = gw.post("/v1/entities", {"id": "log-a", "type": "Person"}, headers={"X-Request-Id": rid})
    assert r.status == 201 and r.headers["X-Request-Id"] == rid
    tx_id = r.json["tx_id"]
    gw.get("/v1/entities/log-a%0aFORGED")
    lines = gw.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, "no JSON lines"
    assert all(line.startswith("{") for line in lines if not line.startswith("$ ")), lines
    assert any("listening on http://127.0.0.1:" in rec["msg"] for rec in records)
    mine = [rec for rec in records if rec.get("request_id") == rid and "status" in rec]
    assert len(mine) == 1, mine
    rec = mine[0]
    assert rec["method"] == "POST" and rec["route"] == "entities.create" and rec["status"] == 201
    assert rec["tx_id"] == tx_id and rec["level"] == "info" and rec["duration_ms"] >= 0
    assert rec["time"].endswith("Z")
    odd = [rec for rec in records if rec.get("route") == "entities.get"]
    assert odd and odd[0]["status"] == 400 and "tx_id" not in odd[0]  # not an id
    assert all("FORGED" not in line or line.startswith("{") for line in lines)


def test_json_log_lines_hold_hostile_client_text(gateway_factory):
    """Raw ESC and CR in the request-target, control bytes in a method: every
    line is still one JSON object, with no control byte, and the path comes
    back exactly as the client sent it."""
    gw = gateway_factory(args=["--log-format", "json"])
    forged = '{"time":"x","level":"error","msg":"forged"}'
    sent = [b"GET /v1/entities/abc\x1b[31m\r" + forged.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Connection: close\r\n\r\n",
            b"GET /nope\"\\\x07\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
    for data in sent:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
            s.sendall(data)
            assert s.recv(65536).startswith(b"HTTP/1.1 4")
    assert gw.get("/healthz").status == 200
    raw = gw.log_path.read_bytes()
    assert not [c for c in raw if (c < 0x20 and c != 0x0a) or c == 0x7f]
    lines = [line for line in raw.decode("utf-8").splitlines() if not line.startswith("$ ")]
    records = [json.loads(line) for line in lines]  # every line parses
    assert not any(rec.get("msg") == "forged" for rec in records)
    paths = {rec.get("path") for rec in records}
    assert "/v1/entities/abc\x1b[31m\r" + forged in paths, paths
    assert "/nope\"\\\x07\ufffd" in paths, paths
