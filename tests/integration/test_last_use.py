"""Last use (issue 17): each token's last use and client address reach
sts_token_last_use in batches, at most one row write per token per minute
whatever the number of processes; GET /security/tokens shows them
(lastUsedTimestamp, lastUsedFrom; absent when never used) and `sts
service-token list` a LAST USED column. Requests never wait for, nor fail
because of, the writes."""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import ROOT

STS = os.environ.get("STS_CLI", os.path.join(ROOT, "bin", "sts"))
FLUSH_S = 5  # STS_LU_FLUSH_MS (src/last_use.h)

# The real client address behind a proxy: mod_remoteip sets
# r->useragent_ip from X-Forwarded-For sent by a trusted proxy (loopback).
REMOTEIP = """
LoadModule remoteip_module /usr/lib/apache2/modules/mod_remoteip.so
RemoteIPHeader X-Forwarded-For
RemoteIPInternalProxy 127.0.0.1
"""


@pytest.fixture(scope="module")
def srv(httpd_factory):
    return httpd_factory(REMOTEIP)


def listed(srv, bootstrap):
    r = srv.get("/api/security/tokens", {"X-API-Key": str(bootstrap)})
    assert r.status == 200, r
    return {t["id"]: t for t in r.json()}


def wait_recorded(srv, bootstrap, token_id, timeout=FLUSH_S + 5):
    """The token as listed once its use is recorded (bounded wait)."""
    deadline = time.time() + timeout
    while True:
        t = listed(srv, bootstrap)[token_id]
        if "lastUsedTimestamp" in t or time.time() > deadline:
            return t
        time.sleep(0.25)


def writes_counter(pg):
    """A row trigger (superuser, test only) counting the rows written to
    sts_token_last_use, per token: how many writes reached the table."""
    pg.sql("CREATE TABLE IF NOT EXISTS test_lu_writes (token_id bigint, "
           "at timestamptz DEFAULT clock_timestamp()); "
           "CREATE OR REPLACE FUNCTION test_lu_count() RETURNS trigger "
           "LANGUAGE plpgsql AS $$ BEGIN INSERT INTO test_lu_writes (token_id) "
           "VALUES (NEW.token_id); RETURN NULL; END $$; "
           "DROP TRIGGER IF EXISTS test_lu_count ON sts_token_last_use; "
           "CREATE TRIGGER test_lu_count AFTER INSERT OR UPDATE ON "
           "sts_token_last_use FOR EACH ROW EXECUTE FUNCTION test_lu_count()")

    def count(token_id):
        return int(pg.sql("SELECT count(*) FROM test_lu_writes WHERE "
                          f"token_id = {token_id}")[0][0])
    return count


def test_use_shows_time_and_real_client_address(srv, pg, bootstrap):
    used = pg.mint("lu-used", ["reader"])
    never = pg.mint("lu-never", ["reader"])
    before = int(time.time() * 1000)
    r = srv.get("/protected/", {"X-API-Key": used.token,
                                "X-Forwarded-For": "203.0.113.7"})
    assert r.status == 200, r
    after = int(time.time() * 1000)
    t0 = time.time()
    t = wait_recorded(srv, bootstrap, used.id)
    assert time.time() - t0 <= FLUSH_S + 4, "not recorded within the flush"
    assert before - 1000 <= t["lastUsedTimestamp"] <= after, (before, t, after)
    assert t["lastUsedFrom"] == "203.0.113.7"
    untouched = listed(srv, bootstrap)[never.id]
    assert "lastUsedTimestamp" not in untouched
    assert "lastUsedFrom" not in untouched
    # The bootstrap secret is no token: nothing recorded for it.
    assert pg.sql("SELECT count(*) FROM sts_token_last_use WHERE "
                  "token_id = 0") == [("0",)]


def test_refused_tokens_are_not_recorded(srv, pg, bootstrap):
    expired = pg.mint("lu-expired", ["reader"], expiration_ms=1000)
    assert srv.get("/protected/", {"X-API-Key": expired.token}).status == 401
    time.sleep(FLUSH_S + 1)
    assert "lastUsedTimestamp" not in listed(srv, bootstrap)[expired.id]


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_many_uses_in_a_minute_are_one_write(httpd_factory, pg, mpm):
    """Requests spread over three flushes, on every process (two event
    children, or prefork's several): one row write; each process sent the
    token once."""
    count = writes_counter(pg)
    h = httpd_factory(REMOTEIP, mpm=mpm)
    tok = pg.mint(f"lu-many-{mpm}", ["reader"])
    mark = h.log_mark()
    deadline = time.time() + 3 * FLUSH_S
    n = 0
    while time.time() < deadline and n < 400:
        r = h.get("/protected/", {"X-API-Key": tok.token,
                                  "X-Forwarded-For": f"198.51.100.{n % 200}"})
        assert r.status == 200, r
        n += 1
        time.sleep(0.03)
    time.sleep(FLUSH_S + 1)
    assert count(tok.id) == 1, (n, count(tok.id))
    log = h.error_log_since(mark)
    sent = [int(m) for m in re.findall(r"last use: sent (\d+) uses", log)]
    procs = len(set(re.findall(r"\[pid (\d+)(?::tid \d+)?\][^\n]*last use: "
                               r"sent", log)))
    print(f"\n{mpm}: {n} requests, {len(sent)} statements from {procs} "
          f"processes, {sum(sent)} uses sent, 1 row written")
    # Once per process in the minute (this token only was used here).
    assert sum(sent) == procs == len(sent), log[-3000:]


def test_ttl0_records_too(httpd_factory, pg, bootstrap):
    """STSTokenCacheTTL 0: no token table, every token looked up, and its
    uses are still recorded (by the same thread, started for them)."""
    h = httpd_factory(REMOTEIP + "STSTokenCacheTTL 0\n")
    tok = pg.mint("lu-ttl0", ["reader"])
    assert h.get("/protected/", {"X-API-Key": tok.token,
                                 "X-Forwarded-For": "2001:db8::5"}).status == 200
    t = wait_recorded(h, bootstrap, tok.id)
    assert t.get("lastUsedFrom") == "2001:db8::5", t


def test_database_down_during_flush(srv, pg, bootstrap):
    """Writes that fail (the function's grant revoked, then PostgreSQL
    stopped) are kept and tried again: the use arrives once the database
    takes it; meanwhile requests go on (tokens while the database is up,
    the bootstrap secret while it is down) and the log says it once per
    process, not every 5 s."""
    tok = pg.mint("lu-outage", ["reader"])
    time.sleep(0.5)  # the token table knows it
    mark = srv.log_mark()
    pg.sql("REVOKE EXECUTE ON FUNCTION sts_token_note_use(bigint[], "
           "bigint[], text[]) FROM sts_lookup")
    try:
        t0 = time.time()
        while time.time() - t0 < FLUSH_S + 1:
            r = srv.get("/protected/", {"X-API-Key": tok.token,
                                        "X-Forwarded-For": "192.0.2.9"})
            assert r.status == 200, r
            time.sleep(0.2)
        pg.stop()
        try:
            t0 = time.time()
            while time.time() - t0 < FLUSH_S + 1:
                r = srv.get("/protected/", {"X-API-Key": str(bootstrap)})
                assert r.status == 200, r
                time.sleep(0.2)
        finally:
            pg.start()
        log = srv.error_log_since(mark)
        assert "lastUsedTimestamp" not in listed(srv, bootstrap)[tok.id]
    finally:
        pg.sql("GRANT EXECUTE ON FUNCTION sts_token_note_use(bigint[], "
               "bigint[], text[]) TO sts_lookup")
    warned = log.count("cannot record when tokens were last used")
    assert 1 <= warned <= 2, log[-3000:]  # once per process at most
    assert log.count("sts_token_note_use failed") <= 2, log[-3000:]
    t = wait_recorded(srv, bootstrap, tok.id, timeout=2 * FLUSH_S + 5)
    assert t.get("lastUsedFrom") == "192.0.2.9", t
    srv.wait_for_log("last use of tokens recorded again", timeout=FLUSH_S + 5)


def test_deleting_a_token_deletes_its_row(srv, pg, bootstrap):
    tok = pg.mint("lu-deleted", ["reader"])
    assert srv.get("/protected/", {"X-API-Key": tok.token}).status == 200
    assert "lastUsedTimestamp" in wait_recorded(srv, bootstrap, tok.id)
    r = srv.request("DELETE", f"/api/security/tokens/{tok.id}",
                    {"X-API-Key": str(bootstrap)})
    assert r.status == 204, r  # as httpd's role: the cascade needs no grant
    assert pg.sql("SELECT count(*) FROM sts_token_last_use WHERE "
                  f"token_id = {tok.id}") == [("0",)]


def sts(home, *args):
    env = {"PATH": os.environ["PATH"], "HOME": home,
           "XDG_CONFIG_HOME": os.path.join(home, "xdg"), "NO_COLOR": "1",
           "TZ": "UTC"}
    p = subprocess.run([STS, *args], env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def test_sts_list_shows_last_used(srv, pg, bootstrap, tmp_path):
    used = pg.mint("lu-cli-used", ["reader"])
    never = pg.mint("lu-cli-never", ["reader"])
    assert srv.get("/protected/", {"X-API-Key": used.token}).status == 200
    t = wait_recorded(srv, bootstrap, used.id)
    home = str(tmp_path)
    rc, out, err = sts(home, "context", "save", "--name", "l", "--url",
                       srv.url(""), "--service-token", str(bootstrap))
    assert rc == 0, err
    rc, out, err = sts(home, "service-token", "list")
    assert rc == 0, err
    lines = out.splitlines()
    assert "LAST USED" in lines[0], out
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.split("|")]
        rows[cells[1]] = cells
    stamp = time.strftime("%Y-%m-%d %H:%M",
                          time.gmtime(t["lastUsedTimestamp"] / 1000))
    assert rows["lu-cli-used"][-1] == f"{stamp} from 127.0.0.1", out
    assert rows["lu-cli-never"][-1] == "never", out
    rc, out, err = sts(home, "service-token", "list", "-o", "json")
    assert rc == 0, err
    by_id = {x["id"]: x for x in json.loads(out)["service-tokens"]}
    assert by_id[used.id]["lastUsedTimestamp"] == t["lastUsedTimestamp"]
    assert by_id[used.id]["lastUsedFrom"] == "127.0.0.1"
    assert "lastUsedTimestamp" not in by_id[never.id]


def readme_pruning_query():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("### Last use: pruning unused tokens"):]
    m = re.search(r'psql -d sts -c "(.*?)"\n', section, re.S)
    assert m, "the README lost its pruning query"
    return m.group(1)


def test_readme_pruning_query(srv, pg, bootstrap):
    """The README's query lists tokens unused for 90 days, and tokens never
    used and older than that; not a token used since."""
    old_unused = pg.mint("lu-prune-old", ["reader"])
    old_used = pg.mint("lu-prune-used", ["reader"])
    young = pg.mint("lu-prune-young", ["reader"])
    pg.sql("UPDATE sts_tokens SET created_at = now() - interval '100 days' "
           f"WHERE id IN ({old_unused.id}, {old_used.id})")
    time.sleep(1)  # the table applies the update
    assert srv.get("/protected/", {"X-API-Key": old_used.token}).status == 200
    wait_recorded(srv, bootstrap, old_used.id)
    names = [row[1] for row in pg.sql(readme_pruning_query())]
    assert "lu-prune-old" in names
    assert "lu-prune-used" not in names and young.name not in names


def test_module_before_schema(httpd_factory, pg, bootstrap):
    """The module installed before the schema was applied (a database as
    before migration 5: schema.sql applied, then last use's objects
    dropped): tokens keep working, the list is refused (503) and the log
    says to apply the schema; once it is applied, without a restart, the
    use is recorded and the list works."""
    db = "sts_lu_old"
    pg.psql(f"DROP DATABASE IF EXISTS {db}", db="postgres")
    pg.psql(f"CREATE DATABASE {db}", db="postgres")
    schema = ["psql", "-h", pg.sock, "-p", str(pg.port), "-U", "postgres",
              "-d", db, "-qX", "-v", "ON_ERROR_STOP=1", "-f",
              os.path.join(ROOT, "sql", "schema.sql")]
    subprocess.run(schema, check=True, capture_output=True)
    pg.psql("DROP FUNCTION sts_token_note_use(bigint[], bigint[], text[]); "
            "DROP TABLE sts_token_last_use; "
            "DELETE FROM sts_schema_version WHERE version >= 5", db=db)
    tok = pg.mint("lu-old", ["reader"])  # in sts: copied into the old one
    pg.psql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
            f"({tok.id}, 'lu-old', '{tok.digest}', ARRAY['reader'])", db=db)
    h = httpd_factory(env={"STS_DBD_PARAMS": pg.dbd_params.replace(
        "dbname=sts ", f"dbname={db} ")})
    mark = h.log_mark()
    assert h.get("/protected/", {"X-API-Key": tok.token}).status == 200
    r = h.get("/api/security/tokens", {"X-API-Key": str(bootstrap)})
    assert r.status == 503, r
    h.wait_for_log("Apply sql/schema.sql (schema version 5)")
    time.sleep(FLUSH_S + 1)
    assert h.get("/protected/", {"X-API-Key": tok.token}).status == 200
    assert "cannot record when tokens were last used" in \
        h.error_log_since(mark)
    subprocess.run(schema, check=True, capture_output=True)
    t = wait_recorded(h, bootstrap, tok.id, timeout=2 * FLUSH_S + 5)
    assert "lastUsedTimestamp" in t, t
