"""The database set-up of the README: httpd's role (a member of sts_api, or
sts_lookup) can do what the module needs and nothing more, the revision
trigger cannot be fooled by a temporary table, and applying schema.sql to
a version 1 database (the schema before roles) upgrades it."""

import os
import subprocess
import time

import pytest

from conftest import ROOT, SCHEMA_NEWEST

SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
V1 = os.path.join(os.path.dirname(__file__), "data", "schema-v1.sql")


def as_role(pg, sql, role=None, password=None, db="sts"):
    """Runs sql as httpd's role over TCP (or another role with a password);
    returns (ok, output)."""
    role = role or pg.HTTPD_ROLE
    password = password or pg.httpd_password
    out = subprocess.run(
        ["psql", f"host=127.0.0.1 port={pg.port} dbname={db} user={role} "
         f"password={password}", "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, timeout=30)
    return out.returncode == 0, out.stdout + out.stderr


def apply_file(pg, path, db):
    out = subprocess.run(["psql", "-h", pg.sock, "-p", str(pg.port), "-U",
                          "postgres", "-d", db, "-qX", "-v", "ON_ERROR_STOP=1",
                          "-f", path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM sts_tokens",
    "SELECT revision, horizon FROM sts_token_revision",
    "SELECT revision, digest FROM sts_token_changes",
    # sts_api lists last use (the token API); the function records it.
    "SELECT token_id, used_at, client_address FROM sts_token_last_use",
    "SELECT sts_token_note_use('{}', '{}', '{}')",
])
def test_httpd_role_reads(pg, sql):
    ok, out = as_role(pg, sql)
    assert ok, out


@pytest.mark.parametrize("sql", [
    "UPDATE sts_tokens SET roles = ARRAY['stackstate-admin']",
    "UPDATE sts_tokens SET previous_digest = NULL",
    "UPDATE sts_token_revision SET revision = 0",
    "DELETE FROM sts_token_revision",
    "INSERT INTO sts_schema_version (version) VALUES (99)",
    "DELETE FROM sts_schema_version",
    "TRUNCATE sts_tokens",
    "ALTER TABLE sts_tokens DROP CONSTRAINT sts_tokens_roles_valid",
    "DROP TRIGGER sts_tokens_changes_delete ON sts_tokens",
    "INSERT INTO sts_token_changes (revision, digest) VALUES (1, 'x')",
    "DELETE FROM sts_token_changes",
    "UPDATE sts_token_revision SET horizon = 0",
    "CREATE TABLE public.sts_evil (x int)",
    "INSERT INTO sts_token_last_use (token_id, used_at) "
    "SELECT id, now() FROM sts_tokens LIMIT 1",
    "UPDATE sts_token_last_use SET used_at = now()",
    "DELETE FROM sts_token_last_use",
    "TRUNCATE sts_token_last_use",
    "CREATE OR REPLACE FUNCTION sts_token_note_use(ids bigint[], "
    "used_ms bigint[], addresses text[]) RETURNS integer LANGUAGE sql "
    "AS 'SELECT 0'",
])
def test_httpd_role_refused(pg, sql):
    ok, out = as_role(pg, sql)
    assert not ok and ("permission denied" in out or "must be owner" in out), out


def test_httpd_role_creates_and_deletes_and_bumps_the_revision(pg):
    """Through the triggers (SECURITY DEFINER), even with temporary tables
    of the same names in the session, which must not catch the bump or the
    change records."""
    before = int(pg.sql("SELECT revision FROM sts_token_revision")[0][0])
    ok, out = as_role(pg, """
        CREATE TEMP TABLE sts_token_revision (singleton boolean, revision bigint,
                                              horizon bigint);
        INSERT INTO sts_token_revision VALUES (true, 0, 0);
        CREATE TEMP TABLE sts_token_changes (revision bigint, digest text,
                                             changed_at timestamptz);
        INSERT INTO sts_tokens (id, name, digest, roles)
            VALUES (424242, 'priv-test', repeat('a', 64), ARRAY['r']);
        DELETE FROM sts_tokens WHERE id = 424242;""")
    assert ok, out
    after = int(pg.sql("SELECT revision FROM sts_token_revision")[0][0])
    assert after == before + 2
    assert pg.sql("SELECT revision FROM sts_token_changes WHERE digest = "
                  f"repeat('a', 64) AND revision > {before} ORDER BY 1") == \
        [(str(before + 1),), (str(before + 2),)]


def test_rotation_functions_and_their_roles(pg):
    """httpd's role (sts_api) rotates through sts_token_rotate and retires
    through sts_token_retire_previous; a role with sts_lookup only may
    retire but never rotate; nobody else may call either."""
    a, b = "1" * 64, "2" * 64
    pg.sql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
           f"(434343, 'rot-priv', '{a}', ARRAY['r'])")
    ok, out = as_role(pg, "SELECT replaced FROM sts_token_rotate(434343, "
                      f"'{b}', 60000, NULL)")
    assert ok and out.strip() == a, out
    ok, out = as_role(pg, "SELECT digest FROM sts_token_digests WHERE id = "
                      "434343 ORDER BY 1")
    assert ok and out.split() == [a, b], out
    pg.psql("CREATE ROLE sts_rot_reader LOGIN PASSWORD 'pw-rot'",
            db="postgres")
    pg.psql("GRANT sts_lookup TO sts_rot_reader")
    ok, out = as_role(pg, "SELECT * FROM sts_token_rotate(434343, "
                      f"'{'3' * 64}', 0, NULL)", "sts_rot_reader", "pw-rot")
    assert not ok and "permission denied" in out, out
    ok, out = as_role(pg, f"SELECT sts_token_retire_previous(434343, '{b}')",
                      "sts_rot_reader", "pw-rot")
    assert ok and out.strip() == a, out
    pg.psql("CREATE ROLE sts_nobody LOGIN PASSWORD 'pw-nobody'",
            db="postgres")
    for sql in (f"SELECT sts_token_retire_previous(434343, '{b}')",
                "SELECT * FROM sts_token_digests"):
        ok, out = as_role(pg, sql, "sts_nobody", "pw-nobody")
        assert not ok and "permission denied" in out, out
    pg.sql("DELETE FROM sts_tokens WHERE id = 434343")


def test_lookup_role_cannot_write(pg):
    pg.psql("CREATE ROLE sts_reader_only LOGIN PASSWORD 'pw-reader'", db="postgres")
    pg.psql("GRANT sts_lookup TO sts_reader_only")
    ok, out = as_role(pg, "SELECT count(*) FROM sts_tokens", "sts_reader_only", "pw-reader")
    assert ok, out
    for sql in ("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
                "(1, 'x', repeat('b', 64), ARRAY['r'])",
                "DELETE FROM sts_tokens"):
        ok, out = as_role(pg, sql, "sts_reader_only", "pw-reader")
        assert not ok and "permission denied" in out, out


def test_lookup_role_records_use_only_through_the_function(pg):
    """sts_lookup (authentication only) writes last use through
    sts_token_note_use and can neither write the table directly nor read
    the client addresses. The function keeps the latest use per token,
    writes a row at most once a minute, clamps a future time to now, skips
    deleted tokens and drops an address that is not one."""
    pg.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE "
            "rolname = 'sts_lu_lookup') THEN CREATE ROLE sts_lu_lookup LOGIN "
            "PASSWORD 'pw-lu'; END IF; END $$", db="postgres")
    pg.psql("GRANT sts_lookup TO sts_lu_lookup")
    a, b = 8100000001, 8100000002
    pg.sql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
           f"({a}, 'lu-a', repeat('7', 64), ARRAY['r']), "
           f"({b}, 'lu-b', repeat('8', 64), ARRAY['r'])")

    def note(ids, ms, addrs):
        sql = ("SELECT sts_token_note_use("
               f"'{{{','.join(map(str, ids))}}}', "
               f"'{{{','.join(map(str, ms))}}}', "
               f"'{{{','.join(chr(34) + x + chr(34) for x in addrs)}}}')")
        ok, out = as_role(pg, sql, "sts_lu_lookup", "pw-lu")
        assert ok, out
        return int(out)

    def row(i):
        return pg.sql("SELECT (extract(epoch FROM used_at) * 1000)::bigint, "
                      "coalesce(host(client_address), '-') FROM "
                      f"sts_token_last_use WHERE token_id = {i}")

    now = int(pg.sql("SELECT (extract(epoch FROM now()) * 1000)::bigint")[0][0])
    t = now - 600000
    # Two uses of a in one batch: the latest; b's address is no address.
    assert note([a, a, b, 4242], [t, t + 5000, t, t],
                ["10.0.0.1", "10.0.0.2", "", "10.0.0.3"]) == 2
    assert row(a) == [(str(t + 5000), "10.0.0.2")]
    assert row(b) == [(str(t), "-")]
    # Within a minute of the stored use: nothing written; older: never.
    assert note([a, b], [t + 64000, t - 90000], ["10.0.0.4", "10.0.0.5"]) == 0
    assert row(a) == [(str(t + 5000), "10.0.0.2")]
    assert note([a], [t + 65000], ["2001:db8::9"]) == 1
    assert row(a) == [(str(t + 65000), "2001:db8::9")]
    # A clock in the future does not pin the row there.
    assert note([b], [now + 86400000], ["10.0.0.6"]) == 1
    assert int(row(b)[0][0]) <= int(time.time() * 1000) + 1000
    for sql in ("SELECT * FROM sts_token_last_use",
                f"UPDATE sts_token_last_use SET used_at = now()",
                f"INSERT INTO sts_token_last_use VALUES ({a}, now(), NULL)",
                "DELETE FROM sts_token_last_use"):
        ok, out = as_role(pg, sql, "sts_lu_lookup", "pw-lu")
        assert not ok and "permission denied" in out, (sql, out)
    pg.sql(f"DELETE FROM sts_tokens WHERE id IN ({a}, {b})")
    assert row(a) == [] and row(b) == []


def test_upgrade_from_version_1(pg):
    """A database set up as the version 1 README said (every row privilege
    to httpd's role) keeps its tokens and its roles keep working, with
    least privilege; applying schema.sql again changes nothing."""
    db = "sts_upgrade"
    pg.psql(f"CREATE DATABASE {db}", db="postgres")
    apply_file(pg, V1, db)
    pg.psql("CREATE ROLE old_web LOGIN PASSWORD 'pw-web'; "
            "CREATE ROLE old_reader LOGIN PASSWORD 'pw-rd'", db="postgres")
    pg.psql("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "
            "public TO old_web; GRANT SELECT ON sts_tokens, sts_token_revision "
            "TO old_reader; INSERT INTO sts_tokens (id, name, digest, roles) "
            "VALUES (7, 'kept', repeat('c', 64), ARRAY['r'])", db=db)
    assert pg.psql("SELECT max(version) FROM sts_schema_version", db=db).strip() == "1"

    for _ in range(2):
        apply_file(pg, SCHEMA, db)
        assert pg.psql("SELECT max(version) FROM sts_schema_version", db=db).strip() == SCHEMA_NEWEST
        assert pg.psql("SELECT name FROM sts_tokens", db=db).strip() == "kept"
        ok, out = as_role(pg, "INSERT INTO sts_tokens (id, name, digest, roles) "
                          "VALUES (8, 'new', repeat('d', 64), ARRAY['r']); "
                          "DELETE FROM sts_tokens WHERE id = 8", "old_web", "pw-web", db)
        assert ok, out
        for role, pw in (("old_web", "pw-web"), ("old_reader", "pw-rd")):
            ok, out = as_role(pg, "SELECT count(*) FROM sts_tokens", role, pw, db)
            assert ok, out
            ok, out = as_role(pg, "UPDATE sts_tokens SET name = 'x'", role, pw, db)
            assert not ok and "permission denied" in out, out
            ok, out = as_role(pg, "DELETE FROM sts_token_revision", role, pw, db)
            assert not ok and "permission denied" in out, out
        ok, out = as_role(pg, "DELETE FROM sts_tokens WHERE id = 7",
                          "old_reader", "pw-rd", db)
        assert not ok and "permission denied" in out, out
    groups = pg.psql("SELECT r.rolname || ':' || g.rolname FROM pg_auth_members m "
                     "JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON "
                     "g.oid = m.roleid WHERE r.rolname LIKE 'old_%' ORDER BY 1",
                     db=db).split()
    assert groups == ["old_reader:sts_lookup", "old_web:sts_api"]
