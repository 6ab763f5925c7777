"""Virtual hosts with their own databases (issue 14, item 1).

Two name-based virtual hosts on one port, each with its own DBDParams (two
databases of the test cluster, both with sql/schema.sql): a token of one
tenant never authenticates on the other (neither a cached positive answer
nor a cached refusal crosses over), and the server-wide directives are
refused inside <VirtualHost>.
"""

import http.client
import os
import secrets
import subprocess
import time

import pytest

from conftest import MINT, ROOT, Token

DB_B = "sts_tenant_b"

VHOSTS = r"""
<VirtualHost ${STS_LISTEN}>
    ServerName a.test
</VirtualHost>
<VirtualHost ${STS_LISTEN}>
    ServerName b.test
    DBDParams "@PARAMS_B@"
</VirtualHost>
"""


@pytest.fixture(scope="module")
def db_b(pg):
    """A second database with the schema (tenant B)."""
    pg.psql(f"DROP DATABASE IF EXISTS {DB_B}", db="postgres")
    pg.psql(f"CREATE DATABASE {DB_B}", db="postgres")
    subprocess.run(["psql", "-h", pg.sock, "-p", str(pg.port), "-U", "postgres",
                    "-d", DB_B, "-q", "-v", "ON_ERROR_STOP=1", "-f",
                    os.path.join(ROOT, "sql", "schema.sql")],
                   check=True, capture_output=True)
    return pg.dbd_params.replace("dbname=sts ", f"dbname={DB_B} ")


def mint_b(pg, name, roles):
    """A token inserted into tenant B's database."""
    tok, digest = subprocess.run([MINT], check=True, capture_output=True,
                                 text=True).stdout.split()
    id_ = secrets.randbelow(2**53 - 2) + 1
    arr = "ARRAY[" + ",".join(f"'{r}'" for r in roles) + "]::text[]"
    pg.psql(f"INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
            f"({id_}, '{name}', '{digest}', {arr})", db=DB_B)
    return Token(id_, tok, digest, name)


@pytest.fixture(scope="module")
def srv(httpd_factory, db_b):
    return httpd_factory(VHOSTS.replace("@PARAMS_B@", db_b))


def get(srv, host, path, token):
    """GET with a Host header (picks the virtual host)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.putheader("X-API-Key", token)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_tenant_token_does_not_cross_vhosts(srv, pg):
    """Tenant A's admin token lists A's tokens through A's API and is refused
    by B's API, however often and in whichever process it was cached (failed
    before: the per-process cache was keyed by digest only, 40/40 answers 200
    with B's tokens)."""
    a = pg.mint("tenant-a-admin", ["stackstate-admin"])
    b = mint_b(pg, "tenant-b-admin", ["stackstate-admin"])
    for _ in range(20):
        st, body = get(srv, "a.test", "/api/security/tokens", a.token)
        assert st == 200, body
        assert b"tenant-a-admin" in body and b"tenant-b-admin" not in body
        st, body = get(srv, "b.test", "/api/security/tokens", a.token)
        assert st == 401, body
        st, body = get(srv, "b.test", "/api/security/tokens", b.token)
        assert st == 200, body
        assert b"tenant-b-admin" in body and b"tenant-a-admin" not in body
        st, body = get(srv, "a.test", "/api/security/tokens", b.token)
        assert st == 401, body


def test_refusal_on_one_vhost_does_not_affect_the_other(srv, pg):
    """A token refused (cached as unknown) on B still works on A, and the
    other way round (failed before: the cached refusal made A answer 401)."""
    a = pg.mint("tenant-a-reader", ["reader"])
    b = mint_b(pg, "tenant-b-reader", ["reader"])
    # Both tables read the creations first: the 20 unknown digests below
    # use up the lookups allowed for unknown digests (20 a second per
    # process), which a token created less than 0.25 s ago would need.
    time.sleep(0.6)
    for _ in range(20):
        assert get(srv, "b.test", "/protected/", a.token)[0] == 401
        assert get(srv, "a.test", "/protected/", b.token)[0] == 401
    for _ in range(20):
        assert get(srv, "a.test", "/protected/", a.token)[0] == 200
        assert get(srv, "b.test", "/protected/", b.token)[0] == 200


@pytest.mark.parametrize("directive", [
    "STSTokenCacheTTL 60", "STSTokenCacheEntries 100",
    "STSTokenDBAcquireTimeout 500"])
def test_server_wide_directives_refused_in_vhost(httpd_factory, directive):
    """Server-wide settings inside <VirtualHost> stop the configuration
    check with a message naming the directive (they were silently
    ignored)."""
    h = httpd_factory("<VirtualHost ${STS_LISTEN}>\n    ServerName x.test\n"
                      f"    {directive}\n</VirtualHost>\n", expect_fail=True)
    out = h.startup_output
    assert directive.split()[0] in out and "VirtualHost" in out, out


def test_bootstrap_warning_per_vhost(httpd_factory, tmp_path):
    """A virtual host with its own STSTokenBootstrap is warned about like
    the main server (the warning used to name only the main server's)."""
    f = tmp_path / "vhost-bootstrap.token"
    fd = os.open(f, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (secrets.token_hex(32) + "\n").encode())
    os.close(fd)
    os.chmod(tmp_path, 0o755)
    h = httpd_factory("<VirtualHost ${STS_LISTEN}>\n    ServerName v.test\n"
                      f"    STSTokenBootstrap {f} stackstate-admin\n"
                      "</VirtualHost>\n")
    log = h.error_log()
    assert f"STSTokenBootstrap is configured ({f}) for virtual host" in log, log
    assert "for the main server" in log


STATUS = r"""
LoadModule status_module /usr/lib/apache2/modules/mod_status.so
ExtendedStatus On
<Location "/server-status">
    SetHandler server-status
    Require all granted
</Location>
"""


def test_status_shows_the_main_servers_database(httpd_factory, pg, db_b):
    """server-status's revision and poll age are the main server's
    database's, however recently another database's table read its changes
    (failed before: each database's report overwrote the one record per
    process, so the page showed tenant B's revision now and then)."""
    h = httpd_factory(STATUS + VHOSTS.replace("@PARAMS_B@", db_b))
    a = pg.mint("status-tenant-a", ["reader"])
    b = mint_b(pg, "status-tenant-b", ["reader"])
    pg.psql("UPDATE sts_token_revision SET revision = 7777777", db=DB_B)
    # Both tables current (each reads its database's changes on its own).
    assert get(h, "a.test", "/protected/", a.token)[0] == 200
    assert get(h, "b.test", "/protected/", b.token)[0] == 200
    revision = pg.sql("SELECT revision FROM sts_token_revision")[0][0]
    # The main database's table stops reporting (a missing revision row is
    # a failed read) while B's goes on: the page must not switch to B's.
    pg.sql("DELETE FROM sts_token_revision")
    try:
        time.sleep(1.5)
        for _ in range(5):
            st, body = get(h, "a.test", "/server-status?auto", a.token)
            assert st == 200
            auto = dict(line.split(": ", 1)
                        for line in body.decode().splitlines() if ": " in line)
            for k, v in auto.items():
                if k.endswith("Revision"):
                    assert int(v) <= int(revision), (k, auto)
            time.sleep(0.1)
    finally:
        pg.sql("INSERT INTO sts_token_revision (singleton, revision) "
               f"VALUES (true, {revision})")
