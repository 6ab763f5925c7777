"""Faults under load (issue 6): PostgreSQL stopped, its sessions killed, its
table locked, httpd gracefully restarted, all while 32 connections
authenticate; and concurrent token creates/deletes through the API while
32 connections authenticate.

What every load test asserts, whatever the fault:
- no request ever fails at the HTTP level (status 0: reset, refused, timeout),
- an unknown token is never 200; a token the process has not verified
  before the fault is never 200 while the database is unreachable (503),
- no httpd child crashed (AH00052, segfault, sanitizer report) and httpd was
  never restarted (one "resuming normal operations" per start/graceful),
- within 2 s of the database being usable again every request succeeds,
- no secret reaches the error or access log.

Figures (recovery times, 503 counts, latencies under a held lock) are
printed with -s and attached to assertion messages.
"""

import hashlib
import json
import random
import socket
import subprocess
import threading
import time

import pytest

from conftest import MINT, ONE_PROCESS, TableLock, past_trust_window
from loadgen import Load

CONNS = 32
LOCK_S = 7.0
RECOVERY_S = 2.0
SENT = []  # every secret used here, for the no-leak check
INSTANCES = []  # every httpd started here, for the no-leak check


def figure(msg):
    print("[figure] " + msg)


def fresh_tokens(n):
    """n well-formed tokens that are not in the database."""
    out = []
    for _ in range(n):
        out.append(subprocess.run([MINT], check=True, capture_output=True,
                                  text=True).stdout.split()[0])
    SENT.extend(out)
    return out


def mint_many(pg, prefix, n, roles=("reader",)):
    toks = [pg.mint(f"{prefix}-{i}", roles) for i in range(n)]
    SENT.extend(t.token for t in toks)
    return toks


def key(tok):
    return [("X-API-Key", tok)]


def resumes(h):
    return h.error_log().count("resuming normal operations")


def assert_healthy(h, starts=1):
    assert h.proc.poll() is None, "httpd exited"
    assert h.crashes() == [], h.crashes()
    assert resumes(h) == starts, f"httpd (re)started {resumes(h)} times"


def done_before(load, t):
    """Results answered before t (the fault began after them)."""
    return [r for r in load.results if r.end < t]


def recovery_after(load, t_up, kinds, ok, t_end=None):
    """Seconds after t_up until every request of those kinds (started in
    [t_up, t_end)) got its healthy status; 0.0 when none failed."""
    bad = [r for r in load.between(t_up, t_end)
           if r.kind in kinds and r.status != ok]
    return max((r.end - t_up for r in bad), default=0.0)


def db_sessions(pg):
    """Client sessions on database sts, other than the one asking."""
    return int(pg.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                      "'sts' AND backend_type = 'client backend' AND "
                      "pid <> pg_backend_pid()")[0][0])


# One event-MPM process: its requests and its background thread share one


def started(h):
    INSTANCES.append(h)
    return h


@pytest.fixture(scope="module")
def uncached(httpd_factory):
    return started(httpd_factory("STSTokenCacheTTL 0\n"))


@pytest.fixture(scope="module")
def cached(httpd_factory):
    return started(httpd_factory("STSTokenCacheTTL 60\n"))


@pytest.fixture
def pg_up(pg):
    """Makes sure PostgreSQL runs again after a test that stops it."""
    yield pg
    if not pg.running:
        pg.start()


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_pg_stopped_under_load_uncached(httpd_factory, uncached, pg_up, mpm):
    """STSTokenCacheTTL 0: every request is a lookup. PostgreSQL stopped for
    ~1.5 s under 32 connections: 503 for valid and unknown tokens alike while
    it is down, never a 200, and all 200 again within 2 s of its start.
    Prefork (10 single-threaded children, mod_dbd's one connection per
    process) runs without keep-alive so the 32 clients share the children."""
    pg = pg_up
    h = uncached if mpm == "event" else started(
        httpd_factory("STSTokenCacheTTL 0\n", mpm=mpm))
    valid = [t.token for t in mint_many(pg, f"down-nc-{mpm}", 8)]
    unknown = fresh_tokens(16)

    def pick(i, n):
        if n % 4 == 3:
            return "unknown", "/protected/", key(random.choice(unknown))
        return "valid", "/protected/", key(random.choice(valid))

    with Load(h.port, pick, CONNS, seconds=15,
              keepalive=(mpm == "event")) as load:
        time.sleep(1.0)
        t_stop0 = time.monotonic()
        pg.stop()
        t_down = time.monotonic()
        time.sleep(1.5)
        t_start0 = time.monotonic()
        pg.start()
        t_up = time.monotonic()
        time.sleep(RECOVERY_S + 1.0)
        load.stop()
    res = load.results
    info = load.summary()
    figure(f"pg stopped (TTL 0, {mpm}): stop took {t_down - t_stop0:.2f} s, "
           f"start took {t_up - t_start0:.2f} s; {info}")
    assert all(r.status != 0 for r in res), info
    before = done_before(load, t_stop0)
    assert before and all(r.status == (200 if r.kind == "valid" else 401)
                          for r in before), Load.counts(before)
    down = load.between(t_down, t_start0)
    assert len(down) > 20, Load.counts(down)
    assert all(r.status == 503 for r in down), Load.counts(down)
    assert not [r for r in res if r.kind == "unknown" and r.status == 200]
    rec = recovery_after(load, t_up, {"valid"}, 200)
    figure(f"pg stopped (TTL 0, {mpm}): 503s while down {len(down)}, "
           f"all 200 again {rec:.2f} s after PostgreSQL was up")
    late = load.between(t_up + RECOVERY_S)
    assert late and all(r.status == (200 if r.kind == "valid" else 401)
                        for r in late), (rec, Load.counts(late))
    assert_healthy(h)
    if mpm == "prefork":
        assert "mpm_prefork:notice" in h.error_log()


# The token table's trust window (STS_SYNC_TRUST_MS) plus a margin for a
# request's own time.
TRUST_S = 1.1


def test_pg_stopped_under_load_cached(cached, pg_up):
    """With the token table: for at most the trust window (1 s after its
    last successful change read) the table still answers (valid tokens 200,
    whether used before or not, unknown ones 401); after it every token is
    503 while PostgreSQL is down (fail closed), never 200, never 401."""
    pg, h = pg_up, cached
    warm = [t.token for t in mint_many(pg, "down-warm", 4)]
    cold = [t.token for t in mint_many(pg, "down-cold", 20)]
    unknown_up = fresh_tokens(8)
    unknown_down = fresh_tokens(8)
    phase = {"down": False}
    cold_iter = iter(cold)
    lock = threading.Lock()

    def pick(i, n):
        if phase["down"] and n % 3 == 1:
            with lock:
                tok = next(cold_iter, None)
            if tok is not None:  # each cold token is first used while down
                return "cold", "/protected/", key(tok)
        if phase["down"] and n % 3 == 2:
            return "unknown-down", "/protected/", key(random.choice(unknown_down))
        if n % 5 == 4:
            return "unknown-up", "/protected/", key(random.choice(unknown_up))
        return "warm", "/protected/", key(random.choice(warm))

    with Load(h.port, pick, CONNS, seconds=15) as load:
        time.sleep(1.0)
        t_stop0 = time.monotonic()
        pg.stop()
        t_down = time.monotonic()
        phase["down"] = True
        time.sleep(1.5)
        t_start0 = time.monotonic()
        pg.start()
        t_up = time.monotonic()
        time.sleep(RECOVERY_S + 1.0)
        load.stop()
    res = load.results
    info = load.summary()
    assert all(r.status != 0 for r in res), info
    before = done_before(load, t_stop0)
    assert before and all(r.status == (200 if r.kind == "warm" else 401)
                          for r in before), Load.counts(before)
    down = load.between(t_down, t_start0)
    dc = Load.counts(down)
    figure(f"pg stopped (cached): while down {dc}; {info}")
    # The table's answer within the trust window, else 503. A request
    # started up to TRUST_S after the stop may still be answered by it
    # (the last change read began before the stop).
    for kind, table in (("cold", 200), ("unknown-down", 401), ("warm", 200)):
        got = [(r.start - t_down, r.status) for r in down if r.kind == kind]
        assert got and all(st in (table, 503) for _, st in got), (kind, dc)
        assert all(st == 503 for dt, st in got if dt > TRUST_S), (kind, got)
    assert [r for r in down if r.kind == "unknown-down" and
            r.start - t_down > TRUST_S], dc
    assert not [r for r in res if r.kind.startswith("unknown") and r.status == 200]
    warm_down = [r.status for r in down if r.kind == "warm"]
    warm_503 = [round(r.start - t_down, 2) for r in down
                if r.kind == "warm" and r.status == 503]
    figure(f"pg stopped (cached): cached token while down: "
           f"{warm_down.count(200)} x 200, {warm_down.count(503)} x 503 "
           f"(503s started {min(warm_503, default=0)}-"
           f"{max(warm_503, default=0)} s after the stop; down "
           f"{t_start0 - t_down:.2f} s)")
    rec = recovery_after(load, t_up, {"warm", "cold"}, 200)
    figure(f"pg stopped (cached): all 200 again {rec:.2f} s after start")
    late = load.between(t_up + RECOVERY_S)
    expect = {"warm": 200, "cold": 200, "unknown-up": 401, "unknown-down": 401}
    assert late and all(r.status == expect[r.kind] for r in late), \
        (rec, Load.counts(late))
    assert_healthy(h)


@pytest.mark.parametrize("fault", ["terminate", "restart"])
def test_sessions_killed_under_load(uncached, pg_up, fault):
    """pg_terminate_backend of every pooled session (twice), or a fast
    PostgreSQL restart, under 32 connections: the module re-prepares on the
    new sessions by itself. Never 401 for a valid token (mod_authn_dbd's
    failure mode), never 200 for an unknown one, all 200 within 2 s."""
    pg, h = pg_up, uncached
    valid = [t.token for t in mint_many(pg, f"kill-{fault}", 8)]
    unknown = fresh_tokens(8)
    mark = h.log_mark()

    def pick(i, n):
        if n % 4 == 3:
            return "unknown", "/protected/", key(random.choice(unknown))
        return "valid", "/protected/", key(random.choice(valid))

    faults = []
    with Load(h.port, pick, CONNS, seconds=15) as load:
        for _ in range(2):
            time.sleep(1.0)
            t0 = time.monotonic()
            if fault == "terminate":
                killed = int(pg.terminate_backends()[0][0])
                assert killed > 0
            else:
                pg.restart()
            faults.append((t0, time.monotonic()))
        time.sleep(RECOVERY_S + 0.5)
        load.stop()
    res = load.results
    info = load.summary()
    assert all(r.status != 0 for r in res), info
    assert not [r for r in res if r.kind == "unknown" and r.status == 200]
    assert not [r for r in res if r.kind == "valid" and r.status == 401], \
        Load.counts(res)
    assert set(r.status for r in res) <= {200, 401, 503}, Load.counts(res)
    n503 = sum(r.status == 503 for r in res)
    ends = [f[0] for f in faults[1:]] + [None]
    recs = [recovery_after(load, t1, {"valid"}, 200, end)
            for (_, t1), end in zip(faults, ends)]
    figure(f"sessions killed ({fault}): {n503} x 503, recovered within "
           + ", ".join(f"{x:.2f} s" for x in recs) + f"; {info}")
    late = load.between(faults[-1][1] + RECOVERY_S)
    assert late and all(r.status == (200 if r.kind == "valid" else 401)
                        for r in late), Load.counts(late)
    between = load.between(faults[0][1] + RECOVERY_S, faults[1][0])
    assert all(r.status == (200 if r.kind == "valid" else 401)
               for r in between), Load.counts(between)
    if fault == "terminate":  # the pooled sessions were replaced under it
        assert "re-prepared the module's statements" in h.error_log_since(mark)
    assert_healthy(h)


def test_locked_table_answers_503_in_bounded_time(httpd_factory, pg):
    """A transaction holds ACCESS EXCLUSIVE on sts_tokens for 7 s under 32
    connections: requests are answered 503 after the statement_timeout
    (DBDParams: 2 s) instead of piling up; the number of database sessions
    stays within DBDMax per process; all 200 within 2 s of the release.

    A fresh httpd after a few sequential requests (DBDMin 0, as shipped), so
    most of the 32 requests need a new pooled session while the table is
    locked. Measured (after 25bf250): mod_dbd opens sessions one at a time
    per process (consistent with APR's reslist constructing them under its
    list mutex) and each new session's PREPAREs wait out the
    statement_timeout on the lock, so requests queue behind each other: of
    the first second's 32 requests, 503s came at 2.0, 4.0, 6.3, 8.6 s (two
    processes, one construct each per 2 s) and the other 24 were answered
    200 after the release (7.3-8.8 s) instead of 503. A pool warmed by 1 s
    of load first passes or fails depending on whether every busy thread
    got a session in the warm-up (same cause)."""
    pool = "cold"
    # Sessions other instances of this module still hold (not ours).
    others = db_sessions(pg)
    h = started(httpd_factory("STSTokenCacheTTL 0\n"))
    assert "statement_timeout=2000" in pg.dbd_params, pg.dbd_params
    valid = [t.token for t in mint_many(pg, f"locked-{pool}", 8)]
    for _ in range(4):
        assert h.get("/protected/", key(valid[0])).status == 200

    def pick(i, n):
        return "valid", "/protected/", key(random.choice(valid))


    sessions = []
    with TableLock(pg) as lock:
        t_lock = time.monotonic()
        with Load(h.port, pick, CONNS, seconds=15) as load:
            while time.monotonic() < t_lock + LOCK_S:
                sessions.append(db_sessions(pg) - others)
                time.sleep(0.3)
            t_release = time.monotonic()
            lock.release()
            t_released = time.monotonic()
            time.sleep(RECOVERY_S + 0.5)
            load.stop()
    res = load.results
    info = load.summary()
    during = load.between(t_lock, t_release)
    lat = sorted(r.end - r.start for r in during)
    n503 = sum(r.status == 503 for r in during)
    first = load.between(t_lock, t_lock + 1.0)
    figure(f"locked table {LOCK_S} s ({pool} pool): {len(during)} requests "
           f"started under the lock, {n503} x 503, latency p50 "
           f"{lat[len(lat) // 2]:.2f} s max {lat[-1]:.2f} s; first second: "
           f"{sorted((r.status, round(r.end - r.start, 1)) for r in first)}; "
           f"DB sessions seen {max(sessions)}; {info}")
    # No request went unanswered (the load's client timeout is 10 s).
    assert all(r.status != 0 for r in res), info
    assert set(r.status for r in res) <= {200, 503}, Load.counts(res)
    # Answered while the lock was held: 503, nothing else.
    under = [r for r in during if r.end < t_release]
    assert under and all(r.status == 503 for r in under), Load.counts(under)
    # Requests that arrived in the lock's first second did not wait for the
    # release (as they do without a statement_timeout): each was answered
    # 503 while the lock was still held.
    assert first and all(r.status == 503 and r.end < t_release for r in first), \
        sorted((r.status, round(r.end - r.start, 2)) for r in first)
    # A bound on any request: the statement_timeout, a wait for a pooled
    # connection, and slack for a busy machine (measured before 25bf250,
    # warm pool: 4.0 s idle, 5.7 s at load average 29).
    assert lat[-1] < 8.0, lat[-5:]
    # No pile-up of database sessions: at most DBDMax (20) per process (2).
    assert max(sessions) <= 2 * 20 + 1, sessions
    rec = recovery_after(load, t_released, {"valid"}, 200)
    figure(f"locked table: all 200 again {rec:.2f} s after the release")
    late = load.between(t_released + RECOVERY_S)
    assert late and all(r.status == 200 for r in late), Load.counts(late)
    assert_healthy(h)


class LoopbackListener:
    """A TCP listener on loopback with its own accept thread; a subclass
    says what becomes of each connection (on_accept). close() stops it and
    closes every socket it holds (self.conns)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            self.on_accept(c)

    def on_accept(self, c):
        raise NotImplementedError

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


class SilentServer(LoopbackListener):
    """Accepts connections and never answers: a database host that hangs (a
    network partition, a frozen server)."""

    def __init__(self):
        self.accepted = []  # when each connection attempt arrived
        super().__init__()

    def on_accept(self, c):
        self.accepted.append(time.monotonic())


class SlowProxy(LoopbackListener):
    """A TCP proxy to PostgreSQL that waits `delay` seconds before it
    connects each new client on: a database that is slow to open sessions
    (a busy server forking backends, a far-away host)."""

    def __init__(self, upstream_port, delay):
        self.upstream = ("127.0.0.1", upstream_port)
        self.delay = delay
        self.accepted = []  # when each connection attempt arrived
        super().__init__()

    def on_accept(self, c):
        self.accepted.append(time.monotonic())
        threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        time.sleep(self.delay)
        try:
            u = socket.create_connection(self.upstream, 5)
        except OSError:
            c.close()
            return
        self.conns.append(u)
        threading.Thread(target=self._pump, args=(u, c), daemon=True).start()
        self._pump(c, u)

    def _pump(self, src, dst):
        try:
            while not self.stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_cold_pool_burst_is_served(httpd_factory, pg):
    """32 concurrent first requests on a cold pool (DBDMin 0) whose sessions
    take 100 ms each to open: mod_dbd opens them one after the other, so the
    last requests of a process wait well over STSTokenDBAcquireTimeout
    (400 ms here) in all. As long as connections keep being handed out they
    are waiting their turn, not stuck: all 200. (Measured before the gate
    counted progress: requests past 400 ms got 503.)"""
    proxy = SlowProxy(pg.port, 0.1)
    try:
        params = (pg.tcp_params(proxy.port) + " connect_timeout=2 "
                  "options='-c statement_timeout=2000'")
        h = started(httpd_factory("STSTokenCacheTTL 0\nDBDMin 0\n"
                                  "DBDKeep 16\nDBDMax 16\n"
                                  "STSTokenDBAcquireTimeout 400\n",
                                  env={"STS_DBD_PARAMS": params}))
        tokens = [t.token for t in mint_many(pg, "burst", 4)]
        barrier = threading.Barrier(CONNS)
        results = []

        def one(i):
            barrier.wait(10)
            t0 = time.monotonic()
            r = h.get("/protected/", key(tokens[i % len(tokens)]))
            results.append((r.status, time.monotonic() - t0))

        threads = [threading.Thread(target=one, args=(i,))
                   for i in range(CONNS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        sessions = db_sessions(pg)
    finally:
        proxy.close()
    lat = sorted(x for _, x in results)
    figure(f"cold pool burst (sessions open in 100 ms, acquire timeout "
           f"400 ms): statuses {sorted(set(s for s, _ in results))}, latency "
           f"p50 {lat[len(lat) // 2]:.2f} s max {lat[-1]:.2f} s, "
           f"{sessions} sessions")
    assert len(results) == CONNS
    assert [s for s, _ in results] == [200] * CONNS, results
    # The burst did wait past the acquire timeout (else it proves nothing).
    assert lat[-1] > 0.4, lat
    assert_healthy(h)


def test_request_not_refused_while_the_background_reconnects(httpd_factory,
                                                            pg_up, bootstrap):
    """After an outage, PostgreSQL is back but opens sessions slowly (1.5 s
    through a proxy). The moment the token table's thread starts its
    connection attempt, a token API request (which always asks the
    database) arrives in the same (only) process: it makes its own attempt
    and gets 200. When the thread's attempt was the process's one attempt
    per retry interval, the request got 503 at once for as long as that
    attempt was connecting (seen under AddressSanitizer as a 503 with the
    database up)."""
    pg = pg_up
    admin = [("X-API-Key", str(bootstrap))]
    proxy = SlowProxy(pg.port, 0)
    try:
        params = (pg.tcp_params(proxy.port) + " connect_timeout=4 "
                  "options='-c statement_timeout=2000'")
        h = started(httpd_factory(ONE_PROCESS,
                                  env={"STS_DBD_PARAMS": params}))
        assert h.get("/api/security/tokens", admin).status == 200
        pg.stop()
        past_trust_window()
        assert h.get("/api/security/tokens", admin).status == 503
        proxy.delay = 1.5
        seen = len(proxy.accepted)
        pg.start(settle=False)
        # The first connection attempt from now on is the thread's (no
        # request is in flight); the request's own attempt is due then, as
        # no attempt of either kind went within the last retry interval.
        deadline = time.monotonic() + 5
        while len(proxy.accepted) == seen and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(proxy.accepted) > seen, "no background attempt in 5 s"
        t0 = time.monotonic()
        r = h.get("/api/security/tokens", admin)
        took = time.monotonic() - t0
    finally:
        proxy.close()
    figure(f"request during the background's slow reconnect: {r.status} "
           f"in {took:.2f} s")
    assert r.status == 200, (r.status, r.header("Retry-After"))
    assert_healthy(h)


def test_hanging_database_host_is_503_within_connect_timeout(httpd_factory, pg):
    """DBDParams pointing at a host that accepts TCP and never answers
    (connect_timeout=2 as shipped): under 32 connections every request is
    503 within the connect_timeout plus slack, never unanswered, never
    queued behind other requests' connection attempts. Before the gate in
    front of mod_dbd's pool (store.c) 9 requests were answered, at 2/4/6 s,
    and 23 were still waiting after 10 s."""
    silent = SilentServer()
    try:
        params = (pg.tcp_params(silent.port) + " connect_timeout=2 "
                  "options='-c statement_timeout=2000'")
        h = started(httpd_factory("STSTokenCacheTTL 0\n",
                                  env={"STS_DBD_PARAMS": params}))
        tokens = fresh_tokens(4)

        def pick(i, n):
            return "any", "/protected/", key(random.choice(tokens))

        with Load(h.port, pick, CONNS, seconds=5) as load:
            pass
    finally:
        silent.close()
    t0 = load.t0
    figure("hanging database host: connection attempts at "
           + ", ".join(f"{t - t0:.1f}" for t in silent.accepted
                       if t >= t0) + " s")
    res = load.results
    lat = sorted(r.end - r.start for r in res)
    figure(f"hanging database host: {Load.counts(res)}, latency p50 "
           f"{lat[len(lat) // 2]:.2f} s max {lat[-1]:.2f} s; {load.summary()}")
    assert res and set(r.status for r in res) == {503}, Load.counts(res)
    assert lat[-1] < 2.0 + 1.5, lat[-5:]
    assert_healthy(h)


def test_pool_exhausted_is_503_within_acquire_timeout(httpd_factory, pg):
    """DBDMax 1 per process and sts_tokens locked (statement_timeout 2 s):
    each process's only connection waits out the statement_timeout, and
    every other request of that process must be answered 503 within
    STSTokenDBAcquireTimeout (300 ms here) plus slack instead of queueing
    for that connection (without the gate they waited 2 s per request ahead
    of them, past the client's 10 s), with a log line naming the bound. All
    200 after the release."""
    h = started(httpd_factory("STSTokenCacheTTL 0\nDBDMax 1\nDBDKeep 1\n"
                              "STSTokenDBAcquireTimeout 300\n"))
    valid = [t.token for t in mint_many(pg, "exhausted", 4)]
    for _ in range(4):
        assert h.get("/protected/", key(valid[0])).status == 200

    def pick(i, n):
        return "valid", "/protected/", key(random.choice(valid))

    mark = h.log_mark()
    with TableLock(pg):
        with Load(h.port, pick, CONNS, seconds=4) as load:
            pass
    res = load.results
    lat = sorted(r.end - r.start for r in res)
    slow = [x for x in lat if x > 1.0]
    figure(f"pool exhausted (DBDMax 1, acquire timeout 300 ms): "
           f"{Load.counts(res)}, latency p50 {lat[len(lat) // 2]:.2f} s "
           f"max {lat[-1]:.2f} s, {len(slow)} over 1 s; {load.summary()}")
    assert res and set(r.status for r in res) == {503}, Load.counts(res)
    # Only the requests that held a process's one connection or its turn at
    # the gate took longer: the one holding the gate waits for the pool
    # (mod_dbd sets no bound there) until the connection comes back, then
    # runs its own statement: at most two statement_timeouts (measured: 2.0,
    # 2.0, 4.0, 4.0 s; all others 0.3 s).
    assert len(slow) <= 12, lat[-15:]
    assert lat[len(lat) // 2] < 1.0, lat
    assert lat[-1] < 2 * 2.0 + 1.5, lat[-5:]
    assert "within STSTokenDBAcquireTimeout (300 ms)" in \
        h.error_log_since(mark)
    assert h.get("/protected/", key(valid[0])).status == 200
    assert_healthy(h)


def test_locked_table_single_request_within_statement_timeout(uncached, pg):
    """README: statement_timeout in DBDParams bounds how long a request waits
    on a slow database. A lone request under a held lock must get its 503
    within that bound (2 s) plus slack, not a multiple of it. Measured before
    25bf250: 4.0 s on a process holding a pooled connection, because after
    the timeout sts_store_exec re-prepared the statements and the PREPARE
    waited on the same lock for another statement_timeout."""
    h = uncached
    t = mint_many(pg, "lone-lock", 1)[0].token
    for _ in range(4):  # a pooled connection in each child
        assert h.get("/protected/", key(t)).status == 200
    took = []
    with TableLock(pg):
        for _ in range(3):
            t0 = time.monotonic()
            r = h.get("/protected/", key(t))
            took.append((r.status, round(time.monotonic() - t0, 2)))
    figure(f"lone request under a held lock: {took}")
    assert all(st == 503 for st, _ in took), took
    assert all(sec < 2.0 + 1.0 for _, sec in took), took
    assert h.get("/protected/", key(t)).status == 200


@pytest.mark.parametrize("keepalive", [True, False])
def test_graceful_restart_under_load(httpd_factory, pg, keepalive):
    """Two graceful restarts (SIGUSR1 to the parent) under 32 connections,
    with and without keep-alive: no failed request, every answer as
    expected (200 valid, 401 unknown); the new children do their own
    database lookups (TTL 0)."""
    h = started(httpd_factory("STSTokenCacheTTL 0\n"))
    valid = [t.token for t in mint_many(pg, f"graceful-{keepalive}", 8)]
    unknown = fresh_tokens(4)

    def pick(i, n):
        if n % 5 == 4:
            return "unknown", "/protected/", key(random.choice(unknown))
        return "valid", "/protected/", key(random.choice(valid))

    with Load(h.port, pick, CONNS, seconds=15, keepalive=keepalive) as load:
        time.sleep(1.0)
        g1 = time.monotonic()
        h.graceful()
        deadline = time.monotonic() + 5
        while resumes(h) < 2:
            assert time.monotonic() < deadline, "first graceful never done"
            time.sleep(0.05)
        time.sleep(1.5)
        g2 = time.monotonic()
        h.graceful()
        while resumes(h) < 3:
            assert time.monotonic() < deadline + 3, "second graceful never done"
            time.sleep(0.05)
        time.sleep(1.5)
        load.stop()
    res = load.results
    info = load.summary()
    figure(f"graceful x2 (keepalive={keepalive}): {info}")
    lat = max(r.end - r.start for r in res)
    figure(f"graceful x2 (keepalive={keepalive}): max latency {lat:.2f} s")
    # Requests were answered before, between and after the restarts.
    for a, z in ((None, g1), (g1, g2), (g2, None)):
        assert load.between(a, z), (a, z, info)
    assert not load.errors, info
    bad = [r for r in res
           if r.status != (200 if r.kind == "valid" else 401)]
    assert not bad, Load.counts(bad)
    assert h.proc.poll() is None and h.crashes() == []
    assert resumes(h) == 3


def test_api_creates_deletes_while_authenticating(httpd_factory, pg, bootstrap):
    """8 API clients create and delete tokens while 32 connections
    authenticate: no 5xx, every create 200 with a distinct secret, every
    delete 204, distinct IDs and digests, the final list is exactly what was
    created minus what was deleted, and the new tokens work at once while
    the deleted ones are refused (within 1 s everywhere)."""
    h = started(httpd_factory(""))  # default cache
    admin = ("X-API-Key", str(bootstrap))
    JSONH = ("Content-Type", "application/json")
    valid = [t.token for t in mint_many(pg, "api-load", 8)]
    # Tokens made with SQL reach every process's table within the trust
    # window; the load must not start before (they would be unknown).
    past_trust_window()
    tag = f"conc6-{random.randrange(10**9)}"

    def pick(i, n):
        return "valid", "/protected/", key(random.choice(valid))

    lock = threading.Lock()
    created = {}   # name -> secret
    deleted = {}   # name -> id
    problems = []

    def client(c):
        mine = []
        try:
            for i in range(12):
                name = f"{tag}-{c}-{i}"
                body = json.dumps({"name": name, "roles": ["reader", "r" + str(c)]})
                r = h.request("POST", "/api/security/tokens", [admin, JSONH],
                              body.encode())
                if r.status != 200:
                    problems.append(("create", name, r.status, r.body[:200]))
                    continue
                secret = r.json()["token"]
                with lock:
                    SENT.append(secret)
                    created[name] = secret
                mine.append(name)
                a = h.get("/protected/", key(secret))
                if a.status != 200:
                    problems.append(("auth-new", name, a.status))
                if i % 3 == 2:  # delete the oldest of this client's tokens
                    lr = h.get("/api/security/tokens", [admin])
                    if lr.status != 200:
                        problems.append(("list", lr.status, lr.body[:200]))
                        continue
                    ids = {t["name"]: t["id"] for t in lr.json()}
                    victim = mine.pop(0)
                    d = h.request("DELETE", f"/api/security/tokens/{ids[victim]}",
                                  [admin])
                    if d.status != 204:
                        problems.append(("delete", victim, d.status, d.body[:200]))
                        continue
                    with lock:
                        deleted[victim] = ids[victim]
        except Exception as e:  # noqa: BLE001 - reported below
            problems.append(("exception", c, repr(e)))

    threads = [threading.Thread(target=client, args=(c,), daemon=True)
               for c in range(8)]
    t0 = time.monotonic()
    with Load(h.port, pick, CONNS, seconds=30) as load:
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
        t_api = time.monotonic() - t0
        load.stop()
    assert not any(t.is_alive() for t in threads), "API clients hang"
    info = load.summary()
    figure(f"API 8 clients: {len(created)} creates, {len(deleted)} deletes "
           f"in {t_api:.1f} s while {info}")
    assert not problems, problems
    assert len(created) == 8 * 12 and len(deleted) == 8 * 4
    assert all(r.status == 200 for r in load.results), Load.counts(load.results)
    assert len(set(created.values())) == len(created)  # distinct secrets
    # The final list: created minus deleted, nothing lost, nothing doubled.
    lr = h.get("/api/security/tokens", [admin])
    assert lr.status == 200
    mine = [t for t in lr.json() if t["name"].startswith(tag + "-")]
    assert sorted(t["name"] for t in mine) == sorted(set(created) - set(deleted))
    assert len({t["id"] for t in mine}) == len(mine)
    assert not set(deleted.values()) & {t["id"] for t in mine}
    # The database agrees: one row per name, distinct ids and digests, and
    # each digest is the SHA-256 of the secret the API handed out.
    rows = pg.sql(f"SELECT id, name, digest FROM sts_tokens WHERE name LIKE '{tag}-%'")
    assert len(rows) == len(mine)
    assert len({r[0] for r in rows}) == len({r[2] for r in rows}) == len(rows)
    assert {r[1]: r[2] for r in rows} == {
        n: hashlib.sha256(created[n].encode()).hexdigest() for n in
        set(created) - set(deleted)}
    # Deleted tokens are refused everywhere within 1 s; the rest still work.
    time.sleep(1.2)
    for name in list(deleted)[:8]:
        for _ in range(2):  # both child processes, likely
            assert h.get("/protected/", key(created[name])).status == 401, name
    for name in sorted(set(created) - set(deleted))[:8]:
        assert h.get("/protected/", key(created[name])).status == 200, name
    assert_healthy(h)


def test_zz_no_secret_in_logs(uncached, cached, bootstrap):
    """Every token used in this module (valid, unknown, API-created) and the
    bootstrap secret: in no error log (LogLevel info sts_token:trace8) and
    no access log of this module's instances."""
    assert SENT and len(INSTANCES) >= 2
    for h in INSTANCES:
        logs = h.error_log() + h.access_log()
        assert "[sts_token:" in logs
        for s in SENT + [str(bootstrap)]:
            assert s not in logs
