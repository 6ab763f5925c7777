"""The harness itself: its crash detection and its isolation can fail."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import Httpd


def children(pid):
    """PIDs of the direct children of pid."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_a_crashed_child_is_detected(httpd_factory, pg):
    h = httpd_factory()
    assert h.crashes() == []
    assert h.get("/protected/").status == 401
    victims = children(h.pid)
    assert victims, "httpd has no children"
    # The children of an httpd this test started: kill one like a segfault.
    os.kill(victims[-1], signal.SIGSEGV)
    # AH00052, or AH00051 where the kernel wrote a core (which may take a
    # while for a child mapping the token table).
    deadline = time.time() + 30
    while not h.crashes():
        assert time.time() < deadline, h.error_log()[-2000:]
        time.sleep(0.1)
    found = h.crashes()
    assert "exit signal Segmentation fault" in found[0], found
    # httpd replaced the child and goes on; the teardown must not fail
    # because of this deliberate crash.
    deadline = time.time() + 10
    while h.get("/protected/").status != 401:
        assert time.time() < deadline
        time.sleep(0.1)
    h.ignore_crashes_so_far()
    assert h.crashes() == []


def test_a_child_crash_with_a_core_dump_is_detected(httpd_factory):
    """Where the kernel writes cores, httpd reports a child's death with
    AH00051 (and the signal's name, here not a segfault) instead of
    AH00052: still a crash."""
    h = httpd_factory()
    line = ("[Tue Dec 01 08:50:00.000000 2026] [core:notice] [pid 1:tid 1] "
            "AH00051: child pid 2 exit signal Aborted (6), possible coredump "
            "in /tmp\n")
    with open(os.path.join(h.run, "error.log"), "a") as f:
        f.write(line)
    assert h.crashes() == [line.strip()]
    h.ignore_crashes_so_far()
    assert h.crashes() == []


def test_core_dump_directory_from_the_environment(pg, bootstrap, tmp_path,
                                                  monkeypatch):
    monkeypatch.setenv("STS_CORE_DIR", str(tmp_path))
    h = Httpd(pg, bootstrap.path, "Header always set X-Extra 1\n")
    try:
        with open(h.extra) as f:
            assert f.read() == (f'CoreDumpDirectory "{tmp_path}"\n'
                                "Header always set X-Extra 1\n")
        rc, out = h.configtest()
        assert rc == 0, out
    finally:
        shutil.rmtree(h.run, ignore_errors=True)


def test_instances_are_isolated(httpd_factory):
    a = httpd_factory()
    b = httpd_factory("Header always set X-Instance b\n")
    assert a.port != b.port and a.run != b.run
    assert a.get("/").header("X-Instance") is None
    assert b.get("/").header("X-Instance") == "b"
    assert a.get("/").text == "public\n"


def test_startup_failure_is_reported(httpd_factory):
    h = httpd_factory("ThisIsNotADirective on\n", expect_fail=True)
    assert "Invalid command 'ThisIsNotADirective'" in h.startup_output
    assert isinstance(h, Httpd)
    assert h.proc.poll() is not None


def test_graceful_restart_picks_up_a_new_snippet(httpd_factory, pg):
    h = httpd_factory()
    t = pg.mint("graceful", ["ops"])
    assert h.get("/protected/", {"X-API-Key": t.token}).header("X-Gen") is None
    with open(h.extra, "a") as f:
        f.write('Header always set X-Gen "2"\n')
    h.graceful()
    assert h.get("/protected/", {"X-API-Key": t.token}).header("X-Gen") == "2"
    assert h.get("/protected/", {"X-API-Key": t.token}).status == 200


def test_a_taken_port_is_replaced(pg, bootstrap):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = s.getsockname()[1]
        h = Httpd(pg, bootstrap.path)
        h.port = taken
        h.env["STS_LISTEN"] = f"127.0.0.1:{taken}"
        try:
            h.start()
            assert h.port != taken
            assert h.get("/").text == "public\n"
        finally:
            h.stop()
            shutil.rmtree(h.run, ignore_errors=True)


def test_mint_inserts_a_digest_not_the_token(pg):
    id_, token = pg.mint("harness-mint", ["a", "b"])
    rows = pg.sql(f"SELECT name, digest, array_to_string(roles, ',') "
                  f"FROM sts_tokens WHERE id = {id_}")
    import hashlib
    assert rows == [("harness-mint", hashlib.sha256(token.encode()).hexdigest(),
                     "a,b")]
    assert pg.sql(f"SELECT count(*) FROM sts_tokens WHERE digest = '{token}' "
                  f"OR name = '{token}'") == [("0",)]


def test_httpd_loads_a_private_copy_of_the_module(httpd):
    """A rebuild (which rewrites modules/mod_sts_token.so in place) must not
    crash the children of a running test."""
    from conftest import ROOT, module_path
    cmd = " ".join(httpd.command())
    assert "Define STS_MODULE " + module_path() in cmd
    if not os.environ.get("STS_MODULE"):
        assert not module_path().startswith(os.path.join(ROOT, "modules"))
        with open(f"/proc/{httpd.pid}/maps") as f:
            maps = f.read()
        assert module_path() in maps
        assert os.path.join(ROOT, "modules", "mod_sts_token.so") not in maps


@pytest.mark.parametrize("directive,value,bounds", [
    ("STSTokenCacheTTL", "-1", "from 0 to 86400"),
    ("STSTokenCacheTTL", "5m", "from 0 to 86400"),
    ("STSTokenCacheEntries", "0", "from 1 to 10000000"),
    ("STSTokenDBAcquireTimeout", "0", "from 1 to 60000"),
    ("STSTokenDBAcquireTimeout", "60001", "from 1 to 60000"),
    ("STSTokenDBAcquireTimeout", "1.5", "from 1 to 60000"),
])
def test_numeric_directive_out_of_range_is_refused(httpd_factory, directive,
                                                   value, bounds):
    h = httpd_factory(f"{directive} {value}\n", expect_fail=True)
    assert (f"{directive} must be a whole number {bounds}, not '{value}'"
            in h.startup_output), h.startup_output
