"""A small, bounded, concurrent HTTP load generator for the fault tests.

``Load(port, pick, connections=32, seconds=5, max_requests=60000)`` runs
``connections`` threads, each with its own HTTP/1.1 keep-alive connection
to 127.0.0.1:port, sending requests until ``stop()`` is called, ``seconds``
have passed or ``max_requests`` (all threads together) were sent, whichever
comes first: it always stops by itself.

``pick(thread_index, n)`` returns ``(kind, path, headers)`` for the n-th
request of a thread; ``kind`` is a free label (e.g. "cached", "unknown")
that the results keep, so a test can assert per kind.

Every request yields a ``Result(kind, start, end, status)`` with times from
``time.monotonic()``; ``status`` is the HTTP status, or 0 when the request
failed (connection refused or reset, no answer within the timeout, a
malformed answer). A keep-alive race, where the server closed an idle
reused connection just as a request was sent and nothing at all came back,
is retried once on a fresh connection as every HTTP client does for
idempotent requests (RFC 9112 section 9.3.1); those retries are counted in
``Load.retries`` and the retried request is judged by its second answer.

Usage::

    with Load(h.port, pick, seconds=6) as load:
        time.sleep(1)
        ...fault...
    results = load.results   # after the with block, every thread is done
"""

import http.client
import socket
import threading
import time
from collections import Counter, namedtuple

Result = namedtuple("Result", "kind start end status")

# Exceptions meaning "the reused connection was already closed by the
# server" when nothing of a response was read.
_RACE = (http.client.RemoteDisconnected, ConnectionResetError,
         BrokenPipeError, ConnectionAbortedError)


class Load:
    def __init__(self, port, pick, connections=32, seconds=5.0,
                 max_requests=60000, timeout=10.0, keepalive=True):
        self.port = port
        self.pick = pick
        self.connections = connections
        self.seconds = seconds
        self.max_requests = max_requests
        self.timeout = timeout
        self.keepalive = keepalive
        self.results = []
        self.retries = 0
        self.errors = Counter()  # exception class name -> count
        self._lock = threading.Lock()
        self._sent = 0
        self._stop = threading.Event()
        self._threads = []
        self.t0 = None

    # -- running ----------------------------------------------------------
    def start(self):
        self.t0 = time.monotonic()
        self._deadline = self.t0 + self.seconds
        for i in range(self.connections):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        alive = [t for t in self._threads if t.is_alive()]
        assert not alive, f"{len(alive)} load threads still running"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _take(self):
        with self._lock:
            if self._sent >= self.max_requests:
                return False
            self._sent += 1
            return True

    def _record(self, res):
        with self._lock:
            self.results.append(res)

    def _connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=self.timeout)

    def _once(self, conn, path, headers):
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if not self.keepalive:
            conn.putheader("Connection", "close")
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        if resp.will_close:
            conn.close()
        return resp.status

    def _run(self, idx):
        conn = self._connect()
        used = False  # the connection has carried a request already
        n = 0
        try:
            while (not self._stop.is_set() and time.monotonic() < self._deadline
                   and self._take()):
                kind, path, headers = self.pick(idx, n)
                n += 1
                start = time.monotonic()
                try:
                    try:
                        status = self._once(conn, path, headers)
                    except _RACE:
                        if not used:
                            raise
                        # The server closed the idle keep-alive connection.
                        with self._lock:
                            self.retries += 1
                        conn.close()
                        conn = self._connect()
                        status = self._once(conn, path, headers)
                    used = conn.sock is not None
                except (OSError, http.client.HTTPException) as e:
                    with self._lock:
                        self.errors[type(e).__name__] += 1
                    status = 0
                    conn.close()
                    conn = self._connect()
                    used = False
                    # Do not spin when the server refuses connections.
                    time.sleep(0.01)
                self._record(Result(kind, start, time.monotonic(), status))
        finally:
            conn.close()

    # -- looking at the results --------------------------------------------
    def between(self, t_from=None, t_to=None, kind=None):
        """Results whose request started in [t_from, t_to) (monotonic)."""
        return [r for r in self.results
                if (t_from is None or r.start >= t_from)
                and (t_to is None or r.start < t_to)
                and (kind is None or r.kind == kind)]

    @staticmethod
    def counts(results):
        """{kind: {status: count}} for a list of results."""
        out = {}
        for r in results:
            out.setdefault(r.kind, Counter())[r.status] += 1
        return {k: dict(v) for k, v in out.items()}

    def summary(self):
        return (f"{len(self.results)} requests in "
                f"{(max(r.end for r in self.results) - self.t0) if self.results else 0:.1f} s, "
                f"retries {self.retries}, errors {dict(self.errors)}, "
                f"by kind/status {self.counts(self.results)}")


def wait_port_answers(port, timeout=5.0):
    """Waits until 127.0.0.1:port accepts a connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
