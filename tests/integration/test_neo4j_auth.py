"""Neo4j with basic auth on (a server of its own, started here with
scripts/neo4j.sh and BISTORE_NEO4J_AUTH_PASSWORD_FILE): the gateway's
credentials come from --neo4j-password-file or BISTORE_NEO4J_PASSWORD, on
either adapter; a wrong password is a clear "not ready" at start-up and in
/readyz, never a crash, and no password ever appears in the log."""

import base64
import http.client
import json
import os
import re
import subprocess

import pytest

from harness import NEO4J_SH, poll
from harness.common import NEO4J_START_TIMEOUT

PASSWORD = "auth-test-Pw-7c1e"
WRONG = "not-the-Pw-93d2"
APIS = ["tx", "query"]


@pytest.fixture(scope="module")
def auth_neo4j(tmp_path_factory):
    """A Neo4j with auth on; user neo4j, password PASSWORD. Yields its URL."""
    home = tmp_path_factory.mktemp("auth-neo4j")
    pw_file = home.parent / "auth-neo4j-password"
    pw_file.write_text(PASSWORD + "\n")
    env = dict(os.environ, BISTORE_NEO4J_AUTH_PASSWORD_FILE=str(pw_file))
    out = subprocess.run([str(NEO4J_SH), "start", str(home), "0"], capture_output=True, text=True,
                         timeout=NEO4J_START_TIMEOUT, env=env)
    assert out.returncode == 0, out.stderr
    port = int(re.search(r"http=(\d+)", out.stdout).group(1))
    try:
        yield port
    finally:
        subprocess.run([str(NEO4J_SH), "stop", str(home)], capture_output=True, timeout=120)


def cypher(port, statement, password=PASSWORD, **params):
    """(HTTP status, rows) of one auto-committed statement, with basic auth."""
    token = base64.b64encode(f"neo4j:{password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/db/neo4j/tx/commit",
                     body=json.dumps({"statements": [{"statement": statement, "parameters": params}]}),
                     headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"})
        resp = conn.getresponse()
        doc = json.loads(resp.read() or b"{}")
    finally:
        conn.close()
    rows = [d["row"] for d in doc["results"][0]["data"]] if doc.get("results") else None
    return resp.status, rows


def assert_no_password_in(gw):
    log = gw.log_path.read_text(errors="replace")
    for secret in (PASSWORD, WRONG, base64.b64encode(f"neo4j:{PASSWORD}".encode()).decode()):
        assert secret not in log, "a password is in the gateway's log"


def test_the_server_refuses_requests_without_credentials(auth_neo4j):
    status, _ = cypher(auth_neo4j, "RETURN 1", password=WRONG)
    assert status == 401
    assert cypher(auth_neo4j, "RETURN 1") == (200, [[1]])


@pytest.mark.parametrize("api", APIS)
def test_password_from_a_file(gateway_factory, tmp_path, auth_neo4j, api):
    pw = tmp_path / "neo4j-password"
    pw.write_text(PASSWORD + "\n")
    gw = gateway_factory(neo4j_url=f"http://127.0.0.1:{auth_neo4j}",
                         args=["--neo4j-api", api, "--neo4j-user", "neo4j", "--neo4j-password-file", str(pw),
                               "--log-level", "debug"])
    r = gw.post("/v1/entities", {"id": f"auth-file-{api}", "type": "Person", "properties": {"name": "f"}})
    assert r.status == 201, r
    assert cypher(auth_neo4j, "MATCH (n:Entity {id: $id}) RETURN n.name", id=f"auth-file-{api}") == (200, [["f"]])
    r = gw.get(f"/v1/entities/auth-file-{api}?verify=true")
    assert r.status == 200 and r.json["consistency"]["status"] == "consistent", r
    assert_no_password_in(gw)


@pytest.mark.parametrize("api", APIS)
def test_password_from_the_environment(gateway_factory, auth_neo4j, api):
    gw = gateway_factory(neo4j_url=f"http://127.0.0.1:{auth_neo4j}",
                         args=["--neo4j-api", api, "--neo4j-user", "neo4j", "--log-level", "debug"],
                         env={"BISTORE_NEO4J_PASSWORD": PASSWORD})
    r = gw.post("/v1/entities", {"id": f"auth-env-{api}", "type": "Person", "properties": {"name": "e"}})
    assert r.status == 201, r
    assert cypher(auth_neo4j, "MATCH (n:Entity {id: $id}) RETURN n.name", id=f"auth-env-{api}") == (200, [["e"]])
    assert_no_password_in(gw)


# Last: Neo4j locks the user for a few seconds after repeated failures.
@pytest.mark.parametrize("api", APIS)
def test_a_wrong_password_is_a_clear_not_ready(gateway_factory, auth_neo4j, api):
    gw = gateway_factory(neo4j_url=f"http://127.0.0.1:{auth_neo4j}", ready=False,
                         args=["--neo4j-api", api, "--neo4j-user", "neo4j", "--log-level", "debug"],
                         env={"BISTORE_NEO4J_PASSWORD": WRONG})
    poll(lambda: "refused the credentials" in gw.log_path.read_text(errors="replace"), 30,
         what="the start-up log to say Neo4j refused the credentials")
    # The log line comes first; /readyz's reason follows once the readiness
    # probe has recorded it (a moment later on a busy machine).
    def refused_reason():
        r = gw.get("/readyz")
        assert r.status == 503, r
        return "refused the credentials" in r.json["error"]["message"]
    poll(refused_reason, 30, what="/readyz to say Neo4j refused the credentials")
    assert gw.post("/v1/entities", {"id": "auth-wrong", "type": "Person"}).status == 503
    assert gw.alive(), "the gateway died on a wrong password"
    assert_no_password_in(gw)

    # After the gateway's failed logins Neo4j answers 429 to every login, the
    # right password's included, for a few seconds.
    def count_written():
        answer = cypher(auth_neo4j, "MATCH (n:Entity {id: 'auth-wrong'}) RETURN count(n)")
        return answer if answer[0] != 429 else None
    status, rows = poll(count_written, 30, interval=0.5, what="Neo4j to accept the right password")
    assert (status, rows) == (200, [[0]])
