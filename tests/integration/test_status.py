"""mod_status (issue 17): the module's section of server-status, per
process, and its Key: value lines in server-status?auto."""

import os
import re
import subprocess
import time

import pytest

from conftest import ROOT, past_trust_window

STATUS = r"""
LoadModule status_module /usr/lib/apache2/modules/mod_status.so
ExtendedStatus %s
<Location "/server-status">
    SetHandler server-status
    Require all granted
</Location>
"""


def auto(h):
    r = h.get("/server-status?auto")
    assert r.status == 200
    return dict(line.split(": ", 1) for line in r.text.splitlines()
                if ": " in line)


@pytest.fixture(scope="module")
def srv(httpd_factory):
    return httpd_factory(STATUS % "On")


def test_counters_in_auto(srv, pg):
    tok = pg.mint("status-user", ["reader"])
    gone = pg.mint("status-gone", ["reader"])
    pg.sql(f"DELETE FROM sts_tokens WHERE id = {gone.id}")
    time.sleep(0.6)  # the token tables read both changes
    before = auto(srv)
    assert before["STSTokenProcesses"] == "2"  # ServerLimit 2
    for _ in range(20):
        assert srv.get("/protected/", {"X-API-Key": tok.token}).status == 200
    for _ in range(6):
        assert srv.get("/protected/", {"X-API-Key": gone.token}).status == 401
    a = auto(srv)

    def delta(key):
        return int(a["STSToken" + key]) - int(before["STSToken" + key])

    # The known token is answered by the token tables; the deleted one is
    # refused by them alone or (up to 20 a second per process) looked up.
    assert delta("CacheHits") == 20
    assert delta("NegativeHits") + delta("DBLookups") == 6
    assert delta("CacheMisses") == delta("DBLookups")
    assert delta("Unavailable") == 0
    assert int(a["STSTokenCached"]) >= 1
    revision = pg.sql("SELECT revision FROM sts_token_revision")[0][0]
    assert a["STSTokenRevision"] == revision
    assert 0 <= float(a["STSTokenLastPollAge"]) < 5
    assert abs(int(a["STSTokenLastPoll"]) - time.time()) < 10
    # Per process: the same keys, summing to the totals.
    pids = [a[f"STSTokenProcess{i}Pid"] for i in range(2)]
    assert all(p.isdigit() for p in pids) and pids[0] != pids[1]
    assert sum(int(a[f"STSTokenProcess{i}CacheHits"]) for i in range(2)) == \
        int(a["STSTokenCacheHits"])


def test_database_failures_counted(srv, pg, bootstrap):
    tok = pg.mint("status-dbdown", ["reader"])
    before = auto(srv)
    pg.stop()
    try:
        past_trust_window()
        assert srv.get("/protected/", {"X-API-Key": tok.token}).status == 503
        r = srv.get("/api/security/tokens", {"X-API-Key": bootstrap})
        assert r.status == 503
    finally:
        pg.start()
    a = auto(srv)
    assert int(a["STSTokenUnavailable"]) - \
        int(before["STSTokenUnavailable"]) == 2
    assert int(a["STSTokenDBFailures"]) > int(before["STSTokenDBFailures"])


def test_html_section_one_row_per_process(srv, pg):
    tok = pg.mint("status-html", ["reader"])
    assert srv.get("/protected/", {"X-API-Key": tok.token}).status == 200
    r = srv.get("/server-status")
    assert r.status == 200
    section = r.text.split("<h2>mod_sts_token</h2>", 1)[1]
    # The token tables are the host's: counted once, above the processes.
    assert re.search(r"<p>Tokens cached: [1-9]\d* \(\d+ bytes\)", section)
    table = section.split("</table>", 1)[0]
    assert "<th>PID</th>" in table and "<th>Revision</th>" in table
    rows = re.findall(r"<tr><td>(\d+)</td>", table)
    assert len(rows) == 2


def test_no_section_without_extended_status(httpd_factory):
    h = httpd_factory(STATUS % "Off")
    r = h.get("/server-status?auto")
    assert r.status == 200 and "STSToken" not in r.text
    assert "mod_sts_token" not in h.get("/server-status").text


def test_prefork_processes_are_listed(httpd_factory, pg):
    h = httpd_factory(STATUS % "On", mpm="prefork")
    tok = pg.mint("status-prefork", ["reader"])
    for _ in range(10):
        assert h.get("/protected/", {"X-API-Key": tok.token}).status == 200
    a = auto(h)
    assert int(a["STSTokenProcesses"]) >= 1
    assert int(a["STSTokenCacheHits"]) + int(a["STSTokenDBLookups"]) >= 10


def test_readme_prometheus_example(srv, pg):
    """The README's cron line, its awk program run on the real ?auto."""
    readme = open(os.path.join(ROOT, "README.md")).read()
    line = next(ln for ln in readme.splitlines()
                if ln.startswith("* * * * * root curl") and "sts_token" in ln)
    program = re.search(r"awk -F': ' '([^']*)'", line).group(1)
    tok = pg.mint("status-prom", ["reader"])
    assert srv.get("/protected/", {"X-API-Key": tok.token}).status == 200
    out = subprocess.run(["awk", "-F: ", program],
                         input=srv.get("/server-status?auto").text,
                         capture_output=True, text=True, check=True).stdout
    metrics = dict(ln.split(" ") for ln in out.splitlines())
    assert int(metrics["sts_token_dblookups"]) >= 1
    assert int(metrics["sts_token_processes"]) == 2
    assert "sts_token_lastpollage" in metrics
    assert not any(k.startswith("sts_token_process0") for k in metrics)
    assert all(re.fullmatch(r"sts_token_[a-z]+", k) for k in metrics)
