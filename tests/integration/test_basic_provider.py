"""AuthBasicProvider sts-token (issue 17): a service token as the password of
HTTP Basic authentication, with curl -u and with git over HTTP through
git-http-backend."""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import IS_ROOT

GIT_BACKEND = "/usr/lib/git-core/git-http-backend"

EXTRA = r"""
LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so
LoadModule authz_host_module /usr/lib/apache2/modules/mod_authz_host.so

ScriptAlias "/b/" "${STS_CGI_DIR}/"
ScriptAlias "/bname/" "${STS_CGI_DIR}/"
ScriptAlias "/bboth/" "${STS_CGI_DIR}/"
ScriptAlias "/bhide/" "${STS_CGI_DIR}/"
<Location "/b/">
    AuthType Basic
    AuthName "git"
    AuthBasicProvider sts-token
    AuthzSendForbiddenOnFailure On
    Require sts-role git-push
    CGIPassAuth On
</Location>
<Location "/bname/">
    AuthType Basic
    AuthName "named"
    AuthBasicProvider sts-token
    STSTokenBasicUser TokenName
    Require valid-user
</Location>
<Location "/bboth/">
    AuthType Basic
    AuthName "both"
    AuthBasicProvider file sts-token
    AuthUserFile "@RUN@/htpasswd"
    Require valid-user
</Location>
<Location "/bhide/">
    AuthType Basic
    AuthName "hide"
    AuthBasicProvider sts-token
    Require valid-user
    CGIPassAuth On
    STSTokenHideCredentials On
</Location>

# Loopback clients pass without authentication: credentials still hidden.
ScriptAlias "/bany/" "${STS_CGI_DIR}/"
<Location "/bany/">
    AuthType Basic
    AuthName "any"
    AuthBasicProvider sts-token
    <RequireAny>
        Require ip 127.0.0.1
        Require valid-user
    </RequireAny>
    CGIPassAuth On
    STSTokenHideCredentials On
</Location>
# An open SSI page including a CGI under Basic (a sub-request).
<Directory "@DOCROOT@/ssi">
    Options +Includes
    AddOutputFilter INCLUDES .shtml
    Require all granted
</Directory>

SetEnv GIT_PROJECT_ROOT "@RUN@/git"
SetEnv GIT_HTTP_EXPORT_ALL 1
ScriptAlias "/git/" "/usr/lib/git-core/git-http-backend/"
<Directory "/usr/lib/git-core">
    Require all granted
</Directory>
<Location "/git/">
    AuthType Basic
    AuthName "git"
    AuthBasicProvider sts-token
    AuthzSendForbiddenOnFailure On
    Require sts-role git-push
</Location>
"""

NOCACHE = EXTRA.replace('AuthName "git"\n    AuthBasicProvider sts-token\n'
                        '    AuthzSendForbiddenOnFailure On\n'
                        '    Require sts-role git-push\n    CGIPassAuth On',
                        'AuthName "git"\n    AuthBasicProvider sts-token\n'
                        '    Require valid-user') + "\nSTSTokenCacheTTL 0\n"


def git(*args, cwd=None, check=True):
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false",
               HOME=cwd or tempfile.gettempdir(), GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=check,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def srv(httpd_factory):
    if not os.path.exists(GIT_BACKEND):
        pytest.fail(f"{GIT_BACKEND} is missing: run scripts/deps.sh (git)")
    h = httpd_factory(EXTRA)
    os.makedirs(os.path.join(h.docroot, "ssi"), mode=0o755)
    with open(os.path.join(h.docroot, "ssi", "page.shtml"), "w") as f:
        f.write('<!--#include virtual="/b/env.cgi" -->\n')
    os.chmod(os.path.join(h.docroot, "ssi", "page.shtml"), 0o644)
    # htpasswd user "alice" / "wonderland" for the combined provider list.
    subprocess.run(["htpasswd", "-bcB", os.path.join(h.run, "htpasswd"),
                    "alice", "wonderland"], check=True, capture_output=True)
    os.chmod(os.path.join(h.run, "htpasswd"), 0o644)
    # A bare repository the children may write (www-data when root).
    repo = os.path.join(h.run, "git", "project.git")
    os.makedirs(repo)
    git("init", "--bare", "-q", "-b", "main", repo)
    git("config", "-f", os.path.join(repo, "config"), "http.receivepack",
        "true")
    if IS_ROOT:
        subprocess.run(["chown", "-R", "www-data:www-data",
                        os.path.join(h.run, "git")], check=True)
    return h


@pytest.fixture(scope="module")
def pusher(pg):
    return pg.mint("ci-pusher", ["git-push", "reader"])


def curl(srv, path, user=None, password=None, headers=()):
    """(status, body, headers text) of a GET with curl -u."""
    cmd = ["curl", "-sS", "-o", "-", "-D", "/dev/stderr", "-w",
           "\n%{http_code}", "--max-time", "20"]
    if user is not None:
        cmd += ["-u", f"{user}:{password}"]
    for h in headers:
        cmd += ["-H", h]
    p = subprocess.run(cmd + [srv.url(path)], capture_output=True, text=True,
                       timeout=30)
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body, p.stderr


def cgi_env(body):
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)


def test_token_as_basic_password_any_user(srv, pusher):
    code, body, _ = curl(srv, "/b/env.cgi", "whoever", pusher.token)
    assert code == 200
    env = cgi_env(body)
    # r->user is the token's name, whatever the user name sent.
    assert env["REMOTE_USER"] == "ci-pusher"
    assert env["AUTH_TYPE"] == "Basic"
    assert env["STS_TOKEN_NAME"] == "ci-pusher"
    assert env["STS_TOKEN_ID"] == str(pusher.id)
    assert env["STS_TOKEN_ROLES"] == "git-push,reader"
    assert "HTTP_AUTHORIZATION" in env  # not hidden by default
    # The access log is written after the response: wait for the line.
    srv.wait_for_log("ci-pusher 200 ", access=True)
    assert f"token_id={pusher.id}" in srv.access_log()


def test_no_credentials_gets_basic_challenge(srv):
    code, _, hdrs = curl(srv, "/b/env.cgi")
    assert code == 401
    assert 'WWW-Authenticate: Basic realm="git"' in hdrs


def test_wrong_token_is_401(srv, pusher, pg):
    other = pg.mint("wrong-one", ["git-push"])
    pg.sql(f"DELETE FROM sts_tokens WHERE id = {other.id}")
    time.sleep(0.6)  # the token tables read the deletion (within 1 s)
    mark = srv.log_mark()
    code, _, hdrs = curl(srv, "/b/env.cgi", "x", other.token)
    assert code == 401 and 'Basic realm="git"' in hdrs
    # A mistyped token (checksum) and a password that is no token at all.
    typo = pusher.token[:-1] + ("A" if pusher.token[-1] != "A" else "B")
    assert curl(srv, "/b/env.cgi", "x", typo)[0] == 401
    assert curl(srv, "/b/env.cgi", "x", "hunter2")[0] == 401
    log = srv.error_log_since(mark)
    assert "unknown or deleted token" in log
    assert "token checksum does not match" in log
    for secret in (other.token, typo, "hunter2"):
        assert secret not in log


def test_revoked_token_refused_within_bound(srv, pg):
    t = pg.mint("basic-revoked", ["git-push"])
    assert curl(srv, "/b/env.cgi", "x", t.token)[0] == 200
    pg.sql(f"DELETE FROM sts_tokens WHERE id = {t.id}")
    deadline = time.time() + 3
    code = 200
    while time.time() < deadline and code == 200:
        time.sleep(0.2)
        code = curl(srv, "/b/env.cgi", "x", t.token)[0]
    assert code == 401


def test_expired_token_refused(srv, pg):
    t = pg.mint("basic-expired", ["git-push"],
                expiration_ms=int(time.time() * 1000) - 1000)
    mark = srv.log_mark()
    assert curl(srv, "/b/env.cgi", "x", t.token)[0] == 401
    assert f"token expired (id {t.id}, name 'basic-expired')" in \
        srv.error_log_since(mark)


def test_token_without_role_is_403(srv, pg):
    t = pg.mint("basic-norole", ["reader"])
    assert curl(srv, "/b/env.cgi", "x", t.token)[0] == 403


def test_token_name_as_user_required(srv, pusher):
    assert curl(srv, "/bname/env.cgi", "ci-pusher", pusher.token)[0] == 200
    mark = srv.log_mark()
    assert curl(srv, "/bname/env.cgi", "someone", pusher.token)[0] == 401
    assert "STSTokenBasicUser TokenName requires" in srv.error_log_since(mark)


def test_combined_with_file_provider(srv, pusher):
    code, body, _ = curl(srv, "/bboth/env.cgi", "alice", "wonderland")
    assert code == 200 and cgi_env(body)["REMOTE_USER"] == "alice"
    assert "STS_TOKEN_NAME" not in cgi_env(body)
    code, body, _ = curl(srv, "/bboth/env.cgi", "bob", pusher.token)
    assert code == 200 and cgi_env(body)["STS_TOKEN_NAME"] == "ci-pusher"
    # A file user with a wrong password is refused by the file provider.
    assert curl(srv, "/bboth/env.cgi", "alice", "nope")[0] == 401
    assert curl(srv, "/bboth/env.cgi", "carol", "nope")[0] == 401


def test_hide_credentials_under_basic(srv, pusher):
    code, body, _ = curl(srv, "/bhide/env.cgi", "x", pusher.token)
    assert code == 200
    assert "HTTP_AUTHORIZATION" not in cgi_env(body)
    assert pusher.token not in body


def test_spoofed_identity_headers_stripped_under_basic(srv, pg):
    t = pg.mint("basic-spoof", ["git-push"])
    code, body, _ = curl(srv, "/b/env.cgi", "x", t.token,
                         headers=["STS-Token-Roles: stackstate-admin"])
    env = cgi_env(body)
    assert code == 200 and env["STS_TOKEN_ROLES"] == "git-push"
    assert "HTTP_STS_TOKEN_ROLES" not in env


def test_ssi_subrequest_under_basic_strips_identity_lookalikes(srv, pusher):
    """An SSI '#include virtual' of a CGI under AuthBasicProvider sts-token:
    the CGI does not get the client's STS-Token-Roles (failed before: the
    fixups hook, which strips sub-requests, ran under ServiceToken only)."""
    code, body, _ = curl(srv, "/ssi/page.shtml", "x", pusher.token,
                         headers=["STS-Token-Roles: stackstate-admin"])
    env = cgi_env(body)
    assert code == 200 and env["STS_TOKEN_NAME"] == "ci-pusher", body
    assert "HTTP_STS_TOKEN_ROLES" not in env, body


def test_hide_credentials_under_basic_when_authentication_skipped(srv,
                                                                  pusher):
    """Require ip grants before authentication runs: Authorization is
    still removed (failed before: only check_password removed it)."""
    code, body, _ = curl(srv, "/bany/env.cgi", "x", pusher.token)
    assert code == 200
    assert "HTTP_AUTHORIZATION" not in cgi_env(body), body
    assert pusher.token not in body


def test_token_as_user_name_is_the_credential(srv, pusher):
    """curl -u "$TOKEN:" (the habit with API keys) authenticates, and names
    the token, not its secret (failed before: 401, the password was empty)."""
    code, body, _ = curl(srv, "/b/env.cgi", pusher.token, "")
    assert code == 200, body
    assert cgi_env(body)["REMOTE_USER"] == "ci-pusher"
    assert curl(srv, "/bname/env.cgi", pusher.token, "")[0] == 200


def test_token_as_user_name_never_logged(srv, pusher):
    """The token sent as the user name appears in no log line nor in %u,
    accepted or not (failed before: mod_auth_basic's AH01618 and the access
    log named the user)."""
    mark = srv.log_mark()
    unknown = pusher.token[:-4] + ("AAAA" if not pusher.token.endswith("AAAA")
                                   else "BBBB")
    assert curl(srv, "/b/env.cgi", pusher.token, "wrong")[0] == 401
    assert curl(srv, "/b/env.cgi", unknown, "")[0] == 401
    curl(srv, "/bname/env.cgi", pusher.token, "")
    srv.wait_for_log('"GET /bname/env.cgi', access=True)
    time.sleep(0.3)
    for secret in (pusher.token, unknown):
        assert secret not in srv.error_log_since(mark)
        assert secret not in srv.access_log()


def test_database_down_is_500_never_200_and_the_log_stays_bounded(
        httpd_factory, pg, bootstrap):
    """Refusals for want of the database: 500 under Basic (mod_auth_basic's
    answer to a provider error), 503 from the token API; the error log
    reports them once per interval, not once per request (failed before:
    one error line per request on both paths)."""
    h = httpd_factory(NOCACHE, loglevel="info")
    t = pg.mint("basic-dbdown", ["git-push"])
    assert curl(h, "/b/env.cgi", "x", t.token)[0] == 200
    n = 60
    pg.stop()
    try:
        mark = h.log_mark()
        for _ in range(n):
            code, _, head = curl(h, "/b/env.cgi", "x", t.token)
            assert code == 500
        for _ in range(n):
            r = h.get("/api/security/tokens", {"X-API-Key": bootstrap})
            assert r.status == 503, r
        time.sleep(0.5)
        log = h.error_log_since(mark)
    finally:
        pg.start()
    errors = [ln for ln in log.splitlines() if "[sts_token:error]" in ln]
    assert len(errors) < n // 4, "\n".join(errors[-20:])
    assert "token database unavailable: Basic authentication" not in log
    # Counted as refused for want of the database, so the 500 says when to
    # try again (err_headers_out survive mod_auth_basic's error page).
    assert "retry-after:" in head.lower(), head
    assert curl(h, "/b/env.cgi", "x", t.token)[0] == 200


def test_git_clone_and_push(srv, pusher, pg):
    work = tempfile.mkdtemp(prefix="sts-git-")
    try:
        url = srv.url("/git/project.git").replace(
            "http://", f"http://ci:{pusher.token}@")
        src = os.path.join(work, "src")
        git("init", "-q", "-b", "main", src)
        with open(os.path.join(src, "README"), "w") as f:
            f.write("pushed through mod_sts_token\n")
        git("add", "README", cwd=src)
        git("-c", "user.name=ci", "-c", "user.email=ci@example.invalid",
            "commit", "-q", "-m", "first", cwd=src)
        git("push", "-q", url, "main", cwd=src)
        dst = os.path.join(work, "dst")
        git("clone", "-q", url, dst, cwd=work)
        with open(os.path.join(dst, "README")) as f:
            assert f.read() == "pushed through mod_sts_token\n"
        srv.wait_for_log("ci-pusher 200", access=True)
        # A token without the role can neither clone nor push.
        reader = pg.mint("git-reader", ["reader"])
        bad = url.replace(pusher.token, reader.token)
        p = git("clone", "-q", bad, os.path.join(work, "no"), cwd=work,
                check=False)
        assert p.returncode != 0 and "403" in p.stderr
        p = git("push", "-q", bad, "main", cwd=src, check=False)
        assert p.returncode != 0 and "403" in p.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
