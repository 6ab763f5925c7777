"""The sts CLI (issue 4) against a real httpd + PostgreSQL."""

import json
import os
import re
import stat
import subprocess

import pytest
import yaml

from conftest import ROOT, free_port

STS = os.path.join(ROOT, "bin", "sts")

HELP = """Manage service tokens.

Usage:
  sts service-token [command]

Available Commands:
  create      Create a service token
  delete      Delete a service token
  list        List service tokens

Use "sts service-token [command] --help" for more information about a command.
"""


@pytest.fixture(scope="module")
def srv(httpd_factory):
    return httpd_factory()


@pytest.fixture
def home(tmp_path):
    return str(tmp_path)


def sts(home, *args, env=None):
    e = {"PATH": os.environ["PATH"], "HOME": home,
         "XDG_CONFIG_HOME": os.path.join(home, "xdg")}
    e.update(env or {})
    p = subprocess.run([STS, *args], env=e, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


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


def test_usage_errors_are_exit_2(home):
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
        assert rc == 2, (args, out, err)
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
    assert re.fullmatch(r"ID +\| NAME +\| EXPIRATION \| ROLES", lines[0]), lines[0]
    seps = {tuple(m.start() for m in re.finditer(r" \| ", l)) for l in lines}
    assert len(seps) == 1, out  # columns aligned
    rows = [[c.strip() for c in l.split(" | ")] for l in lines[1:]]
    names = [r[1] for r in rows]
    assert names == sorted(names)
    mine = [r for r in rows if r[1] == "my-service-token"][0]
    assert mine[2] == "" and mine[3] == "[stackstate-k8s-troubleshooter]"
    first = [r for r in rows if r[1] == "aaa-first"][0]
    assert first[2] == "2099-01-15" and first[3] == "[a b c]"

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
    assert rc == 2 and json.loads(err)["error"] is True


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
    assert rc == 4 and f"http://127.0.0.1:{port}/api/security/tokens" in err
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
    assert rc == 2 and "/nonexistent/ca.pem" in err, err


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
    assert sts(home, "service-token", "list", "--context", "nope")[0] == 1
    # --url/--service-token flags win over the context.
    assert sts(home, "service-token", "list", "--url", srv.url(""),
               "--service-token", str(bootstrap))[0] == 0
    rc, out, _ = sts(home, "context", "list")
    assert rc == 0 and re.search(r"^\* +\| broken", out, re.M) and "one" in out
    rc, out, _ = sts(home, "context", "show", "--name", "one")
    assert rc == 0 and "url: " + srv.url("") in out and str(bootstrap) not in out
    rc, out, _ = sts(home, "context", "show", "-o", "json")
    assert json.loads(out)["context"]["name"] == "broken" and "x" not in json.loads(out)["context"].values()
    assert sts(home, "context", "validate")[0] == 4
    assert sts(home, "context", "validate", "--name", "one")[0] == 0
    assert sts(home, "context", "set", "--name", "one")[0] == 0
    assert yaml.safe_load(open(config_file(home)))["current-context"] == "one"
    assert sts(home, "context", "delete", "--name", "broken")[0] == 0
    assert [c["name"] for c in yaml.safe_load(open(config_file(home)))["contexts"]] == ["one"]
    assert sts(home, "context", "delete", "--name", "broken")[0] == 1
    assert sts(home, "context", "set")[0] == 2


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
