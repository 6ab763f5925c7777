"""The module (issue 2): credentials, answers, identity, roles, bootstrap."""

import os
import time
import datetime

import pytest

EXTRA = r"""
LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so

Alias "/any" "@DOCROOT@/protected"
Alias "/all" "@DOCROOT@/protected"
Alias "/none-of" "@DOCROOT@/protected"
Alias "/no403" "@DOCROOT@/protected"
Alias "/basic" "@DOCROOT@/protected"
Alias "/nest/inner" "@DOCROOT@/protected"
Alias "/nest" "@DOCROOT@/protected"
<Location "/any">
    AuthType serviceTOKEN
    AuthName "any-realm"
    AuthzSendForbiddenOnFailure On
    <RequireAny>
        Require sts-role admin
        Require sts-role ops audit
    </RequireAny>
</Location>
<Location "/all">
    AuthType ServiceToken
    AuthName "all-realm"
    AuthzSendForbiddenOnFailure On
    <RequireAll>
        Require sts-role ops
        Require sts-role audit
    </RequireAll>
</Location>
<Location "/none-of">
    AuthType ServiceToken
    AuthName "none-realm"
    AuthzSendForbiddenOnFailure On
    <RequireAll>
        Require valid-user
        <RequireNone>
            Require sts-role banned
        </RequireNone>
    </RequireAll>
</Location>
<Location "/no403">
    AuthType ServiceToken
    AuthName "no403"
    Require sts-role admin
</Location>
<Location "/basic">
    AuthType Basic
    AuthName "basic-realm"
    AuthBasicProvider file
    AuthUserFile "@RUN@/htpasswd"
    Require valid-user
</Location>
<Location "/nest">
    AuthType ServiceToken
    AuthName "outer"
    AuthzSendForbiddenOnFailure On
    Require valid-user
</Location>
<Location "/nest/inner">
    Require sts-role ops
</Location>

ScriptAlias "/hide/" "${STS_CGI_DIR}/"
ScriptAlias "/nohide/" "${STS_CGI_DIR}/"
<Location "/hide/">
    AuthType ServiceToken
    AuthName "hide"
    Require valid-user
    CGIPassAuth On
    STSTokenHideCredentials On
</Location>
<Location "/nohide/">
    AuthType ServiceToken
    AuthName "nohide"
    Require valid-user
    CGIPassAuth On
</Location>
<Location "/hdr">
    AuthType ServiceToken
    AuthName "hdr"
    Require valid-user
    Header always set X-Roles "%{STS_TOKEN_ROLES}e"
    Header always set X-Token-Id "%{STS_TOKEN_ID}e"
    Header always set X-Expiration "%{STS_TOKEN_EXPIRATION}e"
</Location>
Alias "/hdr" "@DOCROOT@/protected"

ProxyRequests On
<Proxy "*">
    AuthType ServiceToken
    AuthName "proxy-realm"
    Require valid-user
</Proxy>
"""

SENT = []  # every token sent in this module, for the no-leak check


@pytest.fixture(scope="module")
def srv(httpd_factory):
    return httpd_factory(EXTRA)


@pytest.fixture(scope="module")
def tok(pg):
    t = pg.mint("ci-bot", ["ops", "audit"])
    SENT.append(t.token)
    return t


def env_of(resp):
    """CGI output (VAR=value lines) as a dict."""
    return dict(line.split("=", 1) for line in resp.text.splitlines() if "=" in line)


def test_x_api_key(srv, tok):
    r = srv.get("/protected/", {"X-API-Key": tok.token})
    assert r.status == 200 and r.text == "hello\n"
    assert r.header("X-STS-Token-Name") == "ci-bot"


@pytest.mark.parametrize("value", [
    "ApiKey {t}", "apikey {t}", "APIKEY {t}", "ApiKey\t{t}", "ApiKey    \t  {t}",
    "ApiKey {t}   ",
])
def test_authorization_forms(srv, tok, value):
    r = srv.get("/protected/", {"Authorization": value.format(t=tok.token)})
    assert r.status == 200, r


def test_both_headers_same_token(srv, tok):
    r = srv.get("/protected/", [("Authorization", "ApiKey " + tok.token),
                                ("X-API-Key", tok.token)])
    assert r.status == 200


def test_x_api_key_header_name_case(srv, tok):
    r = srv.get("/protected/", {"x-api-key": tok.token})
    assert r.status == 200


@pytest.mark.parametrize("headers,why", [
    ([("Authorization", "ApiKey {t}"), ("X-API-Key", "{o}")], "different tokens"),
    ([("X-API-Key", "{t}"), ("X-API-Key", "{t}")], "repeated"),
    ([("X-API-Key", "")], "empty token"),
    ([("Authorization", "ApiKey")], "empty token"),
    ([("Authorization", "ApiKey   ")], "empty token"),
    ([("X-API-Key", "svctok-abc def")], "spaces"),
    ([("Authorization", "ApiKey {t} extra")], "spaces"),
    ([("X-API-Key", "a" * 513)], "longer than 512"),
    ([("X-API-Key", "tok\x01en")], ""),  # refused by httpd's own parser
    ([("X-API-Key", "tok\x7fen")], ""),
    ([("X-API-Key", "tok\xe9n".encode("latin-1").decode("latin-1"))], "non-ascii"),
    ([("Authorization", "ApiKey {t}"), ("Authorization", "ApiKey {t}")], "repeated"),
])
def test_bad_credentials_are_400(srv, pg, tok, headers, why):
    other = "svctok-" + "0" * 39
    hs = [(k, v.format(t=tok.token, o=other)) for k, v in headers]
    r = srv.get("/protected/", hs)
    assert r.status == 400, r
    if why:
        assert why in r.text.lower(), r.text
    assert "WWW-Authenticate".lower() not in r.headers


def test_tab_inside_token_is_400(srv, tok):
    """A tab is the one control character httpd's parser lets through."""
    for name in ("X-API-Key", "Authorization"):
        value = (tok.token[:10] + "\t" + tok.token[10:]).encode()
        if name == "Authorization":
            value = b"ApiKey " + value
        out = srv.raw(b"GET /protected/ HTTP/1.1\r\nHost: x\r\n" + name.encode() +
                      b": " + value + b"\r\nConnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400"), out[:200]
        assert b"spaces, control or non-ASCII" in out, out
        assert tok.token[10:].encode() not in out


def test_512_bytes_is_not_too_long(srv):
    r = srv.get("/protected/", {"X-API-Key": "x" * 512})
    assert r.status == 401  # well-bounded, just not a token


def test_no_credentials_401_challenge(srv):
    r = srv.get("/protected/")
    assert r.status == 401
    assert r.header("WWW-Authenticate") == 'ApiKey realm="sts-demo"'


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer abc.def",
                                   "ApiKeyX foo"])
def test_other_schemes_are_no_credentials(srv, value):
    r = srv.get("/protected/", {"Authorization": value})
    assert r.status == 401
    assert r.header("WWW-Authenticate") == 'ApiKey realm="sts-demo"'


def invalid(r):
    v = r.header("WWW-Authenticate") or ""
    return r.status == 401 and v.startswith('ApiKey realm="sts-demo", error="invalid_token"')


def test_unknown_token_401_invalid_token(srv, pg):
    t = pg.mint("gone-soon", ["ops"])
    pg.sql(f"DELETE FROM sts_tokens WHERE id = {t.id}")
    SENT.append(t.token)
    # A deletion with SQL reaches the token table within a second.
    deadline = time.time() + 1.0
    r = srv.get("/protected/", {"X-API-Key": t.token})
    while r.status == 200 and time.time() < deadline:
        time.sleep(0.05)
        r = srv.get("/protected/", {"X-API-Key": t.token})
    assert invalid(r), r.headers


def test_checksum_mismatch_and_garbage_401(srv, tok):
    bad = tok.token[:-1] + ("a" if tok.token[-1] != "a" else "b")
    for value in (bad, tok.token.upper(), "not-a-service-token-at-all", "svctok-"):
        r = srv.get("/protected/", {"X-API-Key": value})
        assert invalid(r), (value, r.headers)
    assert "checksum does not match" in srv.error_log()


def test_deleted_token_refused(httpd_factory, pg):
    nocache = httpd_factory("STSTokenCacheTTL 0\n")
    t = pg.mint("to-delete", ["ops"])
    SENT.append(t.token)
    assert nocache.get("/protected/", {"X-API-Key": t.token}).status == 200
    pg.sql(f"DELETE FROM sts_tokens WHERE id = {t.id}")
    assert invalid(nocache.get("/protected/", {"X-API-Key": t.token}))


def test_expiry(srv, pg):
    now = int(time.time() * 1000)
    past = pg.mint("expired", ["ops"], expiration_ms=now - 1000)
    future = pg.mint("fresh", ["ops"], expiration_ms=now + 60_000)
    SENT.extend([past.token, future.token])
    r = srv.get("/protected/", {"X-API-Key": past.token})
    assert invalid(r) and "expired" in r.header("WWW-Authenticate")
    r = srv.get("/hdr/", {"X-API-Key": future.token})
    assert r.status == 200
    day = datetime.datetime.fromtimestamp((now + 60_000) / 1000, datetime.timezone.utc)
    assert r.header("X-Expiration") == day.strftime("%Y-%m-%d")


def test_expiration_at_midnight_utc(srv, pg):
    # StackState sends --expiration 2027-01-15 as that day 00:00 UTC.
    ms = int(datetime.datetime(2099, 1, 15, tzinfo=datetime.timezone.utc).timestamp() * 1000)
    t = pg.mint("dated", ["ops"], expiration_ms=ms)
    SENT.append(t.token)
    r = srv.get("/hdr/", {"X-API-Key": t.token})
    assert r.header("X-Expiration") == "2099-01-15"


def test_env_vars_for_cgi(srv, tok):
    r = srv.get("/cgi-bin/env.cgi", {"X-API-Key": tok.token})
    env = env_of(r)
    assert env["STS_TOKEN_ID"] == str(tok.id)
    assert env["STS_TOKEN_NAME"] == "ci-bot"
    assert env["STS_TOKEN_ROLES"] == "ops,audit"
    assert env["STS_TOKEN_EXPIRATION"] == ""
    assert env["AUTH_TYPE"] == "ServiceToken"
    assert env["REMOTE_USER"] == "ci-bot"


def test_env_vars_for_mod_headers_and_access_log(srv, tok):
    r = srv.get("/hdr/", {"X-API-Key": tok.token})
    assert r.header("X-Roles") == "ops,audit"
    assert r.header("X-Token-Id") == str(tok.id)
    assert r.header("X-Expiration") is None or r.header("X-Expiration") == ""
    time.sleep(0.2)
    assert f"ci-bot 200" in srv.access_log()
    assert f"token_id={tok.id}" in srv.access_log()


def test_require_any(srv, pg, tok):
    assert srv.get("/any/", {"X-API-Key": tok.token}).status == 200
    nobody = pg.mint("nobody", ["reader"])
    SENT.append(nobody.token)
    assert srv.get("/any/", {"X-API-Key": nobody.token}).status == 403


def test_require_all(srv, pg, tok):
    assert srv.get("/all/", {"X-API-Key": tok.token}).status == 200
    half = pg.mint("half", ["ops"])
    SENT.append(half.token)
    assert srv.get("/all/", {"X-API-Key": half.token}).status == 403
    assert "none of those required" in srv.error_log()


def test_require_none(srv, pg, tok):
    assert srv.get("/none-of/", {"X-API-Key": tok.token}).status == 200
    banned = pg.mint("banned-one", ["ops", "banned"])
    SENT.append(banned.token)
    assert srv.get("/none-of/", {"X-API-Key": banned.token}).status == 403


def test_missing_role_without_forbidden_directive_is_401(srv, tok):
    r = srv.get("/no403/", {"X-API-Key": tok.token})
    assert r.status == 401
    assert r.header("WWW-Authenticate") == 'ApiKey realm="no403"'


def test_hide_credentials(srv, tok):
    r = srv.get("/hide/env.cgi", [("X-API-Key", tok.token),
                                  ("Authorization", "ApiKey " + tok.token)])
    env = env_of(r)
    assert env["STS_TOKEN_NAME"] == "ci-bot"
    assert "HTTP_X_API_KEY" not in env and "HTTP_AUTHORIZATION" not in env
    assert tok.token not in r.text


def test_no_hide_credentials_by_default(srv, tok):
    r = srv.get("/nohide/env.cgi", [("X-API-Key", tok.token),
                                    ("Authorization", "ApiKey " + tok.token)])
    env = env_of(r)
    assert env["HTTP_X_API_KEY"] == tok.token
    assert env["HTTP_AUTHORIZATION"] == "ApiKey " + tok.token


def test_other_auth_type_is_left_alone(srv, tok):
    with open(os.path.join(srv.run, "htpasswd"), "w") as f:
        f.write("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")  # password: password
    marker = len(srv.error_log())
    r = srv.get("/basic/", {"X-API-Key": tok.token})
    assert r.status == 401
    assert r.header("WWW-Authenticate") == 'Basic realm="basic-realm"'
    r = srv.get("/basic/", {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="})
    assert r.status == 200
    # Request lines only: the token table's thread logs on its own.
    assert not [line for line in srv.error_log()[marker:].splitlines()
                if "sts_token:" in line and "[client " in line]


def test_nested_location_inherits(srv, pg, tok):
    assert srv.get("/nest/inner/", {"X-API-Key": tok.token}).status == 200
    other = pg.mint("outsider", ["reader"])
    SENT.append(other.token)
    assert srv.get("/nest/", {"X-API-Key": other.token}).status == 200
    r = srv.get("/nest/inner/", {"X-API-Key": other.token})
    assert r.status == 403
    assert srv.get("/nest/inner/").header("WWW-Authenticate") == 'ApiKey realm="outer"'


def test_htaccess(srv, pg, tok):
    d = os.path.join(srv.docroot, "ht")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "index.html"), "w") as f:
        f.write("ht\n")
    with open(os.path.join(d, ".htaccess"), "w") as f:
        f.write("AuthType ServiceToken\nAuthName ht\nAuthzSendForbiddenOnFailure On\n"
                "Require sts-role audit\nSTSTokenHideCredentials On\n")
    for p in (d, os.path.join(d, "index.html"), os.path.join(d, ".htaccess")):
        os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
    assert srv.get("/ht/").status == 401
    assert srv.get("/ht/", {"X-API-Key": tok.token}).status == 200
    reader = pg.mint("reader-only", ["reader"])
    SENT.append(reader.token)
    assert srv.get("/ht/", {"X-API-Key": reader.token}).status == 403


def test_forward_proxy_challenge(srv):
    out = srv.raw(b"GET http://127.0.0.1:9/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"
                  b"Connection: close\r\n\r\n")
    head = out.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 407"), head
    assert 'Proxy-Authenticate: ApiKey realm="proxy-realm"' in head


def test_bootstrap(srv, bootstrap):
    r = srv.get("/cgi-bin/env.cgi", {"X-API-Key": bootstrap})
    env = env_of(r)
    assert env["STS_TOKEN_NAME"] == "bootstrap"
    assert env["STS_TOKEN_ID"] == "0"
    assert env["STS_TOKEN_ROLES"] == "stackstate-admin"
    r = srv.get("/protected/", {"Authorization": "ApiKey " + bootstrap})
    assert r.status == 200
    assert "STSTokenBootstrap is configured" in srv.error_log()
    assert srv.get("/protected/", {"X-API-Key": bootstrap[:-1] + "#"}).status == 401


def write_secret(dirname, name, text, mode):
    path = os.path.join(dirname, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("text,mode,message", [
    ("x" * 40 + "\n", 0o644, "readable or writable by group or others"),
    ("x" * 40 + "\n", 0o640, "readable or writable by group or others"),
    ("short-secret\n", 0o600, "shorter than 32 characters"),
    ("x" * 31 + "\n", 0o600, "shorter than 32 characters"),
    ("has spaces in it " * 3 + "\n", 0o600, "visible ASCII"),
])
def test_bootstrap_refused_at_startup(httpd_factory, tmp_path, text, mode, message):
    os.chmod(tmp_path, 0o755)
    path = write_secret(str(tmp_path), "boot", text, mode)
    h = httpd_factory(bootstrap_file=path, expect_fail=True)
    assert message in h.startup_output, h.startup_output


def test_bootstrap_32_chars_ok(httpd_factory, tmp_path):
    os.chmod(tmp_path, 0o755)
    secret = "y" * 32
    path = write_secret(str(tmp_path), "boot", secret + "\n", 0o600)
    h = httpd_factory(bootstrap_file=path)
    assert h.get("/protected/", {"X-API-Key": secret}).status == 200


def test_database_down_is_503_and_recovers(httpd_factory, pg):
    h = httpd_factory("STSTokenCacheTTL 0\n")
    t = pg.mint("survivor", ["ops"])
    SENT.append(t.token)
    assert h.get("/protected/", {"X-API-Key": t.token}).status == 200
    pg.stop()
    try:
        for _ in range(3):
            r = h.get("/protected/", {"X-API-Key": t.token})
            assert r.status == 503, r
    finally:
        pg.start()  # waits out the module's retry interval (0.5 s)
    # No httpd restart: the next requests succeed again.
    statuses = [h.get("/protected/", {"X-API-Key": t.token}).status for _ in range(10)]
    assert statuses == [200] * 10, statuses
    log = h.error_log()
    assert "database statement sts_token_lookup failed" in log or \
        "database unavailable" in log
    # The database's own message reaches the error log.
    assert "connection to server on socket" in log


def test_terminated_sessions_reprepare(httpd_factory, pg):
    h = httpd_factory("STSTokenCacheTTL 0\n")
    t = pg.mint("terminated", ["ops"])
    SENT.append(t.token)
    for _ in range(20):
        assert h.get("/protected/", {"X-API-Key": t.token}).status == 200
    pg.terminate_backends()
    statuses = [h.get("/protected/", {"X-API-Key": t.token}).status for _ in range(20)]
    assert statuses == [200] * 20, statuses
    assert "re-prepared the module's statements" in h.error_log()


def test_zz_no_secret_in_logs(srv, bootstrap):
    logs = srv.error_log() + srv.access_log()
    assert "[sts_token:info]" in logs  # the module's messages are there
    for secret in SENT + [str(bootstrap)]:
        assert secret not in logs
