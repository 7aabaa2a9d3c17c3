"""A real Litestream (scripts/litestream.sh builds it) replicating one
gateway's SQLite file to a file replica, with its control socket on: the
replication engine of --replica-socket."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.common import REPO, file_tail


def litestream_binary():
    """$BISTORE_LITESTREAM, else the one scripts/litestream.sh installed; a
    missing binary fails the test (scripts/deps.sh installs it)."""
    path = os.environ.get("BISTORE_LITESTREAM")
    if not path:
        r = subprocess.run([str(REPO / "scripts" / "litestream.sh"), "path"], capture_output=True, text=True)
        path = r.stdout.strip()
    if not path or not os.access(path, os.X_OK):
        pytest.fail("no Litestream: run scripts/deps.sh (or scripts/litestream.sh build)", pytrace=False)
    return path


class Litestream:
    """`litestream replicate` of db_path into a replica folder under home. The
    socket lives in a short folder of its own (a Unix socket's path is at
    most 107 bytes; pytest's tmp paths can be longer)."""

    def __init__(self, db_path, home):
        self.binary = litestream_binary()
        self.db_path = Path(db_path).resolve()
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.replica = self.home / "replica"
        self.sock_dir = tempfile.mkdtemp(prefix="ls-", dir="/tmp")
        self.socket = os.path.join(self.sock_dir, "ctl.sock")
        self.config = self.home / "litestream.yml"
        self.config.write_text(
            f"socket:\n  enabled: true\n  path: {self.socket}\n"
            f"dbs:\n  - path: {self.db_path}\n    replica:\n      type: file\n      path: {self.replica}\n")
        self.log_path = self.home / "litestream.log"
        self.proc = None

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "replicate", "-config", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None:
                raise AssertionError(f"litestream exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"litestream's socket did not answer in {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def _answers(self):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.settimeout(1)
            s.connect(self.socket)
            s.sendall(b"GET /list HTTP/1.0\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.")
        except OSError:
            return False
        finally:
            s.close()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        if self.proc:
            self.proc.wait(30)

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def restore(self, out):
        """`litestream restore` of the replica into out (a new file)."""
        r = subprocess.run([self.binary, "restore", "-config", str(self.config), "-o", str(out),
                            str(self.db_path)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"litestream restore failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return Path(out)

    def log_tail(self, lines=40):
        return file_tail(self.log_path, lines)

    def close(self):
        self.kill()
        shutil.rmtree(self.sock_dir, ignore_errors=True)


def sync_status(ls):
    """Litestream's own view of its databases (GET /list)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(ls.socket)
    s.sendall(b"GET /list HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])
