"""The Python client's retries, packaging, types and README:

- a lost answer (the gateway committed, the proxy between client and gateway
  cut the answer) makes the client retry with the same Idempotency-Key and
  the write happens once (sync and async; creates, batches, a timeout whose
  first request arrives after the retry);
- PATCH and DELETE under lost answers (with and without If-Match, each
  retried by its Idempotency-Key and applied once; 404);
- backoff, bounds and Retry-After, against a stub server that answers 503
  (the gateway never sends Retry-After);
- `pip install clients/python` into a venv, imported from there;
- mypy --strict on the package and on the README's examples;
- the README's examples run for real against the live gateway.
"""

import asyncio
import http.server
import json
import os
import re
import subprocess
import sys
import threading

import pytest

from harness import assert_entity_mirrored, assert_stores_consistent
from harness.pyclient import CLIENT_DIR, aconnect, bistore, connect

README = CLIENT_DIR / "README.md"


def only_entities(gw, neo4j, n):
    assert_stores_consistent(gw.store, neo4j)
    assert len(gw.store.entities()) == n, gw.store.entities().keys()
    return gw.store.entities()


def test_lost_answer_create_is_written_once(gateway, neo4j, front):
    with connect(front.url) as db:
        front.cut_answers(1)
        ada = db.create_entity("Person", {"canonical_name": "Ada"})  # no id: a repeat would add one
    assert front.answers_cut == 1 and front.connections_accepted == 2
    assert list(only_entities(gateway, neo4j, 1)) == [ada["id"]]
    assert len(gateway.store.transactions()) == 1


def test_lost_answer_batch_is_written_once_async(gateway, neo4j, front):
    async def main():
        async with aconnect(front.url) as db:
            tx = db.transaction(provenance={"tool_id": "T34"})
            a = tx.create_entity("Person")
            b = tx.create_entity("Org")
            tx.create_relationship("WORKS_AT", a, b)
            front.cut_answers(1)
            return await tx.commit()
    result = asyncio.run(main())
    assert front.answers_cut == 1
    ids = only_entities(gateway, neo4j, 2)
    assert set(ids) == {result[0]["id"], result[1]["id"]}
    assert len(gateway.store.relationships()) == 1 and len(gateway.store.transactions()) == 1


def test_every_answer_lost_is_outcome_unknown_then_resolved_by_the_key(gateway, neo4j, front):
    with connect(front.url, retry=bistore.RetryPolicy(attempts=3, backoff=0.01)) as db:
        front.cut_answers(3)
        with pytest.raises(bistore.OutcomeUnknown) as err:
            db.create_entity("Person", {"n": 1})
    key = err.value.idempotency_key
    assert key and err.value.status is None and front.answers_cut == 3
    first = only_entities(gateway, neo4j, 1)
    with connect(gateway) as db:  # later, the same call with the same key: the first outcome
        again = db.create_entity("Person", {"n": 1}, idempotency_key=key)
    assert [again["id"]] == list(first) and len(gateway.store.transactions()) == 1


def test_timeout_retry_and_the_late_first_request(gateway, neo4j, front):
    front.hold_matching(b"POST /v1/entities")

    def open_the_way():
        front.wait_held(1)
        front.stop_matching()  # the held first request stays held; the retry passes
    helper = threading.Thread(target=open_the_way)
    helper.start()
    # 2 s is the held first attempt's time-out; a slow (sanitizer) gateway may
    # time out a retry too, and the next one then learns the outcome by the key.
    with connect(front.url, timeout=2.0, retry=bistore.RetryPolicy(attempts=8, backoff=0.05)) as db:
        ent = db.create_entity("Person", {"n": 1})
    helper.join()
    assert front.release(deliver=True) >= 1  # now the first request reaches the gateway
    assert front.wait_released_answered()
    late = b"".join(front.released_responses)
    assert late.startswith(b"HTTP/1.1 201") and b"idempotent-replayed: true" in late.lower(), late[:300]
    assert list(only_entities(gateway, neo4j, 1)) == [ent["id"]]


def test_lost_answers_on_patch_and_delete(gateway, neo4j, front):
    with connect(gateway) as direct:
        direct.create_entity("Person", {"n": 0}, id="p")
        direct.create_entity("Person", id="q")
        direct.create_entity("Person", id="r")
        rel = direct.create_relationship("KNOWS", "p", "r")
    with connect(front.url) as db:
        front.cut_answers(1)  # If-Match: the retry gets the first answer (no 412)
        ent = db.patch_entity("p", {"n": 1}, if_version=1)
        assert ent["version"] == 2 and ent["properties"] == {"n": 1}
        assert_entity_mirrored(gateway.store, neo4j, "p", {"version": 2})
        front.cut_answers(1)  # without If-Match: retried by its key, applied once
        ent = db.patch_entity("p", {"n": 2})
        assert ent["version"] == 3 and ent["properties"] == {"n": 2}
        assert_entity_mirrored(gateway.store, neo4j, "p", {"version": 3, "properties": {"n": 2}})
        front.cut_answers(1)  # the retry gets the first 204
        db.delete_relationship(rel["id"])
        front.cut_answers(1)
        db.delete_entity("q")
        with pytest.raises(bistore.NotFound):
            db.delete_entity("q")  # a first attempt that answers 404 is still an error
        # every answer lost: OutcomeUnknown with the key, which learns the outcome later
        front.cut_answers(4)
        with pytest.raises(bistore.OutcomeUnknown) as err:
            db.patch_entity("p", {"n": 3}, if_version=3)
    key = err.value.idempotency_key
    assert key
    with connect(gateway) as direct:
        again = direct.patch_entity("p", {"n": 3}, if_version=3, idempotency_key=key)
        assert again["version"] == 4 and again["properties"] == {"n": 3}
    assert front.answers_cut == 8
    assert_entity_mirrored(gateway.store, neo4j, "p", {"version": 4, "properties": {"n": 3}})
    assert not gateway.store.relationships()
    assert set(only_entities(gateway, neo4j, 2)) == {"p", "r"}


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers 503 (with Retry-After when set) `fail` times, then 201."""

    def do_POST(self):
        srv = self.server
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        srv.keys.append(self.headers.get("Idempotency-Key"))
        if srv.require_auth and self.headers.get("Authorization") != srv.require_auth:
            body = json.dumps({"error": {"code": "unauthorized", "message": "no key"}}).encode()
            self.send_response(401)
        elif len(srv.keys) <= srv.fail:
            body = json.dumps({"error": {"code": "neo4j_unavailable", "message": "down"}}).encode()
            self.send_response(503)
            if srv.retry_after:
                self.send_header("Retry-After", srv.retry_after)
        else:
            body = json.dumps({"id": "e1", "type": "Person", "version": 1}).encode()
            self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    srv.keys, srv.fail, srv.retry_after, srv.require_auth = [], 0, None, None
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_backoff_bounds_retry_after_and_one_key_per_call(stub):
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    waits = []
    policy = bistore.RetryPolicy(attempts=4, backoff=0.1, max_backoff=0.15)
    stub.fail, stub.retry_after = 2, "2"
    with bistore.Client(url, retry=policy, sleep=waits.append) as db:
        assert db.create_entity("Person")["id"] == "e1"
        assert len(stub.keys) == 3 and len(set(stub.keys)) == 1 and stub.keys[0].startswith("bistore-py-")
        assert waits == [2.0, 2.0]  # Retry-After beats the backoff (at most 0.15 s here)
        stub.keys.clear(), waits.clear()
        stub.fail, stub.retry_after = 100, None
        with pytest.raises(bistore.Unavailable) as err:
            db.create_entity("Person")
        assert err.value.status == 503 and len(stub.keys) == 4 and len(set(stub.keys)) == 1
        assert len(waits) == 3 and all(0 <= w <= 0.15 for w in waits), waits
        first_key = stub.keys[0]
        stub.keys.clear()
        stub.fail = 0
        db.create_entity("Person")
        assert stub.keys[0] != first_key  # a new call, a new key
    stub.keys.clear(), waits.clear()
    stub.fail, stub.retry_after = 1, "1"

    async def main():
        slept = []

        async def sleep(s):
            slept.append(s)
        async with bistore.AsyncClient(url, retry=policy, sleep=sleep) as db:
            await db.create_entity("Person")
        return slept
    assert asyncio.run(main()) == [1.0] and len(set(stub.keys)) == 1 and len(stub.keys) == 2
    assert bistore.RetryPolicy(backoff=1, max_backoff=8, jitter=False).delay(5) == 8


def test_api_key_is_sent_as_bearer(stub):
    # API keys arrive with a later issue: a stub stands in for a gateway that checks them.
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    stub.require_auth = "Bearer k-123"
    with bistore.Client(url) as db:
        with pytest.raises(bistore.Unauthorized) as err:
            db.create_entity("Person")
        assert (err.value.status, err.value.code) == (401, "unauthorized") and len(stub.keys) == 1
    with bistore.Client(url, api_key="k-123") as db:
        assert db.create_entity("Person")["id"] == "e1"


def test_mypy_strict_on_the_package_and_the_readme(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "bistore"], cwd=CLIENT_DIR,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr
    examples = tmp_path / "readme_examples.py"
    examples.write_text("\n\n".join(readme_blocks()))
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", str(examples)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, MYPYPATH=str(CLIENT_DIR)))
    assert r.returncode == 0, r.stdout + r.stderr


def test_pip_install_into_a_venv(tmp_path):
    assert not (CLIENT_DIR / "setup.py").exists()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   timeout=120)
    py = venv / "bin" / "python"
    # Offline: the build backend (hatchling) and httpx come from the system
    # (scripts/deps.sh installs them); a user's `pip install ./clients/python`
    # fetches hatchling from PyPI instead.
    r = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                        "--no-build-isolation", str(CLIENT_DIR)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(py), "-c", "import bistore, pathlib; p = pathlib.Path(bistore.__file__).parent;"
                        "print(p); print((p / 'py.typed').exists()); print(bistore.__version__)"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0, r.stderr
    where, typed, version = r.stdout.split()
    assert where.startswith(str(venv)) and typed == "True" and version == "0.1.0", r.stdout


def readme_blocks():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2, "clients/python/README.md has lost its examples"
    return blocks


def test_readme_examples_run(gateway, neo4j, tmp_path):
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(readme_blocks()))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, BISTORE_URL=gateway.url,
                                             PYTHONPATH=str(CLIENT_DIR)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "consistent" in r.stdout and "reconciliation done" in r.stdout, r.stdout
    assert_stores_consistent(gateway.store, neo4j)
    ents = gateway.store.entities()
    assert {e["type"] for e in ents.values()} >= {"Person", "Artifact", "Document"}, ents
    assert len(gateway.store.relationships()) >= 2
    txs = [t for t in gateway.store.transactions() if t.get("provenance")]
    assert txs and "T34" in txs[0]["provenance"], txs
