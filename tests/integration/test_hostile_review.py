"""Findings of a hostile review (issue 14, items 3-8 and 10), each reproduced
against a real httpd (a loopback backend that echoes the headers it gets
stands for a proxied application) and the test PostgreSQL.
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest


EXTRA = r"""
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
LoadModule authz_host_module /usr/lib/apache2/modules/mod_authz_host.so

# Reverse proxy to the echo backend, credentials hidden.
<Location "/hidden/">
    AuthType ServiceToken
    AuthName "hidden"
    Require valid-user
    STSTokenHideCredentials On
    ProxyPass "http://127.0.0.1:@ECHO@/"
</Location>
# Loopback clients pass without a token; credentials must still be hidden.
<Location "/hidden-any/">
    AuthType ServiceToken
    AuthName "hidden-any"
    <RequireAny>
        Require ip 127.0.0.1
        Require valid-user
    </RequireAny>
    STSTokenHideCredentials On
    ProxyPass "http://127.0.0.1:@ECHO@/"
</Location>
<Location "/cgi-bin/env-any.cgi">
    <RequireAny>
        Require ip 127.0.0.1
        Require valid-user
    </RequireAny>
    STSTokenHideCredentials On
    CGIPassAuth On
</Location>

# An SSI page including a protected, proxied location.
<Directory "@DOCROOT@/ssi">
    Options +Includes
    AddOutputFilter INCLUDES .shtml
    Require all granted
</Directory>
<Location "/sub/">
    AuthType ServiceToken
    AuthName "sub"
    Require valid-user
    ProxyPass "http://127.0.0.1:@ECHO@/"
</Location>

# A forward proxy that only token holders may use.
ProxyRequests On
<Proxy "http://127.0.0.1:@ECHO@/*">
    AuthType ServiceToken
    AuthName "forward"
    Require valid-user
</Proxy>
"""


@pytest.fixture(scope="module")
def srv(httpd_factory, echo):
    h = httpd_factory(EXTRA.replace("@ECHO@", str(echo)))
    os.makedirs(os.path.join(h.docroot, "ssi"), mode=0o755)
    with open(os.path.join(h.docroot, "ssi", "page.shtml"), "w") as f:
        f.write('before<!--#include virtual="/sub/inc" -->after\n')
    os.chmod(os.path.join(h.docroot, "ssi", "page.shtml"), 0o644)
    shutil.copy(os.path.join(h.cgi_dir, "env.cgi"),
                os.path.join(h.cgi_dir, "env-any.cgi"))
    os.chmod(os.path.join(h.cgi_dir, "env-any.cgi"), 0o755)
    return h


@pytest.fixture(scope="module")
def tok(pg):
    return pg.mint("review-bot", ["reader"])


@pytest.fixture(scope="module")
def tok2(pg):
    return pg.mint("review-other", ["stackstate-admin"])


def send(srv, lines, path=b"/hidden/x", method=b"GET"):
    """One request with raw header lines; returns (status, head, body)."""
    req = (method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           + b"".join(line + b"\r\n" for line in lines)
           + b"Connection: close\r\n\r\n")
    out = srv.raw(req)
    head, _, body = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    assert m, out[:300]
    return int(m.group(1)), head.decode("latin-1"), body


def b(s):
    return s.encode()


def echoed(body):
    """The headers the echo backend received, names lower-cased."""
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


# ---- item 4: sub-requests ----

def test_ssi_subrequest_strips_identity_lookalikes(srv, tok):
    """An SSI '#include virtual' of a protected, proxied location: the
    backend does not get the client's STS-Token-Roles (failed before: httpd
    runs header_parser for main requests only, and the stripping ran
    there)."""
    status, _, body = send(srv, [b"X-API-Key: " + b(tok.token),
                                 b"STS-Token-Roles: stackstate-admin",
                                 b"sts_token_name: root"],
                           path=b"/ssi/page.shtml")
    assert status == 200, body
    inner = body[body.index(b"{"):body.rindex(b"}") + 1]
    hs = echoed(inner)
    assert "sts-token-roles" not in hs and "sts_token_name" not in hs, hs
    assert b"stackstate-admin" not in body


# ---- item 5: merged Authorization, hidden credentials ----

def test_apikey_in_authorization_list_is_400(srv, tok, tok2):
    """X-API-Key: T plus a joined Authorization 'Basic x, ApiKey T2' is
    refused (failed before: accepted as T, and T2 reached the backend)."""
    for lines in ([b"X-API-Key: " + b(tok.token), b"Authorization: Basic eDp5",
                   b"Authorization: ApiKey " + b(tok2.token)],
                  [b"X-API-Key: " + b(tok.token),
                   b"Authorization: Basic eDp5, ApiKey " + b(tok2.token)],
                  [b"Authorization: Basic eDp5",
                   b"Authorization: ApiKey " + b(tok.token)]):
        status, _, body = send(srv, lines)
        assert status == 400, body
        assert b(tok2.token) not in body


def test_hidden_credentials_whatever_authorization_path(srv, tok):
    """Require ip grants before authentication: STSTokenHideCredentials On
    still keeps the token from the backend and from a CGI (failed before:
    the headers were only removed by authentication)."""
    for lines in ([b"X-API-Key: " + b(tok.token)],
                  [b"Authorization: ApiKey " + b(tok.token)]):
        status, _, body = send(srv, lines, path=b"/hidden-any/x")
        assert status == 200, body
        hs = echoed(body)
        assert "x-api-key" not in hs and "authorization" not in hs, hs
        status, _, body = send(srv, lines, path=b"/cgi-bin/env-any.cgi")
        assert status == 200, body
        assert b(tok.token) not in body
        assert b"HTTP_X_API_KEY" not in body
    # Another scheme's credentials are not ours to hide.
    status, _, body = send(srv, [b"Authorization: Basic eDp5"],
                           path=b"/hidden-any/x")
    assert echoed(body).get("authorization") == "Basic eDp5"


def test_hidden_credentials_after_authentication(srv, tok):
    status, _, body = send(srv, [b"X-API-Key: " + b(tok.token),
                                 b"Authorization: ApiKey " + b(tok.token)])
    assert status == 200, body
    assert b(tok.token) not in body


# ---- item 6: forward proxy ----

def test_forward_proxy_does_not_forward_x_api_key(srv, tok, echo):
    """ProxyRequests On with AuthType ServiceToken in <Proxy>: the
    X-API-Key the proxy consumed never reaches the destination (failed
    before: it was forwarded)."""
    url = b"http://127.0.0.1:%d/fwd" % echo
    status, _, body = send(srv, [b"X-API-Key: " + b(tok.token)], path=url)
    assert status == 200, body
    hs = echoed(body)
    assert "x-api-key" not in hs, hs
    status, _, body = send(srv, [b"Proxy-Authorization: ApiKey " +
                                 b(tok.token)], path=url)
    assert status == 200, body
    assert b(tok.token) not in body
    status, head, _ = send(srv, [], path=url)
    assert status == 407 and "Proxy-Authenticate: ApiKey" in head, head


# ---- item 3: a missing revision row ----

def test_missing_revision_row_fails_closed(srv, pg):
    """With the sts_token_revision row gone, a token deleted from the
    database stops working in every process within about a second, and the
    log says what to do (failed before: taken for an outage, every process
    that had cached the token kept honouring it until its TTL ended)."""
    t = pg.mint("review-revision", ["reader"])
    hdr = [b"X-API-Key: " + b(t.token)]
    for _ in range(20):  # cached in both processes
        assert send(srv, hdr, path=b"/hidden/x")[0] == 200
    (rev,), = pg.sql("SELECT revision FROM sts_token_revision")
    try:
        pg.sql("DELETE FROM sts_token_revision")
        pg.sql(f"DELETE FROM sts_tokens WHERE id = {t.id}")
        time.sleep(1.2)
        statuses = [send(srv, hdr, path=b"/hidden/x")[0] for _ in range(20)]
        assert statuses == [401] * 20, statuses
        srv.wait_for_log("table sts_token_revision has no row")
        assert "INSERT INTO sts_token_revision" in srv.error_log()
    finally:
        pg.sql("INSERT INTO sts_token_revision (singleton, revision) VALUES "
               f"(true, {int(rev) + 1000}) ON CONFLICT (singleton) DO UPDATE "
               "SET revision = EXCLUDED.revision")


# ---- item 8: names ----

@pytest.mark.parametrize("name", ["bootstrap", "BOOTSTRAP", "admin\u202eslm",
                                  "ad\u200bmin", "a\u2028b", "\ufeffops"])
def test_confusable_names_refused(srv, pg, bootstrap, name):
    """The bootstrap identity's name and invisible characters are refused
    by the API with a 400 naming the rule, and nothing is stored (failed
    before: created)."""
    before = pg.sql("SELECT count(*) FROM sts_tokens")
    r = srv.request("POST", "/api/security/tokens",
                    {"X-API-Key": str(bootstrap),
                     "Content-Type": "application/json"},
                    json.dumps({"name": name, "roles": ["reader"]}).encode())
    assert r.status == 400, r
    assert b"reserved" in r.body or b"U+" in r.body, r.body
    assert pg.sql("SELECT count(*) FROM sts_tokens") == before


def test_stored_bootstrap_name_refused(srv, pg):
    """A token named 'bootstrap' stored past the API (SQL, an older version)
    does not authenticate as a second 'bootstrap' (failed before: 200 with
    REMOTE_USER bootstrap); the log says how to fix it."""
    t = pg.mint("Bootstrap", ["reader"])
    for _ in range(3):
        status, head, _ = send(srv, [b"X-API-Key: " + b(t.token)])
        assert status == 401, head
    srv.wait_for_log(f"token id {t.id} is named 'Bootstrap'")


# ---- item 7: bounding what the token API grants ----

BOUNDED = r"""
# A token API whose callers may only grant 'reader' and roles they hold.
<Location "/bounded">
    AuthType ServiceToken
    AuthName "bounded"
    AuthzSendForbiddenOnFailure On
    Require sts-role token-manager stackstate-admin
    SetHandler sts-token-api
    STSTokenAPIGrantableRoles held reader
</Location>
"""


def test_grantable_roles_bound_the_api(httpd_factory, pg, bootstrap):
    """Under STSTokenAPIGrantableRoles held reader, a token-manager token
    mints reader and token-manager tokens but not stackstate-admin ones
    (403, nothing stored); the bootstrap secret grants the roles it holds.
    Without the directive (/api) nothing is bounded, as in StackState."""
    srv = httpd_factory(BOUNDED)
    mgr = pg.mint("review-manager", ["token-manager"])

    def create(token, roles, base="/bounded"):
        return srv.request("POST", base + "/security/tokens",
                           {"X-API-Key": token,
                            "Content-Type": "application/json"},
                           json.dumps({"name": "review-minted",
                                       "roles": roles}).encode())

    assert create(mgr.token, ["reader"]).status == 200
    assert create(mgr.token, ["token-manager", "reader"]).status == 200
    before = pg.sql("SELECT count(*) FROM sts_tokens")
    r = create(mgr.token, ["reader", "stackstate-admin"])
    assert r.status == 403, r
    assert b"stackstate-admin" in r.body and b"STSTokenAPIGrantableRoles" in r.body
    assert pg.sql("SELECT count(*) FROM sts_tokens") == before
    assert create(str(bootstrap), ["stackstate-admin"]).status == 200
    assert create(str(bootstrap), ["ops"]).status == 403
    assert create(str(bootstrap), ["ops"], base="/api").status == 200


# ---- item 10: the shipped configuration ----

def test_shipped_conf_trace_off_and_reqtimeout(srv, tok):
    """conf/httpd.conf (make run, these tests) answers TRACE 405 without
    echoing credentials and loads mod_reqtimeout (failed before: TRACE
    echoed the headers, and idle connections held workers for Timeout)."""
    r = srv.request("TRACE", "/protected/", {"X-API-Key": tok.token})
    assert r.status == 405, r
    assert tok.token.encode() not in r.body
    cmd = [a for a in srv.command() if a != "-DFOREGROUND"]
    out = subprocess.run(cmd + ["-t", "-D", "DUMP_MODULES"], env=srv.env,
                         capture_output=True, text=True)
    assert "reqtimeout_module" in out.stdout, out.stdout + out.stderr
    assert "TraceEnable Off" in open(os.path.join(
        os.path.dirname(__file__), "..", "..", "conf", "sts_token.conf")).read()
