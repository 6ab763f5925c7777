"""StackState's own `sts` CLI (v3.3.6, ../shared/stackstate-cli/sts.xz)
against a real httpd + PostgreSQL with the shipped configuration, and our
bin/sts run on the same command lines: exit codes and JSON must agree.

The CLI is read in place (decompressed into a temp dir); when
../shared/stackstate-cli/ is missing these tests fail, they never skip."""

import calendar
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, free_port, past_trust_window, run_on_pty
from openapi_check import TOKEN_EXTENSIONS

SHARED = os.environ.get("STS_SHARED", os.path.join(ROOT, "..", "shared"))
STACKSTATE_XZ = os.path.join(SHARED, "stackstate-cli", "sts.xz")
OURS = os.environ.get("STS_CLI", os.path.join(ROOT, "bin", "sts"))
NO_SUBJECT = "-"  # how StackState's table shows a token without one


@pytest.fixture(scope="module")
def stackstate():
    """StackState's sts, decompressed from ../shared into a temp dir."""
    if not os.path.isfile(STACKSTATE_XZ):
        pytest.fail(f"StackState's CLI is missing: {STACKSTATE_XZ} (these "
                    "tests need ../shared/stackstate-cli/)")
    d = tempfile.mkdtemp(prefix="sts-stackstate-")
    exe = os.path.join(d, "stackstate-sts")
    with open(exe, "wb") as f:
        subprocess.run(["xz", "-dc", STACKSTATE_XZ], stdout=f, check=True)
    os.chmod(exe, 0o755)
    out = subprocess.run([exe, "version"], capture_output=True, text=True,
                         timeout=30).stdout
    assert "3.3.6" in out, out
    yield exe
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def srv(httpd_factory):
    # No cache: a deleted or expired token is refused at once.
    return httpd_factory("STSTokenCacheTTL 0\n")


class Cli:
    """One CLI with its own home (config file)."""

    def __init__(self, exe, home):
        self.exe = exe
        self.home = home

    def env(self):
        return {"PATH": os.environ["PATH"], "HOME": self.home,
                "XDG_CONFIG_HOME": os.path.join(self.home, "xdg"),
                "NO_COLOR": "1", "TZ": "UTC"}

    def __call__(self, *args):
        p = subprocess.run([self.exe, *args], env=self.env(), capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def table(self, *args):
        """Runs a command on a 250-column terminal (StackState's CLI wraps
        table cells to the terminal's width, 80 columns when not one);
        returns the exit code and the table's rows as lists of cells."""
        rc, text = run_on_pty([self.exe, *args], self.env(), columns=250)
        lines = text.splitlines()
        return rc, [[c.strip() for c in line.split("|")] for line in lines]


@pytest.fixture
def real(stackstate, tmp_path):
    return Cli(stackstate, str(tmp_path / "real"))


@pytest.fixture
def ours(tmp_path):
    return Cli(OURS, str(tmp_path / "ours"))


def admin_list(srv, bootstrap):
    r = srv.get("/api/security/tokens", {"X-API-Key": str(bootstrap)})
    assert r.status == 200, r
    return r.json()


def save(cli, srv, token, name="local", *extra):
    rc, out, err = cli("context", "save", "--name", name, "--url", srv.url(""),
                       "--service-token", token, *extra)
    assert rc == 0, (out, err)


def test_context_save_validate_admin_and_non_admin(real, srv, bootstrap, pg):
    rc, out, err = real("context", "save", "--name", "admin", "--url",
                        srv.url(""), "--service-token", str(bootstrap))
    assert rc == 0, err
    assert "Connection verified" in out and "Saved context: 'admin'" in out
    rc, out, err = real("context", "validate")
    assert rc == 0 and "Context admin is valid" in out, err
    reader = pg.mint("ss-reader", ["reader"])
    rc, out, err = real("context", "save", "--name", "reader", "--url",
                        srv.url(""), "--service-token", reader.token)
    assert rc == 0, err
    rc, out, err = real("context", "validate", "-o", "json")
    assert rc == 0 and json.loads(out)["connected"] is True, err
    assert json.loads(out)["server-info"]["version"]["major"] == 5
    # Token management stays admin-only: a readable JSON refusal, no HTML.
    rc, out, err = real("service-token", "list")
    assert rc == 3 and "403 Forbidden" in err, err
    assert "ss-reader" in err and "is authenticated but not allowed" in err
    assert "<html" not in err.lower()


def test_create_list_delete(real, srv, bootstrap):
    save(real, srv, str(bootstrap))
    rc, out, err = real("service-token", "create", "--name", "ss-plain",
                        "--roles", "stackstate-k8s-troubleshooter")
    assert rc == 0, err
    token = re.search(r"Service token created: (svctok-[0-9a-z]{39})", out).group(1)
    assert srv.get("/protected/", {"X-API-Key": token}).status == 200
    rc, out, err = real("service-token", "create", "--name", "ss-dated",
                        "--roles", "a,b", "--expiration", "2099-01-15")
    assert rc == 0, err
    rc, out, err = real("service-token", "create", "--name", "ss-subject",
                        "--roles", "r", "--dedicatedSubject", "svc-account",
                        "-o", "json")
    assert rc == 0, err
    created = json.loads(out)["service-token"]
    assert created["name"] == "ss-subject" and created["token"].startswith("svctok-")

    by_name = {t["name"]: t for t in admin_list(srv, bootstrap)}
    assert "dedicatedSubject" not in by_name["ss-plain"]  # "" means none
    assert "expiration" not in by_name["ss-plain"]
    assert by_name["ss-dated"]["expiration"] == calendar.timegm(
        (2099, 1, 15, 0, 0, 0)) * 1000
    assert by_name["ss-dated"]["roles"] == ["a", "b"]
    assert by_name["ss-subject"]["dedicatedSubject"] == "svc-account"

    rc, table = real.table("service-token", "list")
    assert rc == 0, table
    assert table[0] == ["ID", "NAME", "EXPIRATION", "ROLES", "DEDICATED_SUBJECT"]
    rows = {r[1]: r for r in table[1:]}
    assert rows["ss-dated"][2] == "2099-01-15" and rows["ss-dated"][3] == "[a b]"
    assert rows["ss-subject"][4] == "svc-account"
    assert rows["ss-plain"][4] == NO_SUBJECT
    assert rows["ss-plain"][3] == "[stackstate-k8s-troubleshooter]"

    rc, out, err = real("service-token", "list", "-o", "json")
    assert rc == 0, err
    listed = {t["name"]: t for t in json.loads(out)["service-tokens"]}
    assert listed["ss-subject"] == by_name["ss-subject"]

    tid = by_name["ss-plain"]["id"]
    rc, out, err = real("service-token", "delete", "--id", str(tid))
    assert (rc, out.strip()) == (0, f"[SUCCESS] Service token deleted: {tid}"), err
    assert srv.get("/protected/", {"X-API-Key": token}).status == 401
    rc, out, err = real("service-token", "delete", "--id", str(tid))
    assert rc == 3 and "404 Not Found" in err
    assert f"no service token with id {tid}" in err


def test_expired_and_wrong_tokens(real, srv, pg):
    expired = pg.mint("ss-expired", ["stackstate-admin"], expiration_ms=1000)
    for token, why in ((expired.token, "token expired"),
                       ("svctok-" + "0" * 39, "token checksum does not match"),
                       ("not-a-token", "not a service token")):
        rc, out, err = real("context", "save", "--url", srv.url(""),
                            "--service-token", token)
        assert rc == 4 and "Authentication failed" in err, err
        assert why in err and "<html" not in err.lower()
    save(real, srv, expired.token, "expired", "--skip-validate")
    rc, out, err = real("service-token", "list")
    assert rc == 4 and "token expired" in err


def test_database_down(real, ours, srv, pg, bootstrap):
    fresh = pg.mint("ss-db-down", ["stackstate-admin"])
    for cli in (real, ours):
        save(cli, srv, str(bootstrap), "boot")
    pg.stop()
    try:
        past_trust_window()
        # The bootstrap secret needs no database: server/info answers, the
        # list is 503 (a refused request).
        for cli in (real, ours):
            rc, out, err = cli("service-token", "list")
            assert rc == 3 and "the token database is unavailable" in err, err
        # A database token cannot even be checked: 503 from authentication,
        # a connection failure for both CLIs.
        for cli in (real, ours):
            rc, out, err = cli("context", "save", "--url", srv.url(""),
                               "--service-token", fresh.token)
            assert rc == 4 and "database is unavailable" in err, err
            assert "<html" not in err.lower()
    finally:
        pg.start()


# Fields of our token API that StackState's API lacks: its CLI decodes the
# list into its own type and leaves them out of its JSON; ours passes them on.
OUR_FIELDS = tuple(TOKEN_EXTENSIONS)


def normalized(text):
    """JSON output with what legitimately differs from run to run (secrets,
    ids, times, tracking keys) replaced, our extra fields left out, and error
    messages reduced to their presence: both CLIs word their errors
    differently."""
    doc = json.loads(text)

    def walk(v, key=None):
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()
                    if (k != "service-token" or not isinstance(x, str))
                    and k not in OUR_FIELDS}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if key in ("token",) and isinstance(v, str):
            return "TOKEN" if v.startswith("svctok-") else v
        if key in ("id", "lastUpdateTimestamp", "deleted-service-token"):
            return "N"
        if key == "error-message":
            return "MESSAGE"
        return v
    return walk(doc)


def test_same_command_lines_same_exit_codes_and_json(real, ours, srv, bootstrap, pg):
    """Both CLIs on the same command lines, each with its own config file:
    same exit code; same JSON once secrets, ids and messages are masked.
    StackState's CLI prints a context's service-token in JSON, ours never
    prints a secret: that key is left out of the comparison."""
    reader = pg.mint("ss-cmp-reader", ["reader"])
    expired = pg.mint("ss-cmp-expired", ["r"], expiration_ms=1000)
    url = srv.url("")
    boot = str(bootstrap)
    nowhere = "http://127.0.0.1:%d" % free_port()
    lines = [
        ["service-token", "list"],  # no config yet
        ["context", "list", "-o", "json"],
        ["context", "show"],
        ["context", "save", "--name", "a", "--url", url, "--service-token", boot,
         "-o", "json"],
        ["context", "save", "--name", "r", "--url", url, "--service-token",
         reader.token, "-o", "json"],
        ["context", "save", "--name", "x", "--url", url, "--service-token",
         expired.token],
        ["context", "save", "--name", "x", "--url", url, "--service-token",
         "svctok-" + "1" * 39],
        ["context", "save", "--name", "x", "--url", nowhere, "--service-token",
         boot],
        ["context", "save", "--name", "x", "--url", url, "--service-token",
         expired.token, "--skip-validate", "-o", "json"],
        ["context", "list", "-o", "json"],
        ["context", "show", "-o", "json"],
        ["context", "validate", "--name", "r", "-o", "json"],
        ["context", "validate", "--name", "x"],
        ["context", "validate", "--name", "nope"],
        ["context", "set", "--name", "nope"],
        ["context", "delete", "--name", "nope"],
        ["context", "delete", "--name", "x", "-o", "json"],  # the current one
        ["context", "set", "--name", "r", "-o", "json"],
        ["service-token", "list", "-o", "json"],  # reader: 403
        ["service-token", "create", "--name", "c", "--roles", "r", "-o", "json"],
        ["context", "set", "--name", "a", "-o", "json"],
        ["context", "delete", "--name", "x", "-o", "json"],
        ["context", "list", "-o", "json"],
        ["service-token", "create", "--name", "ss-cmp", "--roles", "r1,r2",
         "--expiration", "2099-03-01", "--dedicatedSubject", "s", "-o", "json"],
        ["service-token", "create", "--name", "ss-cmp", "--roles", "r", "-o",
         "json"],
        ["service-token", "create", "--name", "ss-cmp", "--roles", "r",
         "--expiration", "2001-01-01"],  # in the past: 400
        ["service-token", "delete", "--id", "4242424242"],
        ["service-token", "list", "--context", "nope"],
        ["service-token", "create", "--roles", "r"],
        ["service-token", "create", "--name", "n"],
        ["service-token", "create", "--name", "n", "--roles", "r",
         "--expiration", "2027-02-30"],
        ["service-token", "delete"],
        ["service-token", "delete", "--id", "abc"],
        ["service-token", "list", "--bogus"],
        ["service-token", "list", "-o", "yaml"],
        ["service-token", "frobnicate"],
        ["nonsense"],
        ["context", "save", "--url", url],
        ["context", "save", "--service-token", boot],
        ["service-token"],
        ["context"],
    ]
    for args in lines:
        r_rc, r_out, r_err = real(*args)
        o_rc, o_out, o_err = ours(*args)
        assert r_rc == o_rc, (args, r_rc, r_err, o_rc, o_err)
        if "-o" in args and args[args.index("-o") + 1] == "json":
            r_doc = normalized(r_out if r_rc == 0 else r_err)
            o_doc = normalized(o_out if o_rc == 0 else o_err)
            assert r_doc == o_doc, (args, r_doc, o_doc)
        for secret in (boot, reader.token, expired.token):
            assert secret not in o_out + o_err, args
    # Each created its own tokens; the lists agree once ids are masked.
    r_rc, r_out, _ = real("service-token", "list", "-o", "json")
    o_rc, o_out, _ = ours("service-token", "list", "-o", "json")
    assert r_rc == o_rc == 0
    mine = [t for t in normalized(o_out)["service-tokens"]
            if t["name"] == "ss-cmp"]
    assert len(mine) == 4 and normalized(r_out) == normalized(o_out)
    # Both delete with --id; ours also takes the ID as an argument.
    ids = [t["id"] for t in json.loads(o_out)["service-tokens"]
           if t["name"] == "ss-cmp"]
    assert real("service-token", "delete", "--id", str(ids[0]), "-o", "json")[0] == 0
    rc, out, _ = ours("service-token", "delete", "--id", str(ids[1]), "-o", "json")
    assert rc == 0 and json.loads(out) == {"deleted-service-token": ids[1]}
    assert ours("service-token", "delete", str(ids[2]))[0] == 0


def test_text_list_columns_agree(real, ours, srv, bootstrap):
    for cli in (real, ours):
        save(cli, srv, str(bootstrap))
    real("service-token", "create", "--name", "ss-cols", "--roles", "r",
         "--expiration", "2099-05-06", "--dedicatedSubject", "subj")
    tables = []
    for cli in (real, ours):
        rc, table = cli.table("service-token", "list")
        assert rc == 0, table
        tables.append(table)
    # StackState's columns, then ours: LAST USED.
    assert tables[1][0][-1] == "LAST USED"
    assert tables[0] == [r[:-1] for r in tables[1]]
    row = [r for r in tables[0] if r[1] == "ss-cols"][0]
    assert row[2:] == ["2099-05-06", "[r]", "subj"]


def test_lists_tokens_with_last_use(real, srv, bootstrap, pg):
    """Tokens carrying lastUsedTimestamp and lastUsedFrom (not in
    StackState's API) are listed by StackState's CLI as before: table and
    JSON, the extra fields ignored."""
    used = pg.mint("ss-used", ["reader"])
    assert srv.get("/protected/", {"X-API-Key": used.token}).status == 200
    deadline = time.time() + 10
    while True:
        mine = [t for t in admin_list(srv, bootstrap) if t["id"] == used.id]
        if "lastUsedTimestamp" in mine[0] or time.time() > deadline:
            break
        time.sleep(0.25)
    assert mine[0]["lastUsedFrom"] == "127.0.0.1", mine
    save(real, srv, str(bootstrap))
    rc, table = real.table("service-token", "list")
    assert rc == 0, table
    assert [r for r in table if len(r) > 1 and r[1] == "ss-used"] == \
        [[str(used.id), "ss-used", "", "[reader]", NO_SUBJECT]]
    rc, out, err = real("service-token", "list", "-o", "json")
    assert rc == 0, err
    theirs = [t for t in json.loads(out)["service-tokens"]
              if t["id"] == used.id]
    assert theirs == [{k: v for k, v in mine[0].items()
                       if k not in OUR_FIELDS}]
