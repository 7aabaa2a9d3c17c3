"""The Python client (clients/python) for the tests that use it: they import
it from the source tree, as `import bistore` (test_python_client_extras.py
also installs it with pip into a venv and imports it from there)."""

import sys

from harness.common import REPO

CLIENT_DIR = REPO / "clients" / "python"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

import bistore  # noqa: E402  (after the path is set)

assert bistore.__file__.startswith(str(CLIENT_DIR)), \
    f"tests must use clients/python, not another bistore package: {bistore.__file__}"


def connect(gw, **kw):
    """A Client for a harness Gateway (retries fast, so failures stay quick)."""
    kw.setdefault("retry", bistore.RetryPolicy(attempts=4, backoff=0.05, max_backoff=0.5))
    return bistore.Client(gw.url if hasattr(gw, "url") else gw, **kw)


def aconnect(gw, **kw):
    kw.setdefault("retry", bistore.RetryPolicy(attempts=4, backoff=0.05, max_backoff=0.5))
    return bistore.AsyncClient(gw.url if hasattr(gw, "url") else gw, **kw)
