"""Everything that would keep httpd from starting fails `apache2 -t` (what
`apache2ctl configtest` runs, and what Debian's graceful and reload run
before signalling), with a message naming the problem; so a reload through
apache2ctl never stops a running server because of the module."""

import os
import pwd
import shlex
import subprocess
import time

import pytest

from conftest import IS_ROOT, ROOT, Httpd, module_path

SECRET = "c" * 40 + "\n"


def write(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    os.chmod(path, mode)
    return path


@pytest.fixture
def boot_dir(tmp_path):
    os.chmod(tmp_path, 0o755)
    return tmp_path


def test_valid_configuration_passes(pg, bootstrap):
    rc, out = Httpd(pg, bootstrap.path).configtest()
    assert rc == 0 and "Syntax OK" in out, out


def _www_data_owned(path):
    pw = pwd.getpwnam("www-data")
    os.chown(path, pw.pw_uid, pw.pw_gid)


@pytest.mark.parametrize("case,message", [
    ("missing", "STSTokenBootstrap: cannot read"),
    ("directory", "is not a regular file"),
    ("mode 0644", "readable or writable by group or others"),
    ("mode 0640", "readable or writable by group or others"),
    ("mode 0602", "readable or writable by group or others"),
    ("too short", "shorter than 32 characters"),
    ("spaces", "visible ASCII"),
    ("owned by www-data", "is owned by uid"),
])
def test_bootstrap_problems_fail_configtest(pg, boot_dir, case, message):
    path = str(boot_dir / "boot")
    if case == "directory":
        os.mkdir(path)
    elif case.startswith("mode"):
        write(path, SECRET, int(case.split()[1], 8))
    elif case == "too short":
        write(path, "x" * 31 + "\n")
    elif case == "spaces":
        write(path, "has spaces in it " * 3 + "\n")
    elif case == "owned by www-data":
        if not IS_ROOT:
            pytest.skip("needs root to give the file away")
        write(path, SECRET)
        _www_data_owned(path)
    rc, out = Httpd(pg, path).configtest()
    assert rc != 0 and "Syntax OK" not in out, out
    assert message in out and path in out, out


@pytest.mark.parametrize("line,message", [
    ("STSTokenCacheTTL 86401", "STSTokenCacheTTL must be a whole number from 0 to 86400"),
    ("STSTokenCacheEntries 0", "STSTokenCacheEntries must be a whole number from 1"),
    ("STSTokenDBAcquireTimeout 60001", "STSTokenDBAcquireTimeout must be a whole number from 1 to 60000"),
    ("STSTokenBootstrap /nonexistent/boot bad/role", "invalid role 'bad/role'"),
])
def test_out_of_range_values_fail_configtest(pg, bootstrap, line, message):
    rc, out = Httpd(pg, bootstrap.path, extra_conf=line + "\n").configtest()
    assert rc != 0 and message in out, out


def test_missing_mod_dbd_fails_configtest(tmp_path):
    """The module loaded without mod_dbd (e.g. LoadModule by hand)."""
    os.chmod(tmp_path, 0o755)
    conf = tmp_path / "httpd.conf"
    conf.write_text(f"""ServerRoot "{ROOT}"
ServerName 127.0.0.1
Listen 127.0.0.1:1
PidFile "{tmp_path}/httpd.pid"
ErrorLog "{tmp_path}/error.log"
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule sts_token_module {module_path()}
""")
    # The harness's wrapper too: a sanitized module needs its runtimes preloaded.
    cmd = os.environ.get("STS_HTTPD_WRAPPER", "").split()
    out = subprocess.run(cmd + ["apache2", "-f", str(conf), "-t"],
                         capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "mod_sts_token needs mod_dbd" in text, text


def test_apache2ctl_graceful_keeps_a_running_server(httpd_factory, boot_dir):
    """Debian's apache2ctl graceful (what systemctl reload and logrotate's
    reload run) with a bootstrap file that went bad since the start: the
    reload is refused and the server keeps answering."""
    path = write(str(boot_dir / "boot"), SECRET)
    h = httpd_factory(bootstrap_file=path)
    assert h.get("/protected/", {"X-API-Key": SECRET.strip()}).status == 200
    os.chmod(path, 0o644)
    wrapper = os.path.join(h.run, "apache2-wrapper")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec " + " ".join(map(shlex.quote, h.command()))
                + ' "$@"\n')
    os.chmod(wrapper, 0o755)
    envvars = os.path.join(h.run, "envvars")
    with open(envvars, "w") as f:
        f.write(f"APACHE_HTTPD={wrapper}\nAPACHE_RUN_DIR={h.run}\n"
                f"APACHE_LOCK_DIR={h.run}/lock\nAPACHE_ULIMIT_MAX_FILES=true\n")
    env = dict(h.env, APACHE_ENVVARS=envvars)
    out = subprocess.run(["apache2ctl", "graceful"], env=env,
                         capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "readable or writable by group or others" in text, text
    time.sleep(1)
    assert h.proc.poll() is None, h.error_log()
    assert h.get("/protected/", {"X-API-Key": SECRET.strip()}).status == 200
    # Repaired, the same reload goes through.
    os.chmod(path, 0o600)
    mark = h.log_mark()
    out = subprocess.run(["apache2ctl", "graceful"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    deadline = time.time() + 10
    while "resuming normal operations" not in h.error_log_since(mark):
        assert time.time() < deadline, h.error_log_since(mark)
        time.sleep(0.1)
    assert h.proc.poll() is None
    assert h.get("/protected/", {"X-API-Key": SECRET.strip()}).status == 200
