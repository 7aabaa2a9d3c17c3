"""GET /dashboard in a real headless Chromium (Debian's chromium, driven by
playwright-core: tests/browser/dashboard.js, installed by scripts/deps.sh).

After a known mix of committed, aborted (400/409/412) and failed (503: Neo4j
cut off at a proxy) transactions and a reconciliation that finds a
disagreement, the page opened in the browser must show what /v1/stats
says: every figure it renders is compared with the exact /v1/stats answer it
drew from (the page exposes it), that answer with the counts this test
made, and with a GET /v1/stats of our own right after. Active alerts are
in the red banner. The browser may only ever talk to the gateway. A
screenshot of each state is kept under tests/artifacts/ (path printed).
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest

from harness import REPO, poll
from harness.api import create_entity

BROWSER_DIR = REPO / "tests" / "browser"
SCRIPT = BROWSER_DIR / "dashboard.js"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
PAGE_TIMEOUT_MS = 60000

COMMITTED, ABORTED, FAILED = 6, 3, 1


def browser_ready():
    missing = [what for what, ok in (
        ("node", shutil.which("node")),
        (CHROMIUM, os.access(CHROMIUM, os.X_OK)),
        ("tests/browser/node_modules/playwright-core (npm ci)",
         (BROWSER_DIR / "node_modules" / "playwright-core").is_dir()),
    ) if not ok]
    if missing:
        pytest.fail("the browser test needs " + ", ".join(missing) + ": run scripts/deps.sh",
                    pytrace=False)


def artifact(name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def page_command(gw, shot, *args):
    return ["node", str(SCRIPT), gw.url + "/dashboard", str(shot), "--timeout-ms",
            str(PAGE_TIMEOUT_MS), *args]


def open_page(gw, shot, *args):
    """Runs dashboard.js once; what it saw (one JSON object)."""
    browser_ready()
    out = subprocess.run(page_command(gw, shot, *args), capture_output=True, text=True,
                         timeout=PAGE_TIMEOUT_MS / 1000 + 60, cwd=BROWSER_DIR)
    assert out.returncode == 0, f"dashboard.js failed ({out.returncode}):\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.splitlines()[0])


def assert_only_gateway(seen, gw):
    hosts = {urlsplit(u).netloc for u in seen["requests"]}
    assert seen["requests"], "the browser made no request at all?"
    assert hosts == {f"127.0.0.1:{gw.port}"}, f"the page talked to {hosts}: {seen['requests']}"
    paths = {urlsplit(u).path for u in seen["requests"]}
    assert paths <= {"/dashboard", "/v1/stats"}, paths


def assert_screenshot(seen):
    path = seen["screenshot"]
    print(f"dashboard screenshot: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert os.path.getsize(path) > 20000, f"{path} is suspiciously small"


# ---------------------------------------------------- what the page shows


def number(text):
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)(%?)", text.strip())
    assert m, f"not a number: {text!r}"
    return float(m.group(1)), len(m.group(1).split(".")[1]) if "." in m.group(1) else 0


def assert_shows(text, value, what):
    """text is value as the page formats it: rounded to its own decimals."""
    assert isinstance(value, (int, float)), f"{what}: /v1/stats gave {value!r}"
    shown, decimals = number(text)
    assert abs(shown - value) <= 0.5 * 10 ** -decimals + 1e-9, f"{what}: page shows {text!r}, stats {value}"


def assert_shows_pct(text, fraction, what):
    """A fraction as a percentage, cut (never rounded up) to 2 decimals."""
    if fraction >= 1:
        assert text == "100%", f"{what}: page shows {text!r}, stats {fraction}"
        return
    assert text.endswith("%"), text
    shown, _ = number(text[:-1])
    assert shown <= fraction * 100 + 1e-9 < shown + 0.01 + 1e-9, \
        f"{what}: page shows {text!r}, stats {fraction}"


def outcomes_of(window):
    return {k: window[k] for k in ("committed", "aborted", "failed")}


def assert_page_matches_its_stats(seen):
    """Every figure on the page is the stats object the page says it drew."""
    t, stats = seen["texts"], seen["stats"]
    assert stats is not None and json.loads(seen["stats_text"]) == stats
    w = stats["windows"]["1m"]
    assert_shows(t["throughput"], w["throughput_tx_s"], "throughput")
    for other in ("5m", "15m"):
        m = re.search(other.replace("m", " min") + r" (\S+)", t["throughput-windows"])
        assert m, t["throughput-windows"]
        assert_shows(m.group(1), stats["windows"][other]["throughput_tx_s"], f"throughput {other}")
    assert_shows_pct(t["success-rate"], w["success_rate"], "success rate")
    assert_shows_pct(t["rollback-rate"], w["rollback_rate"], "rollback rate")
    for p in ("p50", "p95", "p99"):
        assert_shows(t[f"latency-{p}"], w["latency_ms"][p], f"latency {p}")
    o = outcomes_of(w)
    assert t["outcomes"] == f"{o['committed']} committed · {o['aborted']} aborted · {o['failed']} failed"
    assert t["pending-intents"] == str(stats["pending_intents"])
    assert t["id-conflicts"] == str(w["id_conflicts"])
    recon = stats["last_reconciliation"]
    assert t["recon-findings"] == (str(recon["disagreements"]) if recon else "–")
    active = [a["name"] for a in stats["alerts"]]
    assert seen["alerts"] == active
    assert t["alerts-count"] == t["alerts-active"] == str(len(active))


# ------------------------------------------------------------------ tests


def test_dashboard_is_one_self_contained_page(gateway):
    r = gateway.get("/dashboard")
    assert r.status == 200, r
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = {d.split()[0]: d.split()[1:] for d in r.headers["Content-Security-Policy"].split("; ")}
    assert csp["default-src"] == ["'none'"], csp
    assert csp["connect-src"] == ["'self'"], csp
    assert csp["script-src"] == ["'unsafe-inline'"] and csp["style-src"] == ["'unsafe-inline'"], csp
    assert csp["frame-ancestors"] == ["'none'"] and csp["form-action"] == ["'none'"], csp
    html = r.body.decode("utf-8")
    assert html.startswith("<!doctype html>") and "</html>" in html
    # Nothing named outside: no URL with a scheme or a host, no external src/href.
    assert not re.search(r"(https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", html), \
        re.search(r"(https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", html)
    for m in re.finditer(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", html):
        assert m.group(1).startswith("data:"), m.group(0)
    assert "/v1/stats" in html


def make_traffic(gw, proxy, neo4j):
    """COMMITTED commits, ABORTED refusals (400, 409, 412), a reconciliation
    that finds one disagreement, then Neo4j cut off and FAILED 503s."""
    for i in range(COMMITTED - 1):
        create_entity(gw, properties={"n": i}, id=f"dash-{i}")
    r = gw.post("/v1/transactions", {"operations": [
        {"op": "create_entity", "type": "Org", "properties": {"name": "batch"}}]})
    assert r.status == 200, r
    assert gw.post("/v1/entities", {"type": "1nvalid"}).status == 400
    assert gw.post("/v1/entities", {"type": "Person", "id": "dash-0"}).status == 409
    r = gw.patch("/v1/entities/dash-1", {"properties": {"n": 9}}, headers={"If-Match": '"7"'})
    assert r.status == 412, r
    # A node written behind the gateway's back: the reconciliation finds it.
    neo4j.run("CREATE (:Entity:Person {id: 'dash-stray', _v: 1, _h: 'x'})")
    run = gw.post("/v1/reconciliations", {"mode": "fast"})
    assert run.status == 202, run
    poll(lambda: gw.get(f"/v1/reconciliations/{run.json['id']}").json["state"] == "done", 60,
         what="the reconciliation to finish")
    proxy.refuse()
    proxy.close_all()
    for i in range(FAILED):
        r = gw.post("/v1/entities", {"type": "Person", "id": f"dash-failed-{i}"})
        assert r.status == 503 and r.error_code() == "neo4j_unavailable", r


def test_dashboard_shows_stats_and_alerts(gateway_factory, proxy_factory, neo4j):
    proxy = proxy_factory()
    # The default Neo4j timeout: a cold Neo4j can take seconds over a new
    # label; the cut-off below is refused connections, which fail at once.
    gw = gateway_factory(neo4j_url=proxy.url, args=["--alert-neo4j-seconds", "1"])
    make_traffic(gw, proxy, neo4j)
    expected = {"neo4j_unreachable", "reconciliation_disagreement"}
    poll(lambda: expected <= {a["name"] for a in gw.get("/v1/alerts").json["active"]}, 30,
         interval=0.2, what=f"the alerts {expected}")
    names = sorted(expected)

    seen = open_page(gw, artifact("dashboard.png"), "--renders", "2",
                     *[x for n in names for x in ("--wait-alert", n)])
    ours = gw.get("/v1/stats").json
    assert_screenshot(seen)
    assert_only_gateway(seen, gw)
    assert seen["console_errors"] == [], seen["console_errors"]

    # 1. The page renders exactly what it fetched.
    assert_page_matches_its_stats(seen)
    # 2. What it fetched is what this test did (the 15-minute window holds it all).
    stats = seen["stats"]
    assert outcomes_of(stats["windows"]["15m"]) == \
        {"committed": COMMITTED, "aborted": ABORTED, "failed": FAILED}, stats["windows"]["15m"]
    assert stats["windows"]["15m"]["transactions"] == COMMITTED + ABORTED + FAILED
    assert stats["windows"]["15m"]["id_conflicts"] == 1  # the 409
    assert stats["neo4j_up"] is False and seen["texts"]["neo4j"] == "neo4j down"
    assert stats["windows"]["15m"]["success_rate"] == pytest.approx(
        COMMITTED / (COMMITTED + ABORTED + FAILED)), stats["windows"]["15m"]
    assert stats["pending_intents"] == 0
    # 3. A GET /v1/stats of our own, a poll later, agrees on what cannot drift.
    for w in ("5m", "15m"):
        assert outcomes_of(ours["windows"][w]) == outcomes_of(stats["windows"][w]), w
    assert ours["pending_intents"] == stats["pending_intents"]
    assert sorted(a["name"] for a in ours["alerts"]) == sorted(seen["alerts"])
    # 4. The alerts stand out: the banner is shown, red, names and messages in it.
    assert seen["banner_visible"] and set(names) <= set(seen["alerts"]), seen["alerts"]
    assert seen["texts"]["status"] == "alert" and "alert" in seen["classes"]["status"]
    for a in stats["alerts"]:
        text = seen["alert_texts"][seen["alerts"].index(a["name"])]
        assert a["message"] in text, (a, text)
    assert seen["title"].startswith(f"({len(seen['alerts'])}) ALERT")
    assert "bad" in seen["classes"]["success-rate"]  # 6 of 10 succeeded: red
    # The reconciliation tile: one finding, only in Neo4j.
    assert seen["texts"]["recon-findings"] == "1", seen["texts"]
    assert seen["texts"]["recon-kinds"] == "1 only in Neo4j", seen["texts"]
    proxy.pass_through()


def test_dashboard_asks_for_a_key_and_says_when_the_gateway_is_gone(gateway_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(hashlib.sha256(b"k3y-for-the-dashboard").hexdigest() + " read,write dashboard\n")
    gateway = gateway_factory(args=["--api-keys-file", str(keys)])
    assert gateway.get("/v1/stats").status == 401, "the page must meet a real 401"
    create_entity(gateway, id="dash-key", headers={"Authorization": "Bearer k3y-for-the-dashboard"})
    browser_ready()
    proc = subprocess.Popen(page_command(gateway, artifact("dashboard-key.png"), "--require-key",
                                         "k3y-for-the-dashboard", "--then-unreachable"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=BROWSER_DIR)
    try:
        line = proc.stdout.readline()
        assert line, f"dashboard.js printed nothing:\n{proc.stderr.read()[-3000:]}"
        seen = json.loads(line)
        key = seen["key"]
        assert key["asked"] and key["stored"] == "k3y-for-the-dashboard", key
        assert key["sent_after"] and set(key["sent_after"]) == {"Bearer k3y-for-the-dashboard"}, key
        assert not key["asked_after_reload"] and key["renders_after_reload"] >= 1, key
        assert_page_matches_its_stats(seen)
        assert seen["texts"]["status"] == "ok" and not seen["banner_visible"]
        assert_only_gateway(seen, gateway)

        assert gateway.terminate() == 0
        proc.stdin.write("gateway stopped\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, f"dashboard.js printed nothing after the stop:\n{proc.stderr.read()[-3000:]}"
        later = json.loads(line)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert later["unreachable_visible"] and later["texts"]["status"] == "unreachable", later["texts"]
    assert later["texts"]["unreachable-title"] == "Gateway unreachable"
    # The last figures stay, dimmed, and say when they are from.
    assert later["stats"] is not None and later["texts"]["throughput"] != "–", later["texts"]
    assert "figures below are from" in later["texts"]["unreachable-detail"]
    assert_screenshot(later)
    assert_only_gateway(later, gateway)
