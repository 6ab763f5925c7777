"""The database lookup of a digest (every request under STSTokenCacheTTL 0,
a digest the token table cannot answer otherwise): one index probe of
sts_tokens by its current digest returning one column computed when the
token is written (sts_tokens.authn, schema version 7); only a digest that
is no token's current one is then looked up among the previous digests
rotations left alive (sts_token_digests). A module installed before
schema version 7 refuses tokens (503), says to apply the schema, and
works once it is applied, without a restart."""

import datetime
import os
import subprocess
import time

from conftest import MINT, ONE_PROCESS, ROOT, SCHEMA_NEWEST

SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
V6 = os.path.join(os.path.dirname(__file__), "data", "schema-v6.sql")


def new_db(pg, name, schema):
    pg.psql(f"DROP DATABASE IF EXISTS {name}", db="postgres")
    pg.psql(f"CREATE DATABASE {name}", db="postgres")
    apply_schema(pg, name, schema)


def apply_schema(pg, db, schema=SCHEMA):
    subprocess.run(["psql", "-h", pg.sock, "-p", str(pg.port), "-U",
                    "postgres", "-d", db, "-qX", "-v", "ON_ERROR_STOP=1",
                    "-f", schema], check=True, capture_output=True,
                   timeout=60)


def secret():
    """A fresh (token, digest) pair, stored nowhere."""
    return subprocess.run([MINT], check=True, capture_output=True,
                          text=True).stdout.split()


def insert(pg, db, id_, name, digest, roles, expiration="NULL"):
    pg.psql("INSERT INTO sts_tokens (id, name, digest, roles, expiration) "
            f"VALUES ({id_}, '{name}', '{digest}', ARRAY{list(roles)}, "
            f"{expiration})", db=db)


def on_db(httpd_factory, pg, db, conf="STSTokenCacheTTL 0\n"):
    return httpd_factory(conf, env={"STS_DBD_PARAMS": pg.dbd_params.replace(
        "dbname=sts ", f"dbname={db} ")})


def env_of(resp):
    return dict(line.split("=", 1) for line in resp.text.splitlines()
                if "=" in line)


def test_lookup_column_follows_every_write(pg):
    """sts_tokens.authn is computed by every insert and update, SQL ones
    too (a rename, new roles, an expiration, a rotation, a retire)."""
    db = "sts_authn"
    new_db(pg, db, SCHEMA)
    d, e = "d" * 64, "e" * 64
    insert(pg, db, 7, "seven", d, ["a", "b.c"], 99)
    assert pg.psql("SELECT authn FROM sts_tokens", db=db) == \
        "7\t99\t-1\ta,b.c\tseven\n"
    pg.psql("UPDATE sts_tokens SET name = 'renamed one', roles = ARRAY['x'], "
            "expiration = NULL", db=db)
    assert pg.psql("SELECT authn FROM sts_tokens", db=db) == \
        "7\t-1\t-1\tx\trenamed one\n"
    pg.psql(f"SELECT * FROM sts_token_rotate(7, '{e}', 60000, NULL)", db=db)
    until = pg.psql("SELECT previous_until FROM sts_tokens", db=db).strip()
    assert pg.psql("SELECT digest, authn, until FROM sts_token_digests "
                   "ORDER BY 1", db=db) == (
        f"{d}\t7\t-1\t{until}\tx\trenamed one\t{until}\n"
        f"{e}\t7\t-1\t{until}\tx\trenamed one\t-1\n")
    pg.psql(f"SELECT sts_token_retire_previous(7, '{e}')", db=db)
    assert pg.psql("SELECT authn FROM sts_tokens", db=db) == \
        "7\t-1\t-1\tx\trenamed one\n"


def test_lookup_and_table_give_the_same_identity(httpd_factory, pg):
    """What a request sees of a token (name with spaces and non-ASCII,
    roles with every allowed character, an expiration) is the same read
    from the database on every request (TTL 0) as from the token table."""
    db = "sts_lookup_identity"
    new_db(pg, db, SCHEMA)
    tok, digest = secret()
    ms = int(datetime.datetime(2099, 1, 15, tzinfo=datetime.timezone.utc)
             .timestamp() * 1000)
    insert(pg, db, 9007199254740991, "ci bot \u2713 #1", digest,
           ["a.b", "c:d@e-f_9"], ms)
    seen = []
    for conf in ("STSTokenCacheTTL 0\n", ""):
        h = on_db(httpd_factory, pg, db, conf)
        deadline = time.time() + 5
        while True:  # with a table: until the table answered, not a lookup
            mark = h.log_mark()
            r = h.get("/cgi-bin/env.cgi", {"X-API-Key": tok})
            assert r.status == 200, r
            if conf or "token table hit" in h.error_log_since(mark):
                break
            assert time.time() < deadline, "the table never answered"
            time.sleep(0.1)
        env = env_of(r)
        seen.append({k: env[k] for k in ("STS_TOKEN_ID", "STS_TOKEN_NAME",
                                         "STS_TOKEN_ROLES",
                                         "STS_TOKEN_EXPIRATION")})
    assert seen[0] == seen[1] == {
        "STS_TOKEN_ID": "9007199254740991", "STS_TOKEN_NAME": "ci bot \u2713 #1",
        "STS_TOKEN_ROLES": "a.b,c:d@e-f_9", "STS_TOKEN_EXPIRATION": "2099-01-15"}


def test_current_digest_is_read_from_the_token_table_alone(httpd_factory, pg):
    """Without SELECT on sts_token_digests (what previous digests are read
    through), a current secret still authenticates: its lookup reads
    sts_tokens only. A rotated token's old secret and an unknown token need
    the view: refused 503 (the database failed), not 401; with the grant
    back, the old secret works and the unknown token is 401."""
    db = "sts_lookup_order"
    new_db(pg, db, SCHEMA)
    plain, plain_digest = secret()
    old, old_digest = secret()
    new, new_digest = secret()
    stranger, _ = secret()
    insert(pg, db, 10, "plain", plain_digest, ["ops"])
    insert(pg, db, 11, "rotated", old_digest, ["ops"])
    pg.psql(f"SELECT * FROM sts_token_rotate(11, '{new_digest}', 600000, "
            "NULL)", db=db)
    h = on_db(httpd_factory, pg, db)

    def status(token):
        return h.get("/protected/", {"X-API-Key": token}).status

    pg.psql("REVOKE SELECT ON sts_token_digests FROM sts_lookup", db=db)
    try:
        assert [status(plain), status(old), status(stranger)] == \
            [200, 503, 503]
    finally:
        pg.psql("GRANT SELECT ON sts_token_digests TO sts_lookup", db=db)
    assert [status(old), status(stranger), status(plain)] == [200, 401, 200]
    # The first use of the new secret retires the old one.
    assert [status(new), status(old)] == [200, 401]


def test_module_before_schema_7(httpd_factory, pg):
    """A database at schema version 6 (the module installed before the
    schema was applied): tokens are refused 503 and the error log says to
    apply the schema, once per report interval, not per request; once
    applied, they work without a restart, and the token, stored before
    the upgrade, has its lookup column."""
    db = "sts_lookup_v6"
    new_db(pg, db, V6)
    tok, digest = secret()
    insert(pg, db, 12, "before-7", digest, ["ops"])
    h = on_db(httpd_factory, pg, db)
    mark = h.log_mark()
    assert [h.get("/protected/", {"X-API-Key": tok}).status
            for _ in range(12)] == [503] * 12
    h.wait_for_log(f"This module needs schema version {SCHEMA_NEWEST}: "
                   "apply sql/schema.sql")
    log = h.error_log_since(mark)
    assert "authn" in log
    # At error level once per report interval and process (each last-use
    # thread may say it once more), not once per request.
    errors = [line for line in log.splitlines() if ":error]" in line and
              "This module needs schema version" in line]
    assert 1 <= len(errors) <= 4, log
    apply_schema(pg, db)
    assert pg.psql("SELECT max(version) FROM sts_schema_version",
                   db=db).strip() == SCHEMA_NEWEST
    r = h.get("/protected/", {"X-API-Key": tok})
    assert r.status == 200, r


def test_malformed_lookup_column_fails_closed(httpd_factory, pg):
    """An authn that sts_token_authn() of schema.sql would not make (the
    function replaced by hand): the lookup answers 503 and says to apply the
    schema again; with a token table it is refused too (401 once the table
is read, 503 when looked up before). Applying the
    schema again does not repair rows already written: updating them
    does."""
    db = "sts_lookup_malformed"
    new_db(pg, db, SCHEMA)
    tok, digest = secret()
    insert(pg, db, 13, "malformed", digest, ["ops"])
    pg.psql("CREATE OR REPLACE FUNCTION sts_token_authn(id bigint, "
            "expiration bigint, previous_digest text, previous_until bigint, "
            "roles text[], name text) RETURNS text LANGUAGE sql IMMUTABLE "
            "AS $$ SELECT id::text || E'\\t' || name $$; "
            "UPDATE sts_tokens SET name = name", db=db)
    uncached = on_db(httpd_factory, pg, db)
    mark = uncached.log_mark()
    assert uncached.get("/protected/", {"X-API-Key": tok}).status == 503
    assert "sts_tokens.authn of the token looked up is not what " \
        "sts_token_authn() of sql/schema.sql makes" in \
        uncached.error_log_since(mark)
    cached = on_db(httpd_factory, pg, db, "")
    assert cached.get("/protected/", {"X-API-Key": tok}).status in (401, 503)
    apply_schema(pg, db)
    pg.psql("UPDATE sts_tokens SET name = name", db=db)
    assert uncached.get("/protected/", {"X-API-Key": tok}).status == 200


def test_statements_prepared_before_an_upgrade_are_prepared_again(
        httpd_factory, pg, bootstrap):
    """The upgrade to schema 7 changes the digests' collation, so a
    statement returning a digest that a session prepared before it is
    refused as prepared ('cached plan must not change result type'): the
    module prepares the session's statements again and the request goes
    on. Here: the token API's delete (it returns the digest) before and
    after schema.sql, on one process's sessions."""
    db = "sts_lookup_reprepare"
    new_db(pg, db, SCHEMA)
    view = pg.psql("SELECT pg_get_viewdef('sts_token_digests')", db=db)
    pg.psql("DROP VIEW sts_token_digests; ALTER TABLE sts_tokens ALTER "
            "COLUMN digest TYPE text COLLATE \"default\"; "
            f"CREATE VIEW sts_token_digests AS {view}; "
            "GRANT SELECT ON sts_token_digests TO sts_lookup", db=db)
    for id_ in (21, 22):
        insert(pg, db, id_, f"reprepare-{id_}", secret()[1], ["ops"])
    h = on_db(httpd_factory, pg, db, "STSTokenCacheTTL 0\n" + ONE_PROCESS)

    def delete(id_):
        return h.request("DELETE", f"/api/security/tokens/{id_}",
                         {"X-API-Key": str(bootstrap)}).status

    assert delete(21) == 204
    apply_schema(pg, db)
    assert pg.psql("SELECT collation_name FROM information_schema.columns "
                   "WHERE table_name = 'sts_tokens' AND column_name = "
                   "'digest'", db=db).strip() == "C"
    mark = h.log_mark()
    assert delete(22) == 204
    assert "re-prepared the module's statements" in h.error_log_since(mark)
