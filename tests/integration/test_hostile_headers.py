"""Hostile request headers (issue 6): every malformed, ambiguous or forged
credential gets a clear 4xx (never 200, never 5xx, never a crash), nothing
is written to the token table, no secret comes back in a body or reaches
a log, and client-sent look-alikes of the module's identity never reach a
CGI or a proxied backend as if the module had set them.

Requests go through raw sockets (http.client and curl refuse NUL, bare CR
and the like), one request per connection.
"""

import json
import re
import urllib.parse

import pytest


SENT = []      # every secret (and variant of one) sent in this module
BODIES = []    # every response (head + body) received


EXTRA = r"""
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
LoadModule authz_host_module /usr/lib/apache2/modules/mod_authz_host.so
STSTokenCacheTTL 0

# The identity forwarded the way the README says: RequestHeader set.
<Location "/backend/">
    AuthType ServiceToken
    AuthName "backend"
    Require valid-user
    STSTokenHideCredentials On
    RequestHeader set STS-Token-Roles "%{STS_TOKEN_ROLES}e"
    RequestHeader set STS-Token-Name "%{STS_TOKEN_NAME}e"
    ProxyPass "http://127.0.0.1:@ECHO@/"
</Location>
# The identity not forwarded at all: the backend must see none.
<Location "/backend-raw/">
    AuthType ServiceToken
    AuthName "backend-raw"
    Require valid-user
    ProxyPass "http://127.0.0.1:@ECHO@/"
</Location>
# Loopback clients pass without a token (a common "internal network" set-up).
<Location "/backend-any/">
    AuthType ServiceToken
    AuthName "backend-any"
    <RequireAny>
        Require ip 127.0.0.1
        Require valid-user
    </RequireAny>
    ProxyPass "http://127.0.0.1:@ECHO@/"
</Location>
"""

OURS = {"STS-TOKEN-ID", "STS-TOKEN-NAME", "STS-TOKEN-ROLES",
        "STS-TOKEN-EXPIRATION"}


@pytest.fixture(scope="module")
def srv(httpd_factory, echo):
    return httpd_factory(EXTRA.replace("@ECHO@", str(echo)))


@pytest.fixture(scope="module")
def tok(pg):
    t = pg.mint("hostile-bot", ["reader", "ops"])
    SENT.append(t.token)
    return t


@pytest.fixture(scope="module")
def tok2(pg):
    t = pg.mint("hostile-other", ["admin"])
    SENT.append(t.token)
    return t


def snapshot(pg):
    """The whole token table and its revision counter."""
    return pg.sql("SELECT (SELECT count(*) FROM sts_tokens), (SELECT "
                  "md5(coalesce(string_agg(id || ':' || name || ':' || digest "
                  "|| ':' || array_to_string(roles, ','), ';' ORDER BY id), "
                  "'')) FROM sts_tokens), (SELECT revision FROM "
                  "sts_token_revision)")


def send(srv, lines, path=b"/protected/", method=b"GET", record=True):
    """Sends one request with raw header lines; returns (status, head, body).
    record=False for answers that show the request's own headers on purpose
    (a CGI or a backend where STSTokenHideCredentials is Off)."""
    req = (method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           + b"".join(line + b"\r\n" for line in lines)
           + b"Connection: close\r\n\r\n")
    out = srv.raw(req)
    if record:
        BODIES.append(out)
    head, _, body = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    assert m, out[:300]
    return int(m.group(1)), head.decode("latin-1"), body


def b(s):
    return s.encode("latin-1") if isinstance(s, str) else s


def flip(c):
    """Another character of the token alphabet in the same place."""
    return "a" if c != "a" else "b"


def cases(t, t2):
    """(name, header lines, allowed statuses) for a valid token t and another
    valid token t2. 400/431: malformed; 401: no usable credentials or
    refused token. Never 200, never 5xx."""
    k = t.token
    BAD = {400, 431}
    # A letter (not a digit) after the prefix, whose case can be swapped.
    li = next(i for i in range(7, len(k)) if k[i].isalpha())
    swapped = k[:li] + k[li].swapcase() + k[li + 1:]
    assert swapped != k
    out = [
        # Sizes: our 512-byte bound, then httpd's own LimitRequestFieldSize.
        ("x-api-key 8000 bytes", [b"X-API-Key: svctok-" + b"a" * 8000], BAD),
        ("x-api-key 8 KiB + token", [b"X-API-Key: " + b(k) + b"a" * 8192], BAD),
        ("x-api-key 64 KiB", [b"X-API-Key: " + b"b" * 65536], BAD),
        ("authorization 8000 bytes", [b"Authorization: ApiKey " + b"c" * 8000], BAD),
        ("authorization 9 KiB", [b"Authorization: ApiKey " + b(k) * 200], BAD),
        ("513 bytes", [b"X-API-Key: " + b(k) + b"d" * (513 - len(k))], {400}),
        ("200 x-api-key headers", [b"X-API-Key: " + b(k)] * 200, BAD),
        # NUL and control bytes: never truncated into the valid token.
        ("NUL after token", [b"X-API-Key: " + b(k) + b"\x00junk"], BAD),
        ("NUL inside token", [b"X-API-Key: " + b(k[:10]) + b"\x00" + b(k[10:])], BAD),
        ("NUL in authorization", [b"Authorization: ApiKey " + b(k) + b"\x00"], BAD),
        ("SOH inside token", [b"X-API-Key: " + b(k[:10]) + b"\x01" + b(k[10:])], BAD),
        ("ESC after token", [b"X-API-Key: " + b(k) + b"\x1b[0m"], BAD),
        ("DEL after token", [b"X-API-Key: " + b(k) + b"\x7f"], BAD),
        ("bare CR inside token", [b"X-API-Key: " + b(k[:10]) + b"\r" + b(k[10:])], BAD),
        ("vertical tab", [b"X-API-Key: " + b(k) + b"\x0b"], BAD),
        ("tab inside token", [b"X-API-Key: " + b(k[:10]) + b"\t" + b(k[10:])], BAD),
        # Non-ASCII: invalid UTF-8, and a UTF-8 look-alike of the token.
        ("non-UTF-8 bytes", [b"X-API-Key: " + b(k) + b"\xff\xfe"], BAD),
        ("latin-1 byte inside", [b"X-API-Key: " + b(k[:10]) + b"\xe9" + b(k[11:])], BAD),
        ("cyrillic look-alike", [b"X-API-Key: " + b(k[:10]) + "а".encode() + b(k[11:])],
         BAD),
        ("overlong UTF-8 slash", [b"X-API-Key: svctok-\xc0\xaf"], BAD),
        # Authorization forms.
        ("ApiKey without space", [b"Authorization: ApiKey" + b(k)], {401}),
        ("ApiKey alone", [b"Authorization: ApiKey"], {400, 401}),
        ("ApiKey two words", [b"Authorization: ApiKey " + b(k) + b" more"], {400}),
        ("Bearer with token", [b"Authorization: Bearer " + b(k)], {401}),
        ("Basic with token", [b"Authorization: Basic " + b(k)], {401}),
        ("ApiKey= form", [b"Authorization: ApiKey=" + b(k)], {401}),
        # Repeated headers and both forms disagreeing.
        ("x-api-key twice same", [b"X-API-Key: " + b(k)] * 2, {400}),
        ("x-api-key twice different case",
         [b"X-API-Key: " + b(k), b"x-api-key: " + b(t2.token)], {400}),
        ("authorization twice", [b"Authorization: ApiKey " + b(k)] * 2, {400}),
        ("authorization ApiKey then Basic",
         [b"Authorization: ApiKey " + b(k), b"Authorization: Basic dTpw"], {400}),
        ("both forms different valid tokens",
         [b"Authorization: ApiKey " + b(k), b"X-API-Key: " + b(t2.token)], {400}),
        ("both forms, one a variant",
         [b"Authorization: ApiKey " + b(k), b"X-API-Key: " + b(k.upper())], {400}),
        ("comma-joined in one header", [b"X-API-Key: " + b(k) + b", " + b(t2.token)],
         {400}),
        ("comma-joined no space", [b"X-API-Key: " + b(k) + b"," + b(t2.token)],
         {400, 401}),
        ("empty x-api-key", [b"X-API-Key: "], {400, 401}),
        # Case: tokens are case-sensitive.
        ("token upper-cased", [b"X-API-Key: " + b(k.upper())], {401}),
        ("one letter case-swapped", [b"X-API-Key: " + b(swapped)], {401}),
        ("prefix upper-cased", [b"X-API-Key: SVCTOK-" + b(k[7:])], {401}),
        # Checksum and length off by one.
        ("last char changed", [b"X-API-Key: " + b(k[:-1] + flip(k[-1]))], {401}),
        ("middle char changed",
         [b"X-API-Key: " + b(k[:20] + flip(k[20]) + k[21:])], {401}),
        ("last char dropped", [b"X-API-Key: " + b(k[:-1])], {401}),
        ("one char appended", [b"X-API-Key: " + b(k + "a")], {401}),
        ("two chars swapped",
         [b"X-API-Key: " + b(k[:15] + k[16] + k[15] + k[17:])] if k[15] != k[16]
         else [b"X-API-Key: " + b(k[:-1])], {401}),
        # SQL metacharacters: refused before (or safely inside) any query.
        ("sql quote or", [b"X-API-Key: svctok-'OR'1'='1'--"], {401}),
        ("sql drop", [b"X-API-Key: ';DROP/**/TABLE/**/sts_tokens;--"], {401}),
        ("sql with spaces", [b"X-API-Key: ' OR 1=1 --"], {400}),
        ("sql backslash", [b"X-API-Key: " + b(k[:-1]) + b"\\'"], {401}),
        ("sql percent", [b"X-API-Key: svctok-%"], {401}),
        # Percent-encoding is not decoded in a header.
        ("token + %00", [b"X-API-Key: " + b(k) + b"%00"], {401}),
        ("token with %00 inside", [b"X-API-Key: " + b(k[:10]) + b"%00" + b(k[10:])],
         {401}),
        ("percent-encoded token",
         [b"X-API-Key: " + "".join("%%%02X" % ord(c) for c in k).encode()], {401}),
        ("url-quoted token in authorization",
         [b"Authorization: ApiKey%20" + b(urllib.parse.quote(k))], {401}),
    ]
    SENT.extend([k.upper(), k[:-1] + flip(k[-1]), k[:-1], k + "a",
                 k[:20] + flip(k[20]) + k[21:], swapped])
    return out


def test_hostile_headers_are_4xx_and_write_nothing(srv, pg, tok, tok2):
    before = snapshot(pg)
    failures = []
    for name, lines, allowed in cases(tok, tok2):
        status, head, body = send(srv, lines)
        if status not in allowed:
            failures.append((name, status, head.splitlines()[0]))
        if b"hello" in body:
            failures.append((name, "protected content served"))
        for s in (tok.token, tok2.token):
            if s.encode() in body or s in head:
                failures.append((name, "secret echoed"))
    assert not failures, failures
    assert snapshot(pg) == before
    assert srv.crashes() == []
    # The valid token still works on the same server afterwards.
    assert send(srv, [b"X-API-Key: " + b(tok.token)])[0] == 200


@pytest.mark.parametrize("line", [
    "Authorization: ApiKey\t{k}",
    "Authorization: ApiKey \t  \t {k}",
    "Authorization: ApiKey" + " " * 100 + "{k}",
    "Authorization: apikey {k}",
    "Authorization: APIKEY {k}",
    "Authorization:    ApiKey {k}   ",
    "x-api-key: {k}",
    "X-API-KEY: {k}",
    "x-Api-kEY: {k}",
    "X-API-Key:\t{k}\t",
])
def test_accepted_spellings(srv, tok, line):
    """What StackState accepts is accepted: scheme in any case, spaces and
    tabs between scheme and token, header names in any case."""
    status, _, body = send(srv, [line.format(k=tok.token).encode()])
    assert status == 200 and body == b"hello\n"


def test_both_forms_same_token_and_other_schemes(srv, tok, tok2):
    assert send(srv, [b"Authorization: ApiKey " + b(tok.token),
                      b"X-API-Key: " + b(tok.token)])[0] == 200
    # Another scheme in Authorization is not a credential of ours.
    assert send(srv, [b"Authorization: Basic dXNlcjpwYXNz",
                      b"X-API-Key: " + b(tok.token)])[0] == 200


def test_bootstrap_secret_variants_refused(srv, pg, bootstrap, tok):
    """Near misses of the bootstrap secret are not the bootstrap identity:
    case changed, one character more or less, trailing newline, or paired
    with another token in the other header."""
    boot = str(bootstrap)
    before = snapshot(pg)
    variants = [boot.upper() if boot.upper() != boot else boot.lower(),
                boot[:-1], boot + "A", boot[1:], boot[:16]]
    SENT.extend(variants)
    for v in variants:
        status, head, body = send(srv, [b"X-API-Key: " + b(v)],
                                  path=b"/api/security/tokens")
        assert status == 401, (v[:6], status)
        # A refusal (the API's JSON error), never the token list.
        assert b"hello" not in body and b"svctok-" not in body, body[:200]
        assert b"lastUpdateTimestamp" not in body and b'"ErrorsResponse"' in body
    for lines in ([b"X-API-Key: " + b(boot) + b"\n"],
                  [b"X-API-Key: " + b(boot) + b"\x00"]):
        assert send(srv, lines, path=b"/api/security/tokens")[0] == 400
    status, _, _ = send(srv, [b"Authorization: ApiKey " + b(boot),
                              b"X-API-Key: " + b(tok.token)],
                        path=b"/api/security/tokens")
    assert status == 400
    # The real secret still works (so the refusals above were about the
    # variants, not a broken bootstrap).
    assert send(srv, [b"X-API-Key: " + b(boot)], path=b"/api/server/info")[0] == 200
    assert snapshot(pg) == before


def env_of(body):
    return dict(line.split("=", 1) for line in body.decode("latin-1").splitlines()
                if "=" in line)


FORGED = [
    ("STS-Token-Roles", "stackstate-admin"),
    ("STS-Token-ID", "0"),
    ("STS-Token-Name", "bootstrap"),
    ("STS-Token-Expiration", "2999-01-01"),
    ("sts-token-roles", "lower-admin"),
    ("STS_TOKEN_ROLES", "underscore-admin"),
    ("STS_Token-Roles", "mixed-admin"),
    ("STS-Token_Roles", "mixed2-admin"),
    ("Sts_Token_Id", "7"),
]


def forged_lines():
    return [f"{k}: {v}".encode() for k, v in FORGED]


def test_cgi_never_sees_forged_identity(srv, tok):
    """A CGI sees the module's STS_TOKEN_* values, and no client header
    under any of those names (HTTP_STS_TOKEN_* is absent)."""
    status, _, body = send(srv, [b"X-API-Key: " + b(tok.token)] + forged_lines(),
                           path=b"/cgi-bin/env.cgi", record=False)
    assert status == 200
    env = env_of(body)
    assert env["STS_TOKEN_ROLES"] == "reader,ops"
    assert env["STS_TOKEN_ID"] == str(tok.id)
    assert env["STS_TOKEN_NAME"] == "hostile-bot"
    assert env["STS_TOKEN_EXPIRATION"] == ""
    assert env["REMOTE_USER"] == "hostile-bot"
    stray = {k: v for k, v in env.items()
             if "STS" in k.upper() and k not in (
                 "STS_TOKEN_ID", "STS_TOKEN_NAME", "STS_TOKEN_ROLES",
                 "STS_TOKEN_EXPIRATION")}
    assert not stray, stray
    forged_values = {v for _, v in FORGED}
    assert not forged_values & set(env.values()), env


def backend_headers(body):
    return json.loads(body)["headers"]


def ours_seen(headers):
    """Headers a backend would take for ours: names equal to ours once case
    and '-'/'_' are ignored (CGI, WSGI, PHP and Rack all map both to '_')."""
    return [(k, v) for k, v in headers if k.upper().replace("_", "-") in OURS]


def test_backend_sees_only_the_configured_identity(srv, tok):
    """Behind mod_proxy_http with RequestHeader set: the backend gets exactly
    the roles and name the module set, and none of the forged look-alikes,
    whatever their case or separator."""
    status, _, body = send(srv, [b"X-API-Key: " + b(tok.token)] + forged_lines(),
                           path=b"/backend/x")
    assert status == 200, body
    hs = backend_headers(body)
    assert sorted(ours_seen(hs)) == [("STS-Token-Name", "hostile-bot"),
                                     ("STS-Token-Roles", "reader,ops")], hs
    # Hidden credentials: the secret does not reach the backend.
    assert tok.token not in body.decode()


def test_backend_without_forwarding_sees_no_identity(srv, tok):
    status, _, body = send(srv, [b"X-API-Key: " + b(tok.token)] + forged_lines(),
                           path=b"/backend-raw/x", record=False)
    assert status == 200, body
    hs = backend_headers(body)
    assert ours_seen(hs) == [], hs


def test_backend_forged_identity_when_authn_is_skipped(srv):
    """AuthType ServiceToken with a RequireAny that lets loopback in without
    a token: the module's authentication never runs for such a request, yet
    the README promises that STS-Token-* look-alikes are removed under
    AuthType ServiceToken (failed before e01fb41 moved the stripping to
    header_parser)."""
    status, _, body = send(srv, forged_lines(), path=b"/backend-any/x")
    assert status == 200, body
    hs = backend_headers(body)
    assert ours_seen(hs) == [], hs


def test_zz_no_secret_in_logs_or_bodies(srv, bootstrap):
    """No token (nor a variant of one) in the error log at
    LogLevel info sts_token:trace8, the access log, or any answer except
    those that echo the request on purpose (CGI, backend without hiding)."""
    logs = srv.error_log() + srv.access_log()
    assert "[sts_token:" in logs
    assert "malformed service token credentials" in logs  # the 400s were logged
    for s in SENT + [str(bootstrap)]:
        assert s not in logs, s[:12]
        for out in BODIES:
            assert s.encode() not in out, s[:12]
