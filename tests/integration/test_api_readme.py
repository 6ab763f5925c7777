"""The README's token API examples run as written: every curl line of the
"One example of each error" block against a real httpd + PostgreSQL gives
the status and message its comment shows, and the route examples work."""

import json
import os
import re
import subprocess

import pytest

import openapi_check as oa

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def api_section():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index("<!-- section:api -->")
    return text[start:text.index("<!-- /section:api -->", start)]


def sh_blocks(section):
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def error_examples():
    """(setup, command, status, words) for each example of the error block."""
    block = [b for b in sh_blocks(api_section()) if "$K" in b]
    assert len(block) == 1, "the README lost its error examples"
    lines = block[0].splitlines()
    setup = lines[0]
    assert setup.startswith("J=")
    out = []
    for cmd, comment in zip(lines[1::2], lines[2::2]):
        m = re.match(r"# (\d{3}) ?(.*)", comment)
        assert cmd.lstrip().startswith(("curl", "head")) and m, (cmd, comment)
        words = re.split(r"\.\.\.| \(|^\(", m.group(2))[0].strip()
        out.append((setup, cmd, int(m.group(1)), words))
    return out


EXAMPLES = error_examples()


@pytest.fixture(scope="module")
def env(httpd_factory, bootstrap, pg):
    h = httpd_factory()
    reader = pg.mint("readme-reader", ["reader"])
    return h, {**os.environ, "BOOT": str(bootstrap),
               "API": h.url("/api"), "READER_TOKEN": reader.token}


def test_every_status_has_an_example():
    statuses = {e[2] for e in EXAMPLES}
    assert statuses >= {400, 401, 403, 404, 405, 413, 415, 503}


@pytest.mark.parametrize("setup,cmd,status,words", EXAMPLES,
                         ids=[f"{e[2]}-{i}" for i, e in enumerate(EXAMPLES)])
def test_error_example(env, pg, setup, cmd, status, words):
    h, environ = env
    down = "PostgreSQL is down" in cmd
    if down:
        pg.stop()
    try:
        out = subprocess.run(["bash", "-c", f"set -o pipefail; {setup}; {cmd}"],
                             env=environ, capture_output=True, timeout=30)
    finally:
        if down:
            pg.start()
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode(), out.stdout[:300]
    if words:
        assert words.encode() in body, (words, body)
    # Refusals of the auth phase too (401, 403): the API's JSON errors.
    if b"ServiceTokenInvalidExpiryError" not in body:
        assert b"content-type: application/json" in head.lower()
        spec = oa.Spec()

        spec.check(json.loads(body), oa.ERRORS, "GenericErrorsResponse")
    if status == 405:
        assert b"\r\nAllow: GET, HEAD, POST" in head


def test_route_examples(env):
    """The first block: create, list, rotate, delete, server info."""
    h, environ = env
    block = sh_blocks(api_section())[0]
    # Join continuation lines; keep the commands, drop the output comments.
    script = re.sub(r"\\\n\s*", "", block)
    script = re.sub(r"\n[ \t]+", " ", script)
    cmds = [l for l in script.splitlines() if l.startswith(("curl", "BOOT="))]
    assert len(cmds) == 6, cmds
    setup = "BOOT=\"$BOOT\"; API=\"$API\""

    def run(cmd):
        out = subprocess.run(["bash", "-c", f"{setup}; {cmd}"], env=environ,
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.decode()


    created = json.loads(run(cmds[1]))
    assert created["name"] == "ci" and created["token"].startswith("svctok-")
    listed = json.loads(run(cmds[2]))
    ci = [t for t in listed if t["name"] == "ci"][-1]
    assert ci["dedicatedSubject"] == "ci-bot"
    rotate = re.sub(r"tokens/\d+", f"tokens/{ci['id']}", cmds[3])
    rotated = json.loads(run(rotate))
    assert rotated["name"] == "ci" and rotated["token"] != created["token"]
    assert rotated["expiration"] == created["expiration"]
    delete = re.sub(r"tokens/\d+", f"tokens/{ci['id']}", cmds[4])
    assert run(delete).strip() == "204"
    info = json.loads(run(cmds[5]))
    assert info["deploymentMode"] == "SelfHosted"
