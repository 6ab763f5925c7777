"""make install / make uninstall with DESTDIR and PREFIX: every file lands
below DESTDIR where Debian looks for it, a changed configuration file is
kept, and uninstall removes exactly what install put there."""

import os
import subprocess

from conftest import ROOT


def make(*args):
    out = subprocess.run(["make", "-s", "-C", ROOT, *args], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def test_install_uninstall_staged(tmp_path):
    dest = str(tmp_path / "stage")
    modules = "/usr/lib/apache2/modules"
    before = os.stat(modules).st_mtime if os.path.isdir(modules) else None
    make("install", f"DESTDIR={dest}", "PREFIX=/opt/sts", f"MODDIR={modules}")
    assert files(dest) == sorted([
        "etc/apache2/conf-available/sts-token-locations.conf",
        "etc/apache2/mods-available/sts_token.conf",
        "etc/apache2/mods-available/sts_token.load",
        "opt/sts/bin/sts",
        "opt/sts/share/man/man1/sts.1",
        "usr/lib/apache2/modules/mod_sts_token.so",
    ] + ["opt/sts/share/mod_sts_token/" + f for f in
         ["sql/schema.sql"] + ["sql/migrations/" + m for m in
                               os.listdir(os.path.join(ROOT, "sql", "migrations"))
                               if m.endswith(".sql")]])
    load = open(os.path.join(dest, "etc/apache2/mods-available/sts_token.load")).read()
    assert "# Depends: dbd" in load
    assert f"LoadModule sts_token_module {modules}/mod_sts_token.so" in load
    assert os.stat(os.path.join(dest, "opt/sts/bin/sts")).st_mode & 0o777 == 0o755
    # Nothing written to the live system.
    if before is not None:
        assert os.stat(modules).st_mtime == before

    # A changed configuration file survives a reinstall and the uninstall.
    conf = os.path.join(dest, "etc/apache2/mods-available/sts_token.conf")
    with open(conf, "a") as f:
        f.write("# local change\n")
    out = make("install", f"DESTDIR={dest}", "PREFIX=/opt/sts", f"MODDIR={modules}")
    assert "kept" in out and os.path.exists(conf + ".dist")
    make("uninstall", f"DESTDIR={dest}", "PREFIX=/opt/sts", f"MODDIR={modules}")
    assert files(dest) == ["etc/apache2/mods-available/sts_token.conf"]


def test_uninstall_refuses_while_enabled(tmp_path):
    dest = str(tmp_path / "stage")
    make("install", f"DESTDIR={dest}")
    enabled = os.path.join(dest, "etc/apache2/mods-enabled")
    os.makedirs(enabled)
    os.symlink("../mods-available/sts_token.load",
               os.path.join(enabled, "sts_token.load"))
    before = files(dest)
    for jobs in ("-j1", "-j4"):
        out = subprocess.run(["make", "-s", jobs, "-C", ROOT, "uninstall",
                              f"DESTDIR={dest}"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode != 0 and "a2dismod sts_token" in out.stderr
        # Nothing removed before the refusal, the CLI included (it was).
        assert files(dest) == before


def test_uninstall_keeps_enabled_locations(tmp_path):
    """An enabled conf-available/sts-token-locations.conf stays: without
    it the locations it denies would be served (and a dangling conf-enabled
    link would keep Apache from starting)."""
    dest = str(tmp_path / "stage")
    make("install", f"DESTDIR={dest}")
    enabled = os.path.join(dest, "etc/apache2/conf-enabled")
    os.makedirs(enabled)
    os.symlink("../conf-available/sts-token-locations.conf",
               os.path.join(enabled, "sts-token-locations.conf"))
    out = make("uninstall", f"DESTDIR={dest}")
    assert "it is enabled" in out
    assert os.path.exists(os.path.join(enabled, "sts-token-locations.conf"))
    assert not os.path.exists(os.path.join(dest, "etc/apache2/mods-available/sts_token.conf"))
