"""Hostile input to the token API (issue 6): bodies, framing, paths and IDs.

Each batch asserts, request by request, a clear 4xx (never 2xx, never 5xx,
never a crash) with StackState's JSON error shape where the handler answers,
and for the whole batch that the token table and its revision counter are
unchanged: nothing was written, nothing deleted. No secret appears in any
answer or log.
"""

import json
import re
import subprocess

import pytest

from conftest import MINT

SENT = []      # secrets sent or handed out in this module
ANSWERS = []   # every raw answer, for the no-leak check

API = "/api/security/tokens"


@pytest.fixture(scope="module")
def srv(httpd_factory):
    return httpd_factory("")


@pytest.fixture(scope="module")
def admin(bootstrap):
    return str(bootstrap)


@pytest.fixture
def victim(pg):
    """A token that hostile DELETE paths aim at: it must survive them."""
    t = pg.mint("hostile-victim", ["reader"])
    SENT.append(t.token)
    return t


def snapshot(pg):
    return pg.sql("SELECT (SELECT count(*) FROM sts_tokens), (SELECT "
                  "md5(coalesce(string_agg(id || ':' || name || ':' || digest, "
                  "';' ORDER BY id), '')) FROM sts_tokens), (SELECT revision "
                  "FROM sts_token_revision)")


def raw(srv, method, path, headers=(), body=b"", framing="length"):
    """One request on its own connection; returns (status, head, body).
    framing: "length" (Content-Length), "none" (no length at all), or a
    bytes object sent verbatim after the head (chunked and other framing)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    data = b""
    if framing == "length":
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        data = body
    elif framing == "none":
        data = body
    else:
        data = framing
    req = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data
    out = srv.raw(req, timeout=15)
    ANSWERS.append(out)
    head, _, rest = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    assert m, out[:300]
    return int(m.group(1)), head.decode("latin-1"), rest


def json_error(head, body):
    """The handler's error answers are GenericErrorsResponse JSON."""
    assert "Content-Type: application/json" in head, head
    if "Transfer-Encoding: chunked" in head:  # not expected, but be exact
        body = b"".join(body.split(b"\r\n")[1::2])
    doc = json.loads(body)
    assert doc["_type"] in ("ErrorsResponse", "ServiceTokenInvalidExpiryError"), doc
    return doc


def post(srv, admin, body, ctype="application/json", framing="length", extra=()):
    hs = [("X-API-Key", admin)]
    if ctype is not None:
        hs.append(("Content-Type", ctype))
    return raw(srv, "POST", API, hs + list(extra), body, framing)


def chunk(data, size=1000):
    out = b""
    for i in range(0, len(data), size):
        part = data[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


OK = b'{"name":"hostile","roles":["r"]}'
BIG = 65536

BODIES = [
    # (label, body, allowed statuses)
    ("truncated", b'{"name":"x","roles":["r"]', {400}),
    ("truncated string", b'{"name":"x', {400}),
    ("invalid", b"{name: 'x', roles: ['r']}", {400}),
    ("trailing garbage", OK + b"}", {400}),
    ("two documents", OK + OK, {400}),
    ("empty", b"", {400}),
    ("whitespace", b"   \n\t ", {400}),
    ("null", b"null", {400}),
    ("number", b"12", {400}),
    ("array", b'[{"name":"x","roles":["r"]}]', {400}),
    ("deep arrays", b"[" * 30000 + b"]" * 30000, {400}),
    ("deep objects", b'{"a":' * 10000 + b"1" + b"}" * 10000, {400}),
    ("deep inside name", b'{"name":' + b"[" * 20000 + b"]" * 20000
     + b',"roles":["r"]}', {400}),
    ("huge roles array", b'{"name":"x","roles":[' + b",".join([b'"r"'] * 15000)
     + b"]}", {400}),
    ("roles of arrays", b'{"name":"x","roles":[["r"]]}', {400}),
    ("expiry beyond int64", b'{"name":"x","roles":["r"],"expiryDate":'
     b"9223372036854775808}", {400}),
    ("expiry int64 max", b'{"name":"x","roles":["r"],"expiryDate":'
     b"9223372036854775807}", {400}),
    ("expiry int64 min", b'{"name":"x","roles":["r"],"expiryDate":'
     b"-9223372036854775808}", {400}),
    ("expiry year 10000", b'{"name":"x","roles":["r"],"expiryDate":'
     b"253402300800000}", {400}),
    ("expiry negative", b'{"name":"x","roles":["r"],"expiryDate":-1}', {400}),
    ("expiry zero", b'{"name":"x","roles":["r"],"expiryDate":0}', {400}),
    ("expiry fraction", b'{"name":"x","roles":["r"],"expiryDate":4102444800000.5}',
     {400}),
    ("expiry exponent", b'{"name":"x","roles":["r"],"expiryDate":4.1e12}', {400}),
    ("expiry 1e400", b'{"name":"x","roles":["r"],"expiryDate":1e400}', {400}),
    ("expiry string", b'{"name":"x","roles":["r"],"expiryDate":"4102444800000"}',
     {400}),
    ("expiry bool", b'{"name":"x","roles":["r"],"expiryDate":true}', {400}),
    ("id beyond int64 (unknown field)", b'{"name":"x","roles":["r"],"id":'
     b"99999999999999999999999}", {400}),
    ("NUL in name", b'{"name":"a\\u0000b","roles":["r"]}', {400}),
    ("NUL in role", b'{"name":"x","roles":["r\\u0000"]}', {400}),
    ("NUL in description", b'{"name":"x","roles":["r"],"description":"\\u0000"}',
     {400}),
    ("NUL in subject", b'{"name":"x","roles":["r"],"dedicatedSubject":"a\\u0000"}',
     {400}),
    ("raw NUL byte", b'{"name":"a\x00b","roles":["r"]}', {400}),
    ("lone surrogate", b'{"name":"\\ud800","roles":["r"]}', {400}),
    ("invalid UTF-8", b'{"name":"\xc3\x28","roles":["r"]}', {400}),
    ("overlong UTF-8", b'{"name":"\xc0\xaf","roles":["r"]}', {400}),
    ("C1 control in name", b'{"name":"a\\u0085b","roles":["r"]}', {400}),
    ("newline in name", b'{"name":"a\\nb","roles":["r"]}', {400}),
    ("name number", b'{"name":1,"roles":["r"]}', {400}),
    ("name object", b'{"name":{},"roles":["r"]}', {400}),
    ("name null", b'{"name":null,"roles":["r"]}', {400}),
    ("roles string", b'{"name":"x","roles":"r"}', {400}),
    ("roles null", b'{"name":"x","roles":null}', {400}),
    ("roles number", b'{"name":"x","roles":[1]}', {400}),
    ("role comma", b'{"name":"x","roles":["a,b"]}', {400}),
    ("role sql", b'{"name":"x","roles":["r\');DROP TABLE sts_tokens;--"]}', {400}),
    ("role braces", b'{"name":"x","roles":["{r}"]}', {400}),
    ("description number", b'{"name":"x","roles":["r"],"description":5}', {400}),
    ("subject object", b'{"name":"x","roles":["r"],"dedicatedSubject":{}}', {400}),
    ("duplicate name", b'{"name":"a","name":"b","roles":["r"]}', {400}),
    ("duplicate roles", b'{"name":"a","roles":["r"],"roles":["s"]}', {400}),
    ("duplicate expiry", b'{"name":"a","roles":["r"],"expiryDate":4102444800000,'
     b'"expiryDate":1}', {400}),
    ("64 KiB + 1", (OK[:-1] + b',"p":"' + b"a" * BIG + b'"}')[:BIG + 1], {413}),
    ("1 MiB", b'{"p":"' + b"a" * (1 << 20) + b'"}', {413}),
]


def test_hostile_bodies_are_4xx_and_write_nothing(srv, pg, admin):
    before = snapshot(pg)
    bad = []
    for label, body, allowed in BODIES:
        status, head, rest = post(srv, admin, body)
        if status not in allowed:
            bad.append((label, status, rest[:200]))
            continue
        try:
            json_error(head, rest)
        except (AssertionError, ValueError) as e:
            bad.append((label, "not a JSON error", str(e)[:200]))
    assert not bad, bad
    assert snapshot(pg) == before
    assert srv.crashes() == []


@pytest.mark.parametrize("ctype", [
    None, "", "text/plain", "application/jsonx", "application/json-patch+json",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "text/json", "application/javascript", "json", "application/ json",
])
def test_wrong_content_type_415(srv, pg, admin, ctype):
    before = snapshot(pg)
    status, head, rest = post(srv, admin, OK, ctype=ctype)
    assert status == 415, (ctype, status, rest[:200])
    json_error(head, rest)
    assert snapshot(pg) == before


def test_framing(srv, pg, admin):
    """Chunked bodies (no length): over the limit 413, malformed 400; a
    length that disagrees with the body never creates a token from a
    smuggled second request."""
    before = snapshot(pg)
    te = [("Transfer-Encoding", "chunked")]
    big = OK[:-1] + b',"p":"' + b"a" * BIG + b'"}'
    cases = [
        ("chunked over 64 KiB", post(srv, admin, b"", framing=chunk(big),
                                     extra=te), {413}),
        ("chunked one huge chunk", post(srv, admin, b"", framing=chunk(big, 1 << 20),
                                        extra=te), {413}),
        ("chunked invalid json", post(srv, admin, b"", framing=chunk(b'{"name":'),
                                      extra=te), {400}),
        ("chunk size not hex", post(srv, admin, b"",
                                    framing=b"zz\r\n" + OK + b"\r\n0\r\n\r\n",
                                    extra=te), {400}),
        ("chunk size overflow", post(srv, admin, b"",
                                     framing=b"fffffffffffffffffffff\r\n" + OK
                                     + b"\r\n0\r\n\r\n", extra=te), {400, 413}),
        ("chunk size negative", post(srv, admin, b"",
                                     framing=b"-5\r\n" + OK + b"\r\n0\r\n\r\n",
                                     extra=te), {400}),
        ("unknown transfer-encoding", post(srv, admin, OK, framing=OK,
                                           extra=[("Transfer-Encoding", "gzip")]),
         {400, 501}),
        ("content-length over the limit, nothing sent",
         post(srv, admin, b"", framing=b"",
              extra=[("Content-Length", str(BIG + 1))]), {413}),
        ("negative content-length",
         post(srv, admin, b"", framing=OK, extra=[("Content-Length", "-1")]), {400}),
        ("two content-lengths",
         post(srv, admin, b"", framing=OK,
              extra=[("Content-Length", str(len(OK))), ("Content-Length", "3")]),
         {400}),
        ("content-length huge",
         post(srv, admin, b"", framing=OK,
              extra=[("Content-Length", "99999999999999999999999")]), {400, 413}),
    ]
    bad = [(label, st, body[:160]) for label, (st, _, body), allowed in cases
           if st not in allowed]
    assert not bad, bad
    assert snapshot(pg) == before


def test_smuggled_request_is_not_executed(srv, pg, admin):
    """Content-Length and Transfer-Encoding together: httpd must not run a
    second request hidden in the body (here: a create with the admin key)."""
    before = snapshot(pg)
    inner = (f"POST {API} HTTP/1.1\r\nHost: x\r\nX-API-Key: {admin}\r\n"
             f"Content-Type: application/json\r\nContent-Length: {len(OK)}\r\n"
             "\r\n").encode() + OK
    body = b"0\r\n\r\n" + inner
    st, head, rest = post(srv, admin, b"", framing=body,
                          extra=[("Content-Length", str(len(body))),
                                 ("Transfer-Encoding", "chunked")])
    assert st in (400, 413), (st, rest[:200])
    assert rest.count(b"HTTP/1.1 200") == 0
    assert snapshot(pg) == before


def unauth_paths(victim):
    i = str(victim.id)
    return [
        f"{API}/../..", f"{API}/../../", f"{API}/../../../../etc/passwd",
        "/api/security/tokens/..%2F..%2F", "/api%2Fsecurity%2Ftokens",
        f"{API}%2F{i}", f"{API}/{i}%2F", f"{API}/", f"{API}//", f"{API}/{i}/",
        f"{API}/{i}/x", f"{API}%00", f"{API}/{i}%00", f"{API};x", f"{API}/{i};x",
    ]


def test_hostile_paths_without_credentials(srv, pg, victim):
    """Whatever the path, an unauthenticated client never gets the token list
    nor deletes anything: 4xx, or (for paths that normalise out of /api)
    the public index page."""
    before = snapshot(pg)
    bad = []
    for path in unauth_paths(victim):
        for method in ("GET", "DELETE", "POST"):
            st, head, body = raw(srv, method, path,
                                 [("Content-Type", "application/json")],
                                 OK if method == "POST" else b"")
            public = st == 200 and body == b"public\n" and method == "GET"
            if not (400 <= st < 500 or public or st == 405):
                bad.append((method, path, st, body[:100]))
            if b'"token"' in body or b"lastUpdateTimestamp" in body:
                bad.append((method, path, "token data served"))
    assert not bad, bad
    assert snapshot(pg) == before


@pytest.mark.parametrize("form", [
    "0{i}", "00{i}", "+{i}", "-{i}", "%20{i}", "{i}%20", "%09{i}", "{i}%00",
    "{i}.0", "{i}e0", "0x{h}", "{i}%0A", "{i}abc", "%2B{i}", "{i}/", "{i}//",
    "{i}%2F", "{i}%3B", "{i};", "{i}%23",
])
def test_delete_id_forms_never_delete(srv, pg, admin, victim, form):
    """An ID with leading zeros, a sign, spaces, a suffix or an encoding
    trick around a real token's ID: 4xx and the token is still there."""
    i = str(victim.id)
    path = f"{API}/" + form.format(i=i, h=format(victim.id, "x"))
    before = snapshot(pg)
    st, head, body = raw(srv, "DELETE", path, [("X-API-Key", admin)])
    assert 400 <= st < 500, (path, st, body[:200])
    assert snapshot(pg) == before, path
    assert pg.sql(f"SELECT 1 FROM sts_tokens WHERE id = {victim.id}"), path


def test_delete_percent_encoded_digits_is_the_same_id(srv, pg, admin, victim):
    """Control for the test above: the path is percent-decoded before
    routing (standard), so %3X digits name the same token and delete it;
    the hostile forms above fail for their form, not for the encoding."""
    enc = "".join("%%%02X" % ord(c) for c in str(victim.id))
    st, _, body = raw(srv, "DELETE", f"{API}/{enc}", [("X-API-Key", admin)])
    assert st == 204, body[:200]
    assert not pg.sql(f"SELECT 1 FROM sts_tokens WHERE id = {victim.id}")


@pytest.mark.parametrize("item", [
    "9007199254740992", "9223372036854775807", "9223372036854775808",
    "18446744073709551616", "1" * 1000, "-9223372036854775808", "0", "-0",
])
def test_delete_out_of_range_400(srv, pg, admin, item):
    before = snapshot(pg)
    st, head, body = raw(srv, "DELETE", f"{API}/{item}", [("X-API-Key", admin)])
    assert st == 400, (item, st, body[:200])
    json_error(head, body)
    assert snapshot(pg) == before


def test_hostile_bodies_without_role_are_refused_before_parsing(srv, pg):
    """A token without the admin role (and no token) is refused in the auth
    phase, whatever the body: nothing parsed, nothing written."""
    t = pg.mint("hostile-reader", ["reader"])
    SENT.append(t.token)
    before = snapshot(pg)
    for hs in ([("X-API-Key", t.token)], []):
        for _, body, _ in BODIES[:12] + [("ok", OK, None)]:
            st, _, _ = raw(srv, "POST", API,
                           hs + [("Content-Type", "application/json")], body)
            assert st in (401, 403), st
    assert snapshot(pg) == before


def test_secret_inside_a_bad_body_is_not_echoed(srv, pg, admin):
    """A client that posts a token inside a malformed body (bare word,
    bad escape, control byte, unterminated string, as a key) gets a 400
    whose message does not quote it; the zz test below also greps the logs."""
    tok = subprocess.run([MINT], check=True, capture_output=True,
                         text=True).stdout.split()[0]
    SENT.append(tok)
    before = snapshot(pg)
    for body in ('{"name":"x","roles":["r"],"t": %s}' % tok,
                 '{"name": %s' % tok, tok,
                 '{"name":"x","roles":["r"],"token":"%s\\q"}' % tok,
                 '{"name":"x","roles":["r"],"token":"%s\x01"}' % tok,
                 '{"name":"x","roles":["r"],"token":"%s' % tok,
                 '{"%s":1,"%s":2}' % (tok, tok),
                 '{"name":"%s\\u12"}' % tok):
        status, head, rest = post(srv, admin, body.encode())
        assert status == 400, (status, rest[:200])
        assert tok.encode() not in rest and tok[7:].encode() not in rest
    assert snapshot(pg) == before


def test_zz_no_secret_in_answers_or_logs(srv, admin):
    logs = srv.error_log() + srv.access_log()
    assert "token API" in logs  # the handler's refusals were logged
    for s in SENT + [admin]:
        assert s not in logs, s[:12]
        for out in ANSWERS:
            assert s.encode() not in out, s[:12]
