"""The token API (issue 3): routes, statuses, validation, schemas, audit."""

import concurrent.futures
import http.client
import json
import os
import time

import re
import subprocess

import pytest

import openapi_check as oa
from conftest import BUILD, ROOT, past_trust_window

EXTRA = r"""
LoadModule auth_basic_module /usr/lib/apache2/modules/mod_auth_basic.so
LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so

# Forgot every auth line: must never answer 200.
<Location "/open-api">
    SetHandler sts-token-api
    STSTokenAPIBase
</Location>
# Human administrators through Basic auth.
<Location "/basic-api">
    AuthType Basic
    AuthName "admins"
    AuthBasicProvider file
    AuthUserFile "@RUN@/htpasswd"
    Require valid-user
    SetHandler sts-token-api
    STSTokenAPIBase
</Location>
# A regex location keeps StackState's routes below its match.
<LocationMatch "^/v[0-9]+/api">
    AuthType ServiceToken
    AuthName "regex-api"
    AuthzSendForbiddenOnFailure On
    Require sts-role stackstate-admin
    SetHandler sts-token-api
    STSTokenAPIBase
</LocationMatch>
# Trailing slashes in the section's path or regex.
<Location "/slash-api/">
    AuthType ServiceToken
    AuthName "slash-api"
    Require sts-role stackstate-admin
    SetHandler sts-token-api
    STSTokenAPIBase
</Location>
<LocationMatch "^/m[0-9]/api/">
    AuthType ServiceToken
    AuthName "regex-slash-api"
    Require sts-role stackstate-admin
    SetHandler sts-token-api
    STSTokenAPIBase
</LocationMatch>
# Sections merged after the shipped /api (a nested one and a catch-all):
# the routes stay relative to /api, the section that sets the handler.
<Location "/api/security">
    Header set X-Nested yes
</Location>
<Location "/">
    Header set X-Catch-All yes
</Location>
# The handler set inside <If>: no <Location> sets it, so the route is read
# from the end of the path.
<Location "/if-api">
    AuthType ServiceToken
    AuthName "if-api"
    Require sts-role stackstate-admin
    <If "true">
        SetHandler sts-token-api
    </If>
</Location>
# The handler set inside <If>, with the base given (as mod_dav's
# DAVBasePath): routes below it only.
<Location "/ifbase-api">
    AuthType ServiceToken
    AuthName "ifbase-api"
    Require sts-role stackstate-admin
    <If "true">
        SetHandler sts-token-api
    </If>
    STSTokenAPIBase /ifbase-api/
</Location>
# The directive inside a conditional section read at startup (httpd
# splices its contents into the <Location>).
<Location "/ifmod-api">
    AuthType ServiceToken
    AuthName "ifmod-api"
    Require sts-role stackstate-admin
    <IfModule sts_token_module>
        SetHandler sts-token-api
        STSTokenAPIBase
    </IfModule>
</Location>
# The regex form of <Location>.
<Location ~ "^/t[0-9]/api">
    AuthType ServiceToken
    AuthName "tilde-api"
    Require sts-role stackstate-admin
    SetHandler sts-token-api
    STSTokenAPIBase
</Location>
# AuthType without any authentication requirement: r->user stays unset.
<Location "/granted-api">
    AuthType ServiceToken
    AuthName "granted-api"
    Require all granted
    SetHandler sts-token-api
    STSTokenAPIBase
</Location>
# An administrator's LimitRequestBody below the API's own 64 KiB.
<Location "/small-api">
    AuthType ServiceToken
    AuthName "small-api"
    Require sts-role stackstate-admin
    LimitRequestBody 100
    SetHandler sts-token-api
    STSTokenAPIBase
</Location>
# AuthType without a Require line of its own.
<Location "/norequire-api">
    AuthType ServiceToken
    AuthName "norequire-api"
    SetHandler sts-token-api
    STSTokenAPIBase
</Location>
"""

JSON = {"Content-Type": "application/json"}
SECRETS = []


@pytest.fixture(scope="module")
def spec():
    return oa.Spec()


@pytest.fixture(scope="module")
def api(httpd_factory):
    h = httpd_factory(EXTRA)
    with open(os.path.join(h.run, "htpasswd"), "w") as f:
        f.write("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")  # password
    return h


@pytest.fixture(scope="module")
def admin(bootstrap):
    return {"X-API-Key": str(bootstrap)}


def call(api, admin, method, path, body=None, headers=None):
    hs = dict(admin)
    if body is not None:
        hs.update(JSON)
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
    hs.update(headers or {})
    return api.request(method, "/api" + path, hs, body)


def create(api, admin, spec, **fields):
    body = {"name": "tok", "roles": ["reader"]}
    body.update(fields)
    r = call(api, admin, "POST", "/security/tokens", body)
    assert r.status == 200, r
    created = r.json()
    spec.check(created, oa.TOKENS, "ServiceTokenCreatedResponse")
    SECRETS.append(created["token"])
    return created


def listed(api, admin, spec):
    r = call(api, admin, "GET", "/security/tokens")
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json"
    assert r.header("Cache-Control") == "no-store"
    oa.check_token_list(spec, r.json())
    return r.json()


def by_name(tokens, name):
    return [t for t in tokens if t["name"] == name]


def assert_error(spec, r, status, words=""):
    assert r.status == status, r
    assert r.header("Content-Type") == "application/json", r.headers
    assert r.header("Cache-Control") == "no-store"
    assert r.header("X-Content-Type-Options") == "nosniff"
    body = r.json()
    spec.check(body, oa.ERRORS, "GenericErrorsResponse")
    assert body["errors"][0]["errorCode"] == status
    assert words in body["errors"][0]["message"], body
    return body


def count_rows(pg):
    return int(pg.sql("SELECT count(*) FROM sts_tokens")[0][0])


def test_create_then_authenticate(api, admin, spec, pg):
    before = time.time() * 1000
    r = call(api, admin, "POST", "/security/tokens",
             {"name": "my-service-token", "roles": ["stackstate-k8s-troubleshooter"]})
    assert r.status == 200
    assert r.header("Cache-Control") == "no-store"
    created = r.json()
    SECRETS.append(created["token"])
    assert created["name"] == "my-service-token"
    assert created["token"].startswith("svctok-") and len(created["token"]) == 46
    assert "expiration" not in created
    # The new token works at once, and never appears again.
    r2 = api.get("/protected/", {"X-API-Key": created["token"]})
    assert r2.status == 200
    tokens = listed(api, admin, spec)
    mine = by_name(tokens, "my-service-token")
    assert len(mine) == 1
    assert mine[0]["roles"] == ["stackstate-k8s-troubleshooter"]
    assert mine[0]["lastUpdateTimestamp"] >= before - 5000
    assert created["token"] not in json.dumps(tokens)
    digest = pg.sql(f"SELECT digest FROM sts_tokens WHERE id = {mine[0]['id']}")[0][0]
    assert digest not in json.dumps(tokens)
    assert pg.sql(f"SELECT count(*) FROM sts_tokens WHERE digest = '{created['token']}'")[0][0] == "0"


def test_create_all_fields(api, admin, spec):
    exp = int(time.time() * 1000) + 86_400_000
    created = create(api, admin, spec, name="full", roles=["a", "b", "a", "c"],
                     expiryDate=exp, dedicatedSubject="svc-account",
                     description="for the CI", unknownField=[1, 2])
    assert created["expiration"] == exp
    t = by_name(listed(api, admin, spec), "full")[0]
    assert t["roles"] == ["a", "b", "c"]
    assert t["expiration"] == exp
    assert t["dedicatedSubject"] == "svc-account"
    assert t["description"] == "for the CI"
    assert 1 <= t["id"] <= 2**53 - 1


def test_list_sorted_by_name_then_id(api, admin, spec):
    for name in ("zz-sort", "aa-sort", "mm-sort", "aa-sort"):
        create(api, admin, spec, name=name)
    tokens = listed(api, admin, spec)
    keys = [(t["name"], t["id"]) for t in tokens]
    assert keys == sorted(keys)


def test_expiry_not_in_future(api, admin, spec, pg):
    rows = count_rows(pg)
    for exp in (int(time.time() * 1000) - 1, 0, -5):
        r = call(api, admin, "POST", "/security/tokens",
                 {"name": "late", "roles": ["r"], "expiryDate": exp})
        assert r.status == 400
        assert r.header("Content-Type") == "application/json"
        body = r.json()
        oa.check_response(spec, "POST", "/security/tokens", 400, body)
        assert body["_type"] == "ServiceTokenInvalidExpiryError"
        assert "not in the future" in body["message"]
    assert count_rows(pg) == rows


def test_delete(api, admin, spec):
    created = create(api, admin, spec, name="short-lived")
    tid = by_name(listed(api, admin, spec), "short-lived")[0]["id"]
    # One keep-alive connection: the delete and the next request are served
    # by the same process, where the revocation must be immediate.
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/protected/", headers={"X-API-Key": created["token"]})
            assert conn.getresponse().read() and True
        conn.request("DELETE", f"/api/security/tokens/{tid}", headers=admin)
        resp = conn.getresponse()
        assert resp.status == 204
        oa.check_response(spec, "DELETE", "/security/tokens/{serviceTokenId}", 204,
                          resp.read())
        conn.request("GET", "/protected/", headers={"X-API-Key": created["token"]})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401
    finally:
        conn.close()
    # Every other process within 1 s.
    deadline = time.time() + 1.0
    while time.time() < deadline:
        statuses = {api.get("/protected/", {"X-API-Key": created["token"]}).status
                    for _ in range(6)}
        if statuses == {401}:
            break
    assert statuses == {401}
    assert not by_name(listed(api, admin, spec), "short-lived")
    assert_error(spec, call(api, admin, "DELETE", f"/security/tokens/{tid}"), 404,
                 f"no service token with id {tid}")


@pytest.mark.parametrize("bad", ["abc", "0", "007", "-5", "+5", "1.5",
                                 "9007199254740992", "99999999999999999999999",
                                 "%201", "1%20"])
def test_delete_bad_id(api, admin, spec, bad):
    assert_error(spec, call(api, admin, "DELETE", f"/security/tokens/{bad}"), 400,
                 "token id must be a number")


def test_server_info(api, admin, spec):
    r = call(api, admin, "GET", "/server/info")
    assert r.status == 200
    info = r.json()
    oa.check_response(spec, "GET", "/server/info", 200, info)
    assert info["deploymentMode"] == "SelfHosted"
    assert info["applicationDomains"] == ["Observability"]
    assert info["platformVersion"].count(".") == 2
    # StackState's API version (its CLI needs 5.x, >= 5.0.0 with the commit
    # as a pre-release), the module's own version, the build's commit.
    v = info["version"]
    assert (v["major"], v["minor"], v["patch"], v["diff"], v["isDev"]) == (
        5, 1, 0, "", False)
    version_h = open(os.path.join(ROOT, "src", "version.h")).read()
    assert f'#define STS_VERSION "{info["platformVersion"]}"' in version_h
    assert re.fullmatch(r"[0-9a-f]{7,64}|unknown", v["commit"]), v
    built = os.path.join(BUILD, "commit.txt")
    if not os.environ.get("STS_MODULE") and os.path.exists(built):
        assert v["commit"] == open(built).read().strip()


def test_server_info_for_any_valid_token(api, spec, pg):
    """The shipped /api: any valid token reads server/info (StackState's CLI
    saves and validates a context with it); token CRUD stays admin-only."""
    reader = pg.mint("info-reader", ["reader"])
    r = api.get("/api/server/info", {"X-API-Key": reader.token})
    assert r.status == 200 and r.json()["version"]["major"] == 5
    r = api.get("/api/security/tokens", {"X-API-Key": reader.token})
    assert_error(spec, r, 403, "'info-reader' is authenticated but not allowed")
    assert api.get("/api/server/info").status == 401


def test_empty_dedicated_subject_means_none(api, admin, spec, pg):
    """StackState's CLI always sends dedicatedSubject, "" without the flag."""
    create(api, admin, spec, name="no-subject", dedicatedSubject="")
    (t,) = by_name(listed(api, admin, spec), "no-subject")
    assert "dedicatedSubject" not in t
    assert pg.sql("SELECT dedicated_subject IS NULL FROM sts_tokens WHERE "
                  f"id = {t['id']}") == [("t",)]


def test_auth_refusals_are_json(api, spec, pg):
    """Refusals of the auth phase under the API carry a GenericErrorsResponse
    saying why (StackState's CLI shows only JSON bodies), keep the
    challenge; elsewhere httpd's own pages stay."""
    expired = pg.mint("json-expired", ["stackstate-admin"], expiration_ms=1000)
    reader = pg.mint("json-reader", ["reader"])
    cases = [
        ({}, 401, "no service token in the request: send it as 'X-API-Key"),
        ({"X-API-Key": "svctok-" + "0" * 39}, 401,
         "the service token was refused: token checksum does not match"),
        ({"X-API-Key": expired.token}, 401,
         "the service token was refused: token expired"),
        ({"X-API-Key": "a", "Authorization": "ApiKey b"}, 400,
         "Malformed service token: Authorization and X-API-Key carry"),
        ({"X-API-Key": reader.token}, 403,
         "'json-reader' is authenticated but not allowed to GET "
         "/api/security/tokens"),
    ]
    for headers, status, words in cases:
        r = api.get("/api/security/tokens", headers)
        body = assert_error(spec, r, status, words)
        assert expired.token not in r.text and reader.token not in r.text
        if status == 401:
            assert r.header("WWW-Authenticate").startswith('ApiKey realm="sts-api"')
        assert body["trackingKey"] and body["serverTimestamp"] > 0
    r = api.request("HEAD", "/api/security/tokens")
    assert r.status == 401 and r.body == b""
    assert r.header("Content-Type") == "application/json"
    # Basic auth under the handler: JSON too, with its own challenge.
    r = api.get("/basic-api/security/tokens")
    assert_error(spec, r, 401, "authentication required (AuthType Basic)")
    assert r.header("WWW-Authenticate") == 'Basic realm="admins"'
    # Outside the API: httpd's HTML page, unchanged.
    r = api.get("/protected/")
    assert r.status == 401 and r.header("Content-Type").startswith("text/html")
    assert b"<title>401 Unauthorized</title>" in r.body


def test_database_down_refusal_is_json(api, spec, pg):
    fresh = pg.mint("json-db-down", ["stackstate-admin"])
    pg.stop()
    try:
        past_trust_window()
        r = api.get("/api/security/tokens", {"X-API-Key": fresh.token})
        assert_error(spec, r, 503, "The token database is unavailable")
    finally:
        pg.start()


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/security/tokens", "GET, HEAD, POST"),
    ("DELETE", "/security/tokens", "GET, HEAD, POST"),
    ("GET", "/security/tokens/5", "DELETE"),
    ("POST", "/security/tokens/5", "DELETE"),
    ("POST", "/server/info", "GET, HEAD"),
])
def test_method_not_allowed(api, admin, spec, method, path, allow):
    r = call(api, admin, method, path)
    assert_error(spec, r, 405, "not allowed")
    assert r.header("Allow") == allow


@pytest.mark.parametrize("path", ["/", "", "/security", "/security/tokens/",
                                  "/security/tokens/5/x", "/server/info/x",
                                  "/security/tokenz", "/x%FF%FE", "/%C3%28/server",
                                  "/x%0Ay"])
def test_unknown_route(api, admin, spec, path):
    body = assert_error(spec, call(api, admin, "GET", path), 404, "no such API route")
    # The path is echoed percent-escaped: always valid UTF-8, no raw controls.
    msg = body["errors"][0]["message"]
    assert all(0x20 <= ord(c) < 0x7F for c in msg), msg


def test_regex_location_routes(api, admin, spec):
    r = api.get("/v2/api/server/info", admin)
    assert r.status == 200
    r = api.get("/v2/api/security/tokens", admin)
    assert r.status == 200
    oa.check_token_list(spec, r.json())


@pytest.mark.parametrize("path,status", [
    # Later sections (/api/security, /) do not move the base away from /api.
    ("/api/security/tokens", 200),
    ("/api/server/info", 200),
    ("/api/security/tokens/12345", 404),
    # Below a base, only the routes themselves.
    ("/api/x/server/info", 404),
    ("/api/api/security/tokens", 404),
    ("/api/security/tokens/security/tokens", 404),
    # Trailing slash in a Location path or a regex.
    ("/slash-api/server/info", 200),
    ("/slash-api/security/tokens", 200),
    ("/slash-api/x/server/info", 404),
    ("/m1/api/server/info", 200),
    ("/m1/api/security/tokens", 200),
    ("/m1/api/x/server/info", 404),
    ("/v10/api/server/info", 200),
    ("/v10/apix/server/info", 404),
    # Handler set in <If>: the last segments of the path.
    ("/if-api/server/info", 200),
    ("/if-api/security/tokens", 200),
    ("/if-api/security/tokens/12345", 404),
    ("/if-api/nothing", 404),
    ("/if-api/x/server/info", 200),
    # <If> with STSTokenAPIBase /ifbase-api/: below the base only.
    ("/ifbase-api/server/info", 200),
    ("/ifbase-api/security/tokens", 200),
    ("/ifbase-api/x/server/info", 404),
    # Inside <IfModule>: still the <Location>'s path.
    ("/ifmod-api/server/info", 200),
    ("/ifmod-api/x/server/info", 404),
    # <Location ~ regex>.
    ("/t1/api/server/info", 200),
    ("/t1/api/security/tokens", 200),
    ("/t1/apix/server/info", 404),
    ("/t1/api/x/server/info", 404),
])
def test_routes_relative_to_location(api, admin, spec, path, status):
    r = api.request("GET" if not path.endswith("12345") else "DELETE", path, admin)
    assert r.status == status, (path, r)
    if status == 200:
        assert r.header("X-Catch-All") == "yes"
        if path.endswith("/server/info"):
            spec.check(r.json(), oa.INFO, "ServerInfo")
        else:
            oa.check_token_list(spec, r.json())
    elif path.endswith("12345"):
        assert_error(spec, r, 404, "no service token with id 12345")
    else:
        assert_error(spec, r, 404, "no such API route")


@pytest.mark.parametrize("section,line,message", [
    ('<Directory "/srv">', "STSTokenAPIBase",
     "STSTokenAPIBase without a path belongs in the <Location>"),
    ('<Location "/x">', "STSTokenAPIBase api",
     "the base must be a URL path starting with '/'"),
    ('<Location "/x">', "STSTokenAPIBase /a /b",
     "STSTokenAPIBase takes at most one path"),
])
def test_api_base_misuse_fails_configtest(httpd_factory, section, line,
                                          message):
    tag = section.split()[0][1:]
    h = httpd_factory(f"{section}\n    {line}\n</{tag}>\n", expect_fail=True)
    assert message in h.startup_output


def test_outside_the_api_not_served(api, admin):
    """/apiary is not below <Location "/api">: httpd's own 404."""
    r = api.get("/apiary/server/info", admin)
    assert r.status == 404
    assert r.header("Content-Type").startswith("text/html")


def test_create_under_nested_sections(api, admin, spec):
    """A POST and DELETE under /api/security (a later, nested section)."""
    created = create(api, admin, spec, name="nested-section")
    tid = by_name(listed(api, admin, spec), "nested-section")[0]["id"]
    r = call(api, admin, "DELETE", f"/security/tokens/{tid}")
    assert r.status == 204
    assert r.header("X-Nested") == "yes"
    # Refused at once by the process that deleted it, by the others within
    # a second (their token tables read the change).
    deadline = time.time() + 1.0
    while api.get("/protected/", {"X-API-Key": created["token"]}).status != 401:
        assert time.time() < deadline, "still accepted 1 s after the delete"
        time.sleep(0.05)


def test_authtype_without_authentication_refused(api, admin, spec, pg):
    """Require all granted: no authentication runs, r->user stays unset."""
    rows = count_rows(pg)
    for hs in ({}, admin):
        r = api.get("/granted-api/security/tokens", hs)
        assert_error(spec, r, 403, "requires an authenticated caller")
        r = api.request("POST", "/granted-api/security/tokens", {**hs, **JSON},
                        b'{"name":"x","roles":["r"]}')
        assert_error(spec, r, 403, "requires an authenticated caller")
    assert count_rows(pg) == rows
    # AuthType without a Require of its own: either httpd refuses before the
    # handler (AH01627, 500) or an inherited Require lets no authentication
    # run; never a 200 either way.
    for hs in ({}, admin):
        r = api.request("POST", "/norequire-api/security/tokens", {**hs, **JSON},
                        b'{"name":"x","roles":["r"]}')
        assert r.status in (403, 500), r
    assert count_rows(pg) == rows


def test_unauthenticated_never_served(api, admin, spec, pg):
    r = api.get("/api/security/tokens")
    assert r.status == 401
    # A location with the handler and no auth configuration at all.
    rows = count_rows(pg)
    for method, body in (("GET", None), ("POST", b'{"name":"x","roles":["r"]}')):
        r = api.request(method, "/open-api/security/tokens", JSON, body)
        assert_error(spec, r, 403, "requires an authenticated caller")
    assert count_rows(pg) == rows


def test_missing_role_is_403(api, pg):
    t = pg.mint("no-admin", ["reader"])
    SECRETS.append(t.token)
    r = api.get("/api/security/tokens", {"X-API-Key": t.token})
    assert r.status == 403


def test_basic_auth_admin_and_audit(api, spec):
    basic = {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="}
    r = api.request("POST", "/basic-api/security/tokens", {**basic, **JSON},
                    b'{"name":"made-by-alice","roles":["ops"]}')
    assert r.status == 200
    SECRETS.append(r.json()["token"])
    r = api.get("/basic-api/security/tokens", basic)
    tid = by_name(r.json(), "made-by-alice")[0]["id"]
    assert api.request("DELETE", f"/basic-api/security/tokens/{tid}", basic).status == 204
    log = api.error_log()
    assert f"'alice' (AuthType Basic) created token id {tid} name 'made-by-alice' roles [ops]" in log
    assert (f"'alice' (AuthType Basic) deleted token id {tid} "
            "name 'made-by-alice' roles [ops]") in log
    assert "[sts_token:notice]" in log
    assert "'bootstrap' (token id 0) created token id" in log


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "application/jsonp"])
def test_wrong_content_type_415(api, admin, spec, pg, ctype):
    rows = count_rows(pg)
    hs = dict(admin)
    if ctype:
        hs["Content-Type"] = ctype
    r = api.request("POST", "/api/security/tokens", hs, b'{"name":"x","roles":["r"]}')
    assert_error(spec, r, 415, "application/json")
    assert count_rows(pg) == rows


def test_content_type_with_charset_ok(api, admin, spec):
    r = api.request("POST", "/api/security/tokens",
                    {**admin, "Content-Type": "Application/JSON; charset=utf-8"},
                    b'{"name":"charset","roles":["r"]}')
    assert r.status == 200
    SECRETS.append(r.json()["token"])


def test_body_too_large_413(api, admin, spec, pg):
    rows = count_rows(pg)
    pad = " " * (65536 - len('{"name":"x","roles":["r"]}'))
    ok = ('{"name":"sixty-four-k","roles":["r"]}' + pad)[:65536]
    r = api.request("POST", "/api/security/tokens", {**admin, **JSON}, ok.encode())
    assert r.status == 200, r
    SECRETS.append(r.json()["token"])
    big = ('{"name":"x","roles":["r"]}' + pad + " ").encode()
    assert len(big) == 65537
    assert_error(spec, api.request("POST", "/api/security/tokens", {**admin, **JSON}, big),
                 413, "larger than 65536")
    assert count_rows(pg) == rows + 1


def test_chunked_body(api, admin, spec, pg):
    def chunked(payload):
        out = b""
        for i in range(0, len(payload), 1000):
            part = payload[i:i + 1000]
            out += b"%x\r\n" % len(part) + part + b"\r\n"
        return out + b"0\r\n\r\n"

    head = ("POST /api/security/tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"X-API-Key: {admin['X-API-Key']}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    out = api.raw(head + chunked(b'{"name":"chunky","roles":["r"]}'))
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    SECRETS.append(json.loads(out.split(b"\r\n\r\n", 1)[1].split(b"\r\n")[1])["token"]
                   if b"chunked" in out.split(b"\r\n\r\n")[0].lower()
                   else json.loads(out.split(b"\r\n\r\n", 1)[1])["token"])
    rows = count_rows(pg)
    out = api.raw(head + chunked(b'{"name":"x","roles":["r"],"p":"' + b"a" * 70000 + b'"}'))
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert count_rows(pg) == rows


def test_limit_request_body_lower_than_api(api, admin, spec, pg):
    """LimitRequestBody 100: 413 for a longer body, with or without
    Content-Length, and a body within the limit is fine."""
    rows = count_rows(pg)
    small = b'{"name":"small-limit","roles":["r"]}'
    r = api.request("POST", "/small-api/security/tokens", {**admin, **JSON}, small)
    assert r.status == 200, r
    SECRETS.append(r.json()["token"])
    big = b'{"name":"small-limit","roles":["r"],"description":"' + b"d" * 100 + b'"}'
    r = api.request("POST", "/small-api/security/tokens", {**admin, **JSON}, big)
    assert_error(spec, r, 413, "larger than 100 bytes")
    head = ("POST /small-api/security/tokens HTTP/1.1\r\nHost: x\r\n"
            "Connection: close\r\n"
            f"X-API-Key: {admin['X-API-Key']}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    out = api.raw(head + b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n")
    # httpd's own chunked-body check answers first (its HTML page).
    assert out.startswith(b"HTTP/1.1 413"), out[:300]
    assert count_rows(pg) == rows + 1
    assert "reading the request body failed and httpd has answered" in api.error_log()


def test_broken_chunked_body(api, admin, spec, pg):
    rows = count_rows(pg)
    head = ("POST /api/security/tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"X-API-Key: {admin['X-API-Key']}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    out = api.raw(head + b"zz\r\n{}\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out[:300]
    assert count_rows(pg) == rows


@pytest.mark.parametrize("body,words", [
    (b'{"name":"x","roles":["r"]', "invalid JSON"),
    (b"not json", "invalid JSON"),
    (b"[]", "must be a JSON object"),
    (b'"str"', "must be a JSON object"),
    (b"", "invalid JSON"),
    (b'{"roles":["r"]}', "'name' is required"),
    (b'{"name":"","roles":["r"]}', "'name' must not be empty"),
    (b'{"name":["x"],"roles":["r"]}', "'name' must be a string"),
    (b'{"name":"' + b"n" * 256 + b'","roles":["r"]}', "'name' is longer than 255"),
    (b'{"name":"a\\u0007b","roles":["r"]}', "control characters"),
    (b'{"name":"a\\u0000b","roles":["r"]}', "invalid JSON"),
    (b'{"name":"\xff\xfe","roles":["r"]}', "invalid JSON"),
    (b'{"name":"x"}', "'roles' is required"),
    (b'{"name":"x","roles":"r"}', "'roles' must be an array"),
    (b'{"name":"x","roles":[]}', "1 to 64 entries"),
    (b'{"name":"x","roles":[' + b",".join([b'"r"'] * 65) + b"]}", "not 65"),
    (b'{"name":"x","roles":[' + b",".join([b"1"] * 10000) + b"]}", "not 10000"),
    (b'{"name":"x","roles":[{"a":1}]}', "'roles[0]' must be a string"),
    (b'{"name":"x","roles":["has space"]}', "'roles[0]'"),
    (b'{"name":"x","roles":["' + b"r" * 129 + b'"]}', "'roles[0]'"),
    (b'{"name":"x","roles":["r"],"expiryDate":"2030-01-01"}', "'expiryDate' must be an integer"),
    (b'{"name":"x","roles":["r"],"expiryDate":253402300800000}', "year 9999"),
    (b'{"name":"x","roles":["r"],"expiryDate":1e400}', "invalid JSON"),
    (b'{"name":"x","roles":["r"],"expiryDate":99999999999999999999}', "invalid JSON"),
    (b'{"name":"x","roles":["r"],"description":"' + b"d" * 1025 + b'"}', "'description' is longer than 1024"),
    (b'{"name":"x","roles":["r"],"dedicatedSubject":false}', "'dedicatedSubject' must be a string"),
    (b'{"name":"x","name":"y","roles":["r"]}', "duplicate"),
    (b"[" * 5000 + b"]" * 5000, "invalid JSON"),
])
def test_validation_400(api, admin, spec, pg, body, words):
    rows = count_rows(pg)
    r = api.request("POST", "/api/security/tokens", {**admin, **JSON}, body)
    assert_error(spec, r, 400, words)
    assert count_rows(pg) == rows


def test_concurrent_creates_and_deletes(api, admin, spec, pg):
    def worker(n):
        made, gone = [], []
        for i in range(10):
            r = call(api, admin, "POST", "/security/tokens",
                     {"name": f"conc-{n}-{i}", "roles": ["r"]})
            assert r.status == 200, r
            SECRETS.append(r.json()["token"])
            made.append(f"conc-{n}-{i}")
        ids = {t["name"]: t["id"] for t in listed(api, admin, spec)
               if t["name"].startswith(f"conc-{n}-")}
        for name in made[::2]:
            r = call(api, admin, "DELETE", f"/security/tokens/{ids[name]}")
            assert r.status == 204, r
            gone.append(name)
        return set(made) - set(gone)

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        expected = set().union(*ex.map(worker, range(8)))
    tokens = [t for t in listed(api, admin, spec) if t["name"].startswith("conc-")]
    assert {t["name"] for t in tokens} == expected
    assert len(tokens) == len(expected) == 40
    assert len({t["id"] for t in tokens}) == 40
    # The database agrees: 40 rows, 40 distinct digests, nothing half-made.
    rows = pg.sql("SELECT count(*), count(DISTINCT digest) FROM sts_tokens "
                  "WHERE name LIKE 'conc-%'")[0]
    assert rows == ("40", "40")


def test_database_down_is_503(api, admin, spec, pg):
    """PostgreSQL stopped: list, create and delete answer 503 with a JSON
    error (fail closed, nothing half-done), and recover once it is back."""
    created = create(api, admin, spec, name="survives-outage")
    tid = by_name(listed(api, admin, spec), "survives-outage")[0]["id"]
    pg.stop()
    try:
        assert_error(spec, call(api, admin, "GET", "/security/tokens"), 503,
                     "database is unavailable")
        assert_error(spec, call(api, admin, "POST", "/security/tokens",
                                {"name": "during-outage", "roles": ["r"]}),
                     503, "nothing was created")
        assert_error(spec, call(api, admin, "DELETE", f"/security/tokens/{tid}"),
                     503, "nothing was deleted")
        # Requests that need no database still work: info, validation.
        assert call(api, admin, "GET", "/server/info").status == 200
        assert_error(spec, call(api, admin, "POST", "/security/tokens", {"name": "x"}),
                     400, "'roles' is required")
    finally:
        pg.start()
    deadline = time.time() + 10
    while time.time() < deadline:
        r = call(api, admin, "GET", "/security/tokens")
        if r.status == 200:
            break
        time.sleep(0.2)
    tokens = listed(api, admin, spec)
    assert by_name(tokens, "survives-outage")[0]["id"] == tid
    assert not by_name(tokens, "during-outage")
    assert api.get("/protected/", {"X-API-Key": created["token"]}).status == 200
    log = api.error_log()
    assert "-> 503" in log and "trackingKey" in log


@pytest.mark.parametrize("mpm", ["prefork", "worker"])
def test_create_use_delete_under_mpm(httpd_factory, admin, spec, mpm):
    """The whole cycle under the other MPMs: the deleted token is refused at
    once by the process that served the delete (one keep-alive connection),
    with the cache on (the shipped STSTokenCacheTTL)."""
    h = httpd_factory(mpm=mpm)
    conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)

    def req(method, path, headers, body=None):
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    try:
        st, body = req("POST", "/api/security/tokens", {**admin, **JSON},
                       json.dumps({"name": f"mpm-{mpm}", "roles": ["r"]}))
        assert st == 200
        secret = json.loads(body)["token"]
        SECRETS.append(secret)
        for _ in range(3):
            assert req("GET", "/protected/", {"X-API-Key": secret})[0] == 200
        st, body = req("GET", "/api/security/tokens", admin)
        oa.check_token_list(spec, json.loads(body))
        tid = by_name(json.loads(body), f"mpm-{mpm}")[0]["id"]
        assert req("DELETE", f"/api/security/tokens/{tid}", admin) == (204, b"")
        assert req("GET", "/protected/", {"X-API-Key": secret})[0] == 401
    finally:
        conn.close()
    assert f"deleted token id {tid} name 'mpm-{mpm}' roles [r]" in h.error_log()
    assert secret not in h.error_log() + h.access_log()


# Last in the file: every secret handed out above.
def test_zz_secret_only_in_create_response(api, pg):
    with open(pg.logfile, errors="replace") as f:
        logs = api.error_log() + api.access_log() + f.read()
    assert SECRETS
    for s in SECRETS:
        assert s not in logs


ROLE_CANDIDATES = ["ops", "Team.Dev_01:read@eu-west", "x" * 128, "x" * 129,
                   "", "a b", "a,b", "a/b", "r\u00e9", "a;b", "a*", "\u0130",
                   "a\u0000b", "-", "@:._"]


def test_role_rule_is_the_schemas(api, admin, pg):
    """The role rule (src/roles.c) and the schema's CHECK on sts_tokens.roles
    accept exactly the same roles: a token stored by SQL is one the API
    could have created, and the reverse."""
    for i, role in enumerate(ROLE_CANDIDATES):
        r = call(api, admin, "POST", "/security/tokens",
                 {"name": f"role-rule-{i}", "roles": [role]})
        assert r.status in (200, 400), r
        if r.status == 200:
            SECRETS.append(r.json()["token"])
        if "\u0000" in role:
            # PostgreSQL text cannot hold NUL: refused before the CHECK.
            assert r.status == 400
            continue
        lit = role.replace("'", "''")
        try:
            pg.psql("INSERT INTO sts_tokens (id, name, digest, roles) VALUES "
                    f"({9000 + i}, 'role-sql-{i}', '{i:064x}', "
                    f"ARRAY['{lit}'])")
            stored = True
        except subprocess.CalledProcessError as e:
            assert "sts_tokens_roles_valid" in e.stderr, e.stderr
            stored = False
        assert stored == (r.status == 200), (role, r)
    pg.psql("DELETE FROM sts_tokens WHERE id BETWEEN 9000 AND 9100")
