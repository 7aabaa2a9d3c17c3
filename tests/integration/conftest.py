"""The fixtures of bistore's integration and fault tests (real Neo4j, real
gateway); the harness they use is the package harness/ (Neo4j, Gateway,
Store, the shared assertions), which test modules import directly:
`from harness import assert_stores_consistent, ...`.

One Neo4j serves the whole run (started here with scripts/neo4j.sh in a
temporary home, or taken from BISTORE_TEST_NEO4J_URL / _HOME). Every test
gets Neo4j wiped of data (constraints kept) and a fresh SQLite file; the
gateway binary is $BISTORE_BIN (default build/bistore), so CI can point the
suite at a sanitizer build.
"""

import os
import shutil
import tempfile

import pytest

from harness import Gateway, Neo4j
from harness.reconcile import Ctx, restore_entity_constraint

@pytest.fixture(scope="session")
def neo4j():
    url = os.environ.get("BISTORE_TEST_NEO4J_URL")
    if url:
        server = Neo4j(url, home=os.environ.get("BISTORE_TEST_NEO4J_HOME"), owned=False)
        server.ensure_running()
        yield server
        return
    home = tempfile.mkdtemp(prefix="bistore-neo4j-")
    server = Neo4j("http://127.0.0.1:0", home=home, owned=True)
    server.port = None
    try:
        server.start()
        server.warm_up()
        yield server
    finally:
        try:
            if server.process_alive():
                server.stop()
        finally:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fresh_neo4j(neo4j):
    """The session Neo4j, running, answering and wiped; running again after the test."""
    neo4j.ensure_running()
    neo4j.wipe()
    yield neo4j
    neo4j.ensure_running()


@pytest.fixture
def gateway_factory(request, fresh_neo4j, tmp_path):
    """start(sqlite=None, neo4j_url=None, args=(), env=None, ready=True) -> Gateway.

    Every gateway started here is stopped at the end of the test; one that is
    still running must exit 0 on SIGTERM (so a sanitizer build reports leaks
    and errors as failures)."""
    started = []
    request.node._bistore_gateways = started
    default_sqlite = tmp_path / "bistore.sqlite"

    def start(sqlite=None, neo4j_url=None, args=(), env=None, ready=True):
        gw = Gateway(sqlite or default_sqlite, neo4j_url or fresh_neo4j.url,
                     tmp_path / f"gateway-{len(started) + 1}.log", args=args, env=env)
        started.append(gw)
        gw.start(ready=ready)
        return gw

    yield start
    problems = []
    for gw in started:
        if gw.proc is None:
            continue
        if gw.alive():
            code = gw.terminate()
            if code != 0:
                problems.append(f"{gw.log_path.name}: exit status {code} on SIGTERM\n{gw.log_tail(40)}")
        elif not gw.deliberately_stopped:
            problems.append(f"{gw.log_path.name}: died unexpectedly with {gw.proc.returncode}\n{gw.log_tail(40)}")
    if problems:
        pytest.fail("gateway shutdown problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def gateway(gateway_factory):
    """A fresh gateway on a fresh SQLite file, Neo4j wiped."""
    return gateway_factory()


@pytest.fixture
def front(gateway):
    """A fault proxy (proxy.py) between a client and the gateway."""
    from proxy import FaultProxy
    p = FaultProxy("127.0.0.1", gateway.port)
    yield p
    p.close()


@pytest.fixture
def proxy_factory(fresh_neo4j):
    from proxy import FaultProxy
    proxies = []

    def make():
        p = FaultProxy("127.0.0.1", fresh_neo4j.port)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()


@pytest.fixture
def entity_constraint(fresh_neo4j):
    """Whatever a test does to the Entity id constraint, it exists again afterwards."""
    yield fresh_neo4j
    restore_entity_constraint(fresh_neo4j)


@pytest.fixture
def ctx(gateway, neo4j):
    return Ctx(gateway, neo4j)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):  # teardown errors carry their own log tail
        for gw in getattr(item, "_bistore_gateways", []):
            report.sections.append((f"gateway log {gw.log_path.name} ({report.when})", gw.log_tail(80)))
