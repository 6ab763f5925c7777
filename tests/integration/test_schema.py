"""The schema's change log, which keeps every host's token table current,
rotation's previous digests, and the upgrade: applying sql/schema.sql to a
database at version 1 (tests/integration/data/schema-v1.sql), 2
(schema-v2.sql, least privilege, the schema before the change log), 3
(schema-v3.sql, the change log, before rotation and last use) or 6
(schema-v6.sql, before the lookup column) gives exactly the schema a fresh
database gets, keeps the tokens and records changes from then on."""

import os
import subprocess

import pytest

from conftest import ROOT, SCHEMA_NEWEST

SCHEMA = os.path.join(ROOT, "sql", "schema.sql")
DATA = os.path.join(os.path.dirname(__file__), "data")


def apply_file(pg, path, db):
    out = subprocess.run(["psql", "-h", pg.sock, "-p", str(pg.port), "-U",
                          "postgres", "-d", db, "-qX", "-v", "ON_ERROR_STOP=1",
                          "-f", path], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def dump(pg, db):
    """The schema of db as pg_dump prints it, without its comments and
    per-run lines (comparable between two databases)."""
    out = subprocess.run(
        ["pg_dump", "-h", pg.sock, "-p", str(pg.port), "-U", "postgres", "-s",
         db], check=True, capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines()
                     if not line.startswith(("--", "\\restrict",
                                             "\\unrestrict")))


def fresh_db(pg, name, schema=SCHEMA):
    pg.psql(f"DROP DATABASE IF EXISTS {name}", db="postgres")
    pg.psql(f"CREATE DATABASE {name}", db="postgres")
    if schema:
        apply_file(pg, schema, name)


def changes(pg, db, since):
    return pg.psql("SELECT revision, digest FROM sts_token_changes WHERE "
                   f"revision > {since} ORDER BY revision, digest",
                   db=db).split()


@pytest.mark.parametrize("version", [1, 2, 3, 6])
def test_schema_upgrades_an_older_database(pg, version):
    """A database at version 1, 2, 3 or 6 with a token, after schema.sql
    (twice): exactly a fresh database's schema, the newest version, its
    token kept with its lookup column, changes recorded, rotation
    working."""
    db = f"sts_from_v{version}"
    fresh_db(pg, db, os.path.join(DATA, f"schema-v{version}.sql"))
    pg.psql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
            f"(1, 'old', '{'a' * 64}', ARRAY['r'])", db=db)
    for _ in range(2):
        apply_file(pg, SCHEMA, db)
    fresh_db(pg, "sts_fresh")
    assert dump(pg, db) == dump(pg, "sts_fresh")
    assert pg.psql("SELECT max(version) FROM sts_schema_version",
                   db=db).strip() == SCHEMA_NEWEST
    assert pg.psql("SELECT name FROM sts_tokens", db=db).split() == ["old"]
    assert pg.psql("SELECT authn FROM sts_tokens",
                   db=db) == "1\t-1\t-1\tr\told\n"
    rev = int(pg.psql("SELECT revision FROM sts_token_revision", db=db))
    pg.psql(f"SELECT * FROM sts_token_rotate(1, '{'b' * 64}', 60000, NULL)",
            db=db)
    assert changes(pg, db, rev) == [str(rev + 1), "a" * 64,
                                    str(rev + 1), "b" * 64]
    assert pg.psql("SELECT digest, until > 0 FROM sts_token_digests ORDER BY 1",
                   db=db).split() == ["a" * 64, "t", "b" * 64, "f"]
    pg.psql("DELETE FROM sts_tokens WHERE id = 1", db=db)
    assert changes(pg, db, rev + 1) == [str(rev + 2), "a" * 64,
                                        str(rev + 2), "b" * 64]


def test_each_statement_records_its_digests_under_one_revision(pg):
    """Insert, update (a digest change records both), delete, a statement
    changing nothing (no revision), and truncate (moves the horizon past
    every change: every host reads the table again)."""
    db = "sts_log"
    fresh_db(pg, db)
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    pg.psql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
            f"(1, 'one', '{a}', ARRAY['r']), (2, 'two', '{b}', ARRAY['r'])",
            db=db)
    assert changes(pg, db, 0) == ["1", a, "1", b]
    pg.psql(f"UPDATE sts_tokens SET digest = '{c}' WHERE id = 2", db=db)
    assert changes(pg, db, 1) == ["2", b, "2", c]
    pg.psql("UPDATE sts_tokens SET name = 'x' WHERE id = 99", db=db)
    pg.psql("DELETE FROM sts_tokens WHERE id = 1", db=db)
    assert changes(pg, db, 2) == ["3", a]
    assert pg.psql("SELECT revision, horizon FROM sts_token_revision",
                   db=db).split() == ["3", "0"]
    # sts_token_last_use refers to it: truncated with it (CASCADE).
    pg.psql("SELECT sts_token_note_use('{2}', '{1}', '{\"\"}')", db=db)
    pg.psql("TRUNCATE sts_tokens CASCADE", db=db)
    assert pg.psql("SELECT revision, horizon FROM sts_token_revision",
                   db=db).split() == ["4", "4"]
    assert pg.psql("SELECT count(*) FROM sts_token_last_use",
                   db=db).strip() == "0"


def test_rotation_records_and_serves_both_digests(pg):
    """sts_token_rotate keeps the replaced digest for the grace period (the
    view serves it with its end, the new one with retire set), a second
    rotation drops it, the retire ends it; every step records the digests
    it touched; grace 0 keeps nothing; a past end serves nothing."""
    db = "sts_rot"
    fresh_db(pg, db)
    a, b, c, d = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    pg.psql("INSERT INTO sts_tokens (id, name, digest, roles, expiration) "
            f"VALUES (1, 'one', '{a}', ARRAY['r', 's'], 4000000000000)",
            db=db)

    def view():
        return [tuple(r.split("|")) for r in pg.psql(
            "SELECT digest, id, name, roles, expiration, until > 0, retire "
            "FROM sts_token_digests ORDER BY digest", db=db).replace(
                "\t", "|").split()]

    out = pg.psql(f"SELECT name, roles, expiration, replaced, "
                  f"replaced_until > 0, dropped IS NULL FROM "
                  f"sts_token_rotate(1, '{b}', 60000, NULL)", db=db).split()
    assert out == ["one", "r,s", "4000000000000", a, "t", "t"]
    assert changes(pg, db, 1) == ["2", a, "2", b]
    assert view() == [(a, "1", "one", "r,s", "4000000000000", "t", "f"),
                      (b, "1", "one", "r,s", "4000000000000", "f", "t")]
    # Rotating again: a dies, b is the previous digest, expiration changed.
    out = pg.psql(f"SELECT expiration, replaced, dropped FROM "
                  f"sts_token_rotate(1, '{c}', 60000, 4100000000000)",
                  db=db).split()
    assert out == ["4100000000000", b, a]
    assert changes(pg, db, 2) == ["3", a, "3", b, "3", c]
    assert [r[0] for r in view()] == [b, c]
    # The retire needs the current digest.
    assert pg.psql(f"SELECT sts_token_retire_previous(1, '{b}') IS NULL",
                   db=db).strip() == "t"
    assert pg.psql(f"SELECT sts_token_retire_previous(1, '{c}')",
                   db=db).strip() == b
    assert changes(pg, db, 3) == ["4", b, "4", c]
    assert view() == [(c, "1", "one", "r,s", "4100000000000", "f", "f")]
    assert pg.psql(f"SELECT sts_token_retire_previous(1, '{c}') IS NULL",
                   db=db).strip() == "t"
    # Grace 0: no previous digest.
    pg.psql(f"SELECT * FROM sts_token_rotate(1, '{d}', 0, NULL)", db=db)
    assert [r[0] for r in view()] == [d]
    # A previous digest past its end is served no more (nor does the
    # current one ask for a retire); deleting the token records both.
    pg.psql(f"SELECT * FROM sts_token_rotate(1, '{a}', 60000, NULL)", db=db)
    pg.psql("UPDATE sts_tokens SET previous_until = 1", db=db)
    assert view() == [(a, "1", "one", "r,s", "4100000000000", "f", "f")]
    rev = int(pg.psql("SELECT revision FROM sts_token_revision", db=db))
    pg.psql("DELETE FROM sts_tokens", db=db)
    assert changes(pg, db, rev) == [str(rev + 1), a, str(rev + 1), d]
    assert pg.psql(f"SELECT count(*) FROM sts_token_rotate(2, '{b}', 0, "
                   "NULL)", db=db).strip() == "0"


def test_old_changes_are_pruned_behind_the_horizon(pg):
    """Changes older than an hour go (every 256th revision), and the
    horizon says up to where: a host behind it reads every token again."""
    db = "sts_prune"
    fresh_db(pg, db)
    pg.psql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
            f"(1, 'one', '{'e' * 64}', ARRAY['r'])", db=db)
    pg.psql("UPDATE sts_token_changes SET changed_at = now() - "
            "interval '2 hours'; UPDATE sts_token_revision SET revision = 254",
            db=db)
    pg.psql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
            f"(2, 'two', '{'f' * 64}', ARRAY['r'])", db=db)
    assert changes(pg, db, 0) == ["1", "e" * 64, "255", "f" * 64]
    pg.psql("DELETE FROM sts_tokens WHERE id = 2", db=db)
    assert changes(pg, db, 0) == ["255", "f" * 64, "256", "f" * 64]
    assert pg.psql("SELECT horizon FROM sts_token_revision",
                   db=db).strip() == "1"


def test_upgrade_refuses_a_role_holding_a_comma(pg):
    """Before version 6 SQL could store ARRAY['a,admin'] (httpd then saw two
    roles): the upgrade stops at migration 0005, changes nothing of it and
    names the rule; once the token is fixed it goes through."""
    db = "sts_comma"
    fresh_db(pg, db, os.path.join(DATA, "schema-v3.sql"))
    pg.psql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
            f"(1, 'commas', '{'d' * 64}', ARRAY['a,admin'])", db=db)
    out = subprocess.run(["psql", "-h", pg.sock, "-p", str(pg.port), "-U",
                          "postgres", "-d", db, "-qX", "-v", "ON_ERROR_STOP=1",
                          "-f", SCHEMA], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "sts_tokens_roles_valid" in out.stderr, out.stderr
    assert pg.psql("SELECT max(version) FROM sts_schema_version",
                   db=db).strip() == "5"
    pg.psql("UPDATE sts_tokens SET roles = ARRAY['a', 'admin'] WHERE id = 1",
            db=db)
    apply_file(pg, SCHEMA, db)
    assert pg.psql("SELECT max(version) FROM sts_schema_version",
                   db=db).strip() == SCHEMA_NEWEST
