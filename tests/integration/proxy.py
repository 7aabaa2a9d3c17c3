"""A small threaded TCP fault proxy, put between a gateway and Neo4j.

    proxy = FaultProxy("127.0.0.1", neo4j_port)   # listens on 127.0.0.1:0
    gateway --neo4j-url proxy.url

Modes and controls (all thread-safe, usable while traffic flows):

- pass_through(): forward bytes both ways (the default). Connections that
  are holding keep holding until release().
- hold_matching(pattern): from now on, a client->server chunk that contains
  `pattern` (bytes, or a compiled bytes regex) is not forwarded; it and
  every later chunk of the same connection are kept until release(). Other
  connections keep flowing. wait_held() waits for the first held chunk.
- stop_matching(): new chunks are no longer matched (new requests pass), but
  what is already held stays held.
- release(deliver=True): deliver the held bytes to the server, in order, and
  let those connections flow again; a connection whose client has gone away
  meanwhile is kept open towards the server until the server answers (its
  answer is recorded in `released_responses`), so a commit sent by a killed
  gateway really reaches Neo4j. release(deliver=False) drops the held bytes
  and closes those connections.
- latency(seconds): keep forwarding, but hold every chunk (both ways) for
  `seconds` before passing it on; latency(0) or pass_through() ends it.
- blackhole(): accept connections and swallow everything in both
  directions; nothing is forwarded and nothing answers (clients time out).
- refuse(): close every new connection at once (clients see resets/EOF).
- cut_answers(n): the next n answers from the server are swallowed and
  their connections closed at once (both sides), after the request was
  forwarded whole: the server did the work, the client never hears of it
  (a lost answer). `answers_cut` counts them.
- close_all(): close every current connection, both sides.
- close(): stop listening and close everything.

Chunks are what recv() returns; a pattern split across two chunks of one
connection is still found (a tail of the previous chunk is kept).
"""

import re
import socket
import threading
import time

_BUF = 65536


class _Conn:
    """One proxied connection: a client socket and (usually) a server socket."""

    def __init__(self, proxy, client):
        self.proxy = proxy
        self.client = client
        self.server = None
        self.send_lock = threading.Lock()  # orders forwarding vs. release()
        self.holding = False
        self.held = []  # client->server chunks not yet forwarded
        self.client_closed = False
        self.released = False  # release(deliver=True) flushed this connection
        self.response_after_release = b""
        self.done = threading.Event()  # set when the connection is closed
        self.tail = b""

    def close(self):
        for s in (self.client, self.server):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self.done.set()
        self.proxy._forget(self)


class FaultProxy:
    def __init__(self, target_host, target_port):
        self.target = (target_host, int(target_port))
        self._lock = threading.Condition()
        self._mode = "pass"
        self._pattern = None
        self._conns = set()
        self._released = []  # connections released with deliver=True
        self.held_log = []  # copies of every held chunk, for assertions/diagnostics
        self.connections_accepted = 0
        self._cut_left = 0
        self.answers_cut = 0
        self._latency = 0.0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._accept_thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self._accept_thread.start()

    # ------------------------------------------------------------------ info
    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self):
        with self._lock:
            return self._mode

    def held_count(self):
        """Number of chunks currently held (not yet released)."""
        with self._lock:
            return sum(len(c.held) for c in self._conns)

    def holding_connections(self):
        with self._lock:
            return sum(1 for c in self._conns if c.holding)

    def wait_held(self, count=1, timeout=30.0):
        """Wait until at least `count` chunks have been held since start; True if so."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.held_log) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))
            return True

    # -------------------------------------------------------------- controls
    def pass_through(self):
        with self._lock:
            self._mode = "pass"
            self._pattern = None
            self._latency = 0.0

    def latency(self, seconds):
        with self._lock:
            self._latency = float(seconds)

    def _delay(self):
        with self._lock:
            delay = self._latency
        if delay > 0:
            time.sleep(delay)

    def hold_matching(self, pattern):
        if isinstance(pattern, str):
            pattern = pattern.encode()
        with self._lock:
            self._mode = "pass"
            self._pattern = pattern

    def stop_matching(self):
        with self._lock:
            self._pattern = None

    def blackhole(self):
        with self._lock:
            self._mode = "blackhole"

    def refuse(self):
        with self._lock:
            self._mode = "refuse"
        self.close_all()

    def cut_answers(self, n=1):
        with self._lock:
            self._cut_left = n

    def _take_cut(self):
        with self._lock:
            if self._cut_left <= 0:
                return False
            self._cut_left -= 1
            self.answers_cut += 1
            return True

    def close_all(self):
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()

    def release(self, deliver=True):
        """Stop matching; deliver (or drop) every held chunk. Returns the number of chunks."""
        with self._lock:
            self._pattern = None
            conns = [c for c in self._conns if c.holding]
        n = 0
        for c in conns:
            with c.send_lock:
                chunks, c.held, c.holding = c.held, [], False
                n += len(chunks)
                if not deliver:
                    c.close()
                    continue
                try:
                    for chunk in chunks:
                        c.server.sendall(chunk)
                except OSError:
                    c.close()
                    continue
                c.released = True
                with self._lock:
                    self._released.append(c)
        return n

    def wait_released_answered(self, timeout=30.0):
        """After release(deliver=True): wait until the server answered (or closed)
        every released connection whose client had gone away. True if all did."""
        deadline = time.monotonic() + timeout
        with self._lock:
            conns = [c for c in self._released if c.client_closed]
        for c in conns:
            while not c.response_after_release and not c.done.is_set():
                if time.monotonic() > deadline:
                    return False
                c.done.wait(0.05)
        return True

    @property
    def released_responses(self):
        with self._lock:
            return [c.response_after_release for c in self._released]

    def close(self):
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        self.close_all()

    # -------------------------------------------------------------- plumbing
    def _forget(self, conn):
        with self._lock:
            self._conns.discard(conn)
            self._lock.notify_all()

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, client)
            with self._lock:
                mode = self._mode
                self.connections_accepted += 1
                if mode != "refuse":
                    self._conns.add(conn)
            if mode == "refuse":
                conn.close()
                continue
            if mode == "pass":
                try:
                    server = socket.create_connection(self.target, timeout=10)
                    server.settimeout(None)
                    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conn.server = server
                except OSError:
                    conn.close()
                    continue
                threading.Thread(target=self._server_to_client, args=(conn,), daemon=True).start()
            threading.Thread(target=self._client_to_server, args=(conn,), daemon=True).start()

    def _matches(self, conn, chunk):
        pattern = self._pattern
        if pattern is None:
            return False
        # Only a match that ends inside the new chunk counts: the tail is
        # there to find a pattern split across chunks, not to match an
        # earlier request of the same keep-alive connection again.
        window = conn.tail + chunk
        if isinstance(pattern, bytes):
            pattern = re.compile(re.escape(pattern))
        return any(m.end() > len(conn.tail) for m in pattern.finditer(window))

    def _client_to_server(self, conn):
        while True:
            try:
                chunk = conn.client.recv(_BUF)
            except OSError:
                chunk = b""
            if not chunk:
                with conn.send_lock:
                    conn.client_closed = True
                    # A held connection stays open towards the server until
                    # release(): the held request must be deliverable later.
                    if not conn.holding and not conn.released:
                        conn.close()
                    elif conn.released and not conn.holding and conn.response_after_release:
                        conn.close()
                return
            with conn.send_lock:
                with self._lock:
                    mode = self._mode
                    if mode == "pass" and (conn.holding or self._matches(conn, chunk)):
                        conn.holding = True
                        conn.held.append(chunk)
                        self.held_log.append(chunk)
                        self._lock.notify_all()
                        hold = True
                    else:
                        hold = False
                    conn.tail = (conn.tail + chunk)[-256:]
                if hold or mode == "blackhole" or conn.server is None:
                    continue
                self._delay()
                try:
                    conn.server.sendall(chunk)
                except OSError:
                    conn.close()
                    return

    def _server_to_client(self, conn):
        while True:
            try:
                data = conn.server.recv(_BUF)
            except OSError:
                data = b""
            if not data:
                conn.close()
                return
            if self.mode == "blackhole":
                continue
            if self._take_cut():
                conn.close()
                return
            if conn.released:
                with self._lock:
                    conn.response_after_release += data
            self._delay()
            if conn.client_closed:
                # The client is gone (e.g. a killed gateway); the answer was
                # recorded above, nobody is left to read it.
                conn.close()
                return
            try:
                conn.client.sendall(data)
            except OSError:
                conn.close()
                return
