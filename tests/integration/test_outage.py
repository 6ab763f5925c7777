"""A database outage: every refused request gets 503 with Retry-After, and
the error log says so once per process per interval with the number of
requests refused, not once per request (the log stays small however many
requests are refused); service resumes when the database is back."""

import concurrent.futures
import re
import secrets
import subprocess
import threading
import time

import pytest

from conftest import MINT, past_trust_window

REQUESTS = 400


def mint_many(pg, n, prefix):
    """n tokens inserted in one statement (mint -n prints token and digest)."""
    lines = subprocess.run([MINT, "-n", str(n)], check=True, capture_output=True,
                           text=True).stdout.split("\n")
    pairs = [ln.split() for ln in lines if ln.strip()]
    rows = ",".join(f"({secrets.randbelow(2**53 - 2) + 1}, '{prefix}-{i}', "
                    f"'{d}', ARRAY['reader'])" for i, (_, d) in enumerate(pairs))
    pg.sql(f"INSERT INTO sts_tokens (id, name, digest, roles) VALUES {rows}")
    return [t for t, _ in pairs]


@pytest.fixture(scope="module")
def srv(httpd_factory):
    return httpd_factory(loglevel="info")


def test_outage_is_503_with_retry_after_and_a_quiet_log(srv, pg, bootstrap):
    tokens = mint_many(pg, REQUESTS, "outage")
    later = pg.mint("outage-after", ["reader"]).token
    mark = srv.log_mark()
    pg.stop()
    try:
        past_trust_window()
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            answers = list(ex.map(
                lambda tok: srv.get("/protected/", {"X-API-Key": tok}), tokens))
        elapsed = time.time() - t0
        api = srv.get("/api/security/tokens", {"X-API-Key": bootstrap})
        time.sleep(0.5)
        log = srv.error_log_since(mark)
    finally:
        pg.start()
    print(f"\n{REQUESTS} requests refused in {elapsed:.1f} s: {len(log)} bytes of "
          f"error log ({len(log) / REQUESTS:.0f} bytes per request)")
    for a in answers + [api]:
        assert a.status == 503, a
        assert a.header("Retry-After", "").isdigit(), a.headers
    # Two processes: a few lines each (mod_dbd's message and ours at the
    # start, at most one attempt a second), not one or two per request.
    assert len(log) < 8 * 1024, log[-3000:]
    assert log.count("database unavailable: mod_dbd could not open") <= 2, log

    # Back: a token never seen before is accepted again, without a restart
    # (within the retry interval), and each process says how many requests
    # it refused: every one of them, counted once.
    seen_503 = len(answers) + 1
    lock = threading.Lock()

    def get_later():
        nonlocal seen_503
        status = srv.get("/protected/", {"X-API-Key": later}).status
        with lock:
            seen_503 += status == 503
        return status

    deadline = time.time() + 10
    while get_later() != 200:
        assert time.time() < deadline, srv.error_log_since(mark)[-3000:]
        time.sleep(0.2)
    pattern = re.compile(r"the database is available again after [0-9.]+ s; "
                         r"(\d+) requests of this process were refused")
    # A process notices on its next request (or revision poll, which
    # requests drive): concurrent requests reach both.
    deadline = time.time() + 10
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        while len(pattern.findall(srv.error_log_since(mark))) < 2:
            assert time.time() < deadline, srv.error_log_since(mark)[-3000:]
            list(ex.map(lambda _: get_later(), range(16)))
            time.sleep(0.2)
    refused = sum(int(n) for n in pattern.findall(srv.error_log_since(mark)))
    assert refused == seen_503
