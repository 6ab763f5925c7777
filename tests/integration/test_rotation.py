"""Rotation with overlap (issue 17, part 3): POST
.../security/tokens/{id}/rotate and `sts service-token rotate` issue a new
secret for the same token; the old secret keeps working until the new one
is first used (on any host) or the grace period ends, whichever comes
first, then it is refused within the revocation bound (1 s); rotating twice
leaves at most one old secret alive; STSTokenRotateGrace and
STSTokenRotateGraceMax; audit log; no secret in any log.

Two httpd instances on one PostgreSQL stand for two hosts."""

import http.client
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import openapi_check as oa
from conftest import ONE_PROCESS, ROOT, Httpd

STS = os.environ.get("STS_CLI", os.path.join(ROOT, "bin", "sts"))

EXTRA = """
# Another API location with its own grace period bounds.
<Location "/api-short">
    AuthType ServiceToken
    AuthName "sts-api"
    Require sts-role stackstate-admin
    SetHandler sts-token-api
    STSTokenAPIBase
    STSTokenRotateGrace 5
    STSTokenRotateGraceMax 10
</Location>
# A maximum below the default that applies: refused when used.
<Location "/api-mis">
    AuthType ServiceToken
    AuthName "sts-api"
    Require sts-role stackstate-admin
    SetHandler sts-token-api
    STSTokenAPIBase
    STSTokenRotateGraceMax 10
</Location>
<Location "/api-mis/security">
    STSTokenRotateGrace 60
</Location>
# A caller that may grant only 'reader'.
<Location "/api-readers">
    AuthType ServiceToken
    AuthName "sts-api"
    Require sts-role stackstate-admin
    SetHandler sts-token-api
    STSTokenAPIBase
    STSTokenAPIGrantableRoles reader
</Location>
"""

SENT = []  # every secret seen here, for the no-secret-in-logs check
STARTED = []


@pytest.fixture(scope="module")
def start(httpd_factory):
    def factory(extra="", **kwargs):
        h = httpd_factory(EXTRA + extra, **kwargs)
        STARTED.append(h)
        return h
    return factory


@pytest.fixture(scope="module")
def hosts(start):
    return start(), start()


def admin(bootstrap, json_body=True):
    h = {"X-API-Key": bootstrap}
    if json_body:
        h["Content-Type"] = "application/json"
    return h


def create(h, bootstrap, name, roles=("ops",), expiry=None):
    body = {"name": name, "roles": list(roles)}
    if expiry is not None:
        body["expiryDate"] = expiry
    r = h.request("POST", "/api/security/tokens", admin(bootstrap),
                  json.dumps(body).encode())
    assert r.status == 200, r
    SENT.append(r.json()["token"])
    return r.json()["token"]


def token_id(pg, name):
    return int(pg.sql(f"SELECT id FROM sts_tokens WHERE name = '{name}'")[0][0])


def rotate(h, bootstrap, tid, body=None, base="/api"):
    data = json.dumps(body).encode() if body is not None else None
    r = h.request("POST", f"{base}/security/tokens/{tid}/rotate",
                  admin(bootstrap, data is not None), data)
    if r.status == 200:
        SENT.append(r.json()["token"])
    return r


def status(h, token):
    return h.get("/protected/", {"X-API-Key": token}).status


def watch(hosts, token, since, window):
    """Requests token on every host (a new connection each time, so every
    process is reached) until `window` s after `since`: the elapsed times
    of the first 401 and of the last 200."""
    first_401, last_200 = None, None
    while time.time() < since + window:
        for h in hosts:
            t_sent = time.time() - since
            st = status(h, token)
            assert st in (200, 401), st
            if st == 401 and first_401 is None:
                first_401 = t_sent
            if st == 200:
                last_200 = t_sent
        time.sleep(0.01)
    return first_401, last_200


def both_work(hosts, *tokens, seconds=0.0):
    """Every token is accepted on every host, for at least `seconds`."""
    end = time.time() + seconds
    while True:
        for h in hosts:
            for t in tokens:
                assert status(h, t) == 200
        if time.time() >= end:
            return
        time.sleep(0.05)


def previous(pg, tid):
    return pg.sql("SELECT previous_digest IS NOT NULL, COALESCE(previous_until"
                  " - (extract(epoch FROM now()) * 1000)::bigint, 0) FROM "
                  f"sts_tokens WHERE id = {tid}")[0]


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_first_use_of_the_new_secret_ends_the_old_on_every_host(
        start, pg, bootstrap, mpm):
    a, b = start(mpm=mpm), start(mpm=mpm)
    old = create(a, bootstrap, f"rot-first-{mpm}")
    tid = token_id(pg, f"rot-first-{mpm}")
    both_work((a, b), old)  # in both hosts' tables
    r = rotate(a, bootstrap, tid, {"gracePeriodSeconds": 600})
    assert r.status == 200, r
    new = r.json()["token"]
    assert new != old and r.json()["name"] == f"rot-first-{mpm}"
    # Overlap: both secrets work on both hosts, also once the rotation has
    # reached the other host's table through the change log.
    both_work((a, b), old, seconds=1.5)
    assert previous(pg, tid)[0] == "t"
    # The first use of the new secret, on the other host, ends the old one.
    assert status(b, new) == 200
    since = time.time()
    first_401, last_200 = watch((a, b), old, since, 2.0)
    assert first_401 is not None, "the old secret was never refused"
    assert last_200 is None or last_200 < 1.0, \
        f"old secret still accepted {last_200:.3f} s after the new one's use"
    assert previous(pg, tid)[0] == "f"
    both_work((a, b), new)
    assert "its new secret was used, its previous secret is retired" in \
        b.error_log() + a.error_log()


# Five processes that stay (prefork): first uses reach several of them.
PREFORK5 = """
StartServers 5
MinSpareServers 5
MaxSpareServers 10
"""

# Counts the statements that call sts_token_retire_previous, whether they
# change a row or not (a statement trigger fires for none too).
COUNT_RETIRES = """
CREATE TABLE test_retire_calls (at timestamptz DEFAULT now());
CREATE FUNCTION test_retire_count() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
BEGIN
    IF current_query() LIKE '%sts_token_retire_previous%' THEN
        INSERT INTO test_retire_calls DEFAULT VALUES;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_retire_count AFTER UPDATE ON sts_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION test_retire_count();
"""
UNCOUNT_RETIRES = """
DROP TRIGGER IF EXISTS test_retire_count ON sts_tokens;
DROP FUNCTION IF EXISTS test_retire_count();
DROP TABLE IF EXISTS test_retire_calls;
"""


def test_one_request_per_host_retires(start, pg, bootstrap):
    """First uses of the new secret at once on the processes of one host
    (prefork, five processes sharing the token table) call the database's
    retire once: the shared table's flag is taken by one request (with a
    table per process, each process called it)."""
    h = start(PREFORK5, mpm="prefork")
    old = create(h, bootstrap, "rot-once-per-host")
    tid = token_id(pg, "rot-once-per-host")
    pg.psql(UNCOUNT_RETIRES + COUNT_RETIRES)
    try:
        r = rotate(h, bootstrap, tid, {"gracePeriodSeconds": 600})
        assert r.status == 200, r
        new = r.json()["token"]
        both_work((h,), old, seconds=1.0)  # the rotation in the change log
        with ThreadPoolExecutor(10) as ex:
            got = list(ex.map(lambda _: status(h, new), range(40)))
        assert got == [200] * 40
        assert previous(pg, tid)[0] == "f"
        calls = int(pg.sql("SELECT count(*) FROM test_retire_calls")[0][0])
        assert calls == 1, f"{calls} retire calls from one host"
    finally:
        pg.psql(UNCOUNT_RETIRES)


def test_grace_period_end_refuses_the_old_secret_unused_new(hosts, pg,
                                                            bootstrap):
    a, b = hosts
    old = create(a, bootstrap, "rot-grace")
    tid = token_id(pg, "rot-grace")
    both_work((a, b), old)
    since = time.time()
    r = rotate(a, bootstrap, tid, {"gracePeriodSeconds": 2})
    assert r.status == 200, r
    new = r.json()["token"]
    sent = time.time() - since
    first_401, last_200 = watch((a, b), old, since, 3.5)
    assert last_200 is not None and last_200 > 1.0, "overlap too short"
    assert last_200 < sent + 2.0, \
        f"old secret accepted {last_200:.3f} s after the rotation started"
    assert first_401 is not None and first_401 < sent + 2.3
    # Nobody used the new secret: the grace period alone ended the old one.
    assert previous(pg, tid)[0] == "t"
    r = a.get("/protected/", {"X-API-Key": old})
    assert r.status == 401
    assert "replaced by a rotation" in r.header("WWW-Authenticate")
    both_work((a, b), new)


def test_rotating_twice_ends_the_first_secret_at_once(hosts, pg, bootstrap):
    a, b = hosts
    s0 = create(a, bootstrap, "rot-twice")
    tid = token_id(pg, "rot-twice")
    both_work((a, b), s0)
    r = rotate(a, bootstrap, tid, {"gracePeriodSeconds": 600})
    s1 = r.json()["token"]
    both_work((a, b), s0, seconds=1.2)
    # Rotate again and use s0 on the same connection: the same process.
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    try:
        conn.request("POST", f"/api/security/tokens/{tid}/rotate",
                     body=json.dumps({"gracePeriodSeconds": 600}),
                     headers=admin(bootstrap))
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200, body
        s2 = body["token"]
        SENT.append(s2)
        since = time.time()
        conn.request("GET", "/protected/", headers={"X-API-Key": s0})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401, "the rotating process still accepts s0"
    finally:
        conn.close()
    first_401, last_200 = watch((b, a), s0, since, 1.5)
    assert last_200 is None or last_200 < 1.0, last_200
    # s1 (the one just replaced) and s2 work; s2's first use ends s1.
    both_work((a, b), s1, seconds=1.2)
    assert status(a, s2) == 200
    since = time.time()
    first_401, last_200 = watch((a, b), s1, since, 1.5)
    assert first_401 is not None
    assert last_200 is None or last_200 < 1.0, last_200
    assert "the secret before it was revoked" in a.error_log()


def test_a_failed_retire_leaves_the_request_alone_and_is_tried_again(
        start, pg, bootstrap):
    h = start(ONE_PROCESS)
    old = create(h, bootstrap, "rot-retire-fails")
    tid = token_id(pg, "rot-retire-fails")
    new = rotate(h, bootstrap, tid, {"gracePeriodSeconds": 600}).json()["token"]
    pg.psql("REVOKE EXECUTE ON FUNCTION sts_token_retire_previous(bigint, "
            "text) FROM sts_lookup")
    try:
        mark = h.log_mark()
        assert status(h, new) == 200  # the retire failed, not the request
        h.wait_for_log("could not retire the previous secret of token id "
                       f"{tid} name 'rot-retire-fails'")
        assert "permission denied" in h.error_log_since(mark)
        both_work((h,), old, new, seconds=1.2)
        assert previous(pg, tid)[0] == "t"
    finally:
        pg.psql("GRANT EXECUTE ON FUNCTION sts_token_retire_previous(bigint, "
                "text) TO sts_lookup")
    # The next use retires it.
    assert status(h, new) == 200
    since = time.time()
    first_401, last_200 = watch((h,), old, since, 1.0)
    assert last_200 is None and first_401 is not None
    assert previous(pg, tid)[0] == "f"


def test_without_a_token_table(start, pg, bootstrap):
    """STSTokenCacheTTL 0: every request is looked up; the same rules."""
    h = start("STSTokenCacheTTL 0\n")
    old = create(h, bootstrap, "rot-ttl0")
    tid = token_id(pg, "rot-ttl0")
    new = rotate(h, bootstrap, tid, {"gracePeriodSeconds": 600}).json()["token"]
    both_work((h,), old)
    assert status(h, new) == 200
    assert status(h, old) == 401
    assert status(h, new) == 200


def test_response_body_defaults_and_expiration(hosts, pg, bootstrap):
    a, _ = hosts
    spec = oa.Spec()
    expiry = int(time.time() * 1000) + 30 * 86400 * 1000
    create(a, bootstrap, "rot-shape", roles=("ops", "reader"), expiry=expiry)
    tid = token_id(pg, "rot-shape")
    # No body: the default grace period (3600 s), expiration unchanged.
    r = rotate(a, bootstrap, tid)
    assert r.status == 200, r
    spec.check(r.json(), oa.TOKENS, "ServiceTokenCreatedResponse")
    assert r.json()["name"] == "rot-shape"
    assert r.json()["expiration"] == expiry
    assert r.header("Cache-Control") == "no-store"
    alive, left = previous(pg, tid)
    assert alive == "t" and 3590_000 < int(left) <= 3600_000, left
    # A new expiry; gracePeriodSeconds 0: the old secret ends at once.
    later = expiry + 86400 * 1000
    old = r.json()["token"]
    r = rotate(a, bootstrap, tid, {"gracePeriodSeconds": 0,
                                   "expiryDate": later})
    assert r.status == 200, r
    assert r.json()["expiration"] == later
    first_401, last_200 = watch(hosts, old, time.time(), 1.5)
    assert last_200 is None or last_200 < 1.0, last_200
    assert previous(pg, tid)[0] == "f"
    row = pg.sql(f"SELECT id, name, roles, expiration FROM sts_tokens WHERE "
                 f"id = {tid}")[0]
    assert row == (str(tid), "rot-shape", "{ops,reader}", str(later))
    listed = a.get("/api/security/tokens", admin(bootstrap)).json()
    assert [t["id"] for t in listed if t["name"] == "rot-shape"] == [tid]


def test_grace_bounds_from_the_directives(hosts, pg, bootstrap):
    a, _ = hosts
    create(a, bootstrap, "rot-bounds")
    tid = token_id(pg, "rot-bounds")
    r = rotate(a, bootstrap, tid, {"gracePeriodSeconds": 86401})
    assert r.status == 400
    msg = r.json()["errors"][0]["message"]
    assert "'gracePeriodSeconds' 86401" in msg and "86400" in msg and \
        "STSTokenRotateGraceMax" in msg, msg
    r = rotate(a, bootstrap, tid, body=None, base="/api-short")
    assert r.status == 200, r
    assert 3000 < int(previous(pg, tid)[1]) <= 5000
    r = rotate(a, bootstrap, tid, {"gracePeriodSeconds": 11},
               base="/api-short")
    assert r.status == 400 and "at most 10" in r.json()["errors"][0]["message"]
    assert rotate(a, bootstrap, tid, {"gracePeriodSeconds": 10},
                  base="/api-short").status == 200
    # A default above the maximum where the request is served.
    r = rotate(a, bootstrap, tid, base="/api-mis")
    assert r.status == 500
    assert "STSTokenRotateGrace 60 is more than STSTokenRotateGraceMax 10" \
        in r.json()["errors"][0]["message"]


def test_refusals(hosts, pg, bootstrap):
    a, _ = hosts
    spec = oa.Spec()
    create(a, bootstrap, "rot-refusals")
    tid = token_id(pg, "rot-refusals")
    r = rotate(a, bootstrap, 4242424242)
    assert r.status == 404
    spec.check(r.json(), oa.ERRORS, "GenericErrorsResponse")
    assert "no service token with id 4242424242" in \
        r.json()["errors"][0]["message"]
    assert rotate(a, bootstrap, "12x").status == 400
    r = a.get(f"/api/security/tokens/{tid}/rotate", admin(bootstrap))
    assert r.status == 405 and r.header("Allow") == "POST"
    for body, text in (({"gracePeriodSeconds": -1}, "from 0 to 86400"),
                       ({"gracePeriodSeconds": "60"}, "whole number"),
                       ({"grace": 5}, "unknown field 'grace'"),
                       ([], "must be a JSON object")):
        r = rotate(a, bootstrap, tid, body)
        assert r.status == 400 and text in r.json()["errors"][0]["message"], r
    r = rotate(a, bootstrap, tid, {"expiryDate": 1000})
    assert r.status == 400
    spec.check(r.json(), oa.TOKENS, "ServiceTokenInvalidExpiryError")
    r = a.request("POST", f"/api/security/tokens/{tid}/rotate",
                  {"X-API-Key": bootstrap, "Content-Type": "text/plain"},
                  b'{"gracePeriodSeconds": 5}')
    assert r.status == 415
    r = a.request("POST", f"/api/security/tokens/{tid}/rotate",
                  admin(bootstrap), b" " * 1025)
    assert r.status == 413
    # Nothing above rotated the token.
    assert previous(pg, tid)[0] == "f"
    # A caller bounded to granting 'reader' may not mint an 'ops' secret.
    r = rotate(a, bootstrap, tid, {}, base="/api-readers")
    assert r.status == 403 and "may not grant role 'ops'" in \
        r.json()["errors"][0]["message"]
    assert previous(pg, tid)[0] == "f"
    # Unauthenticated: 401, nothing rotated.
    r = a.request("POST", f"/api/security/tokens/{tid}/rotate", {}, b"")
    assert r.status == 401
    assert previous(pg, tid)[0] == "f"


def test_audit_log(hosts, pg, bootstrap):
    a, _ = hosts
    create(a, bootstrap, "rot-audit")
    tid = token_id(pg, "rot-audit")
    mark = a.log_mark()
    assert rotate(a, bootstrap, tid, {"gracePeriodSeconds": 120}).status == 200
    log = a.error_log_since(mark)
    assert (f"rotated token id {tid} name 'rot-audit' roles [ops] "
            "expiration -1: previous secret valid for 120 s or until the new "
            "one is first used") in log, log


def test_cli_rotate(hosts, pg, bootstrap, tmp_path):
    a, b = hosts
    old = create(a, bootstrap, "rot-cli")
    tid = token_id(pg, "rot-cli")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "xdg")}

    def sts(*args):
        p = subprocess.run([STS, *args, "--url", a.url(""), "--service-token",
                            bootstrap], env=env, capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert str(bootstrap) not in p.stdout + p.stderr
        return p

    p = sts("service-token", "rotate", "--id", str(tid), "--grace-period",
            "300", "-o", "json")
    assert p.returncode == 0, p.stderr
    new = json.loads(p.stdout)["service-token"]["token"]
    SENT.append(new)
    assert 290_000 < int(previous(pg, tid)[1]) <= 300_000
    both_work((a, b), old)
    p = sts("service-token", "rotate", str(tid), "--expiration", "2099-01-02")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("✅ Service token rotated: ") or \
        "Service token rotated: " in p.stdout, p.stdout
    newer = p.stdout.strip().rsplit(" ", 1)[1]
    SENT.append(newer)
    # The one replaced works until newer is first used.
    assert status(a, new) == 200 and status(a, newer) == 200
    assert pg.sql(f"SELECT expiration FROM sts_tokens WHERE id = {tid}") == \
        [("4070995200000",)]
    p = sts("service-token", "rotate", "--id", "4242424242")
    assert p.returncode != 0 and "404" in p.stderr, p.stderr
    p = sts("service-token", "rotate", "--id", str(tid), "--grace-period",
            "999999")
    assert p.returncode != 0 and "STSTokenRotateGraceMax" in p.stderr
    p = sts("service-token", "rotate", "--id", str(tid), "--name", "x")
    assert p.returncode == 3 and "--name" in p.stderr


@pytest.mark.parametrize("lines,message", [
    ("STSTokenRotateGrace 100\nSTSTokenRotateGraceMax 50",
     "STSTokenRotateGrace 100 is more than STSTokenRotateGraceMax 50"),
    ("STSTokenRotateGraceMax 31536001",
     "STSTokenRotateGraceMax must be a whole number from 0 to 31536000"),
    ("STSTokenRotateGrace soon",
     "STSTokenRotateGrace must be a whole number from 0 to 31536000"),
])
def test_bad_directives_fail_configtest(pg, bootstrap, lines, message):
    conf = f'<Location "/x">\n{lines}\n</Location>\n'
    h = Httpd(pg, bootstrap.path, extra_conf=conf)
    rc, out = h.configtest()
    assert rc != 0 and message in out, out


def test_zz_no_secret_in_logs():
    assert SENT and STARTED
    for inst in STARTED:
        logs = inst.error_log() + inst.access_log()
        for s in SENT:
            assert s not in logs
