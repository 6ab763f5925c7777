"""The token table: revocation across hosts within 1 s, creation seen at
once, table answers equal to database answers, expiry on hits, unknown
digests refused without the database, the full re-read catching changes that
bypassed the change log, STSTokenCacheTTL 0, STSTokenCacheEntries, and
behaviour with PostgreSQL down (fail closed).

Two httpd instances on one PostgreSQL stand for two hosts. Where a test must
know which process answered, the instance runs a single process
(ONE_PROCESS) and the module's trace log tells a table hit from a lookup.
"""

import http.client
import json
import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import MINT, ONE_PROCESS

SENT = []  # every secret used here, for the no-secret-in-logs check
STARTED = []  # every instance started here


@pytest.fixture(scope="module")
def start(httpd_factory):
    """httpd_factory, remembering the instances for the last test."""
    def factory(*args, **kwargs):
        h = httpd_factory(*args, **kwargs)
        STARTED.append(h)
        return h
    return factory


def key(tok):
    SENT.append(tok.token if hasattr(tok, "token") else tok)
    return {"X-API-Key": tok.token if hasattr(tok, "token") else tok}


def env_of(resp):
    return dict(line.split("=", 1) for line in resp.text.splitlines()
                if "=" in line)


def unminted():
    """A fresh well-formed token and its digest, not in the database."""
    tok, digest = subprocess.run([MINT], check=True, capture_output=True,
                                 text=True).stdout.split()
    SENT.append(tok)
    return tok, digest


def insert(pg, digest, name, id_):
    pg.sql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
           f"({id_}, '{name}', '{digest}', ARRAY['reader'])")


def until_table_hit(h, tok, timeout=5):
    """Requests tok until the table (loaded and trusted) answers it."""
    deadline = time.time() + timeout
    while True:
        mark = h.log_mark()
        assert h.get("/protected/", key(tok)).status == 200
        if "token table hit" in h.error_log()[mark:]:
            return
        assert time.time() < deadline, "the table never answered"
        time.sleep(0.05)


def watch_refusal(hosts, token, since, window=2.0):
    """Requests the token on every host (new connection each time, so every
    process is reached) until `window` s after `since`. Returns the elapsed
    times of the first 401 and of the last 200."""
    first_401, last_200 = None, None
    while time.time() < since + window:
        for h in hosts:
            t_sent = time.time() - since
            st = h.get("/protected/", {"X-API-Key": token}).status
            assert st in (200, 401), st
            if st == 401 and first_401 is None:
                first_401 = t_sent
            if st == 200:
                last_200 = t_sent
        time.sleep(0.01)
    return first_401, last_200


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_sql_delete_refused_by_other_host_within_1s(start, pg, mpm):
    a = start(mpm=mpm)
    b = start(mpm=mpm)
    t = pg.mint("revoked-by-sql", ["ops"])
    for _ in range(10):  # cached in every process of both hosts
        for h in (a, b):
            assert h.get("/protected/", key(t)).status == 200
    pg.sql(f"DELETE FROM sts_tokens WHERE id = {t.id}")
    since = time.time()  # the DELETE has committed
    first_401, last_200 = watch_refusal([b, a], t.token, since)
    assert first_401 is not None, "never refused"
    assert last_200 is None or last_200 < 1.0, \
        f"still accepted {last_200:.3f} s after the delete"


def test_api_delete_at_once_here_within_1s_elsewhere(start, pg,
                                                     bootstrap):
    a = start()
    b = start()
    admin = {"X-API-Key": bootstrap, "Content-Type": "application/json"}
    r = a.request("POST", "/api/security/tokens", admin,
                  json.dumps({"name": "via-api", "roles": ["ops"]}).encode())
    assert r.status == 200, r
    token = r.json()["token"]
    SENT.append(token)
    # Created on one host: accepted at once on both.
    assert b.get("/protected/", {"X-API-Key": token}).status == 200
    assert a.get("/protected/", {"X-API-Key": token}).status == 200
    tid = next(int(row[0]) for row in
               pg.sql("SELECT id FROM sts_tokens WHERE name = 'via-api'"))
    for _ in range(10):
        for h in (a, b):
            assert h.get("/protected/", {"X-API-Key": token}).status == 200
    # DELETE then GET on one keep-alive connection: the same process.
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    try:
        conn.request("GET", "/protected/", headers={"X-API-Key": token})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        conn.request("DELETE", f"/api/security/tokens/{tid}", headers=admin)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 204
        since = time.time()
        conn.request("GET", "/protected/", headers={"X-API-Key": token})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401, "the deleting process still accepts it"
    finally:
        conn.close()
    first_401, last_200 = watch_refusal([b, a], token, since)
    assert first_401 is not None
    assert last_200 is None or last_200 < 1.0, last_200


def test_refused_digest_accepted_within_1s_once_created(start, pg):
    h = start(ONE_PROCESS)
    tok, digest = unminted()
    for _ in range(3):  # unknown: the answer is cached as unknown
        assert h.get("/protected/", key(tok)).status == 401
    insert(pg, digest, "late", secrets.randbelow(2**53 - 2) + 1)
    since = time.time()
    deadline = since + 1.0
    while h.get("/protected/", key(tok)).status != 200:
        assert time.time() < deadline, "a created token still refused after 1 s"
        time.sleep(0.02)


def test_hit_sets_every_variable_a_lookup_sets(start, pg):
    """The table's answer publishes exactly what a database lookup does
    (the lookup: an instance with STSTokenCacheTTL 0)."""
    h = start(ONE_PROCESS)
    db_only = start(ONE_PROCESS + "STSTokenCacheTTL 0\n")
    t = pg.mint("env-check", ["ops", "reader"], expiration_ms=4102444800000)
    looked_up = db_only.get("/cgi-bin/env.cgi", key(t))
    deadline = time.time() + 2
    while True:  # until the change read brought it into the table
        mark = h.log_mark()
        hit = h.get("/cgi-bin/env.cgi", key(t))
        if "token table hit" in h.error_log()[mark:]:
            break
        assert time.time() < deadline, "never answered from the table"
        time.sleep(0.05)
    assert looked_up.status == hit.status == 200
    e_miss, e_hit = env_of(looked_up), env_of(hit)
    wanted = ["STS_TOKEN_ID", "STS_TOKEN_NAME", "STS_TOKEN_ROLES",
              "STS_TOKEN_EXPIRATION", "REMOTE_USER", "AUTH_TYPE"]
    assert {k: e_miss.get(k) for k in wanted} == \
        {k: e_hit.get(k) for k in wanted}
    assert e_hit["STS_TOKEN_ID"] == str(t.id)
    assert e_hit["STS_TOKEN_ROLES"] == "ops,reader"
    assert e_hit["STS_TOKEN_EXPIRATION"] == "2100-01-01"
    assert e_hit["REMOTE_USER"] == "env-check"
    assert e_hit["AUTH_TYPE"] == "ServiceToken"


def test_expiry_checked_on_a_table_hit(start, pg):
    h = start(ONE_PROCESS)
    exp_ms = int(time.time() * 1000) + 1500
    t = pg.mint("expiring-cached", ["ops"], expiration_ms=exp_ms)
    assert h.get("/protected/", key(t)).status == 200
    time.sleep(max(0.0, exp_ms / 1000 - time.time()) + 0.1)
    # The table still holds it (expired tokens stay in sts_tokens): the
    # hit must refuse.
    mark = h.log_mark()
    r = h.get("/protected/", key(t))
    assert r.status == 401, r
    log = h.wait_for_log("token expired")[mark:]
    assert "token table hit" in log


def test_unknown_digests_refused_without_the_database(start, pg):
    """A flood of unique well-formed tokens: apart from a burst of 20 and
    20/s (looked up, in case a token was created a moment ago on another
    host) every one is refused by the table alone."""
    h = start(ONE_PROCESS)
    toks = subprocess.run([MINT, "-n", "200"], check=True, capture_output=True,
                          text=True).stdout.split()[0::2]
    SENT.extend(toks)
    until_table_hit(h, pg.mint("flood-witness", ["ops"]))
    mark = h.log_mark()
    t0 = time.time()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda t: h.get("/protected/", key(t)).status,
                              toks))
    elapsed = time.time() - t0
    assert set(codes) == {401}
    log = h.wait_for_log("unknown digest")[mark:]
    looked_up = len(toks) - log.count("token table: unknown digest")
    assert looked_up <= 20 + 20 * elapsed + 1, (looked_up, elapsed)


def test_created_token_works_at_once_on_every_host(start, pg, bootstrap):
    """Created through one host's API: at once there, and at once on the
    other host (its unknown digest is looked up) unless unknown digests
    arrive faster than the lookups allowed for them."""
    a = start(ONE_PROCESS)
    b = start(ONE_PROCESS)
    admin = {"X-API-Key": bootstrap, "Content-Type": "application/json"}
    for h in (a, b):  # tables loaded
        assert h.get("/protected/", {"X-API-Key": bootstrap}).status in (200,
                                                                         403)
    r = a.request("POST", "/api/security/tokens", admin,
                  json.dumps({"name": "at-once", "roles": ["ops"]}).encode())
    assert r.status == 200, r
    token = r.json()["token"]
    SENT.append(token)
    mark = a.log_mark()
    assert a.get("/protected/", {"X-API-Key": token}).status == 200
    assert "token table hit" in a.wait_for_log("token table hit")[mark:]
    assert b.get("/protected/", {"X-API-Key": token}).status == 200


def test_database_down_fails_closed_after_the_trust_window(start, pg):
    """PostgreSQL down: the table answers for at most a second after its
    last successful change read, then every token is 503 (fail closed),
    and service resumes with the database."""
    h = start(ONE_PROCESS)
    t = pg.mint("through-outage", ["ops"])
    deadline = time.time() + 2
    while True:
        mark = h.log_mark()
        assert h.get("/protected/", key(t)).status == 200
        if "token table hit" in h.error_log()[mark:]:
            break
        assert time.time() < deadline
        time.sleep(0.05)
    pg.stop()
    stopped = time.time()
    try:
        while h.get("/protected/", key(t)).status == 200:
            assert time.time() < stopped + 1.5, "the table outlived 1 s"
            time.sleep(0.05)
        assert h.get("/protected/", key(t)).status == 503
        never_seen, _ = unminted()
        assert h.get("/protected/", key(never_seen)).status == 503
        h.wait_for_log("cannot read the token changes")
    finally:
        pg.start()
    deadline = time.time() + 5
    while h.get("/protected/", key(t)).status != 200:
        assert time.time() < deadline, "no recovery after PostgreSQL came back"
        time.sleep(0.1)
    h.wait_for_log("token changes readable again")


def test_tokens_in_use_are_never_looked_up_again(start, pg):
    """A token in steady use is answered by the table, however long."""
    h = start(ONE_PROCESS + "STSTokenCacheTTL 2\n")
    t = pg.mint("in-steady-use", ["ops"])
    until_table_hit(h, t)
    mark = h.log_mark()
    n, end = 0, time.time() + 5
    while time.time() < end:
        assert h.get("/protected/", key(t)).status == 200
        n += 1
        time.sleep(0.05)
    log = h.wait_for_log("token table hit")[mark:]
    assert log.count("token table hit\n") >= n, "a request was looked up"


def test_delete_bypassing_the_trigger_refused_within_ttl(start, pg):
    """A DELETE that does not fire the change log's trigger (as on a logical
    replica) is caught by the periodic full read (STSTokenCacheTTL), with a
    warning."""
    ttl = 2
    h = start(ONE_PROCESS + f"STSTokenCacheTTL {ttl}\n")
    t = pg.mint("deleted-behind-our-back", ["ops"])
    keep = pg.mint("kept", ["ops"])
    until_table_hit(h, t)
    until_table_hit(h, keep)
    rev = pg.sql("SELECT revision FROM sts_token_revision")
    pg.sql("SET session_replication_role = replica; "
           f"DELETE FROM sts_tokens WHERE id = {t.id}")
    since = time.time()
    assert pg.sql("SELECT revision FROM sts_token_revision") == rev
    while h.get("/protected/", key(t)).status == 200:
        assert time.time() < since + ttl + 1, "still accepted after the TTL"
        assert h.get("/protected/", key(keep)).status == 200
        time.sleep(0.05)
    assert h.get("/protected/", key(t)).status == 401
    assert h.get("/protected/", key(keep)).status == 200
    h.wait_for_log("without the change being recorded")


def test_ttl0_disables_the_cache(start, pg):
    h = start(ONE_PROCESS + "STSTokenCacheTTL 0\n")
    t = pg.mint("uncached", ["ops"])
    for _ in range(3):
        assert h.get("/protected/", key(t)).status == 200
    assert "token table" not in h.error_log()
    pg.stop()
    try:
        assert h.get("/protected/", key(t)).status == 503
    finally:
        pg.start()
    deadline = time.time() + 5
    while h.get("/protected/", key(t)).status != 200:
        assert time.time() < deadline
        time.sleep(0.1)


def test_database_over_the_bound_is_looked_up_and_stays_correct(start, pg):
    """More tokens than STSTokenCacheEntries: no table (memory bound), every
    token looked up, answers still right, and the log says why."""
    h = start(ONE_PROCESS + "STSTokenCacheEntries 1\n")
    toks = [pg.mint(f"evict-{i}", ["ops"]) for i in range(20)]
    for t in toks:
        assert h.get("/protected/", key(t)).status == 200
    gone = toks[::2]
    ids = ",".join(str(t.id) for t in gone)
    pg.sql(f"DELETE FROM sts_tokens WHERE id IN ({ids})")
    for i, t in enumerate(toks):
        assert h.get("/protected/", key(t)).status == (401 if i % 2 == 0
                                                       else 200), t
    assert "holds more than STSTokenCacheEntries (1) tokens" in h.error_log()
    assert "token table hit" not in h.error_log()


def test_zz_no_secret_in_logs(start):
    """No token used in this module reached any error or access log."""
    assert SENT and STARTED
    for inst in STARTED:
        logs = inst.error_log() + inst.access_log()
        for s in SENT:
            assert s not in logs
