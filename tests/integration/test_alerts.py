"""Alerts: each fires under its condition and resolves after it (small
thresholds and windows by flag, so nothing waits minutes), the webhook
receiver gets the events, and a receiver that never answers delays no write."""

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import poll
from harness.reconcile import reconcile

TX_COMMIT = re.compile(rb"POST /db/[^ ]*/tx/[^/ ]+/commit")


class Receiver:
    """A webhook receiver on 127.0.0.1:0 that keeps every event it is sent."""

    def __init__(self):
        self.events = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                events.append((self.headers.get("Content-Type"), json.loads(self.rfile.read(n))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def got(self, event, name):
        return [e for ctype, e in self.events
                if ctype == "application/json" and e["event"] == event and e["alert"]["name"] == name]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Hanging:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _accept(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def alerts(gw):
    r = gw.get("/v1/alerts")
    assert r.status == 200, r
    return r.json


def active(gw, name):
    found = [a for a in alerts(gw)["active"] if a["name"] == name]
    return found[0] if found else None


def resolved(gw, name):
    return [a for a in alerts(gw)["recent"] if a["name"] == name]


def metric(gw, family, sample):
    text = gw.get("/metrics").body.decode()
    for f in text_string_to_metric_families(text):
        if f.name == family:
            return sum(s.value for s in f.samples if s.name == sample)
    raise AssertionError(f"no {family} in /metrics")


def assert_fired_and_resolved(gw, receiver, name, timeout=30):
    a = poll(lambda: active(gw, name), timeout, interval=0.2, what=f"alert {name} to fire")
    assert set(a) == {"name", "since", "value", "threshold", "message"}, a
    assert a["message"]
    assert a in gw.get("/v1/stats").json["alerts"] or active(gw, name)
    return a


def test_no_alerts_on_a_healthy_gateway(gateway):
    poll(lambda: gateway.get("/v1/stats").json["uptime_s"] > 2, 10, what="two seconds of uptime")
    assert alerts(gateway) == {"active": [], "recent": []}


@pytest.mark.neo4j_restart
def test_failure_rate_neo4j_unreachable_and_slow_recovery(gateway_factory, neo4j, receiver):
    neo4j.require_control()
    gw = gateway_factory(args=[
        "--neo4j-timeout-ms", "2000", "--alert-failure-window", "4", "--alert-failure-min", "2",
        "--alert-neo4j-seconds", "0", "--alert-recovery-seconds", "1", "--alert-webhook", receiver.url])
    neo4j.sigstop()
    try:
        for i in range(3):
            r = gw.post("/v1/entities", {"id": f"fr-{i}", "type": "Person"}, timeout=60)
            assert r.status == 503, r
        rate = assert_fired_and_resolved(gw, receiver, "failure_rate")
        assert rate["threshold"] == pytest.approx(0.01) and rate["value"] > 0.5, rate
        down = assert_fired_and_resolved(gw, receiver, "neo4j_unreachable")
        assert down["threshold"] == 0
        slow = assert_fired_and_resolved(gw, receiver, "recovery_slow")
        assert slow["value"] > 1 and slow["threshold"] == 1, slow
        assert metric(gw, "bistore_alerts_active", "bistore_alerts_active") >= 3
        assert metric(gw, "bistore_neo4j_up", "bistore_neo4j_up") == 0
    finally:
        neo4j.sigcont()
    gw.wait_ready(60)
    for name in ("failure_rate", "neo4j_unreachable", "recovery_slow"):
        poll(lambda: not active(gw, name) and resolved(gw, name), 30, interval=0.2,
             what=f"alert {name} to resolve")
        done = resolved(gw, name)[0]
        assert done["resolved_at"] >= done["since"], done
        poll(lambda: receiver.got("fired", name) and receiver.got("resolved", name), 20,
             what=f"the webhook to get {name} fired and resolved")
    assert metric(gw, "bistore_alert_webhook_sent", "bistore_alert_webhook_sent_total") >= 6
    log = gw.log_path.read_text()
    assert "alert failure_rate fired" in log and "alert failure_rate resolved" in log


def test_id_conflicts_alert(gateway_factory, receiver):
    gw = gateway_factory(args=["--alert-failure-window", "2", "--alert-id-conflicts", "2",
                               "--alert-webhook", receiver.url])
    assert gw.post("/v1/entities", {"id": "ic-a", "type": "Person"}).status == 201
    assert gw.post("/v1/entities", {"id": "ic-a", "type": "Person"}).status == 409
    assert not active(gw, "id_conflicts")  # one is under the threshold of two
    assert gw.post("/v1/entities", {"id": "ic-a", "type": "Person"}).status == 409
    a = assert_fired_and_resolved(gw, receiver, "id_conflicts")
    assert a["value"] >= 2 and a["threshold"] == 2
    poll(lambda: resolved(gw, "id_conflicts"), 15, interval=0.2, what="id_conflicts to resolve")
    poll(lambda: receiver.got("resolved", "id_conflicts"), 15, what="the resolved event")
    assert receiver.got("fired", "id_conflicts")[0]["alert"]["value"] >= 2


def test_reconciliation_disagreement_alert(gateway_factory, neo4j, receiver):
    gw = gateway_factory(args=["--alert-webhook", receiver.url])
    assert gw.post("/v1/entities", {"id": "rd-a", "type": "Person"}).status == 201
    neo4j.run("MATCH (n:Entity {id: 'rd-a'}) DETACH DELETE n")
    run, findings = reconcile(gw)
    assert run["summary"]["only_in_sqlite"] == 1, run
    a = assert_fired_and_resolved(gw, receiver, "reconciliation_disagreement")
    assert a["value"] == 1 and run["id"] in a["message"], a
    assert gw.get("/v1/stats").json["last_reconciliation"]["disagreements"] == 1
    reconcile(gw, repair="sqlite_wins")
    reconcile(gw)  # finds nothing now
    poll(lambda: resolved(gw, "reconciliation_disagreement"), 15, interval=0.2,
         what="the alert to resolve after a clean run")
    poll(lambda: receiver.got("resolved", "reconciliation_disagreement"), 15, what="the resolved event")


def test_intent_pending_alert(gateway_factory, proxy_factory, receiver):
    proxy = proxy_factory()
    gw = gateway_factory(neo4j_url=proxy.url, args=[
        "--neo4j-timeout-ms", "3000", "--alert-pending-seconds", "1", "--alert-webhook", receiver.url])
    assert gw.post("/v1/entities", {"id": "ip-a", "type": "Person"}).status == 201
    proxy.hold_matching(TX_COMMIT)
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "r", gw.post("/v1/entities", {"id": "ip-b", "type": "Person"}, fresh=True, timeout=60)))
    t.start()
    assert proxy.wait_held(1, timeout=20), "the gateway never sent a Neo4j commit"
    proxy.refuse()  # Neo4j is gone: the held commit is cut, new connections fail
    t.join(60)
    assert box["r"].status == 201, box  # committed at the commit point, Neo4j pending
    a = assert_fired_and_resolved(gw, receiver, "intent_pending")
    assert a["value"] > 1 and a["threshold"] == 1, a
    stats = gw.get("/v1/stats").json
    assert stats["pending_intents"] >= 1 and stats["oldest_pending_s"] > 1, stats
    proxy.release(deliver=False)
    proxy.pass_through()
    poll(lambda: resolved(gw, "intent_pending"), 30, interval=0.2, what="intent_pending to resolve")
    assert gw.get("/v1/stats").json["pending_intents"] == 0
    assert metric(gw, "bistore_intents_pending", "bistore_intents_pending") == 0
    poll(lambda: receiver.got("resolved", "intent_pending"), 15, what="the resolved event")


def test_hanging_webhook_delays_no_write(gateway_factory):
    hang = Hanging()
    try:
        gw = gateway_factory(args=[
            "--alert-failure-window", "3", "--alert-webhook", hang.url, "--alert-webhook-queue", "1",
            "--alert-webhook-retries", "0", "--alert-webhook-timeout-ms", "20000"])
        assert gw.post("/v1/entities", {"id": "hw-a", "type": "Person"}).status == 201
        # conflicts make events: fired, resolved (the window is 3 s), fired again...
        for _ in range(3):
            assert gw.post("/v1/entities", {"id": "hw-a", "type": "Person"}).status == 409
            poll(lambda: active(gw, "id_conflicts"), 10, interval=0.1, what="id_conflicts to fire")
            poll(lambda: not active(gw, "id_conflicts"), 10, interval=0.1, what="it to resolve")
        # the receiver holds the first event; the queue (1) dropped the older of the rest
        poll(lambda: metric(gw, "bistore_alert_webhook_dropped",
                            "bistore_alert_webhook_dropped_total") >= 1, 10, what="a dropped event")
        assert hang.conns, "the webhook never connected to the receiver"
        # writes go on while the receiver hangs
        statuses = [gw.post("/v1/entities", {"id": f"hw-{i}", "type": "Person"}, timeout=10).status
                    for i in range(30)]
        assert statuses == [201] * 30
        assert metric(gw, "bistore_alert_webhook_sent", "bistore_alert_webhook_sent_total") == 0
    finally:
        hang.close()
