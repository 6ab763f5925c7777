"""The sts CLI (issue 4) against a real httpd + PostgreSQL: every command,
output form (text, table, -o json, terminal with emoji, --no-color), error
and exit code, the config file shared with StackState's CLI, and HTTPS
through mod_ssl. No command may ever print a service token it was given:
sts() checks that on every run."""

import calendar
import json
import os
import re
import stat
import subprocess

import pytest
import yaml

from conftest import ROOT, free_port, run_on_pty

# STS_CLI selects another build of sts (e.g. a sanitizer build).
STS = os.environ.get("STS_CLI", os.path.join(ROOT, "bin", "sts"))

HELP = """Manage service tokens.

Usage:
  sts service-token [command]

Available Commands:
  create      Create a service token
  delete      Delete a service token
  list        List service tokens
  rotate      Issue a new secret for a service token

Use "sts service-token [command] --help" for more information about a command.
"""


@pytest.fixture(scope="module")
def srv(httpd_factory):
    return httpd_factory()


@pytest.fixture
def home(tmp_path):
    return str(tmp_path)


# Secrets no output may contain (the bootstrap secret is added per test).
SECRETS = set()


@pytest.fixture(autouse=True)
def _no_secret_in_output(bootstrap):
    SECRETS.add(str(bootstrap))
    yield


def _env(home, env):
    e = {"PATH": os.environ["PATH"], "HOME": home,
         "XDG_CONFIG_HOME": os.path.join(home, "xdg")}
    e.update(env or {})
    return e


def _given_secrets(args, env):
    """The tokens this run was given: flags, environment, config file."""
    found = set(SECRETS)
    for i, a in enumerate(args[:-1]):
        if a == "--service-token" and len(args[i + 1]) >= 8:
            found.add(args[i + 1])
    if env and len(env.get("STS_CLI_SERVICE_TOKEN", "")) >= 8:
        found.add(env["STS_CLI_SERVICE_TOKEN"])
    return found


def sts(home, *args, env=None):
    before = _config_tokens(home)
    p = subprocess.run([STS, *args], env=_env(home, env), capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    for secret in _given_secrets(args, env) | before | _config_tokens(home):
        assert secret not in p.stdout and secret not in p.stderr, (args, p)
    # With a sanitizer build (STS_CLI=...), any report fails the test.
    assert "runtime error:" not in p.stderr and "Sanitizer" not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


def sts_tty(home, *args, env=None):
    """Runs sts with stdout and stderr on a terminal (a pty)."""
    rc, text = run_on_pty([STS, *args], _env(home, env))
    for secret in _given_secrets(args, env):
        assert secret not in text
    return rc, text


def _config_tokens(home):
    try:
        doc = yaml.safe_load(open(config_file(home)))
    except (OSError, yaml.YAMLError):
        return set()
    if not isinstance(doc, dict):
        return set()
    return {str(c["context"]["service-token"]) for c in doc.get("contexts") or []
            if isinstance(c, dict) and isinstance(c.get("context"), dict)
            and len(str(c["context"].get("service-token", ""))) >= 8}


def config_file(home):
    return os.path.join(home, "xdg", "stackstate-cli", "config.yaml")


def save(home, srv, token, name="local"):
    rc, out, err = sts(home, "context", "save", "--name", name, "--url",
                       srv.url(""), "--service-token", token)
    assert rc == 0, err
    return out


def test_help_texts(home):
    rc, out, _ = sts(home, "service-token", "--help")
    assert rc == 0 and out == HELP
    rc, out, _ = sts(home, "service-token")
    assert rc == 0 and out == HELP
    for sub in ("create", "list", "delete"):
        rc, out, _ = sts(home, "service-token", sub, "--help")
        assert rc == 0 and "Usage:" in out
    rc, out, _ = sts(home, "--help")
    assert rc == 0 and "service-token" in out
    rc, out, _ = sts(home, "version")
    assert rc == 0 and re.match(r"sts \d+\.\d+\.\d+\n", out)


def test_no_config_is_exit_1(home):
    rc, out, err = sts(home, "service-token", "list")
    assert rc == 1
    assert "no server configured" in err and err.startswith("[ERROR] ")


def test_usage_errors_are_exit_3(home):
    """Exit 3, as StackState's CLI (test_stackstate_cli.py runs both)."""
    for args in (["service-token", "create", "--roles", "r"],
                 ["service-token", "create", "--name", "n"],
                 ["service-token", "create", "--name", "n", "--roles", "r",
                  "--expiration", "2027-02-30"],
                 ["service-token", "create", "--name", "n", "--roles", "r",
                  "--expiration", "15-01-2027"],
                 ["service-token", "create", "--name", "n", "--roles", "bad role"],
                 ["service-token", "delete"],
                 ["service-token", "delete", "abc"],
                 ["service-token", "delete", "007"],
                 ["service-token", "delete", "-5"],
                 ["service-token", "delete", "9007199254740992"],
                 ["service-token", "frobnicate"],
                 ["service-token", "list", "--bogus"],
                 ["service-token", "list", "-o", "yaml"],
                 ["nonsense"]):
        rc, out, err = sts(home, *args)
        assert rc == 3, (args, out, err)
        assert err.startswith("[ERROR] "), err


def test_context_save_and_file_format(home, srv, bootstrap):
    out = save(home, srv, bootstrap)
    assert out.startswith("[SUCCESS] Context saved: local")
    path = config_file(home)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = yaml.safe_load(open(path))
    assert doc == {"contexts": [{"name": "local", "context": {
        "url": srv.url(""), "service-token": str(bootstrap), "api-path": "/api"}}],
        "current-context": "local"}
    assert [f for f in os.listdir(os.path.dirname(path)) if ".tmp" in f] == []


def test_create_list_delete(home, srv, bootstrap):
    save(home, srv, bootstrap)
    rc, out, err = sts(home, "service-token", "create", "--name", "my-service-token",
                       "--roles", "stackstate-k8s-troubleshooter")
    assert rc == 0, err
    m = re.fullmatch(r"\[SUCCESS\] Service token created: (svctok-[0-9a-z]{39})\n", out)
    assert m, out
    token = m.group(1)
    assert srv.get("/protected/", {"X-API-Key": token}).status == 200

    rc, out, err = sts(home, "service-token", "create", "-n", "aaa-first", "--roles",
                       "a,b", "--roles", "c,a", "--expiration", "2099-01-15")
    assert rc == 0, err
    rc, out, err = sts(home, "service-token", "list")
    assert rc == 0, err
    lines = out.splitlines()
    assert re.fullmatch(r"ID +\| NAME +\| EXPIRATION \| ROLES +\| "
                        r"DEDICATED_SUBJECT +\| LAST USED", lines[0]), lines[0]
    seps = {tuple(m.start() for m in re.finditer(r" \| ", l)) for l in lines}
    assert len(seps) == 1, out  # columns aligned
    rows = [[c.strip() for c in l.split(" | ")] for l in lines[1:]]
    names = [r[1] for r in rows]
    assert names == sorted(names)
    mine = [r for r in rows if r[1] == "my-service-token"][0]
    assert mine[2] == "" and mine[3] == "[stackstate-k8s-troubleshooter]"
    assert mine[4] == "-"
    first = [r for r in rows if r[1] == "aaa-first"][0]
    assert first[2] == "2099-01-15" and first[3] == "[a b c]"
    assert first[5] == "never"  # test_last_use.py: a use shows here

    rc, out, err = sts(home, "service-token", "delete", mine[0])
    assert (rc, out) == (0, f"[SUCCESS] Service token deleted: {mine[0]}\n"), err
    rc, out, err = sts(home, "service-token", "delete", "--id", first[0])
    assert rc == 0, err
    rc, out, err = sts(home, "service-token", "delete", "-i", first[0])
    assert rc == 3 and f"no service token with id {first[0]}" in err and "404" in err


def test_json_output(home, srv, bootstrap):
    save(home, srv, bootstrap)
    rc, out, err = sts(home, "service-token", "create", "--name", "json-one",
                       "--roles", "r", "--description", "d", "--dedicatedSubject",
                       "subj", "-o", "json")
    assert rc == 0, err
    created = json.loads(out)["service-token"]
    assert created["name"] == "json-one" and created["token"].startswith("svctok-")
    rc, out, err = sts(home, "service-token", "list", "-o", "json")
    tokens = json.loads(out)["service-tokens"]
    mine = [t for t in tokens if t["name"] == "json-one"][0]
    assert mine["description"] == "d" and mine["dedicatedSubject"] == "subj"
    assert created["token"] not in out
    rc, out, err = sts(home, "service-token", "delete", str(mine["id"]), "--output=json")
    assert rc == 0 and json.loads(out) == {"deleted-service-token": mine["id"]}
    rc, out, err = sts(home, "service-token", "delete", str(mine["id"]), "-o", "json")
    assert rc == 3 and out == ""
    e = json.loads(err)
    assert e["error"] is True and "no service token" in e["error-message"]
    rc, out, err = sts(home, "service-token", "delete", "x", "-o", "json")
    assert rc == 3 and json.loads(err)["error"] is True


def test_empty_list(home, srv, pg, bootstrap):
    pg.sql("DELETE FROM sts_tokens")  # every test module mints its own
    save(home, srv, bootstrap)
    rc, out, _ = sts(home, "service-token", "list")
    assert (rc, out) == (0, "No service tokens found.\n")


def test_expired_expiration_refused_by_server(home, srv, bootstrap):
    save(home, srv, bootstrap)
    rc, out, err = sts(home, "service-token", "create", "--name", "old", "--roles",
                       "r", "--expiration", "2001-01-01")
    assert rc == 3 and "not in the future" in err and "400" in err


def test_connection_errors(home, srv, bootstrap, pg):
    port = free_port()
    env = {"STS_CLI_URL": f"http://127.0.0.1:{port}", "STS_CLI_SERVICE_TOKEN": "secret-xyz-123"}
    rc, out, err = sts(home, "service-token", "list", env=env)
    # As StackState's CLI, every service-token command reads server/info first.
    assert rc == 4 and f"http://127.0.0.1:{port}/api/server/info" in err
    assert "secret-xyz-123" not in err
    # A bad token: authentication failed, exit 4, the token is not echoed.
    bad = "svctok-" + "0" * 39
    env = {"STS_CLI_URL": srv.url(""), "STS_CLI_SERVICE_TOKEN": bad}
    rc, out, err = sts(home, "service-token", "list", env=env)
    assert rc == 4 and "authentication failed (401)" in err and bad not in err
    # A token without the admin role: refused, exit 3.
    t = pg.mint("cli-reader", ["reader"])
    env["STS_CLI_SERVICE_TOKEN"] = t.token
    rc, out, err = sts(home, "service-token", "list", env=env)
    assert rc == 3 and "HTTP 403" in err and t.token not in err
    # HTTPS against a plain HTTP port: cannot connect.
    env = {"STS_CLI_URL": "https://127.0.0.1:%d" % srv.port,
           "STS_CLI_SERVICE_TOKEN": str(bootstrap)}
    for extra in ([], ["--skip-ssl"]):
        rc, out, err = sts(home, "service-token", "list", *extra, env=env)
        assert rc == 4 and "cannot connect" in err, err
        assert str(bootstrap) not in err
    rc, out, err = sts(home, "service-token", "list", "--ca-cert-path",
                       "/nonexistent/ca.pem", env=env)
    assert rc == 3 and "/nonexistent/ca.pem" in err, err


def test_env_overrides_and_contexts(home, srv, bootstrap):
    rc, out, err = sts(home, "service-token", "list", env={
        "STS_CLI_URL": srv.url(""), "STS_CLI_SERVICE_TOKEN": str(bootstrap),
        "STS_CLI_API_PATH": "/api"})
    assert rc == 0, err
    save(home, srv, bootstrap, "one")
    rc, out, err = sts(home, "context", "save", "--name", "broken", "--url",
                       "http://127.0.0.1:%d" % free_port(), "--service-token", "x",
                       "--skip-validate")
    assert rc == 0 and "not validated" in out
    # current is "broken" now; --context / STS_CLI_CONTEXT pick another.
    assert sts(home, "service-token", "list")[0] == 4
    assert sts(home, "service-token", "list", "--context", "one")[0] == 0
    assert sts(home, "service-token", "list", env={"STS_CLI_CONTEXT": "one"})[0] == 0
    assert sts(home, "service-token", "list", "--context", "nope")[0] == 8
    # --url/--service-token flags win over the context.
    assert sts(home, "service-token", "list", "--url", srv.url(""),
               "--service-token", str(bootstrap))[0] == 0
    rc, out, _ = sts(home, "context", "list")
    assert rc == 0 and re.search(r"^\* +\| broken", out, re.M) and "one" in out
    rc, out, _ = sts(home, "context", "show", "--name", "one")
    assert rc == 0 and "url: " + srv.url("") in out and str(bootstrap) not in out
    rc, out, _ = sts(home, "context", "show", "-o", "json")
    shown = json.loads(out)
    assert shown["name"] == "broken" and "x" not in shown["current-context"].values()
    assert sts(home, "context", "validate")[0] == 4
    assert sts(home, "context", "validate", "--name", "one")[0] == 0
    assert sts(home, "context", "set", "--name", "one")[0] == 0
    assert yaml.safe_load(open(config_file(home)))["current-context"] == "one"
    assert sts(home, "context", "delete", "--name", "one")[0] == 3  # current
    assert sts(home, "context", "delete", "--name", "broken")[0] == 0
    assert [c["name"] for c in yaml.safe_load(open(config_file(home)))["contexts"]] == ["one"]
    assert sts(home, "context", "delete", "--name", "broken")[0] == 8
    assert sts(home, "context", "set")[0] == 3


def test_context_save_validates(home, srv):
    rc, out, err = sts(home, "context", "save", "--name", "n", "--url", srv.url(""),
                       "--service-token", "svctok-" + "0" * 39)
    assert rc == 4 and "authentication failed" in err
    assert not os.path.exists(config_file(home))
    rc, out, err = sts(home, "context", "save", "--name", "n", "--url", srv.url(""),
                       "--service-token", "t", "--api-path", "/nope")
    assert rc in (3, 4)


def test_older_context_spelling(home, srv, bootstrap):
    rc, out, err = sts(home, "context", "--name", "legacy", "--service-token",
                       str(bootstrap), "--url", srv.url(""))
    assert rc == 0, err
    assert yaml.safe_load(open(config_file(home)))["current-context"] == "legacy"
    assert sts(home, "service-token", "list")[0] == 0


def test_config_errors_are_exit_1(home):
    path = config_file(home)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("contexts: [ {name: x, context: {url: 1\n")
    rc, out, err = sts(home, "service-token", "list")
    assert rc == 1 and "invalid YAML" in err and path in err


def test_no_color_markers(home, srv, bootstrap):
    # Output is not a TTY here: no emoji, [SUCCESS]/[ERROR] markers.
    out = save(home, srv, bootstrap)
    assert "\u2705" not in out and out.startswith("[SUCCESS]")
    rc, out, err = sts(home, "service-token", "delete", "1", "--no-color")
    assert rc == 3 and err.startswith("[ERROR] ") and "\x1b[" not in err


def test_root_help_and_version(home):
    rc, out, _ = sts(home)
    assert rc == 0 and "Usage:\n  sts [command]" in out and "Exit codes" in out
    rc, out, _ = sts(home, "version", "-o", "json")
    assert rc == 0 and re.fullmatch(r"\d+\.\d+\.\d+", json.loads(out)["version"])
    rc, out, err = sts(home, "version", "extra")
    assert rc == 3 and "takes no arguments" in err
    rc, out, _ = sts(home, "context", "--help")
    assert rc == 0 and "save" in out and "--skip-validate" in out


def test_more_usage_errors(home):
    cases = [
        (["service-token", "list", "--id", "5"], "does not take --id"),
        (["service-token", "create", "-n", "x", "--roles", "r", "--id", "5"],
         "does not take --id"),
        (["service-token", "delete", "5", "6"], "too many arguments"),
        (["service-token", "delete", "5", "--id", "6"], "too many arguments"),
        (["service-token", "delete", " 5"], "invalid token ID"),
        (["service-token", "delete", "+5"], "invalid token ID"),
        (["service-token", "create", "-n", "x\x01", "--roles", "r"],
         "control character"),
        (["service-token", "create", "-n", "n" * 256, "--roles", "r"],
         "longer than 255"),
        (["service-token", "create", "-n", "x", "--roles", ",".join(
            "r%d" % i for i in range(65))], "too many roles"),
        (["service-token", "list", "--url", "ftp://127.0.0.1", "--service-token",
          "svctok-whatever-123"], "must start with"),
        (["service-token", "list", "--url", "http://127.0.0.1:1",
          "--service-token", "svctok-a\r\nX-Injected: yes"], "control character"),
        (["service-token", "list", "--url", "http://127.0.0.1:1",
          "--service-token", "svctok-abcdefgh", "--api-path", "api"],
         "must start with '/'"),
        (["context", "save", "--name", "x", "--url", "http://127.0.0.1:1"],
         "needs --url and --service-token"),
        (["context", "frob"], "unknown command 'context frob'"),
        (["context", "list", "--name", "x"], "does not take --name"),
        (["-Zsvctok-pasted-secret", "service-token", "list"], "unknown flag -Z"),
    ]
    for args, msg in cases:
        rc, out, err = sts(home, *args)
        assert rc == 3 and msg in err and out == "", (args, err)
        assert "pasted-secret" not in err and "X-Injected" not in err


def test_bad_environment_is_exit_1(home):
    port = free_port()
    for env, msg in (({"STS_CLI_URL": "127.0.0.1:%d" % port,
                       "STS_CLI_SERVICE_TOKEN": "svctok-abcdefgh"},
                      "STS_CLI_URL: URL '127.0.0.1:%d' must start" % port),
                     ({"STS_CLI_URL": "http://127.0.0.1:%d" % port,
                       "STS_CLI_SERVICE_TOKEN": "svctok-abc\ndefgh"},
                      "STS_CLI_SERVICE_TOKEN: the service token contains"),
                     ({"STS_CLI_URL": "http://u:pw@127.0.0.1:%d" % port,
                       "STS_CLI_SERVICE_TOKEN": "svctok-abcdefgh"},
                      "must not contain a user name or password")):
        rc, out, err = sts(home, "service-token", "list", env=env)
        assert rc == 1 and msg in err, err
        assert "abcdefgh" not in err and "pw@" not in err


def test_terminal_output(home, srv, bootstrap):
    """On a terminal: emoji and colour; --no-color and NO_COLOR: markers."""
    save(home, srv, bootstrap)
    rc, out = sts_tty(home, "service-token", "create", "--name", "tty-one",
                      "--roles", "r")
    assert rc == 0 and re.fullmatch(
        "\u2705 Service token created: svctok-[0-9a-z]{39}\n", out), out
    rc, out = sts_tty(home, "service-token", "delete", "1")
    assert rc == 3 and out.startswith("\u274c \x1b[31mthe server refused DELETE")
    rc, out = sts_tty(home, "service-token", "delete", "1", "--no-color")
    assert rc == 3 and out.startswith("[ERROR] the server refused") and "\x1b" not in out
    rc, out = sts_tty(home, "service-token", "list", env={"NO_COLOR": "1"})
    assert rc == 0 and "\x1b" not in out and "tty-one" in out
    rc, out = sts_tty(home, "context", "set", "--name", "local", "--no-color")
    assert (rc, out) == (0, "[SUCCESS] Context set: local\n")


def test_json_shapes(home, srv, bootstrap):
    rc, out, err = sts(home, "context", "save", "--name", "j", "--url", srv.url(""),
                       "--service-token", str(bootstrap), "-o", "json")
    assert rc == 0, err
    # StackState's shapes, without the token.
    ctx = {"url": srv.url(""), "api-path": "/api", "admin-api-path": "",
           "skip-ssl": False}
    assert json.loads(out) == {"current-context": "j", "context": ctx}
    rc, out, err = sts(home, "service-token", "create", "--name", "json-exp",
                       "--roles", "r", "--expiration", "2099-01-15", "-o", "json")
    assert rc == 0, err
    created = json.loads(out)
    assert list(created) == ["service-token"]
    assert created["service-token"]["expiration"] == calendar.timegm(
        (2099, 1, 15, 0, 0, 0)) * 1000  # 00:00 UTC of that day
    assert out.startswith('{\n  "service-token": {\n')  # indented, as StackState
    rc, out, _ = sts(home, "service-token", "list", "-o", "json")
    tokens = json.loads(out)["service-tokens"]
    assert [(t["name"], t["id"]) for t in tokens] == sorted(
        (t["name"], t["id"]) for t in tokens)
    assert all("token" not in t for t in tokens)
    rc, out, _ = sts(home, "context", "list", "-o", "json")
    assert json.loads(out) == {"contexts": [{"name": "j", "context": ctx}]}
    rc, out, _ = sts(home, "context", "show", "-o", "json")
    assert json.loads(out) == {"current-context": ctx, "name": "j"}
    rc, out, err = sts(home, "context", "validate", "-o", "json")
    shown = json.loads(out)
    assert rc == 0 and set(shown) == {"context", "server-info", "connected"}
    assert shown["context"] == "j" and shown["connected"] is True
    assert shown["server-info"]["version"]["major"] == 5
    rc, out, err = sts(home, "service-token", "list", "--bogus", "-o", "json")
    assert rc == 3 and out == "" and json.loads(err) == {
        "error": True, "error-message": "unknown flag --bogus (see sts --help)"}
    assert err.startswith('{\n  "error": true,\n')


def test_database_down_is_exit_3(home, srv, pg, bootstrap):
    save(home, srv, bootstrap)
    pg.stop()
    try:
        rc, out, err = sts(home, "service-token", "list")
    finally:
        pg.start()
    assert rc == 3 and "HTTP 503 Service Unavailable" in err, err
    assert srv.url("/api/security/tokens") in err


def test_wrong_api_path_is_exit_4_with_a_hint(home, srv, bootstrap):
    """No server/info there: a connection failure (4), as StackState's CLI."""
    rc, out, err = sts(home, "service-token", "list", "--url", srv.url(""),
                       "--service-token", str(bootstrap), "--api-path", "/nope")
    assert rc == 4 and "HTTP 404 Not Found" in err and "--api-path" in err, err
    rc, out, err = sts(home, "context", "save", "--url", srv.url(""),
                       "--service-token", str(bootstrap), "--api-path", "/nope")
    assert rc == 4 and "/nope/server/info" in err
    assert not os.path.exists(config_file(home))


def test_stackstate_config_file_is_kept(home, srv, bootstrap):
    """A file written by StackState's CLI: its other contexts and keys
    survive our writes; its older flat format is read as "default"."""
    path = config_file(home)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("url: %s\nservice-token: %s\napi-path: /api\n"
                "admin-api-path: /admin\n" % (srv.url(""), bootstrap))
    os.chmod(path, 0o644)
    rc, out, err = sts(home, "service-token", "list")
    assert rc == 0, err
    rc, out, err = sts(home, "context", "show")
    assert rc == 0 and "name: default\n" in out and "(set, hidden)" in out
    with open(path, "w") as f:
        yaml.safe_dump({"contexts": [
            {"name": "theirs", "context": {
                "url": "https://sts.example.com", "api-token": "their-api-token",
                "api-path": "/api", "admin-api-path": "/admin", "skip-ssl": False}},
            {"name": "default", "context": {"url": srv.url(""),
                                            "service-token": str(bootstrap)}}],
            "current-context": "theirs", "preferences": {"color": "auto"}}, f)
    SECRETS.add("their-api-token")
    rc, out, err = sts(home, "service-token", "list")
    assert rc == 1 and "has an api-token but no service-token" in err
    rc, out, err = sts(home, "context", "save", "--name", "ours", "--url",
                       srv.url(""), "--service-token", str(bootstrap))
    assert rc == 0, err
    doc = yaml.safe_load(open(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert doc["preferences"] == {"color": "auto"}
    assert doc["current-context"] == "ours"
    assert doc["contexts"][0] == {"name": "theirs", "context": {
        "url": "https://sts.example.com", "api-token": "their-api-token",
        "api-path": "/api", "admin-api-path": "/admin", "skip-ssl": False}}
    assert [c["name"] for c in doc["contexts"]] == ["theirs", "default", "ours"]
    assert sts(home, "context", "delete", "--name", "default")[0] == 0
    doc = yaml.safe_load(open(path))
    assert [c["name"] for c in doc["contexts"]] == ["theirs", "ours"]
    assert doc["preferences"] == {"color": "auto"}
    SECRETS.discard("their-api-token")


def test_huge_or_odd_config_is_exit_1(home):
    path = config_file(home)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("#" * (1024 * 1024 + 1))
    rc, out, err = sts(home, "service-token", "list")
    assert rc == 1 and "larger than 1 MiB" in err
    os.unlink(path)
    os.mkdir(path)
    rc, out, err = sts(home, "context", "list")
    assert rc == 1 and "not a regular file" in err


@pytest.fixture(scope="module")
def tls(httpd_factory, tmp_path_factory):
    """httpd with a second, HTTPS listener (mod_ssl, a self-signed
    certificate for 127.0.0.1) serving the same /api."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(str(d), 0o755)
    port = free_port()
    h = httpd_factory(extra_conf=f"""
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
Listen 127.0.0.1:{port} https
<VirtualHost 127.0.0.1:{port}>
    SSLEngine on
    SSLCertificateFile "{cert}"
    SSLCertificateKeyFile "{key}"
</VirtualHost>
""")
    h.tls_url = f"https://127.0.0.1:{port}"
    h.cert = cert
    return h


def test_https(home, tls, bootstrap):
    env = {"STS_CLI_URL": tls.tls_url, "STS_CLI_SERVICE_TOKEN": str(bootstrap)}
    # Verification is on by default: a self-signed certificate is refused.
    rc, out, err = sts(home, "service-token", "list", env=env)
    assert rc == 4 and "cannot connect to " + tls.tls_url in err, err
    assert "certificate" in err.lower()
    rc, out, err = sts(home, "service-token", "list", "--ca-cert-path", tls.cert,
                       env=env)
    assert rc == 0, err
    rc, out, err = sts(home, "service-token", "list", "--skip-ssl", env=env)
    assert rc == 0, err
    # context save --ca-cert-path stores the CA (base64, as StackState does),
    # later commands trust it without the flag.
    rc, out, err = sts(home, "context", "save", "--name", "tls", "--url",
                       tls.tls_url, "--service-token", str(bootstrap),
                       "--ca-cert-path", tls.cert)
    assert rc == 0, err
    ctx = yaml.safe_load(open(config_file(home)))["contexts"][0]["context"]
    assert "ca-cert-base64-data" in ctx
    assert sts(home, "service-token", "list")[0] == 0
    assert sts(home, "context", "validate")[0] == 0
    # skip-ssl stored in the context.
    rc, out, err = sts(home, "context", "save", "--name", "insecure", "--url",
                       tls.tls_url, "--service-token", str(bootstrap), "--skip-ssl")
    assert rc == 0, err
    assert yaml.safe_load(open(config_file(home)))["contexts"][1]["context"][
        "skip-ssl"] is True
    assert sts(home, "service-token", "list")[0] == 0
    # Plain HTTP spoken to the TLS port, and TLS to the HTTP port, fail as
    # connection errors naming the URL.
    rc, out, err = sts(home, "service-token", "list", "--context", "tls", "--url",
                       "https://127.0.0.1:%d" % tls.port)
    assert rc == 4 and "https://127.0.0.1:%d/api/server/info" % tls.port in err


def _static(srv, path, data):
    """Puts a file into the instance's document root (served by httpd
    itself, no authentication), for answers the API never gives."""
    full = os.path.join(srv.docroot, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    os.chmod(full, 0o644)
    d = os.path.dirname(full)
    while d.startswith(srv.docroot) and d != srv.docroot:
        os.chmod(d, 0o755)
        d = os.path.dirname(d)


def test_odd_answers(home, srv, bootstrap):
    """Answers from something that is not the token API (here: static files
    httpd serves below another path) are refused clearly, bounded, and
    their text cannot drive the terminal."""
    base = ["--url", srv.url(""), "--service-token", str(bootstrap)]
    info = srv.get("/api/server/info", {"X-API-Key": str(bootstrap)}).body
    for d in ("/big", "/obj", "/esc"):  # read before every service-token command
        _static(srv, d + "/server/info", info)
    _static(srv, "/big/security/tokens", b"[" + b" " * (16 * 1024 * 1024) + b"]")
    rc, out, err = sts(home, "service-token", "list", *base, "--api-path", "/big")
    assert rc == 4 and "larger than 16 MiB" in err, err
    _static(srv, "/obj/security/tokens", b'{"a": 1}')
    rc, out, err = sts(home, "service-token", "list", *base, "--api-path", "/obj")
    assert rc == 3 and "not a list of tokens" in err, err
    _static(srv, "/obj/server/info", b"<html>hello</html>")
    rc, out, err = sts(home, "context", "save", *base, "--api-path", "/obj")
    assert rc == 4 and "did not answer with server info" in err, err
    _static(srv, "/esc/security/tokens", json.dumps([
        {"id": 5, "name": "evil\x1b]0;pwned\x07\x1b[2J", "roles": ["r\x9b31m"],
         "lastUpdateTimestamp": 1}]).encode())
    rc, out, err = sts(home, "service-token", "list", *base, "--api-path", "/esc")
    assert rc == 0 and "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "evil?]0;pwned??[2J" in out and "[r?31m]" in out


def test_secret_that_cannot_be_written_is_reported(home, srv, bootstrap):
    save(home, srv, bootstrap)
    with open("/dev/full", "w") as full:
        p = subprocess.run([STS, "service-token", "create", "--name", "full-disk",
                            "--roles", "r"], env=_env(home, None), stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert "'full-disk' was created but its secret could not be written" in p.stderr
    assert "No space left on device" in p.stderr


def test_timeouts(home):
    """A server that accepts connections but never answers: the request
    times out (STS_CLI_TIMEOUT, default 60 s) with exit 4 naming the URL."""
    import socket
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)  # the kernel completes handshakes; nobody ever answers
        url = "http://127.0.0.1:%d" % s.getsockname()[1]
        env = {"STS_CLI_URL": url, "STS_CLI_SERVICE_TOKEN": "svctok-abcdefgh",
               "STS_CLI_TIMEOUT": "2"}
        t0 = time.monotonic()
        rc, out, err = sts(home, "service-token", "list", env=env)
        took = time.monotonic() - t0
    assert rc == 4 and url + "/api/server/info" in err and "timed out" in err, err
    assert 1.5 < took < 10, took
    for bad in ("0", "-1", "x", "3601", "2s"):
        env["STS_CLI_TIMEOUT"] = bad
        rc, out, err = sts(home, "service-token", "list", env=env)
        assert rc == 1 and "STS_CLI_TIMEOUT must be" in err


def test_concurrent_context_saves_lose_nothing(home):
    """Eight sts processes saving different contexts at once: the config
    lock serialises them, every context is in the file afterwards."""
    procs = [subprocess.Popen(
        [STS, "context", "save", "--name", "c%d" % i, "--url",
         "http://127.0.0.1:%d" % (1000 + i), "--service-token",
         "svctok-concurrent-%d" % i, "--skip-validate"],
        env=_env(home, None), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(8)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    doc = yaml.safe_load(open(config_file(home)))
    assert sorted(c["name"] for c in doc["contexts"]) == ["c%d" % i for i in range(8)]
    assert stat.S_IMODE(os.stat(config_file(home)).st_mode) == 0o600
    assert [f for f in os.listdir(os.path.dirname(config_file(home)))
            if f.startswith(".config.yaml.")] == []


def _silent_server():
    """A listening socket nobody answers: sts waits on it (STS_CLI_TIMEOUT)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s, "http://127.0.0.1:%d" % s.getsockname()[1]


def _has_socket(pid):
    """Whether process pid has a socket open. Its files open and close
    while it is listed (its config, valgrind's own under test-valgrind):
    one closed meanwhile is skipped."""
    for f in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{f}").startswith("socket:"):
                return True
        except FileNotFoundError:
            pass
    return False


def _cmdline_while_waiting(args, env, stdin=subprocess.DEVNULL, feed=None):
    """Starts sts, lets it block on a server that never answers, and returns
    its /proc/PID/cmdline as another local user would read it."""
    import time
    p = subprocess.Popen([STS, *args], env=env, stdin=stdin,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if feed is not None:
            p.stdin.write(feed)
            p.stdin.close()
        deadline = time.monotonic() + 10
        seen = b""
        while time.monotonic() < deadline:
            # Blocked on the network: the connection to the silent server
            # shows in its sockets (it is past its argument handling).
            if _has_socket(p.pid):
                time.sleep(0.2)
                with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                    seen = f.read()
                break
            time.sleep(0.02)
        assert seen, "sts never reached the network"
        return seen
    finally:
        p.kill()
        p.wait(10)
        p.stdout.close()
        p.stderr.close()


def test_token_argument_hidden_from_proc_cmdline(home):
    """--service-token T: T is overwritten in argv early, so ps and
    /proc/PID/cmdline (readable by every local user) do not show it while
    sts runs (before main() runs no program can hide it)."""
    secret = "svctok-" + "7" * 39
    s, url = _silent_server()
    with s:
        seen = _cmdline_while_waiting(
            ["service-token", "list", "--url", url, "--service-token", secret],
            _env(home, {"STS_CLI_TIMEOUT": "20"}))
        assert b"--service-token\0" + b"x" * len(secret) + b"\0" in seen, seen
        assert secret.encode() not in seen and b"7777" not in seen
        seen = _cmdline_while_waiting(
            ["service-token", "list", "--url", url, "--service-token=" + secret],
            _env(home, {"STS_CLI_TIMEOUT": "20"}))
        assert secret.encode() not in seen and b"--service-token=xxx" in seen


def test_token_from_file_and_stdin(home, srv, bootstrap, tmp_path):
    """The ways to give a token that never reach a command line: a file
    (first line), standard input, the environment."""
    path = tmp_path / "token"
    path.write_text(str(bootstrap) + "\n")
    rc, out, err = sts(home, "context", "save", "--name", "f", "--url",
                       srv.url(""), "--service-token-file", str(path))
    assert rc == 0, err
    assert _config_tokens(home) == {str(bootstrap)}
    p = subprocess.run([STS, "service-token", "list", "--url", srv.url(""),
                        "--service-token-file", "-"], env=_env(home, None),
                       input=str(bootstrap) + "\r\n", capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and str(bootstrap) not in p.stdout + p.stderr, p.stderr
    rc, out, err = sts(home, "service-token", "list", env={
        "STS_CLI_URL": srv.url(""), "STS_CLI_SERVICE_TOKEN": str(bootstrap)})
    assert rc == 0, err
    # Refusals: both ways at once, a missing file, an empty one.
    rc, _, err = sts(home, "service-token", "list", "--service-token", "svctok-abc",
                     "--service-token-file", str(path))
    assert rc == 3 and "not both" in err
    rc, _, err = sts(home, "service-token", "list", "--service-token-file",
                     str(tmp_path / "nope"))
    assert rc == 1 and "No such file" in err
    (tmp_path / "empty").write_text("\n")
    rc, _, err = sts(home, "service-token", "list", "--service-token-file",
                     str(tmp_path / "empty"))
    assert rc == 1 and "first line must hold the token" in err
    # From standard input, the argument list never holds it.
    s, url = _silent_server()
    with s:
        seen = _cmdline_while_waiting(
            ["service-token", "list", "--url", url, "--service-token-file", "-"],
            _env(home, {"STS_CLI_TIMEOUT": "20"}), stdin=subprocess.PIPE,
            feed="svctok-" + "8" * 39 + "\n")
        assert b"8888" not in seen
