"""API keys (API.md "Authentication"): --api-keys-file with scopes read,
write and admin; 401 unauthorized with WWW-Authenticate: Bearer for a
missing or unknown key, 403 forbidden for a missing scope; the open paths;
the key file re-read on SIGHUP without dropping connections; a malformed
file refuses to start; keys allow a non-loopback bind; nothing is written
on 401/403; no key nor hash in the log; TLS with --tls-cert/--tls-key.

The scope of each route is read from handlers/routes.c itself (the one
table the router checks), so a route added there is covered here."""

import hashlib
import http.client
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from harness.api import assert_unchanged, create_entity, snapshot
from harness.common import BISTORE_BIN, REPO, poll

ROUTES_C = REPO / "handlers" / "routes.c"
ROUTE_RE = re.compile(r'\{"(/[^"]*)",\s*"([A-Z]+)",[^{}]*?(SCOPE_[A-Z]+)\}', re.S)
SCOPE_OF = {"SCOPE_NONE": None, "SCOPE_READ": "read", "SCOPE_WRITE": "write"}
OPEN_PATHS = {"/healthz", "/readyz", "/metrics", "/dashboard", "/openapi.yaml"}


def routes():
    found = [(p, m, SCOPE_OF[s]) for p, m, s in ROUTE_RE.findall(ROUTES_C.read_text())]
    assert len(found) >= 20, f"routes.c parsed to {found}"
    return found


def make_key():
    return secrets.token_urlsafe(32)


def key_line(key, scopes, name):
    return f"{hashlib.sha256(key.encode()).hexdigest()} {scopes} {name}\n"


class Keys:
    """A key file with one key per scope set, named after it."""

    SETS = {"reader": "read", "writer": "write", "admin": "admin", "all": "read,write,admin",
            "rw": "read,write"}

    def __init__(self, path):
        self.path = Path(path)
        self.key = {name: make_key() for name in self.SETS}
        self.write()

    def write(self, names=None, extra=""):
        lines = "# test keys\n\n" + "".join(key_line(self.key[n], self.SETS[n], n)
                                             for n in (names or self.SETS)) + extra
        self.path.write_text(lines)

    def auth(self, name):
        return {"Authorization": f"Bearer {self.key[name]}"}


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path / "keys")


@pytest.fixture
def keyed(gateway_factory, keys):
    return gateway_factory(args=["--api-keys-file", str(keys.path), "--allow-raw-statements"])


def concrete(path):
    return path.replace("*", "entity_x")


def body_for(method, path):
    """A body that writes when it is allowed (so a refused one proves nothing was written)."""
    if method == "POST" and path == "/v1/entities":
        return {"type": "Person", "properties": {"name": "Eve"}}
    if method == "POST" and path == "/v1/relationships":
        return {"type": "KNOWS", "source": "victim", "target": "victim"}
    if method == "POST" and path == "/v1/transactions":
        return {"operations": [{"op": "create_entity", "type": "Person"}]}
    if method == "POST" and path == "/v1/ids":
        return {"count": 1}
    if method == "PATCH":
        return {"properties": {"name": "Mallory"}}
    return None


def send(gw, method, path, headers=None):
    path = concrete(path).replace("entity_x", "victim") if method in ("PATCH", "DELETE") else concrete(path)
    return gw.request(method, path, body_for(method, path), headers=headers)


def assert_401(r):
    assert r.status == 401, r
    assert r.json["error"]["code"] == "unauthorized", r
    assert r.headers.get("WWW-Authenticate") == "Bearer", r.headers


def assert_403(r):
    assert r.status == 403, r
    assert r.json["error"]["code"] == "forbidden", r


def test_every_route_against_every_scope(keyed, keys, neo4j):
    create_entity(keyed, id="victim", headers=keys.auth("all"))
    before = snapshot(keyed, neo4j)
    table = routes()
    wrong = {"Authorization": "Bearer " + make_key()}
    refusals = 0
    for path, method, scope in table:
        if scope is None:
            assert path in OPEN_PATHS, f"{method} {path} needs no key but is not an open path"
            for headers in (None, wrong, keys.auth("reader")):
                r = send(keyed, method, path, headers)
                assert r.status not in (401, 403), (method, path, r)
            continue
        assert path.startswith("/v1/"), path
        assert scope == ("read" if method == "GET" else "write"), (method, path, scope)
        for headers in (None, wrong, {"Authorization": "Basic " + keys.key["all"]},
                        {"Authorization": "Bearer"}):
            assert_401(send(keyed, method, path, headers))
            refusals += 1
        for name, scopes in Keys.SETS.items():
            if scope in scopes.split(","):
                continue
            assert_403(send(keyed, method, path, keys.auth(name)))
            refusals += 1
    assert refusals > 60
    assert_unchanged(keyed, neo4j, before)
    # The same requests with the scope do get through (and the write ones write).
    for path, method, scope in table:
        if scope is None or method == "DELETE":
            continue
        r = send(keyed, method, path, keys.auth("rw"))
        assert r.status not in (401, 403), (method, path, r)
    assert snapshot(keyed, neo4j) != before, "the allowed writes wrote nothing: the check above proves nothing"
    r = keyed.delete("/v1/entities/victim", headers=keys.auth("writer"))
    assert r.status not in (401, 403), r


def test_unknown_v1_path_and_method_need_a_key(keyed, keys):
    assert_401(keyed.get("/v1/nothing-here"))
    assert_401(keyed.request("PUT", "/v1/entities"))
    assert keyed.get("/v1/nothing-here", headers=keys.auth("reader")).status == 404
    assert keyed.get("/nothing").status == 404


def test_a_body_without_a_key_is_refused_unread(keyed, keys):
    """401 comes as soon as the headers are in: the gateway never waits for,
    nor holds, the 8 MiB a client without a key announces."""
    import socket
    for headers in ("", f"Authorization: Bearer {make_key()}\r\n"):
        with socket.create_connection(("127.0.0.1", keyed.port), timeout=20) as s:
            s.sendall((f"POST /v1/entities HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
                       "Content-Type: application/json\r\nContent-Length: 8388608\r\n\r\n").encode())
            answer = s.recv(4096).decode(errors="replace")
        assert answer.startswith("HTTP/1.1 401"), answer
        assert "WWW-Authenticate: Bearer" in answer, answer
    # with a key the same request waits for its body, and is answered after it
    r = keyed.post("/v1/entities", {"type": "Person"}, headers=keys.auth("writer"))
    assert r.status == 201, r
    r = keyed.post("/v1/entities", {"type": "Person"})
    assert_401(r)


def test_admin_scope_for_repairs_and_raw_statements(keyed, keys, neo4j):
    before = snapshot(keyed, neo4j)
    for repair in ("sqlite_wins", "neo4j_wins"):
        for dry_run in (True, False):
            body = {"repair": repair, "dry_run": dry_run}
            r = keyed.post("/v1/reconciliations", body, headers=keys.auth("rw"))
            assert_403(r)
            assert "admin" in r.json["error"]["message"]
            assert_403(keyed.post("/v1/reconciliations", body, headers=keys.auth("admin")))  # no write
    raw = {"operations": [{"op": "cypher", "statement": "CREATE (:Doc {id: 'd1'})", "parameters": {}}]}
    r = keyed.post("/v1/transactions", raw, headers=keys.auth("rw"))
    assert_403(r)
    assert "admin" in r.json["error"]["message"]
    sql = {"operations": [{"op": "sql", "statement": "CREATE TABLE t(a)", "parameters": []}]}
    assert_403(keyed.post("/v1/transactions", sql, headers=keys.auth("writer")))
    assert_unchanged(keyed, neo4j, before)
    assert neo4j.value("MATCH (d:Doc) RETURN count(d)") == 0
    # with admin (and write, which the route needs) both go through
    r = keyed.post("/v1/transactions", raw, headers=keys.auth("all"))
    assert r.status == 200, r
    assert neo4j.value("MATCH (d:Doc) RETURN count(d)") == 1
    r = keyed.post("/v1/reconciliations", {"repair": "sqlite_wins", "dry_run": True}, headers=keys.auth("all"))
    assert r.status == 202, r
    # a check without repair needs only write
    run = keyed.get(r.headers["Location"], headers=keys.auth("reader"))
    assert run.status == 200, run
    poll(lambda: keyed.get(r.headers["Location"], headers=keys.auth("reader")).json["state"] != "running",
         30, what="the dry run to finish")
    r = keyed.post("/v1/reconciliations", {"repair": "none"}, headers=keys.auth("writer"))
    assert r.status == 202, r


def test_keys_never_in_the_log_and_names_are(gateway_factory, keys, tmp_path):
    gw = gateway_factory(args=["--api-keys-file", str(keys.path), "--log-format", "json"],
                         env={"BISTORE_LOG_FORMAT": "json"})
    for name in Keys.SETS:
        gw.get("/v1/entities", headers=keys.auth(name))
        gw.post("/v1/entities", {"type": "Person"}, headers=keys.auth(name))
    gw.get("/v1/entities", headers={"Authorization": "Bearer " + keys.key["all"] + "x"})
    gw.proc.send_signal(signal.SIGHUP)
    poll(lambda: "SIGHUP" in gw.log_path.read_text(), 20, what="the reload line")
    text = gw.log_path.read_text()
    for name, key in keys.key.items():
        assert key not in text
        assert key[:12] not in text
        assert hashlib.sha256(key.encode()).hexdigest()[:16] not in text
    assert '"key":"reader"' in text and '"key":"all"' in text, text[-2000:]


def test_sighup_reload_keeps_connections(keyed, keys):
    conn = http.client.HTTPConnection("127.0.0.1", keyed.port, timeout=30)

    def get(name, key=None):
        conn.request("GET", "/v1/entities", headers={"Authorization": f"Bearer {key or keys.key[name]}"})
        resp = conn.getresponse()
        resp.read()
        assert not resp.will_close
        return resp.status

    assert get("reader") == 200
    sock = conn.sock
    new_key = make_key()
    keys.write(names=["all"], extra=key_line(new_key, "read", "newcomer"))
    reloads = keyed.log_path.read_text().count("SIGHUP:")
    keyed.proc.send_signal(signal.SIGHUP)
    poll(lambda: keyed.log_path.read_text().count("SIGHUP:") > reloads, 20, what="the reload")
    assert "2 API keys loaded" in keyed.log_path.read_text()
    assert get("reader") == 401, "a removed key still works"
    assert get(None, new_key) == 200, "the new key does not work"
    assert get("all") == 200
    assert conn.sock is sock, "the connection was not kept across the reload"
    # A bad new file keeps the keys in use, and says which line.
    keys.path.write_text(key_line(new_key, "read", "x") + "not a key line\n")
    keyed.proc.send_signal(signal.SIGHUP)
    poll(lambda: "the API keys in use are kept" in keyed.log_path.read_text(), 20, what="the refusal")
    text = keyed.log_path.read_text()
    assert "line 2" in text and "not a key line" not in text
    assert get(None, new_key) == 200 and get("all") == 200
    assert conn.sock is sock
    conn.close()
    assert keyed.alive()


def run_serve(tmp_path, *args):
    return subprocess.run([BISTORE_BIN, "serve", "--listen", "127.0.0.1:0", "--sqlite",
                           str(tmp_path / "never.sqlite"), "--neo4j-url", "http://127.0.0.1:9", *args],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "BISTORE_LOG_FORMAT": "text"})


@pytest.mark.parametrize("bad", ["secret-looking-key read", "%s reed", "%s read,write name extra",
                                 "%s", "%s read " + "n" * 64])
def test_malformed_key_file_refuses_to_start(tmp_path, bad):
    path = tmp_path / "keys"
    line = bad % hashlib.sha256(b"k").hexdigest() if "%s" in bad else bad
    path.write_text("# comment\n" + key_line("fine", "read", "ok") + "\n" + line + "\n")
    p = run_serve(tmp_path, "--api-keys-file", str(path))
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "line 4" in out, out
    assert line.split()[0] not in out and "secret" not in out, out
    assert "listening" not in out
    assert not (tmp_path / "never.sqlite").exists(), "started opening the stores"
    p = run_serve(tmp_path, "--api-keys-file", str(tmp_path / "missing"))
    assert p.returncode != 0 and "missing" in p.stdout + p.stderr


NETNS_SCRIPT = r"""
ip link set lo up
"$BIN" serve --listen 0.0.0.0:0 --sqlite "$DIR/ns.sqlite" --neo4j-url http://127.0.0.1:9 \
    --api-keys-file "$DIR/keys" >"$DIR/ns.log" 2>&1 &
pid=$!
for i in $(seq 100); do
  port=$(sed -n 's/.*listening on http:\/\/0\.0\.0\.0:\([0-9]*\).*/\1/p' "$DIR/ns.log")
  [ -n "$port" ] && break
  sleep 0.1
done
curl -s -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$port/v1/stats"
curl -s -o /dev/null -w '%{http_code} ' -H "Authorization: Bearer $KEY" "http://127.0.0.1:$port/v1/stats"
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz"
kill -TERM $pid
wait $pid
echo " exit=$?"
"""


def test_non_loopback_bind_needs_keys(keys, tmp_path):
    """0.0.0.0 inside a network namespace of its own (unshare -rn: only its
    own loopback exists there), so the test exposes no port."""
    p = run_serve(tmp_path, "--listen", "0.0.0.0:0")
    assert p.returncode != 0 and "refusing to listen on 0.0.0.0" in p.stdout + p.stderr, p
    assert "--api-keys-file" in p.stdout + p.stderr
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare (Debian's base system) is missing"
    # -r as well: a user namespace, so no root is needed where those are allowed
    out = subprocess.run([unshare, "-rn", "sh", "-c", NETNS_SCRIPT], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "BIN": BISTORE_BIN,
                                          "DIR": str(tmp_path), "KEY": keys.key["reader"],
                                          "BISTORE_LOG_FORMAT": "text"})
    log = (tmp_path / "ns.log").read_text() if (tmp_path / "ns.log").exists() else ""
    assert out.stdout.strip() == "401 200 200 exit=0", (out, log)
    assert "listening on http://0.0.0.0:" in log


def test_without_keys_nothing_changes(gateway):
    assert gateway.get("/v1/entities").status == 200
    assert gateway.post("/v1/entities", {"type": "Person"}).status == 201


def test_python_client_with_a_key(keyed, keys):
    from harness.pyclient import bistore, connect
    with connect(keyed, api_key=keys.key["rw"]) as c:
        e = c.create_entity("Person", properties={"name": "Ada"})
        assert c.get_entity(e["id"])["properties"] == {"name": "Ada"}
    with connect(keyed, api_key=make_key()) as c:
        with pytest.raises(bistore.Unauthorized):
            c.get_entity(e["id"])
    with connect(keyed, api_key=keys.key["reader"]) as c:
        with pytest.raises(bistore.Forbidden):
            c.create_entity("Person")


def test_tls(gateway_factory, keys, tmp_path):
    openssl, curl = shutil.which("openssl"), shutil.which("curl")
    assert openssl and curl, "scripts/deps.sh installs openssl and curl"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    p = run_serve(tmp_path, "--tls-cert", str(cert))
    assert p.returncode != 0 and "--tls-key" in p.stdout + p.stderr
    gw = gateway_factory(args=["--tls-cert", str(cert), "--tls-key", str(key),
                               "--api-keys-file", str(keys.path)], ready=False)
    assert "listening on https://127.0.0.1:" in gw.log_path.read_text()
    base = f"https://127.0.0.1:{gw.port}"

    def curl_status(path, *extra):
        out = subprocess.run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(cert),
                              *extra, base + path], capture_output=True, text=True, timeout=30)
        return out.returncode, out.stdout, out.stderr

    poll(lambda: curl_status("/readyz")[1] == "200", 30, what="/readyz over TLS")
    assert curl_status("/v1/entities")[1] == "401"
    rc, status, err = curl_status("/v1/entities", "-H", f"Authorization: Bearer {keys.key['reader']}")
    assert (rc, status) == (0, "200"), err
    # without the CA curl refuses the self-signed certificate; plain HTTP gets no answer
    assert subprocess.run([curl, "-sS", base + "/healthz"], capture_output=True, timeout=30).returncode != 0
    plain = subprocess.run([curl, "-sS", "-m", "10", f"http://127.0.0.1:{gw.port}/healthz"],
                           capture_output=True, text=True, timeout=30)
    assert plain.returncode != 0 or '"status"' not in plain.stdout
