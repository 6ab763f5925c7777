"""The module (issue 2) beyond the basics: what happens without a database,
with a slow one, expiry of a cached token, forward proxies, SSI/mod_rewrite,
.htaccess-scoped settings, and the prefork/worker MPMs."""

import os
import time

import pytest

from conftest import TableLock, free_port

SENT = []  # every secret sent in this module, for the no-leak check

EXTRA = r"""
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so

# A Basic-authenticated user has no token roles: sts-role never grants.
<Location "/basic-role">
    AuthType Basic
    AuthName "basic-role"
    AuthBasicProvider file
    AuthUserFile "@RUN@/htpasswd"
    AuthzSendForbiddenOnFailure On
    Require sts-role admin
</Location>
<Location "/basic-any">
    AuthType Basic
    AuthName "basic-any"
    AuthBasicProvider file
    AuthUserFile "@RUN@/htpasswd"
    Require valid-user
</Location>
Alias "/basic-role" "@DOCROOT@/protected"
Alias "/basic-any" "@DOCROOT@/protected"
<Location "/roles">
    AuthType ServiceToken
    AuthName "roles"
    AuthzSendForbiddenOnFailure On
    Require sts-role admin
</Location>
Alias "/roles" "@DOCROOT@/protected"
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so

ProxyRequests On
<Proxy "*">
    AuthType ServiceToken
    AuthName "fwd-proxy"
    Require valid-user
</Proxy>

# SSI and mod_rewrite see the identity.
<Directory "@DOCROOT@/ssi">
    Options +Includes
    AddOutputFilter INCLUDES .shtml
    AuthType ServiceToken
    AuthName "ssi"
    Require valid-user
</Directory>
<Directory "@DOCROOT@/rw">
    AuthType ServiceToken
    AuthName "rw"
    Require valid-user
    RewriteEngine On
    RewriteCond %{ENV:STS_TOKEN_ROLES} (^|,)ops(,|$)
    RewriteRule ^index\.html$ ops.html [L]
</Directory>

# A CGI directory whose auth settings come from .htaccess files.
<Directory "@DOCROOT@/htcgi">
    Options +ExecCGI
    AllowOverride AuthConfig
    SetHandler cgi-script
    CGIPassAuth On
</Directory>

# MultiViews: /mv/env finds env.cgi by negotiation, a fast internal
# redirect after the header_parser that gives the request env.cgi's
# configuration (and its AuthType) but keeps the request's own record.
LoadModule negotiation_module /usr/lib/apache2/modules/mod_negotiation.so
<Directory "@DOCROOT@/mv">
    Options +ExecCGI +MultiViews
    MultiViewsMatch Handlers
    AddHandler cgi-script .cgi
    CGIPassAuth On
    <Files "env.cgi">
        AuthType ServiceToken
        AuthName "mv"
        Require valid-user
        STSTokenHideCredentials On
    </Files>
</Directory>

<Location "/hide">
    AuthType ServiceToken
    AuthName "hide"
    Require valid-user
    CGIPassAuth On
    STSTokenHideCredentials On
</Location>
ScriptAlias "/hide/" "${STS_CGI_DIR}/"
"""


def env_of(resp):
    """CGI output (VAR=value lines) as a dict."""
    return dict(line.split("=", 1) for line in resp.text.splitlines() if "=" in line)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


@pytest.fixture(scope="module")
def srv(httpd_factory):
    h = httpd_factory(EXTRA + "STSTokenCacheTTL 0\n")
    d = h.docroot
    write(f"{d}/ssi/index.shtml",
          'name=<!--#echo var="STS_TOKEN_NAME" --> '
          'roles=<!--#echo var="STS_TOKEN_ROLES" -->\n')
    write(f"{d}/rw/index.html", "not ops\n")
    write(f"{d}/rw/ops.html", "ops\n")
    with open(os.path.join(h.cgi_dir, "env.cgi")) as f:
        cgi = f.read()
    write(f"{d}/htcgi/env.cgi", cgi, 0o755)
    write(f"{d}/htcgi/.htaccess",
          "AuthType ServiceToken\nAuthName htcgi\nRequire valid-user\n"
          "STSTokenHideCredentials On\n")
    write(f"{d}/htcgi/show/env.cgi", cgi, 0o755)
    write(f"{d}/htcgi/show/.htaccess", "STSTokenHideCredentials Off\n")
    write(f"{d}/mv/env.cgi", cgi, 0o755)
    return h


@pytest.fixture(scope="module")
def tok(pg):
    t = pg.mint("fault-bot", ["ops", "audit"])
    SENT.append(t.token)
    return t


def test_without_database_no_db_work_is_done(srv, pg, tok, bootstrap):
    """With PostgreSQL stopped, everything decided without the database still
    gets its normal answer (so no database work was done for it), the
    bootstrap secret still works, and a real lookup is 503, never 200."""
    bad_sum = tok.token[:-1] + ("a" if tok.token[-1] != "a" else "b")
    pg.stop()
    try:
        assert srv.get("/protected/", {"X-API-Key": "a b"}).status == 400
        assert srv.get("/protected/", [("X-API-Key", tok.token),
                                       ("X-API-Key", tok.token)]).status == 400
        assert srv.get("/protected/", {"X-API-Key": "x" * 513}).status == 400
        assert srv.get("/protected/").status == 401
        for garbage in (bad_sum, "not-a-token", tok.token.upper()):
            r = srv.get("/protected/", {"X-API-Key": garbage})
            assert r.status == 401, (garbage, r)
            assert 'error="invalid_token"' in r.header("WWW-Authenticate")
        r = srv.get("/cgi-bin/env.cgi", {"X-API-Key": bootstrap})
        assert r.status == 200 and env_of(r)["STS_TOKEN_ID"] == "0"
        for _ in range(3):
            r = srv.get("/protected/", {"X-API-Key": tok.token})
            assert r.status == 503, r
            assert b"hello" not in r.body
    finally:
        pg.start()
    deadline = time.time() + 5
    while srv.get("/protected/", {"X-API-Key": tok.token}).status != 200:
        assert time.time() < deadline, "no recovery within 5 s"
        time.sleep(0.1)


def test_slow_database_is_503_within_bounded_time(srv, pg, tok):
    """A lock held on the table: statement_timeout (2 s in DBDParams) turns
    the lookup into a 503 instead of a request hanging without limit."""
    assert srv.get("/protected/", {"X-API-Key": tok.token}).status == 200
    with TableLock(pg):
        t0 = time.time()
        r = srv.get("/protected/", {"X-API-Key": tok.token})
        elapsed = time.time() - t0
        assert r.status == 503, r
        assert 1.5 < elapsed < 5, elapsed
    deadline = time.time() + 5
    while srv.get("/protected/", {"X-API-Key": tok.token}).status != 200:
        assert time.time() < deadline, "no recovery within 5 s after the lock"
        time.sleep(0.1)


def test_cached_token_expires_on_time(httpd_factory, pg):
    """With the cache on, a token is refused from the instant it expires."""
    h = httpd_factory("STSTokenCacheTTL 300\n")
    exp_ms = int(time.time() * 1000) + 4000
    t = pg.mint("short-lived", ["ops"], expiration_ms=exp_ms)
    SENT.append(t.token)
    assert h.get("/protected/", {"X-API-Key": t.token}).status == 200
    assert h.get("/protected/", {"X-API-Key": t.token}).status == 200
    assert time.time() * 1000 < exp_ms - 200, "machine too slow for this test"
    time.sleep(max(0.0, exp_ms / 1000 - time.time()) + 0.3)
    for _ in range(4):  # whichever process (and cache) serves it
        r = h.get("/protected/", {"X-API-Key": t.token})
        assert r.status == 401, r
        assert 'error="invalid_token"' in r.header("WWW-Authenticate")


def test_forward_proxy_uses_proxy_authorization(srv, tok):
    target = f"http://127.0.0.1:{srv.port}/index.html"
    req = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
           "Connection: close\r\n")
    # Proxy-Authorization is read: the proxied request reaches the target.
    out = srv.raw((req + f"Proxy-Authorization: ApiKey {tok.token}\r\n\r\n").encode())
    assert out.startswith(b"HTTP/1.1 200"), out[:300]
    assert out.endswith(b"public\n")
    # Authorization is for the origin server, not the proxy.
    out = srv.raw((req + f"Authorization: ApiKey {tok.token}\r\n\r\n").encode())
    head = out.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 407"), head
    assert 'Proxy-Authenticate: ApiKey realm="fwd-proxy"' in head
    bad = tok.token[:-1] + ("a" if tok.token[-1] != "a" else "b")
    out = srv.raw((req + f"Proxy-Authorization: ApiKey {bad}\r\n\r\n").encode())
    head = out.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 407"), head
    assert 'Proxy-Authenticate: ApiKey realm="fwd-proxy", error="invalid_token"' \
        in head


def test_ssi_sees_identity(srv, tok):
    r = srv.get("/ssi/index.shtml", {"X-API-Key": tok.token})
    assert r.status == 200
    assert r.text == "name=fault-bot roles=ops,audit\n"


def test_mod_rewrite_sees_identity(srv, pg, tok):
    assert srv.get("/rw/index.html", {"X-API-Key": tok.token}).text == "ops\n"
    other = pg.mint("rw-reader", ["reader"])
    SENT.append(other.token)
    assert srv.get("/rw/index.html", {"X-API-Key": other.token}).text == "not ops\n"


def test_hide_keeps_other_authorization_schemes(srv, tok):
    """Only an ApiKey Authorization is removed; Basic belongs to the backend."""
    r = srv.get("/hide/env.cgi", [("X-API-Key", tok.token),
                                  ("Authorization", "Basic dXNlcjpwYXNz")])
    env = env_of(r)
    assert env["STS_TOKEN_NAME"] == "fault-bot"
    assert "HTTP_X_API_KEY" not in env
    assert env["HTTP_AUTHORIZATION"] == "Basic dXNlcjpwYXNz"


def test_client_cannot_forge_identity_headers(srv, tok):
    r = srv.get("/cgi-bin/env.cgi", [("X-API-Key", tok.token),
                                     ("STS-Token-Name", "admin"),
                                     ("STS-Token-Roles", "stackstate-admin")])
    env = env_of(r)
    assert env["STS_TOKEN_NAME"] == "fault-bot"
    assert "HTTP_STS_TOKEN_NAME" not in env and "HTTP_STS_TOKEN_ROLES" not in env


def test_htaccess_hide_credentials_and_nested_override(srv, tok):
    hs = [("X-API-Key", tok.token), ("Authorization", "ApiKey " + tok.token)]
    assert srv.get("/htcgi/env.cgi").status == 401
    env = env_of(srv.get("/htcgi/env.cgi", hs))
    assert env["REMOTE_USER"] == "fault-bot"
    assert "HTTP_X_API_KEY" not in env and "HTTP_AUTHORIZATION" not in env
    # A nested .htaccess turns it Off again and inherits the rest.
    assert srv.get("/htcgi/show/env.cgi").status == 401
    env = env_of(srv.get("/htcgi/show/env.cgi", hs))
    assert env["REMOTE_USER"] == "fault-bot"
    assert env["HTTP_X_API_KEY"] == tok.token


def test_multiviews_redirect_hides_the_credentials_of_its_target(srv, tok):
    """The request /mv/env has no AuthType of its own; negotiation gives it
    env.cgi's (ServiceToken, STSTokenHideCredentials On) after the module's
    header_parser saw it without: the fixups must see the new one."""
    hs = [("X-API-Key", tok.token), ("Authorization", "ApiKey " + tok.token)]
    assert srv.get("/mv/env").status != 200
    r = srv.get("/mv/env", hs)
    assert r.status == 200, r.text
    env = env_of(r)
    assert env["STS_TOKEN_NAME"] == "fault-bot"
    assert "HTTP_X_API_KEY" not in env and "HTTP_AUTHORIZATION" not in env
    assert tok.token not in r.text


def test_refusals_are_logged_with_reason_and_identity(srv, pg, tok):
    past = pg.mint("expired-logged", ["ops"],
                   expiration_ms=int(time.time() * 1000) - 1000)
    SENT.append(past.token)
    mark = srv.log_mark()
    assert srv.get("/protected/", {"X-API-Key": past.token}).status == 401
    bad = tok.token[:-1] + ("a" if tok.token[-1] != "a" else "b")
    assert srv.get("/protected/", {"X-API-Key": bad}).status == 401
    assert srv.get("/protected/", {"X-API-Key": "a b"}).status == 400
    assert srv.get("/roles/", {"X-API-Key": tok.token}).status == 403
    log = srv.error_log_since(mark)
    lines = [ln for ln in log.splitlines() if "[sts_token:info]" in ln]
    assert any("token expired" in ln and f"(id {past.id}, name 'expired-logged')"
               in ln for ln in lines), log
    assert any("checksum does not match" in ln for ln in lines), log
    assert any("malformed service token credentials" in ln for ln in lines), log
    assert any(f"token id {tok.id} name 'fault-bot' has roles [ops,audit]" in ln
               for ln in lines), log
    assert bad not in log and tok.token not in log


def test_sts_role_never_grants_other_auth_types(srv):
    with open(os.path.join(srv.run, "htpasswd"), "w") as f:
        f.write("admin:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")  # password
    basic = {"Authorization": "Basic YWRtaW46cGFzc3dvcmQ="}  # admin:password
    assert srv.get("/basic-any/", basic).status == 200  # the password works
    assert srv.get("/basic-role/", basic).status == 403
    assert "did not authenticate with a service token" in srv.error_log()


def test_expiration_date_is_utc_whatever_the_local_zone(httpd_factory, pg):
    """00:00 UTC is the previous evening in Honolulu (UTC-10): the variable
    must still say the UTC date."""
    import datetime
    h = httpd_factory('Header always set X-Exp "%{STS_TOKEN_EXPIRATION}e"\n',
                      env={"TZ": "HST10"})
    day = datetime.datetime(2099, 1, 15, tzinfo=datetime.timezone.utc)
    t = pg.mint("utc-date", ["ops"], expiration_ms=int(day.timestamp() * 1000))
    last = pg.mint("utc-date-end", ["ops"],
                   expiration_ms=int(day.timestamp() * 1000) + 86_399_999)
    SENT.extend([t.token, last.token])
    r = h.get("/protected/", {"X-API-Key": t.token})
    assert r.status == 200 and r.header("X-Exp") == "2099-01-15"
    r = h.get("/protected/", {"X-API-Key": last.token})
    assert r.status == 200 and r.header("X-Exp") == "2099-01-15"


@pytest.mark.parametrize("mpm", ["prefork", "worker"])
def test_other_mpms(httpd_factory, pg, bootstrap, mpm):
    """Authentication, 503 and recovery (after a PostgreSQL restart and after
    the sessions were killed) under the non-event MPMs."""
    h = httpd_factory("STSTokenCacheTTL 0\n", mpm=mpm)
    t = pg.mint(f"mpm-{mpm}", ["ops"])
    SENT.append(t.token)
    get = lambda: h.get("/cgi-bin/env.cgi", {"X-API-Key": t.token})  # noqa: E731
    for _ in range(10):
        r = get()
        assert r.status == 200 and env_of(r)["STS_TOKEN_NAME"] == f"mpm-{mpm}"
    assert h.get("/protected/", {"X-API-Key": bootstrap}).status == 200
    pg.terminate_backends()
    statuses = [get().status for _ in range(10)]
    assert statuses == [200] * 10, statuses
    pg.stop()
    try:
        statuses = [get().status for _ in range(3)]
        assert statuses == [503] * 3, statuses
    finally:
        pg.start()
    statuses = [get().status for _ in range(10)]
    assert statuses == [200] * 10, statuses
    assert f"mpm_{mpm}:notice" in h.error_log()


def test_zz_no_secret_in_logs(srv, bootstrap):
    logs = srv.error_log() + srv.access_log()
    assert "[sts_token:info]" in logs
    for secret in SENT + [str(bootstrap)]:
        assert secret not in logs


def test_statement_error_outlives_the_reconnect(httpd_factory, pg):
    """A statement fails on a session PostgreSQL closed; the reconnect that
    follows fails too, with a longer message (three hosts tried), which
    libpq writes into the same error buffer, reallocating it. The log line
    must still quote the statement's own error: it is read before the
    reconnect (the old code kept a pointer into the buffer and read freed
    memory, which ASan reports and glibc's allocator garbles)."""
    closed = free_port()
    params = (f"host={pg.sock},127.0.0.1,127.0.0.1 "
              f"port={pg.port},{closed},{closed} dbname=sts "
              f"user={pg.HTTPD_ROLE} connect_timeout=2")
    h = httpd_factory("STSTokenCacheTTL 0\n", env={"STS_DBD_PARAMS": params})
    t = pg.mint("reconnect-message", ["ops"])
    SENT.append(t.token)
    for _ in range(12):
        assert h.get("/protected/", {"X-API-Key": t.token}).status == 200
    mark = len(h.error_log())
    pg.stop()
    try:
        for _ in range(12):
            assert h.get("/protected/", {"X-API-Key": t.token}).status == 503
            time.sleep(0.05)
    finally:
        pg.start()
    lines = [ln.split("sts_token_lookup failed: ", 1)[1]
             for ln in h.error_log()[mark:].splitlines()
             if "sts_token_lookup failed: " in ln]
    assert lines, h.error_log()[mark:]
    for msg in lines:
        assert msg.startswith(("FATAL", "server closed the connection",
                               "terminating connection")), msg
