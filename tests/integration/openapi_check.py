"""A small checker of JSON values against StackState's OpenAPI 3 schemas.

It resolves $ref across the spec files (``file.yaml#/components/...``) and
checks type, format int64, required, properties, additionalProperties,
items, enum, minItems, uniqueItems and oneOf (with a discriminator). That is
every keyword the shared service token, server info and error schemas use.
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

    def check(self, value, file, name):
        """Raises SchemaError when value does not match schema file#name."""
        schema, base = self.schema(file, name)
        self._check(value, schema, base, name)

    def _check(self, v, s, base, path):
        while "$ref" in s:
            s, base = self.resolve(s["$ref"], base)
        if "oneOf" in s:
            errors = []
            matches = 0
            for alt in s["oneOf"]:
                try:
                    self._check(v, alt, base, path)
                    matches += 1
                except SchemaError as e:
                    errors.append(str(e))
            if matches != 1:
                raise SchemaError(f"{path}: matches {matches} of oneOf: {errors}")
        t = s.get("type")
        if t == "object" or "properties" in s:
            if not isinstance(v, dict):
                raise SchemaError(f"{path}: expected object, got {v!r}")
            for req in s.get("required", []):
                if req not in v:
                    raise SchemaError(f"{path}: missing required '{req}'")
            props = s.get("properties", {})
            for k, sub in props.items():
                if k in v:
                    self._check(v[k], sub, base, f"{path}.{k}")
            extra = s.get("additionalProperties", True)
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
                self._check(item, s.get("items", {}), base, f"{path}[{i}]")
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


def check_token_list(spec, value):
    """GET /security/tokens answers an array of ServiceToken."""
    if not isinstance(value, list):
        raise SchemaError(f"expected an array, got {value!r}")
    for i, t in enumerate(value):
        spec.check(t, TOKENS, "ServiceToken")
