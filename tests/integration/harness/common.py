"""Paths, deadlines and patterns of the harness, and poll()."""

import http.client
import os
import re
import socket
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NEO4J_SH = REPO / "scripts" / "neo4j.sh"
BISTORE_BIN = os.environ.get("BISTORE_BIN", str(REPO / "build" / "bistore"))
# The Neo4j adapter of every gateway and CLI run of the session (tx | query;
# empty: the gateway's default), passed as BISTORE_NEO4J_API: a test that
# gives --neo4j-api (or its own BISTORE_NEO4J_API) still wins.
NEO4J_API = os.environ.get("BISTORE_TEST_NEO4J_API", "")

# Deadlines, generous enough for a sanitizer build on two cores.
READY_TIMEOUT = float(os.environ.get("BISTORE_TEST_READY_TIMEOUT", "30"))
# A command the gateway runs under (split on spaces), e.g. valgrind with its
# options; the gateway's pid is still the process the harness signals.
BISTORE_WRAPPER = os.environ.get("BISTORE_WRAPPER", "").split()
REQUEST_TIMEOUT = float(os.environ.get("BISTORE_TEST_REQUEST_TIMEOUT", "30"))
NEO4J_START_TIMEOUT = 320.0  # neo4j.sh waits 300 s (a 2026.x start on a busy machine)

UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HASH_RE = re.compile(r"^[0-9a-f]{16}$")
RFC3339_UTC_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")
# http or https (--tls-cert); 127.0.0.1, or an IPv6 form of it ([::ffff:127.0.0.1])
LISTEN_RE = re.compile(r"listening on https?://(?:127\.0\.0\.1|\[[0-9a-f:.]+\]):(\d+)")

CONNECTION_ERRORS = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine,
                     http.client.IncompleteRead, socket.timeout, OSError)


def bistore_env(extra=None):
    """The environment of a bistore process: ours without BISTORE_*, the
    session's adapter (NEO4J_API), then extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BISTORE_")}
    if NEO4J_API:
        env["BISTORE_NEO4J_API"] = NEO4J_API
    if BISTORE_WRAPPER:
        # Under valgrind the gateway runs tens of times slower: Neo4j's answers
        # are not late, the gateway is (a test's own setting wins).
        env["BISTORE_NEO4J_TIMEOUT_MS"] = "30000"
    env.update(extra or {})
    return env


def file_tail(path, lines):
    """The last `lines` lines of a log file, or "(no log)"."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def poll(predicate, timeout, interval=0.05, what="condition"):
    """Call predicate() until it returns a truthy value; return that value.
    Fails the test with `what` if the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError as exc:  # let predicates assert; keep the last one
            last_exc = exc
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f}s waiting for {what}"
            if last_exc is not None:
                msg += f"; last check: {last_exc}"
            pytest.fail(msg)
        time.sleep(interval)
