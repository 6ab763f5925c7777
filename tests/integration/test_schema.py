"""The schema's change log, which keeps every host's token table current,
and the upgrade to it: applying sql/schema.sql to a database at version 1
(tests/integration/data/schema-v1.sql) or 2 (schema-v2.sql, least
privilege, the schema before the change log) gives exactly the schema a
fresh database gets, keeps the tokens and records changes from then on."""

import os
import subprocess

import pytest

from conftest import ROOT

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


@pytest.mark.parametrize("version", [1, 2])
def test_schema_upgrades_an_older_database(pg, version):
    """A database at version 1 or 2 with a token, after schema.sql (twice):
    exactly a fresh database's schema, version 3, its token kept, changes
    recorded."""
    db = f"sts_from_v{version}"
    fresh_db(pg, db, os.path.join(DATA, f"schema-v{version}.sql"))
    pg.psql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
            f"(1, 'old', '{'a' * 64}', ARRAY['r'])", db=db)
    for _ in range(2):
        apply_file(pg, SCHEMA, db)
    fresh_db(pg, "sts_fresh")
    assert dump(pg, db) == dump(pg, "sts_fresh")
    assert pg.psql("SELECT max(version) FROM sts_schema_version",
                   db=db).strip() == "3"
    assert pg.psql("SELECT name FROM sts_tokens", db=db).split() == ["old"]
    rev = int(pg.psql("SELECT revision FROM sts_token_revision", db=db))
    pg.psql("DELETE FROM sts_tokens WHERE id = 1", db=db)
    assert changes(pg, db, rev) == [str(rev + 1), "a" * 64]


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
    pg.psql("TRUNCATE sts_tokens", db=db)
    assert pg.psql("SELECT revision, horizon FROM sts_token_revision",
                   db=db).split() == ["4", "4"]


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
