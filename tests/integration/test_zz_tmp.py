import os, re, time
from test_shared_table import conf, settle, fresh_get, MPMS
import pytest

@pytest.mark.parametrize("mpm", MPMS)
def test_sessions(httpd_factory, pg, mpm):
    h = httpd_factory(conf(mpm), mpm=mpm)
    settle(h, pg)
    def sess():
        return int(pg.sql("SELECT sessions FROM pg_stat_database WHERE datname='sts'")[0][0])
    time.sleep(1)
    s0 = sess()
    for i in range(8):
        time.sleep(5)
        print(mpm, "t", (i+1)*5, sess() - s0, pg.sql("SELECT count(*) FROM pg_stat_activity WHERE usename='sts_httpd'")[0][0], flush=True)
    h.stop()
