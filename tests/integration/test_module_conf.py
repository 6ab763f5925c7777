"""The shipped configurations (conf/sts_token.load, conf/sts_token.conf and
conf/sts-token-locations.conf) work as documented: the example blocks,
uncommented, protect what they say, and fail closed without the module."""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import IS_ROOT, ROOT, free_port, make_private_dir, module_path

LOAD = os.path.join(ROOT, "conf", "sts_token.load")
CONF = os.path.join(ROOT, "conf", "sts_token.conf")
LOCATIONS = os.path.join(ROOT, "conf", "sts-token-locations.conf")
SENT = []


def uncommented_examples(text):
    """sts_token.conf with every '--- example' block uncommented."""
    out, inside = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --- example"):
            inside = True
            continue
        if stripped == "# --- end ---":
            inside = False
            continue
        if inside:
            # "    #    AuthType x" -> "        AuthType x"; a comment inside
            # the block ("    #    # why") stays a comment.
            m = re.match(r"^(\s*)#(.*)$", line)
            assert m, f"example line not commented out: {line!r}"
            line = m.group(1) + m.group(2)
        out.append(line)
    assert not inside, "unterminated example block"
    return "\n".join(out) + "\n"


def module_directives():
    """Every directive mod_sts_token.c registers, with its help text."""
    src = open(os.path.join(ROOT, "mod_sts_token.c")).read()
    found = re.findall(r'AP_INIT_\w+\(\s*"(\w+)"', src)
    assert len(found) >= 5, found
    return found


@pytest.mark.parametrize("directive", module_directives())
def test_directive_documented(directive):
    """Each directive has a row in the README's directive table (with its
    default) and appears in conf/sts_token.conf or, for the per-directory
    ones, conf/sts-token-locations.conf, so the docs cannot drift from the
    module record."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert re.search(r"^\| `" + directive + r"[ `]", readme, re.M), \
        f"README's directive table lacks {directive}"
    assert directive in open(CONF).read() + open(LOCATIONS).read(), \
        f"conf/ does not mention {directive}"


def test_load_file_for_a2enmod():
    text = open(LOAD).read()
    assert re.search(r"^# Depends: dbd reqtimeout$", text, re.M), text
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines == ["LoadModule sts_token_module "
                     "/usr/lib/apache2/modules/mod_sts_token.so"]


def active_lines(text):
    return [ln.strip() for ln in text.splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def test_conf_has_the_module_settings():
    text = open(CONF).read()
    active = active_lines(text)
    assert active[0] == "<IfModule sts_token_module>"
    assert "DBDriver pgsql" in active
    assert any(ln.startswith("DBDParams") and "user=www-data" in ln
               and "connect_timeout=" in ln and "statement_timeout=" in ln
               for ln in active)
    assert "#STSTokenBootstrap /etc/apache2/sts-bootstrap.token" in text
    # Protections never live here: a2dismod takes this file away too.
    assert "<Location" not in text


def test_locations_have_documented_examples():
    text = open(LOCATIONS).read()
    # Nothing is protected until the admin uncomments a block.
    assert active_lines(text) == []
    ex = uncommented_examples(text)
    for needed in ('<Location "/protected">', '<Location "/reports">',
                   '<Location "/api">', '<Location "/api/server/info">',
                   "Require sts-role stackstate-admin",
                   "SetHandler sts-token-api", "STSTokenAPIBase",
                   "AuthzSendForbiddenOnFailure On",
                   "STSTokenHideCredentials On", "<RequireAny>",
                   "AuthBasicProvider sts-token", "Require sts-role git-push"):
        assert needed in ex, needed
    # Every example fails closed.
    blocks = re.findall(r"<Location .*?</Location>", ex, re.S)
    assert len(blocks) == 5
    for b in blocks:
        assert re.search(r"<IfModule !sts_token_module>\s*Require all denied"
                         r"\s*</IfModule>", b), b


@pytest.fixture(scope="module")
def srv(httpd_factory, pg):
    conf = open(CONF).read()
    # Point the settings at the test database.
    conf, n = re.subn(r'^(\s*)DBDParams .*$',
                      lambda m: f'{m.group(1)}DBDParams "{pg.dbd_params}"',
                      conf, flags=re.M)
    assert n == 1
    ex = uncommented_examples(open(LOCATIONS).read())
    # Debian enables mod_auth_basic by default; the test config does not.
    h = httpd_factory("LoadModule auth_basic_module "
                      "/usr/lib/apache2/modules/mod_auth_basic.so\n"
                      "Alias /reports @DOCROOT@/protected\n"
                      "Alias /git @DOCROOT@/protected\n" + conf + ex)
    return h


def test_examples_protect_what_they_say(srv, pg, bootstrap):
    reader = pg.mint("conf-reader", ["report-reader"])
    other = pg.mint("conf-other", ["something-else"])
    SENT.extend([reader.token, other.token])
    assert srv.get("/protected/").status == 401
    assert srv.get("/protected/").header("WWW-Authenticate") == \
        'ApiKey realm="my-api"'
    assert srv.get("/protected/", {"X-API-Key": other.token}).status == 200
    assert srv.get("/reports/", {"X-API-Key": reader.token}).status == 200
    assert srv.get("/reports/", {"X-API-Key": other.token}).status == 403
    assert srv.get("/reports/", {"X-API-Key": bootstrap}).status == 200
    r = srv.get("/api/security/tokens", {"X-API-Key": reader.token})
    assert r.status == 403
    r = srv.get("/api/server/info", {"X-API-Key": bootstrap})
    assert r.status == 200 and r.json()["deploymentMode"] == "SelfHosted"
    # Any valid token reads server/info (StackState's CLI saves a context
    # with it); token management stays admin-only.
    r = srv.get("/api/server/info", {"X-API-Key": reader.token})
    assert r.status == 200 and r.json()["version"]["major"] == 5
    assert srv.get("/api/server/info").status == 401
    # TRACE would echo the credentials back before authentication.
    r = srv.request("TRACE", "/protected/", {"X-API-Key": reader.token})
    assert r.status == 405 and reader.token.encode() not in r.body


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_example_takes_a_token_as_password(srv, pg):
    pusher = pg.mint("conf-pusher", ["git-push"])
    other = pg.mint("conf-nopush", ["reader"])
    SENT.extend([pusher.token, other.token])
    r = srv.get("/git/")
    assert r.status == 401 and r.header("WWW-Authenticate") == \
        'Basic realm="git"'
    assert srv.get("/git/", {"Authorization": basic("ci", pusher.token)}) \
        .status == 200
    assert srv.get("/git/", {"Authorization": basic("ci", other.token)}) \
        .status == 403


def test_load_file_loads(httpd_factory, tmp_path):
    """The .load line, pointed at the built module, is accepted by httpd."""
    so = module_path()
    text = open(LOAD).read().replace("/usr/lib/apache2/modules/mod_sts_token.so",
                                     so)
    # Loading it a second time is reported and skipped, not an error.
    h = httpd_factory(text)
    h.wait_for_log("AH", timeout=10)
    assert "sts_token_module is already loaded" in h.error_log() + h.stdout_log()
    assert h.get("/protected/").status == 401


def test_locations_fail_closed_without_the_module():
    """After a2dismod sts_token (no module, no sts_token.conf) the example
    locations answer 403 to everyone; the rest of the site is served."""
    run = make_private_dir("sts-noconf-")
    docroot = os.path.join(run, "htdocs")
    os.makedirs(os.path.join(docroot, "protected"), mode=0o755)
    os.chmod(docroot, 0o755)
    for rel in ("index.html", "protected/index.html"):
        with open(os.path.join(docroot, rel), "w") as f:
            f.write("content\n")
        os.chmod(os.path.join(docroot, rel), 0o644)
    port = free_port()
    user = "User www-data\nGroup www-data\n" if IS_ROOT else ""
    with open(os.path.join(run, "httpd.conf"), "w") as f:
        f.write(f"""ServerRoot "{run}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{run}/httpd.pid"
ErrorLog "{run}/error.log"
Mutex file:{run} default
{user}LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
DocumentRoot "{docroot}"
<Directory "{docroot}">
    Require all granted
</Directory>
""" + uncommented_examples(open(LOCATIONS).read()))
    proc = subprocess.Popen(["apache2", "-f", os.path.join(run, "httpd.conf"),
                             "-DFOREGROUND"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)

    def status(path):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                          timeout=10).status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        deadline = time.time() + 20
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.time() < deadline, "httpd did not answer"
                time.sleep(0.05)
        assert status("/") == 200
        for path in ("/protected/", "/reports/", "/api/server/info",
                     "/api/security/tokens"):
            assert status(path) == 403, path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(run, ignore_errors=True)
