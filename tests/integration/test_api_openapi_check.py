"""Self-tests of the OpenAPI checker (no server): it accepts the answers the
spec describes and rejects each kind of deviation, so the API tests that use
it can fail."""

import copy

import pytest

import openapi_check as oa


@pytest.fixture(scope="module")
def spec():
    return oa.Spec()


TOKEN = {"id": 5, "name": "n", "description": "d", "expiration": 1800000000000,
         "roles": ["a"], "dedicatedSubject": "s", "lastUpdateTimestamp": 1}
ERROR = {"_type": "ErrorsResponse", "trackingKey": "k", "serverTimestamp": 1,
         "errors": [{"_type": "InternalError", "message": "m", "errorCode": 400}]}
INFO = {"version": {"major": 0, "minor": 1, "patch": 0, "diff": "", "commit": "",
                    "isDev": False},
        "deploymentMode": "SelfHosted", "platformVersion": "0.1.0",
        "applicationDomains": ["Observability"]}
EXPIRY = {"_type": "ServiceTokenInvalidExpiryError", "message": "m"}


def test_good_answers_pass(spec):
    oa.check_token_list(spec, [TOKEN, {"name": "x", "roles": []}])
    oa.check_response(spec, "POST", "/security/tokens", 200,
                      {"name": "n", "token": "svctok-x", "expiration": 5})
    oa.check_response(spec, "POST", "/security/tokens", 400, EXPIRY)
    oa.check_response(spec, "DELETE", "/security/tokens/{serviceTokenId}", 204, b"")
    oa.check_response(spec, "GET", "/server/info", 200, INFO)
    # A status the spec does not declare: GenericErrorsResponse.
    oa.check_response(spec, "DELETE", "/security/tokens/{serviceTokenId}", 404, ERROR)
    # 500 is declared through a $ref into generic_error_handling.xapi.yaml.
    oa.check_response(spec, "GET", "/security/tokens", 500, ERROR)


def mutate(value, path, new=KeyError):
    """A deep copy of value with path (a list of keys) set to new, or
    deleted when new is KeyError."""
    v = copy.deepcopy(value)
    node = v
    for k in path[:-1]:
        node = node[k]
    if new is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = new
    return v


@pytest.mark.parametrize("method,path,status,body,words", [
    ("GET", "/security/tokens", 200, {"not": "a list"}, "expected array"),
    ("GET", "/security/tokens", 200, [mutate(TOKEN, ["roles"])], "missing required 'roles'"),
    ("GET", "/security/tokens", 200, [mutate(TOKEN, ["id"], "5")], "expected integer"),
    ("GET", "/security/tokens", 200, [mutate(TOKEN, ["id"], True)], "expected integer"),
    ("GET", "/security/tokens", 200, [mutate(TOKEN, ["id"], 2**63)], "outside int64"),
    ("GET", "/security/tokens", 200, [mutate(TOKEN, ["id"], 1.5)], "expected integer"),
    ("GET", "/security/tokens", 200, [mutate(TOKEN, ["roles"], [1])], "expected string"),
    ("GET", "/security/tokens", 200, [mutate(TOKEN, ["digest"], "ab")], "unexpected ['digest']"),
    ("POST", "/security/tokens", 200, {"name": "n"}, "missing required 'token'"),
    ("POST", "/security/tokens", 200, {"name": "n", "token": "t", "expiration": None},
     "expected integer"),
    ("POST", "/security/tokens", 400, ERROR, "oneOf"),
    ("POST", "/security/tokens", 400, {"_type": "Other", "message": "m"}, "oneOf"),
    ("POST", "/security/tokens", 400, {"message": "m"}, "missing required '_type'"),
    ("DELETE", "/security/tokens/{serviceTokenId}", 204, {"a": 1}, "expected no body"),
    ("DELETE", "/security/tokens/{serviceTokenId}", 404, EXPIRY, "missing required"),
    ("DELETE", "/security/tokens/{serviceTokenId}", 404,
     mutate(ERROR, ["_type"], "Errors"), "not in ['ErrorsResponse']"),
    ("DELETE", "/security/tokens/{serviceTokenId}", 404,
     mutate(ERROR, ["errors", 0, "_type"], "Oops"), "not in ['InternalError']"),
    ("DELETE", "/security/tokens/{serviceTokenId}", 404,
     mutate(ERROR, ["serverTimestamp"]), "missing required 'serverTimestamp'"),
    ("GET", "/security/tokens", 500, mutate(ERROR, ["errors", 0, "message"]),
     "missing required 'message'"),
    ("GET", "/server/info", 200, mutate(INFO, ["deploymentMode"], "Cloud"), "not in"),
    ("GET", "/server/info", 200, mutate(INFO, ["applicationDomains"], []), "fewer than 1"),
    ("GET", "/server/info", 200,
     mutate(INFO, ["applicationDomains"], ["Observability"] * 2), "not unique"),
    ("GET", "/server/info", 200, mutate(INFO, ["version", "isDev"], 0), "expected boolean"),
    ("GET", "/server/info", 200, mutate(INFO, ["version", "commit"]),
     "missing required 'commit'"),
])
def test_deviations_fail(spec, method, path, status, body, words):
    with pytest.raises(oa.SchemaError) as e:
        oa.check_response(spec, method, path, status, body)
    assert words in str(e.value)


def test_unknown_operation_fails(spec):
    with pytest.raises(oa.SchemaError):
        oa.check_response(spec, "PUT", "/security/tokens", 200, [])
    with pytest.raises(oa.SchemaError):
        oa.check_response(spec, "GET", "/nope", 200, [])


def test_cross_file_ref(spec):
    """The 500 of GET /security/tokens is a $ref into another file."""
    op, file = oa.operation(spec, "GET", "/security/tokens")
    ref = op["responses"]["500"]["$ref"]
    assert ref.startswith(oa.ERRORS + "#")
    resp, base = spec.resolve(ref, file)
    assert base == oa.ERRORS
    assert "application/json" in resp["content"]


USED = dict(TOKEN, lastUsedTimestamp=1800000000000, lastUsedFrom="192.0.2.1")


def test_token_list_extensions(spec):
    """Our list's extra fields pass check_token_list (not the plain
    response check, which stays strict), each checked for its type."""
    oa.check_token_list(spec, [USED, dict(TOKEN, lastUsedTimestamp=0)])
    with pytest.raises(oa.SchemaError):
        oa.check_response(spec, "GET", "/security/tokens", 200, [USED])
    for bad in (mutate(USED, ["lastUsedTimestamp"], "1"),
                mutate(USED, ["lastUsedTimestamp"], -1),
                mutate(USED, ["lastUsedTimestamp"], True),
                mutate(USED, ["lastUsedFrom"], ""),
                mutate(USED, ["lastUsedFrom"], 5),
                mutate(USED, ["lastUsedTimestamp"])):
        with pytest.raises(oa.SchemaError):
            oa.check_token_list(spec, [bad])
