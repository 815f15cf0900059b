"""Check decoded JSON values against the JSON Schema subset of host.engine.json_schema.

The validator follows JSON Schema's own meaning, not the (narrower) grammar:
``additionalProperties`` absent allows extra properties, ``oneOf`` needs exactly
one matching branch, type-specific keywords apply only to values of that type,
``pattern`` is a search unless anchored.  Keywords outside the subset raise
:class:`~host.errors.GrammarError`, as the converter does.

>>> validate({"mood": "calm", "hp": 3}, {"type": "object", "properties": {
...     "mood": {"enum": ["calm", "angry"]}, "hp": {"type": "integer", "minimum": 0}},
...     "required": ["mood"]})
[]
>>> validate([1, "x"], {"type": "array", "items": {"type": "integer"}, "maxItems": 1})
['$: has 2 items, more than maxItems 1', "$[1]: expected integer, got string 'x'"]
"""

from __future__ import annotations

import math
import re

from host.engine import json_schema as js
from host.errors import GrammarError

_MAX_ERRORS = 20  # problems listed in one report (the format of the message, not a limit)
_patterns: dict[str, re.Pattern] = {}


def json_equal(a, b) -> bool:
    """Equality as JSON sees it: 1 == 1.0, but true != 1 and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _compiled(source: str) -> re.Pattern:
    pat = _patterns.get(source)
    if pat is None:
        pat = _patterns[source] = re.compile(js.Pattern(source).python())
    return pat


def _path(base: str, key) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{base}.{key}"
    return f"{base}[{key!r}]"


def validate(value, schema, *, root=None) -> list[str]:
    """Errors as ``"<path>: <problem>"`` strings; an empty list when ``value`` is valid."""
    errors: list[str] = []
    _check(value, schema, "$", root if root is not None else schema, errors, 0)
    return errors


def is_valid(value, schema) -> bool:
    """True when :func:`validate` finds nothing."""
    return not validate(value, schema)


def _check(value, schema, path, root, errors, depth) -> None:
    if len(errors) >= _MAX_ERRORS:
        return
    if depth > 200:
        raise GrammarError(f"{path}: schema recursion too deep while validating")
    if schema is True:
        return
    if schema is False:
        errors.append(f"{path}: no value is allowed here (schema false)")
        return
    if not isinstance(schema, dict):
        raise GrammarError(f"{path}: a schema must be an object or a boolean")
    unknown = [k for k in schema if k not in js.KEYWORDS]
    if unknown:
        raise GrammarError(f"unsupported JSON Schema keyword(s) {sorted(map(str, unknown))}")
    if "$ref" in schema:
        _check(value, js.resolve_ref(root, schema["$ref"]), path, root, errors, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = schema[key]
            if not isinstance(branches, list) or not branches:
                raise GrammarError(f"{path}: {key} must be a non-empty list")
            results = [validate(value, b, root=root) for b in branches]
            ok = sum(not r for r in results)
            if ok == 0:
                # closest: a branch of the right type first, then the fewest problems
                best = min(range(len(results)), key=lambda i: (results[i][0].startswith("$: expected "),
                                                               len(results[i])))
                errors.append(f"{path}: matches none of the {key} alternatives (closest is #{best}: "
                              f"{results[best][0].replace('$', path, 1)})")
            elif key == "oneOf" and ok > 1:
                errors.append(f"{path}: {_show(value)} matches {ok} of the oneOf alternatives, not exactly one")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        bad = [t for t in types if t not in js.TYPES]
        if bad:
            raise GrammarError(f"{path}: unknown type {bad[0]!r}")
        if not any(js.type_matches(value, t) for t in types):
            want = " or ".join(types)
            errors.append(f"{path}: expected {want}, got {js.schema_type_of(value)} {_show(value)}")
            return
    if "const" in schema and not json_equal(value, schema["const"]):
        errors.append(f"{path}: must be {_show(schema['const'])}, got {_show(value)}")
    if "enum" in schema:
        if not isinstance(schema["enum"], list):
            raise GrammarError(f"{path}: enum must be a list")
        if not any(json_equal(value, e) for e in schema["enum"]):
            errors.append(f"{path}: {_show(value)} is not one of {_show(schema['enum'])}")
    kind = js.schema_type_of(value)
    if kind == "object":
        _object(value, schema, path, root, errors, depth)
    elif kind == "array":
        _array(value, schema, path, root, errors, depth)
    elif kind == "string":
        _string(value, schema, path, errors)
    elif kind in ("integer", "number"):
        _number(value, schema, path, errors)


def _object(value, schema, path, root, errors, depth) -> None:
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            errors.append(f"{path}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            _check(item, props[key], _path(path, key), root, errors, depth + 1)
        elif extra is False:
            errors.append(f"{path}: unexpected property {key!r}")
        elif extra is not True:
            _check(item, extra, _path(path, key), root, errors, depth + 1)


def _array(value, schema, path, root, errors, depth) -> None:
    lo, hi = schema.get("minItems"), schema.get("maxItems")
    if lo is not None and len(value) < lo:
        errors.append(f"{path}: has {len(value)} items, fewer than minItems {lo}")
    if hi is not None and len(value) > hi:
        errors.append(f"{path}: has {len(value)} items, more than maxItems {hi}")
    items = schema.get("items", True)
    if isinstance(items, list):
        raise GrammarError(f"{path}: items as a list (tuple validation) is not supported")
    if items is not True:
        for i, item in enumerate(value):
            _check(item, items, _path(path, i), root, errors, depth + 1)


def _string(value, schema, path, errors) -> None:
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    if lo is not None and len(value) < lo:
        errors.append(f"{path}: {_show(value)} is shorter than minLength {lo}")
    if hi is not None and len(value) > hi:
        errors.append(f"{path}: {_show(value)} is longer than maxLength {hi}")
    if "pattern" in schema and not _compiled(schema["pattern"]).search(value):
        errors.append(f"{path}: {_show(value)} does not match the pattern {schema['pattern']!r}")


def _number(value, schema, path, errors) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{path}: {value} is not a JSON number")
        return
    for key, ok in (("minimum", lambda b: value >= b), ("maximum", lambda b: value <= b),
                    ("exclusiveMinimum", lambda b: value > b), ("exclusiveMaximum", lambda b: value < b)):
        if key in schema:
            bound = schema[key]
            if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                raise GrammarError(f"{path}: {key} must be a number")
            if not ok(bound):
                errors.append(f"{path}: {value} violates {key} {bound}")
