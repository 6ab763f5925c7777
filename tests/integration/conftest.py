"""Integration test harness: a real PostgreSQL and real httpd with the module.

Fixtures (use them from any tests/integration/test_*.py):

``pg`` (session)
    A private PostgreSQL 15 cluster in a temp dir (unix socket + 127.0.0.1,
    fsync off), database ``sts`` with ``sql/schema.sql`` applied. Methods:
    ``sql(query) -> list[tuple[str, ...]]`` (psql, tab-separated, raises on
    error), ``mint(name, roles, expiration_ms=None, description=None,
    dedicated_subject=None) -> Token`` (a fresh token from the shared
    library's mint tool, inserted with SQL; ``Token.id``, ``.token``,
    ``.digest``, ``.name``; ``id_, token = pg.mint(...)`` unpacks), ``stop()``, ``start()``, ``restart()``,
    ``terminate_backends()`` (kills every session on database sts), and
    ``dbd_params`` (the DBDParams string httpd uses). The cluster follows
    the README's database set-up: peer authentication on its socket (an
    ident map lets this process be ``postgres``, the administrator, and
    httpd's children ``sts_httpd``), and httpd's role ``sts_httpd`` is only
    a member of ``sts_api``; over TCP (127.0.0.1) it logs in with
    ``httpd_password`` (md5: one round trip, cheap under load, for the
    proxy tests' timings; only roles with a password can log in).

``bootstrap`` (session)
    The bootstrap secret (str); its file is ``bootstrap.path``.

``httpd_factory`` (module)
    ``httpd_factory(extra_conf="", loglevel="info sts_token:trace8", env=None,
    bootstrap_file=None, expect_fail=False, mpm="event") -> Httpd``: starts
    httpd with ``conf/httpd.conf`` (the shipped config: /protected,
    /cgi-bin/env.cgi, /api with the bootstrap roles ``stackstate-admin``) plus
    ``extra_conf`` included through ``IncludeOptional``, in its own temp dir on
    its own port; waits (at most 15 s) until it answers. In ``extra_conf``,
    ``@DOCROOT@`` and ``@RUN@`` are replaced by the instance's document root
    and run dir, and ``${STS_CGI_DIR}`` (an httpd variable) is its copy of
    tests/integration/cgi. ``mpm`` is event, worker or prefork. Every
    instance is stopped (by PID) at the end of the test module, and its error
    log is checked for crashed children (AH00052, segfaults, sanitizer
    reports): a crash fails the test during which it was logged, or else the
    module's teardown. With ``expect_fail=True`` it returns
    after httpd exits and ``Httpd.startup_output`` holds what it printed.

``httpd`` (module)
    One instance of the shipped configuration, for simple tests.

``echo`` (module)
    The port of a loopback HTTP backend (``EchoServer``/``Echo``) that
    answers GET with JSON ``{"path": ..., "headers": [[name, value], ...]}``:
    the headers a proxied application received.

``run_on_pty(argv, env, columns=None) -> (returncode, text)``
    Runs a command with stdout and stderr on a terminal (a pty,
    ``columns`` wide when given); text has ``\\n`` line ends.

``Httpd`` methods: ``request(method, path, headers=(), body=None) ->
Response`` (``status``, ``headers`` (lower-case name -> list of values),
``header(name)``, ``body`` bytes, ``text``, ``json()``); ``raw(bytes) ->
bytes`` for requests http.client refuses to send; ``url(path)``,
``port``, ``error_log()``, ``access_log()``, ``graceful(wait=True)`` (returns
when the new generation runs), ``stop()``,
``pid``, ``docroot``, ``run`` (its temp dir), ``stdout_log()`` (what httpd
printed before its error log was open), ``log_mark()`` and
``error_log_since(mark)`` (the error log written after a mark),
``wait_for_log(text, timeout=5, access=False)`` (polls a log for text),
``crashes()`` and ``ignore_crashes_so_far()`` (for a test crashing a child
on purpose), ``extra`` (the snippet file: append to it, then ``graceful()``),
``cgi_dir``, ``proc`` (the Popen), ``mpm``.

The database is shared by the whole session: give tokens unique names, and
leave PostgreSQL running (``pg.start()`` in a ``finally``) when a test stops
it. A test that deletes or expires tokens should set ``STSTokenCacheTTL 0``
in its snippet, or allow for the cache's revision polling (up to ~1 s).

Environment: ``STS_KEEP_RUN=1`` keeps every httpd temp dir for inspection;
``STS_HTTPD_START_TIMEOUT`` (seconds, default 15, 90 with a wrapper).

httpd loads a copy of modules/mod_sts_token.so taken when the session
starts (``module_path()``), so a rebuild during a run cannot crash it. Set
``STS_MODULE`` in the environment to test another build of the module
(e.g. a sanitizer build), and ``STS_HTTPD_WRAPPER`` to prefix the httpd
command (e.g. ``valgrind --error-exitcode=99``; single-process ``-X`` is added
when ``STS_HTTPD_SINGLE=1``).
"""

import atexit
import glob
import fcntl
import http.client
import http.server
import json
import os
import pty
import pwd
import re
import secrets
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import tempfile
import termios
import threading
import time

import pytest

from pg_peer import write_peer_auth

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The schema version sql/schema.sql brings a database to: one past the
# number of migrations (sql/migrations/README.md).
SCHEMA_NEWEST = str(len(glob.glob(os.path.join(ROOT, "sql", "migrations",
                                               "[0-9]*.sql"))) + 1)
BUILD = os.environ.get("STS_BUILD", os.path.join(ROOT, "build"))
MINT = os.path.join(BUILD, "tests", "mint")
IS_ROOT = os.geteuid() == 0
PGBIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
# Lines in the error log (or httpd's own stdout/stderr) that mean a crash or
# a memory error: child exit by signal without (AH00052) or with a core dump
# (AH00051, whatever the signal), segfaults, ASan/UBSan/LSan, valgrind.
CRASH_MARKERS = ("AH00052", "AH00051", "Segmentation fault", "AH00060",
                 "ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                 "runtime error:")
VALGRIND_ERRORS = re.compile(r"ERROR SUMMARY: [1-9]")
# A wrapper such as valgrind makes startup slow.
START_TIMEOUT = float(os.environ.get(
    "STS_HTTPD_START_TIMEOUT",
    "90" if os.environ.get("STS_HTTPD_WRAPPER") else "15"))


_COPIES = {}


def session_copy(src):
    """A private copy of a built file, taken at first use and removed at
    exit, so that a rebuild during the run (another engineer's `make`, which
    rewrites files in place) cannot crash or break this session."""
    if src not in _COPIES:
        d = tempfile.mkdtemp(prefix="sts-bin-")
        os.chmod(d, 0o755)
        dst = os.path.join(d, os.path.basename(src))
        shutil.copy2(src, dst)
        os.chmod(dst, 0o755)
        atexit.register(shutil.rmtree, d, True)
        _COPIES[src] = dst
    return _COPIES[src]


# The mint tool, as a session copy (test modules import MINT from here).
if os.path.exists(MINT):
    MINT = session_copy(MINT)


def module_path():
    """The module .so every httpd of this session loads: $STS_MODULE, or a
    session copy of modules/mod_sts_token.so (running children that had the
    repository's file mapped would crash when `make` rewrites it)."""
    if os.environ.get("STS_MODULE"):
        return os.environ["STS_MODULE"]
    return session_copy(os.path.join(ROOT, "modules", "mod_sts_token.so"))


# One event-MPM process: every request reaches the same process (its token
# table, its view of the database's availability, its background thread).
ONE_PROCESS = """
ServerLimit 1
StartServers 1
ThreadsPerChild 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 25
"""


def past_trust_window():
    """Waits out the token table's trust window: it answers alone for 1 s
    after its last successful change read, so with PostgreSQL stopped a
    token it had already read is served until then, and every token needs
    the database after it."""
    time.sleep(1.2)


def free_port():
    """Returns a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_private_dir(prefix):
    """A temp dir that httpd's and PostgreSQL's users can enter."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


class PortTaken(Exception):
    """Someone else bound the port we picked."""


class Token:
    """A token inserted into the database."""

    def __init__(self, id_, token, digest, name):
        self.id = id_
        self.token = token
        self.digest = digest
        self.name = name

    def __iter__(self):
        """``id_, token = pg.mint(...)`` works too."""
        return iter((self.id, self.token))

    def __repr__(self):
        return f"Token(id={self.id}, name={self.name!r})"


class Postgres:
    """A private PostgreSQL cluster."""

    def __init__(self, base):
        self.base = base
        self.data = os.path.join(base, "pgdata")
        self.sock = os.path.join(base, "pgsock")
        self.logfile = os.path.join(base, "pgsock", "postgres.log")
        self.port = free_port()
        self.running = False

    HTTPD_ROLE = "sts_httpd"

    def _as_owner(self, cmd):
        return ["runuser", "-u", "postgres", "--"] + cmd if IS_ROOT else cmd


    def init(self):
        for d in (self.data, self.sock):
            os.mkdir(d, 0o700 if d == self.data else 0o755)
            if IS_ROOT:
                shutil.chown(d, "postgres", "postgres")
        subprocess.run(
            self._as_owner([f"{PGBIN}/initdb", "-D", self.data,
                            "--auth-local=peer", "--auth-host=scram-sha-256",
                            "-U", "postgres", "-N", "-E", "UTF8"]),
            check=True, stdout=subprocess.DEVNULL, cwd="/")
        # Over TCP, md5 passwords: the tests of other roles and proxies.
        write_peer_auth(self.data, "sts", self.HTTPD_ROLE,
                        "host all all 127.0.0.1/32 md5\n")
        for attempt in range(3):
            try:
                self.start(settle=False)
                break
            except subprocess.CalledProcessError:
                with open(self.logfile, errors="replace") as f:
                    log = f.read()
                if attempt == 2 or "could not bind" not in log:
                    raise RuntimeError("PostgreSQL did not start:\n" + log[-3000:])
                self.port = free_port()  # taken by someone else meanwhile
        self.psql("CREATE DATABASE sts", db="postgres")
        subprocess.run(["psql", "-h", self.sock, "-p", str(self.port), "-U",
                        "postgres", "-d", "sts", "-q", "-v", "ON_ERROR_STOP=1",
                        "-f", os.path.join(ROOT, "sql", "schema.sql")],
                       check=True, capture_output=True)
        self.httpd_password = secrets.token_hex(16)
        self.psql("SET password_encryption = 'md5'; "
                  f"CREATE ROLE {self.HTTPD_ROLE} LOGIN PASSWORD "
                  f"'{self.httpd_password}'", db="postgres")
        self.psql(f"GRANT sts_api TO {self.HTTPD_ROLE}")

    # While the database was down, each httpd process let one attempt per
    # 0.5 s through (src/outage.h): after this long every process answers
    # again at its next request. Under valgrind (STS_HTTPD_SINGLE) a failed
    # attempt itself lasts long, and the next is due 0.5 s after it ended.
    RETRY_S = 3.0 if os.environ.get("STS_HTTPD_SINGLE") == "1" else 0.6

    def start(self, settle=True):
        """Starts the cluster; with settle, waits out the module's retry
        interval so that every httpd process answers at its next request."""
        opts = (f"-k {self.sock} -c listen_addresses=127.0.0.1 -p {self.port} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=300")
        subprocess.run(self._as_owner([f"{PGBIN}/pg_ctl", "-D", self.data, "-o",
                                       opts, "-l", self.logfile, "-w", "start"]),
                       check=True, stdout=subprocess.DEVNULL, cwd="/")
        self.running = True
        if settle:
            time.sleep(self.RETRY_S)

    def stop(self, mode="fast"):
        subprocess.run(self._as_owner([f"{PGBIN}/pg_ctl", "-D", self.data, "-m",
                                       mode, "-w", "stop"]),
                       check=True, stdout=subprocess.DEVNULL, cwd="/")
        self.running = False

    def restart(self):
        self.stop()
        self.start()

    @property
    def dbd_params(self):
        return (f"host={self.sock} port={self.port} dbname=sts "
                f"user={self.HTTPD_ROLE} connect_timeout=2 "
                "options='-c statement_timeout=2000'")

    def tcp_params(self, port):
        """DBDParams for httpd's role over TCP to 127.0.0.1:port."""
        return (f"host=127.0.0.1 port={port} dbname=sts user={self.HTTPD_ROLE} "
                f"password={self.httpd_password}")

    def psql(self, query, db="sts"):
        out = subprocess.run(
            ["psql", "-h", self.sock, "-p", str(self.port), "-U", "postgres",
             "-d", db, "-qAtX", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query],
            check=True, capture_output=True, text=True)
        return out.stdout

    def sql(self, query):
        """Runs SQL in database sts; returns the rows as tuples of strings."""
        out = self.psql(query)
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    def terminate_backends(self):
        return self.sql("SELECT count(pg_terminate_backend(pid)) FROM "
                        "pg_stat_activity WHERE datname = 'sts' AND "
                        "pid <> pg_backend_pid()")

    def mint(self, name, roles=("reader",), expiration_ms=None, description=None,
             dedicated_subject=None):
        """Creates a token with the shared library's mint tool + SQL."""
        tok, digest = subprocess.run([MINT], check=True, capture_output=True,
                                     text=True).stdout.split()
        id_ = secrets.randbelow(2**53 - 2) + 1

        def lit(v):
            return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"

        arr = "ARRAY[" + ",".join(lit(r) for r in roles) + "]::text[]"
        self.sql("INSERT INTO sts_tokens (id, name, description, digest, roles, "
                 f"expiration, dedicated_subject) VALUES ({id_}, {lit(name)}, "
                 f"{lit(description)}, '{digest}', {arr}, "
                 f"{'NULL' if expiration_ms is None else int(expiration_ms)}, "
                 f"{lit(dedicated_subject)})")
        return Token(id_, tok, digest, name)


class TableLock:
    """ACCESS EXCLUSIVE on sts_tokens, held by a psql reading its commands
    from a pipe: taken (and seen granted in pg_locks) on entering the
    context, given back by release() or at the latest on leaving it, so a
    test knows exactly when the lock goes."""

    def __init__(self, pg):
        self.pg = pg
        self.holder = None

    def __enter__(self):
        pg = self.pg
        self.holder = subprocess.Popen(
            ["psql", "-h", pg.sock, "-p", str(pg.port), "-U", "postgres",
             "-d", "sts", "-qAtX", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, text=True)
        self.holder.stdin.write("BEGIN; LOCK TABLE sts_tokens IN ACCESS "
                                "EXCLUSIVE MODE;\n")
        self.holder.stdin.flush()
        deadline = time.monotonic() + 5
        while not pg.sql("SELECT 1 FROM pg_locks l JOIN pg_class c ON "
                         "c.oid = l.relation WHERE c.relname = 'sts_tokens' "
                         "AND l.mode = 'AccessExclusiveLock' AND l.granted"):
            if time.monotonic() > deadline:
                self.release()
                raise AssertionError("the lock was never taken")
            time.sleep(0.05)
        return self

    def release(self):
        """Commits (the lock goes) and waits for psql to exit."""
        h = self.holder
        if h is None or h.poll() is not None:
            return
        try:
            h.stdin.write("COMMIT;\n")
            h.stdin.close()
            h.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            h.kill()
            h.wait(5)

    def __exit__(self, *exc):
        self.release()


class Response:
    """An HTTP response."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        v = self.headers.get(name.lower())
        return v[0] if v else default

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return f"Response({self.status}, {self.body[:200]!r})"


class Httpd:
    """An httpd instance running conf/httpd.conf."""

    def __init__(self, pg, bootstrap_file, extra_conf="",
                 loglevel="info sts_token:trace8", env=None, mpm="event"):
        self.pg = pg
        self.mpm = mpm
        self.run = make_private_dir("sts-httpd-")
        self.docroot = os.path.join(self.run, "htdocs")
        os.makedirs(os.path.join(self.docroot, "protected"))
        for rel, text in (("index.html", "public\n"),
                          ("protected/index.html", "hello\n")):
            with open(os.path.join(self.docroot, rel), "w") as f:
                f.write(text)
        # A copy of the CGI scripts, so that httpd's children (www-data when
        # started as root) can run them wherever the repository lives.
        self.cgi_dir = os.path.join(self.run, "cgi-bin")
        shutil.copytree(os.path.join(ROOT, "tests", "integration", "cgi"),
                        self.cgi_dir)
        for d, _, files in os.walk(self.run):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o755 if d == self.cgi_dir else 0o644)
        self.port = free_port()
        self.extra = os.path.join(self.run, "extra.conf")
        with open(self.extra, "w") as f:
            # STS_CORE_DIR: where children write a core when they crash
            # (docs/TESTING.md, "A crashed child"); httpd makes them
            # dumpable again after switching to its User.
            if os.environ.get("STS_CORE_DIR"):
                f.write(f'CoreDumpDirectory "{os.environ["STS_CORE_DIR"]}"\n')
            f.write(extra_conf.replace("@DOCROOT@", self.docroot)
                    .replace("@RUN@", self.run))
        self.env = dict(os.environ)
        self.env.update({
            "STS_ROOT": ROOT, "STS_RUN": self.run, "STS_DOCROOT": self.docroot,
            "STS_LISTEN": f"127.0.0.1:{self.port}",
            "STS_USER": "www-data" if IS_ROOT else pwd.getpwuid(os.getuid()).pw_name,
            "STS_DBD_PARAMS": pg.dbd_params, "STS_BOOTSTRAP": bootstrap_file,
            "STS_LOGLEVEL": loglevel, "STS_EXTRA_CONF": self.extra,
            "STS_CGI_DIR": self.cgi_dir,
        })
        self.env.update(env or {})
        self.proc = None
        self.startup_output = ""

    @property
    def pid(self):
        return self.proc.pid

    def command(self):
        cmd = os.environ.get("STS_HTTPD_WRAPPER", "").split()
        cmd += ["apache2", "-f", os.path.join(ROOT, "conf", "httpd.conf"),
                "-DFOREGROUND"]
        if not IS_ROOT:
            cmd.append("-DSTS_NO_USER")
        if self.mpm != "event":
            cmd.append("-DSTS_MPM_" + self.mpm.upper())
        cmd += ["-C", "Define STS_MODULE " + module_path()]
        if os.environ.get("STS_HTTPD_SINGLE") == "1":
            cmd.append("-X")
        return cmd

    def configtest(self):
        """`apache2 -t` (what `apache2ctl configtest` runs) with the
        instance's command line and environment: (exit status, output)."""
        out = subprocess.run(self.command() + ["-t"], env=self.env,
                             capture_output=True, text=True, timeout=60)
        return out.returncode, out.stdout + out.stderr

    def start(self, expect_fail=False, timeout=None):
        """Starts httpd and waits until it answers (or, with expect_fail,
        until it exits). A port taken between free_port() and httpd's bind
        (another test run) is replaced, twice at most."""
        for _ in range(2):
            try:
                return self._start(expect_fail, timeout)
            except PortTaken:
                self.port = free_port()
                self.env["STS_LISTEN"] = f"127.0.0.1:{self.port}"
        return self._start(expect_fail, timeout)

    def _start(self, expect_fail, timeout):
        timeout = START_TIMEOUT if timeout is None else timeout
        out = open(os.path.join(self.run, "stdout.log"), "w")
        # Its own session: prefork's parent signals its whole process group
        # when it stops, which must not include pytest.
        self.proc = subprocess.Popen(self.command(), env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.startup_output = self._read("stdout.log") + self.error_log()
                if expect_fail:
                    return self
                if "Address already in use" in self.startup_output:
                    raise PortTaken()
                raise RuntimeError(f"httpd exited at startup:\n{self.startup_output}")
            # Ready when httpd wrote its pid file (it has bound its port by
            # then) and the port answers: a port that merely answers could
            # belong to someone else.
            if not expect_fail and self._read("httpd.pid").strip() == str(self.proc.pid):
                try:
                    with socket.create_connection(("127.0.0.1", self.port), 0.2):
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        if expect_fail:
            self.stop()
            raise RuntimeError("httpd did not exit although startup should fail")
        self.stop()
        raise RuntimeError("httpd did not answer within %d s:\n%s" %
                           (timeout, self.error_log()))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def graceful(self, wait=True, timeout=10):
        """Graceful restart (SIGUSR1, as apachectl -k graceful); with wait,
        returns once the new generation says it resumed normal operations."""
        marker = "resuming normal operations"
        before = self.error_log().count(marker)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.time() + timeout
        while wait and self.error_log().count(marker) <= before:
            if self.proc.poll() is not None:
                raise RuntimeError("httpd exited during a graceful restart:\n"
                                   + self.error_log()[-2000:])
            if time.time() >= deadline:
                raise AssertionError(f"no graceful restart within {timeout} s")
            time.sleep(0.05)

    def _read(self, name):
        try:
            with open(os.path.join(self.run, name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def error_log(self):
        return self._read("error.log")

    def stdout_log(self):
        """What httpd (or its wrapper) printed to stdout/stderr."""
        return self._read("stdout.log")

    def access_log(self):
        return self._read("access.log")

    def log_mark(self):
        """The error log's current size, for error_log_since()."""
        return len(self.error_log())

    def error_log_since(self, mark):
        """What the error log got after log_mark() returned mark."""
        return self.error_log()[mark:]

    def wait_for_log(self, text, timeout=5, access=False):
        """Polls the error (or access) log until it contains text."""
        deadline = time.time() + timeout
        while True:
            log = self.access_log() if access else self.error_log()
            if text in log:
                return log
            if time.time() >= deadline:
                raise AssertionError(f"{text!r} not in the log after {timeout} s")
            time.sleep(0.05)

    def ignore_crashes_so_far(self):
        """For tests that crash a child on purpose: crashes() from now on
        looks only at what the logs get after this call."""
        self._crash_marks = (len(self.error_log()), len(self._read("stdout.log")))

    def crashes(self):
        """Lines of the logs that report a crash or a memory error."""
        e, o = getattr(self, "_crash_marks", (0, 0))
        text = self.error_log()[e:] + "\n" + self._read("stdout.log")[o:]
        return [line for line in text.splitlines()
                if any(m in line for m in CRASH_MARKERS)
                or VALGRIND_ERRORS.search(line)]

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method, path, headers=(), body=None, timeout=30):
        """Sends one request; headers is a dict or a list of (name, value)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            items = headers.items() if isinstance(headers, dict) else headers
            names = set()
            for k, v in items:
                conn.putheader(k, v)
                names.add(k.lower())
            if body is not None and "content-length" not in names \
                    and "transfer-encoding" not in names:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            hdrs = {}
            for k, v in resp.getheaders():
                hdrs.setdefault(k.lower(), []).append(v)
            return Response(resp.status, hdrs, resp.read())
        finally:
            conn.close()

    def get(self, path, headers=()):
        return self.request("GET", path, headers)

    def raw(self, data, timeout=10):
        """Sends raw bytes, returns everything the server answered."""
        with socket.create_connection(("127.0.0.1", self.port), timeout) as s:
            s.sendall(data)
            chunks = []
            while True:
                try:
                    c = s.recv(65536)
                except socket.timeout:
                    break
                if not c:
                    break
                chunks.append(c)
            return b"".join(chunks)


def _terminate(signum, frame):
    """SIGTERM (a CI timeout, a kill) unwinds like Ctrl-C, so the fixtures'
    teardown still stops httpd and PostgreSQL."""
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _terminate)


@pytest.fixture(scope="session")
def pg():
    if not os.path.exists(MINT):
        pytest.exit(f"{MINT} is missing: run `make` first", returncode=2)
    base = make_private_dir("sts-pg-")
    server = Postgres(base)
    server.init()
    yield server
    try:
        if server.running:
            server.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


class Bootstrap(str):
    """The bootstrap secret; .path is its file."""

    path = ""


@pytest.fixture(scope="session")
def bootstrap():
    d = make_private_dir("sts-boot-")
    secret = Bootstrap(secrets.token_urlsafe(36))
    secret.path = os.path.join(d, "bootstrap.token")
    fd = os.open(secret.path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (secret + "\n").encode())
    os.close(fd)
    yield secret
    shutil.rmtree(d, ignore_errors=True)


# Every httpd instance not yet stopped, for the per-test crash check.
LIVE = []


@pytest.fixture(autouse=True)
def _no_crash_during_test():
    """After each test: a crash in any running httpd fails that test (a crash
    reported a little later still fails the module's teardown)."""
    yield
    found = []
    for h in LIVE:
        c = h.crashes()
        if c:
            found += c
            h.ignore_crashes_so_far()  # report each crash once
    if found:
        pytest.fail("httpd children crashed during this test:\n" +
                    "\n".join(found), pytrace=False)


@pytest.fixture(scope="module")
def httpd_factory(pg, bootstrap):
    started = []

    def factory(extra_conf="", loglevel="info sts_token:trace8", env=None,
                bootstrap_file=None, expect_fail=False, mpm="event"):
        h = Httpd(pg, bootstrap_file or bootstrap.path, extra_conf, loglevel,
                  env, mpm)
        started.append(h)
        LIVE.append(h)
        return h.start(expect_fail=expect_fail)

    yield factory
    crashed = []
    for h in started:
        h.stop()
        LIVE.remove(h)
        crashed += h.crashes()
    for h in started:
        if not crashed and os.environ.get("STS_KEEP_RUN") != "1":
            shutil.rmtree(h.run, ignore_errors=True)
    assert not crashed, "httpd children crashed:\n" + "\n".join(crashed)


@pytest.fixture(scope="module")
def httpd(httpd_factory):
    return httpd_factory()


class Echo(http.server.BaseHTTPRequestHandler):
    """A proxied backend: answers with the request headers it received."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = json.dumps({"path": self.path,
                           "headers": [[k, v] for k, v in self.headers.items()]})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class EchoServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def echo():
    srv = EchoServer(("127.0.0.1", free_port()), Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    t.join(5)


def run_on_pty(argv, env, columns=None):
    """(returncode, text) of argv run with stdout and stderr on a pty."""
    master, slave = pty.openpty()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", 50, columns, 0, 0))
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    rc = p.wait(timeout=60)
    return rc, out.decode().replace("\r\n", "\n")
