"""The shipped example configurations (conf/sts_token.load, conf/sts_token.conf)
work as documented: their example blocks, uncommented, protect what they say."""

import os
import re

import pytest

from conftest import ROOT, module_path

LOAD = os.path.join(ROOT, "conf", "sts_token.load")
CONF = os.path.join(ROOT, "conf", "sts_token.conf")
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
    default) and appears in conf/sts_token.conf, so the docs cannot drift
    from the module record."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert re.search(r"^\| `" + directive + r"[ `]", readme, re.M), \
        f"README's directive table lacks {directive}"
    assert directive in open(CONF).read(), \
        f"conf/sts_token.conf does not mention {directive}"


def test_load_file_for_a2enmod():
    text = open(LOAD).read()
    assert re.search(r"^# Depends: dbd$", text, re.M), text
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines == ["LoadModule sts_token_module "
                     "/usr/lib/apache2/modules/mod_sts_token.so"]


def test_conf_has_documented_examples():
    text = open(CONF).read()
    active = [ln.strip() for ln in text.splitlines()
              if ln.strip() and not ln.strip().startswith("#")]
    assert active[0] == "<IfModule sts_token_module>"
    assert "DBDriver pgsql" in active
    assert any(ln.startswith("DBDParams") and "connect_timeout=" in ln
               and "statement_timeout=" in ln for ln in active)
    # Nothing is protected until the admin uncomments a block.
    assert not any(ln.startswith("<Location") for ln in active)
    ex = uncommented_examples(text)
    for needed in ('<Location "/protected">', '<Location "/reports">',
                   '<Location "/api">', "Require sts-role stackstate-admin",
                   "SetHandler sts-token-api", "AuthzSendForbiddenOnFailure On",
                   "STSTokenHideCredentials On", "<RequireAny>"):
        assert needed in ex, needed
    assert "#STSTokenBootstrap /etc/apache2/sts-bootstrap.token" in text


@pytest.fixture(scope="module")
def srv(httpd_factory, pg):
    ex = uncommented_examples(open(CONF).read())
    # Point the example at the test database.
    ex, n = re.subn(r'^(\s*)DBDParams .*$',
                    lambda m: f'{m.group(1)}DBDParams "{pg.dbd_params}"', ex,
                    flags=re.M)
    assert n == 1
    h = httpd_factory("Alias /reports @DOCROOT@/protected\n" + ex)
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
