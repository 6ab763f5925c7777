"""`make run` (scripts/run.sh): the quickstart it prints works when pasted
into a shell, Ctrl-C stops httpd and PostgreSQL, a second start keeps the
tokens, and from a clone that www-data cannot enter (below /root) ./run
links to the run dir it uses instead."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import IS_ROOT, PGBIN, ROOT, free_port, make_private_dir

RUN_SH = os.path.join(ROOT, "scripts", "run.sh")


class Run:
    """One scripts/run.sh in the foreground of its own process group."""

    def __init__(self, rundir, port, pgport, root=ROOT, env=None):
        self.rundir, self.port, self.pgport = rundir, port, pgport
        self.root = root
        self.env = {"STS_RUN_DIR": rundir} if env is None else env
        self.out = os.path.join(rundir, "run-output.txt")
        self.proc = None

    def start(self, timeout=60):
        env = {k: v for k, v in os.environ.items() if k != "STS_RUN_DIR"}
        env.update(self.env, STS_PORT=str(self.port), STS_PGPORT=str(self.pgport))
        with open(self.out, "w") as f:
            self.proc = subprocess.Popen([os.path.join(self.root, "scripts", "run.sh")],
                                         cwd=self.root, env=env, stdout=f,
                                         stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        deadline = time.time() + timeout
        while "mod_sts_token is running" not in self.output() or \
                not os.path.exists(os.path.join(self.rundir, "httpd", "httpd.pid")):
            assert self.proc.poll() is None, self.output()
            assert time.time() < deadline, "run.sh not up:\n" + self.output()
            time.sleep(0.1)
        time.sleep(0.3)

    def output(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def ctrl_c(self, timeout=30):
        """What a terminal's Ctrl-C does: SIGINT to the foreground group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def cleanup(self):
        """Last resort after a failed test: stop what this run started."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        data = os.path.join(self.rundir, "pgdata")
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            cmd = [f"{PGBIN}/pg_ctl", "-D", data, "-m", "immediate", "stop"]
            if IS_ROOT:
                cmd = ["runuser", "-u", "postgres", "--"] + cmd
            subprocess.run(cmd, cwd="/", capture_output=True)


def quickstart_script(output):
    """The commands run.sh printed, as a shell script (the lines with an
    <id> placeholder left out)."""
    lines = output.split("In another shell:", 1)[1].splitlines()
    return "\n".join(ln[2:] for ln in lines if "<id>" not in ln) + "\n"


@pytest.fixture
def run():
    rundir = make_private_dir("sts-makerun-")
    r = Run(rundir, free_port(), free_port())
    yield r
    r.cleanup()
    shutil.rmtree(rundir, ignore_errors=True)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_make_run_quickstart_and_ctrl_c(run):
    if not os.path.exists(os.path.join(ROOT, "bin", "sts")):
        pytest.skip("bin/sts is not built")
    run.start()
    boot = os.path.join(run.rundir, "bootstrap.token")
    assert os.stat(boot).st_mode & 0o077 == 0
    assert len(open(boot).read().strip()) >= 32
    script = quickstart_script(run.output())
    assert "curl -si -H \"X-API-Key: $TOKEN\"" in script
    assert "curl -si -H \"Authorization: ApiKey $TOKEN\"" in script
    # sts saves its context below XDG_CONFIG_HOME: a private one.
    res = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT,
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, NO_COLOR="1",
                                  XDG_CONFIG_HOME=os.path.join(run.rundir, "xdg")))
    out = res.stdout
    assert res.returncode == 0, res.stderr + out
    statuses = [ln.split()[1] for ln in out.splitlines() if ln.startswith("HTTP/1.1")]
    # no token; X-API-Key; Authorization: ApiKey
    assert statuses == ["401", "200", "200"], out
    assert 'WWW-Authenticate: ApiKey realm="sts-demo"' in out
    assert "STS_TOKEN_NAME=my-service-token" in out
    assert "STS_TOKEN_ROLES=stackstate-k8s-troubleshooter" in out
    assert '"deploymentMode": "SelfHosted"' in out
    assert "Context saved: local" in out
    assert "Service token created" in out and "ci-bot" in out
    assert "--service-token-file" in script and "STS_CLI_SERVICE_TOKEN" not in script
    with open(os.path.join(run.rundir, "httpd", "httpd.pid")) as f:
        httpd_pid = int(f.read())
    with open(os.path.join(run.rundir, "pgdata", "postmaster.pid")) as f:
        pg_pid = int(f.readline())
    rc = run.ctrl_c()
    assert "stopped httpd and PostgreSQL" in run.output()
    assert rc in (0, 130, -signal.SIGINT), rc
    deadline = time.time() + 10
    while pid_alive(httpd_pid) or pid_alive(pg_pid):
        assert time.time() < deadline, "httpd or PostgreSQL still running"
        time.sleep(0.1)
    assert not os.path.exists(os.path.join(run.rundir, "pgdata", "postmaster.pid"))

    # A second start reuses the cluster: the tokens are still there.
    run.start()
    secret = open(boot).read().strip()
    r = subprocess.run(["curl", "-s", "-H", f"X-API-Key: {secret}",
                        f"http://127.0.0.1:{run.port}/api/security/tokens"],
                       capture_output=True, text=True, timeout=30)
    assert "my-service-token" in r.stdout and "ci-bot" in r.stdout, r.stdout
    run.ctrl_c()
    assert run.output().count("stopped httpd and PostgreSQL") == 1  # new file


def test_make_run_refuses_a_running_cluster(run):
    run.start()
    second = Run(run.rundir, free_port(), run.pgport)
    second.out = os.path.join(run.rundir, "second-output.txt")
    env = dict(os.environ, STS_RUN_DIR=run.rundir, STS_PORT=str(second.port),
               STS_PGPORT=str(run.pgport))
    res = subprocess.run([RUN_SH], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert "is still running" in res.stderr and "pg_ctl -D" in res.stderr
    # The first one is unharmed.
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        f"http://127.0.0.1:{run.port}/protected/"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "401"
    run.ctrl_c()


def test_make_run_trusts_nobody(run):
    """`make run`'s cluster uses the README's set-up: another local user
    cannot connect as the superuser (the old `initdb -A trust` let anyone
    mint an admin token), and httpd's role sts may not update tokens."""
    if not IS_ROOT:
        pytest.skip("needs root to act as another local user")
    run.start()
    sock = os.path.join(run.rundir, "pgsock")
    psql = ["psql", "-h", sock, "-p", str(run.pgport), "-d", "sts", "-Atc"]
    res = subprocess.run(["runuser", "-u", "nobody", "--"] + psql +
                         ["SELECT 1", "-U", "postgres"], cwd="/",
                         capture_output=True, text=True, timeout=30)
    assert res.returncode != 0 and "authentication failed" in res.stderr, res
    res = subprocess.run(["runuser", "-u", "www-data", "--"] + psql +
                         ["UPDATE sts_tokens SET roles = '{stackstate-admin}'",
                          "-U", "sts"], cwd="/",
                         capture_output=True, text=True, timeout=30)
    assert res.returncode != 0 and "permission denied" in res.stderr, res
    run.ctrl_c()


@pytest.mark.skipif(not IS_ROOT, reason="the postgres and www-data users need root")
def test_make_run_from_a_clone_www_data_cannot_enter():
    """A clone below a 0700 directory (root's home): the run dir moves to
    STS_RUN_FALLBACK (default /var/tmp/mod_sts_token-run) and ./run links
    to it, so the README's `BOOT=$(cat run/bootstrap.token)` works."""
    home = tempfile.mkdtemp(prefix="sts-home-")  # mode 0700, like /root
    clone = os.path.join(home, "mod_sts_token")
    for d in ("scripts", "conf", "sql", os.path.join("tests", "integration", "cgi")):
        shutil.copytree(os.path.join(ROOT, d), os.path.join(clone, d))
    os.makedirs(os.path.join(clone, "run"))  # left by an earlier make run: replaced
    os.makedirs(os.path.join(clone, "modules"))
    shutil.copy(os.path.join(ROOT, "modules", "mod_sts_token.so"),
                os.path.join(clone, "modules"))
    fallback = make_private_dir("sts-makerun-fallback-")
    r = Run(fallback, free_port(), free_port(), root=clone,
            env={"STS_RUN_FALLBACK": fallback})
    try:
        r.start()
        assert "./run links to it" in r.output()
        link = os.path.join(clone, "run")
        assert os.path.islink(link) and os.path.realpath(link) == os.path.realpath(fallback)
        res = subprocess.run(
            ["bash", "-e", "-c", 'BOOT=$(cat run/bootstrap.token); curl -s -o /dev/null '
             f'-w "%{{http_code}}" -H "X-API-Key: $BOOT" http://127.0.0.1:{r.port}/api/server/info'],
            cwd=clone, capture_output=True, text=True, timeout=30)
        assert res.stdout == "200", res.stderr + res.stdout
        assert os.path.exists(os.path.join(link, "httpd", "error.log"))
        r.ctrl_c()
        assert "stopped httpd and PostgreSQL" in r.output()
    finally:
        r.cleanup()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(fallback, ignore_errors=True)
