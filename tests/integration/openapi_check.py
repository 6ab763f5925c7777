"""A small checker of JSON values against StackState's OpenAPI 3 schemas.

It resolves $ref across the spec files (``file.yaml#/components/...``) and
checks type, format int64, required, properties, additionalProperties,
items, enum, minItems, uniqueItems and oneOf (with a discriminator: the
value's property must name the alternative it matches). That is every
keyword the shared service token, server info and error schemas use.

Checks are strict by default: an object property the schema does not
declare is an error (the spec never lists extra fields, and a stray field
such as a digest must not slip into an answer unnoticed).

``check_response(spec, method, path, status, body)`` validates a whole
answer against what the spec declares for that operation and status
(following ``$ref``s to shared responses in the other files); a status the
spec does not declare must carry a ``GenericErrorsResponse``, the project's
rule for every other error.
"""

import os

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_DIR = os.environ.get(
    "STS_OPENAPI_DIR",
    os.path.join(ROOT, "..", "shared", "stackstate-api"))
INT64 = (-(2**63), 2**63 - 1)


class SchemaError(AssertionError):
    pass


class Spec:
    """The OpenAPI documents of one directory."""

    def __init__(self, directory=SPEC_DIR):
        if not os.path.isdir(directory):
            raise RuntimeError(
                f"OpenAPI spec directory {directory} not found; set "
                "STS_OPENAPI_DIR to the stackstate-api folder")
        self.dir = directory
        self.docs = {}

    def doc(self, name):
        if name not in self.docs:
            with open(os.path.join(self.dir, name)) as f:
                self.docs[name] = yaml.safe_load(f)
        return self.docs[name]

    def resolve(self, ref, base):
        """Returns (schema, file it lives in) for a $ref seen in file base."""
        file, _, pointer = ref.partition("#")
        file = file or base
        node = self.doc(file)
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, file

    def schema(self, file, name):
        return self.resolve(f"#/components/schemas/{name}", file)

    def check(self, value, file, name, strict=True):
        """Raises SchemaError when value does not match schema file#name."""
        schema, base = self.schema(file, name)
        self._check(value, schema, base, name, strict)

    def check_schema(self, value, schema, base, path="body", strict=True):
        """Checks value against a schema object found in file base."""
        self._check(value, schema, base, path, strict)

    def _check(self, v, s, base, path, strict=True):
        while "$ref" in s:
            s, base = self.resolve(s["$ref"], base)
        if "oneOf" in s:
            errors = []
            matched = []
            for alt in s["oneOf"]:
                try:
                    self._check(v, alt, base, path, strict)
                    matched.append(alt)
                except SchemaError as e:
                    errors.append(str(e))
            if len(matched) != 1:
                raise SchemaError(
                    f"{path}: matches {len(matched)} of oneOf: {errors}")
            disc = s.get("discriminator")
            if disc and "$ref" in matched[0]:
                prop = disc["propertyName"]
                name = matched[0]["$ref"].rsplit("/", 1)[-1]
                mapping = disc.get("mapping", {})
                want = [k for k, ref in mapping.items() if ref == matched[0]["$ref"]]
                want = want or [name]
                if not isinstance(v, dict) or v.get(prop) not in want:
                    raise SchemaError(
                        f"{path}: discriminator {prop!r} must be one of {want}")
        if isinstance(v, dict):
            for req in s.get("required", []):
                if req not in v:
                    raise SchemaError(f"{path}: missing required '{req}'")
        t = s.get("type")
        if t == "object" or "properties" in s:
            if not isinstance(v, dict):
                raise SchemaError(f"{path}: expected object, got {v!r}")
            props = s.get("properties", {})
            for k, sub in props.items():
                if k in v:
                    self._check(v[k], sub, base, f"{path}.{k}", strict)
            extra = s.get("additionalProperties", not strict)
            if extra is False:
                unknown = set(v) - set(props)
                if unknown:
                    raise SchemaError(f"{path}: unexpected {sorted(unknown)}")
        elif t == "array":
            if not isinstance(v, list):
                raise SchemaError(f"{path}: expected array, got {v!r}")
            if len(v) < s.get("minItems", 0):
                raise SchemaError(f"{path}: fewer than {s['minItems']} items")
            if s.get("uniqueItems") and len({repr(x) for x in v}) != len(v):
                raise SchemaError(f"{path}: items not unique")
            for i, item in enumerate(v):
                self._check(item, s.get("items", {}), base, f"{path}[{i}]",
                            strict)
        elif t == "integer":
            if not isinstance(v, int) or isinstance(v, bool):
                raise SchemaError(f"{path}: expected integer, got {v!r}")
            if s.get("format") == "int64" and not INT64[0] <= v <= INT64[1]:
                raise SchemaError(f"{path}: {v} outside int64")
        elif t == "string":
            if not isinstance(v, str):
                raise SchemaError(f"{path}: expected string, got {v!r}")
        elif t == "boolean":
            if not isinstance(v, bool):
                raise SchemaError(f"{path}: expected boolean, got {v!r}")
        if "enum" in s and v not in s["enum"]:
            raise SchemaError(f"{path}: {v!r} not in {s['enum']}")


TOKENS = "service_token.api.yaml"
INFO = "server_info.api.yaml"
ERRORS = "generic_error_handling.xapi.yaml"


# Fields our token list adds to StackState's ServiceToken (README, Token
# API): each optional, of this type; StackState's clients ignore them.
TOKEN_EXTENSIONS = {"lastUsedTimestamp": int, "lastUsedFrom": str}


def check_token_list(spec, value):
    """GET /security/tokens answers an array of ServiceToken, each with at
    most our TOKEN_EXTENSIONS besides (checked here: the spec lacks them)."""
    if isinstance(value, list):
        plain = []
        for i, t in enumerate(value):
            if isinstance(t, dict):
                for k, typ in TOKEN_EXTENSIONS.items():
                    if k in t and (not isinstance(t[k], typ)
                                   or isinstance(t[k], bool)
                                   or (typ is int and not
                                       0 <= t[k] <= INT64[1])
                                   or (typ is str and not t[k])):
                        raise SchemaError(f"$[{i}].{k}: invalid {t[k]!r}")
                if "lastUsedFrom" in t and "lastUsedTimestamp" not in t:
                    raise SchemaError(f"$[{i}]: lastUsedFrom without "
                                      "lastUsedTimestamp")
                t = {k: v for k, v in t.items() if k not in TOKEN_EXTENSIONS}
            plain.append(t)
        value = plain
    check_response(spec, "GET", "/security/tokens", 200, value)


def operation(spec, method, path):
    """(operation object, file) of METHOD path in the token or info spec."""
    for file in (TOKENS, INFO):
        paths = spec.doc(file).get("paths", {})
        if path in paths:
            op = paths[path].get(method.lower())
            if op is None:
                raise SchemaError(f"{method} {path} is not in {file}")
            return op, file
    raise SchemaError(f"no path {path} in {TOKENS} or {INFO}")


def check_response(spec, method, path, status, body):
    """Validates an answer (body: parsed JSON, or None/b"" when empty)
    against the spec's response for METHOD path and status. path is the
    spec's route, e.g. "/security/tokens/{serviceTokenId}"."""
    op, file = operation(spec, method, path)
    resp = op.get("responses", {}).get(str(status))
    if resp is None:
        # Not declared (404, 405, 413, 415, 503, 400 on DELETE ...).
        spec.check(body, ERRORS, "GenericErrorsResponse")
        return
    base = file
    while "$ref" in resp:
        resp, base = spec.resolve(resp["$ref"], base)
    content = resp.get("content")
    if not content:
        if body not in (None, b"", ""):
            raise SchemaError(f"{method} {path} {status}: expected no body, "
                              f"got {body!r}")
        return
    media = content.get("application/json")
    if media is None:
        raise SchemaError(f"{method} {path} {status}: not application/json")
    spec.check_schema(body, media["schema"], base, f"{method} {path} {status}")
