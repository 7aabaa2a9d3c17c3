"""A gateway process: started on a free port, polled until ready, spoken to over HTTP."""

import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.common import BISTORE_BIN, BISTORE_WRAPPER, CONNECTION_ERRORS, bistore_env, file_tail, LISTEN_RE, READY_TIMEOUT, REQUEST_TIMEOUT
from harness.store import Store

# ------------------------------------------------------------------- gateway


class Response:
    """status, headers (case-insensitive), json (or None), raw body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        ctype = headers.get("Content-Type", "") or ""
        self.json = None
        if body and "json" in ctype:
            try:
                self.json = json.loads(body)
            except ValueError as exc:
                raise AssertionError(f"response says {ctype} but is not JSON: {body[:300]!r}") from exc

    def __iter__(self):  # status, headers, json = gw.request(...)
        return iter((self.status, self.headers, self.json))

    def error_code(self):
        assert isinstance(self.json, dict) and isinstance(self.json.get("error"), dict), \
            f"expected an error body, got {self.status} {self.body[:300]!r}"
        return self.json["error"].get("code")

    def __repr__(self):
        return f"<Response {self.status} {self.body[:400]!r}>"


class Gateway:
    """One bistore process: `bistore serve --listen 127.0.0.1:0 ...`."""

    def __init__(self, sqlite_path, neo4j_url, log_path, args=(), env=None, binary=None):
        self.sqlite_path = Path(sqlite_path)
        self.neo4j_url = neo4j_url
        self.log_path = Path(log_path)
        self.args = list(args)
        self.env = dict(env or {})
        self.binary = binary or BISTORE_BIN
        self.proc = None
        self.port = None
        self.deliberately_stopped = False
        self._conn = None
        self.store = Store(self.sqlite_path)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    # ---- lifecycle
    def start(self, ready=True, timeout=READY_TIMEOUT):
        if not os.access(self.binary, os.X_OK):
            pytest.fail(f"gateway binary {self.binary} missing or not executable (build it or set BISTORE_BIN)")
        cmd = [*BISTORE_WRAPPER, self.binary, "serve", "--listen", "127.0.0.1:0", "--sqlite", str(self.sqlite_path),
               "--neo4j-url", self.neo4j_url, *self.args]
        # The tests read the text lines; a test of the JSON lines passes --log-format json.
        env = bistore_env({"BISTORE_LOG_FORMAT": "text", **self.env})
        log = open(self.log_path, "ab")
        shown = {k: ("***" if "PASSWORD" in k else v) for k, v in self.env.items()}  # the log holds no secret
        log.write(("$ " + " ".join(cmd) + (f"   [env {shown}]" if shown else "") + "\n").encode())
        log.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()
        self.port = self._wait_port(timeout)
        if ready:
            self.wait_ready(timeout)
        return self

    def _wait_port(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            m = LISTEN_RE.search(self.log_path.read_text(errors="replace"))
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode} before listening:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway printed no 'listening on' line in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.02)

    def readyz(self):
        try:
            return self.request("GET", "/readyz", timeout=5)
        except CONNECTION_ERRORS:
            return None

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode} while waiting for "
                                     f"/readyz:\n{self.log_tail()}")
            last = self.readyz()
            if last is not None and last.status == 200:
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz not 200 after {timeout}s (last: {last!r}):\n{self.log_tail()}")
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, as a crash would."""
        self.deliberately_stopped = True
        self._drop_conn()
        if self.alive():
            self.proc.kill()
        self.proc.wait(30)

    def terminate(self, timeout=20):
        """SIGTERM; returns the exit code (None if it had to be SIGKILLed)."""
        self.deliberately_stopped = True
        self._drop_conn()
        if not self.alive():
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            return None

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def expect_fault_kill(self, timeout=20):
        """The fault hook must have SIGKILLed the process."""
        self.deliberately_stopped = True
        self._drop_conn()
        code = self.wait_exit(timeout)
        assert code == -signal.SIGKILL, \
            f"expected the fault hook to SIGKILL the gateway, exit status {code}:\n{self.log_tail()}"

    def log_tail(self, lines=60):
        return file_tail(self.log_path, lines)

    # ---- HTTP
    def _drop_conn(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT, fresh=False,
                retry=True, chunked=False):
        """Send one request; returns a Response (iterable as status, headers, json).

        body: dict/list (sent as JSON), bytes/str (sent as is) or None.
        Content-Type defaults to application/json when there is a body; a
        header given as None is left out. The keep-alive connection is reused
        and, if the gateway closed it meanwhile, reopened once (retry=False or
        fresh=True: a new connection and no retry, for requests expected to
        kill the gateway). chunked=True sends the body with chunked encoding.
        """
        hdrs = {}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        for k, v in (headers or {}).items():
            hdrs = {hk: hv for hk, hv in hdrs.items() if hk.lower() != k.lower()}
            if v is not None:
                hdrs[k] = v
        if fresh:
            retry = False
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            reused = self._conn is not None and not fresh
            if fresh:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            else:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
                conn = self._conn
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            try:
                if chunked:
                    data = body or b""
                    pieces = [data[i:i + 1000] for i in range(0, len(data), 1000)]
                    conn.request(method, path, body=iter(pieces), headers=hdrs, encode_chunked=True)
                else:
                    conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except CONNECTION_ERRORS as exc:
                conn.close()
                if not fresh:
                    self._conn = None
                # Only a kept-alive connection the gateway closed meanwhile is
                # worth a second try; a timeout or a fresh connection is not.
                if attempt + 1 < attempts and reused and not isinstance(exc, TimeoutError):
                    continue
                raise
            if fresh or resp.will_close:
                conn.close()
                if not fresh:
                    self._conn = None
            return Response(resp.status, resp.headers, data)
        raise AssertionError("unreachable")

    # convenience wrappers
    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)
