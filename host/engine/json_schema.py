"""JSON Schema -> GBNF for llama.cpp's grammar sampler (written here, fail closed).

Supported subset (anything else raises :class:`~host.errors.GrammarError`):

- ``type``: object, array, string, number, integer, boolean, null, or a list of them;
  a schema without ``type`` is inferred from its keywords, ``{}``/``true`` is any JSON value.
- objects: ``properties`` (emitted in the schema's order, or in the order of the
  extension keyword ``x-order`` -- a list of names, for callers whose tables are
  unordered, such as Lua), ``required``, ``additionalProperties``.  Only declared
  properties are generated unless the object declares no properties at all, in
  which case ``additionalProperties`` (a schema, or true/absent for any value)
  describes a free map.  Declared properties plus ``additionalProperties: true``
  or a schema is rejected.
- arrays: ``items`` (one schema), ``minItems``, ``maxItems``.
- strings: ``minLength``, ``maxLength`` (in characters), ``pattern`` (see below).
- integers: ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``.
  Numbers (non-integer) accept no bounds.
- ``enum``, ``const``, ``anyOf``, ``oneOf`` (exclusivity is checked by the
  validator, not the grammar), local ``$ref`` (``#``, ``#/$defs/x``,
  ``#/definitions/x`` or any local JSON pointer), ``$defs``/``definitions``.
- annotations are ignored: title, description, default, examples, $comment,
  $schema, $id, deprecated, readOnly, writeOnly.

Patterns: the regular-expression subset of :mod:`host.engine.pattern`.  An
unanchored side matches anything, as JSON Schema's search semantics say; the
grammar produces the JSON-escaped form of matching strings (rare control
characters inside broad classes are left out).

Grammar shape: whitespace between tokens is limited to nothing, one space, or a
newline plus up to 16 spaces/tabs, so a small model cannot loop on spaces; the
root value is followed by nothing (the model must stop).  Strings never contain
raw control characters or surrogate ``\\u`` escapes.  Numbers have at most 16
integer and 16 fraction digits and a two-digit exponent.

Size bounds: a repetition whose span (max - min) exceeds :data:`REPEAT_SPAN_CAP`,
or whose maximum exceeds llama.cpp's limit of 2000, is written unbounded above
(``{m,}``) and the maximum is then enforced only by the validator; a minimum
above 2000 is rejected.  Grammars with more than :data:`MAX_RULES` rules,
:data:`MAX_EXPANSION` expanded repetition rules or :data:`MAX_GBNF_CHARS`
characters are rejected.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse

from host.engine.gbnf import (LLAMA_REPEAT_LIMIT, Deadline, contains, gbnf_literal, gbnf_set, join_sequence,
                              minus_ranges, repeat_suffix, rule_name)
from host.engine.pattern import Pattern
from host.errors import GrammarError

# Work bounds of the converter for every caller, not policy (a mod's grammar sizes are the
# `grammar` group of host.limits); MAX_DEPTH also keeps the recursion inside Python's stack.
REPEAT_SPAN_CAP = 256  # widest {m,n} span written exactly (llama.cpp expands it into n-m rules)
MAX_RULES = 4000
MAX_EXPANSION = 20000  # sum of the spans of bounded repetitions
MAX_GBNF_CHARS = 512 * 1024
MAX_DEPTH = 64  # schema nesting

ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment", "$schema", "$id",
                         "deprecated", "readOnly", "writeOnly", "$defs", "definitions"})
TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
OBJECT_KEYS = frozenset({"properties", "required", "additionalProperties", "x-order"})
ARRAY_KEYS = frozenset({"items", "minItems", "maxItems"})
STRING_KEYS = frozenset({"minLength", "maxLength", "pattern"})
NUMBER_KEYS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
KEYWORDS = (frozenset({"type", "enum", "const", "anyOf", "oneOf", "$ref"}) | OBJECT_KEYS | ARRAY_KEYS
            | STRING_KEYS | NUMBER_KEYS | ANNOTATIONS)

# --- JSON Schema -------------------------------------------------------------

_BUILTINS = {
    "ws": '| " " | "\\n" [ \\t]{0,16}',
    "json-hex": "[0-9a-fA-F]",
    "json-uescape": "[0-9a-cA-Ce-fE-F] json-hex{3} | [dD] [0-7] json-hex{2}",
    "json-char": '[^"\\\\\\x00-\\x1F] | "\\\\" ( ["\\\\/bfnrt] | "u" json-uescape )',
    "json-string": '"\\"" json-char* "\\""',
    "json-int": '"-"? ( "0" | [1-9] [0-9]{0,15} )',
    "json-number": 'json-int ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?',
    "json-bool": '"true" | "false"',
    "json-null": '"null"',
    "json-value": "json-object | json-array | json-string | json-number | json-bool | json-null",
    "json-member": 'json-string ":" ws json-value',
    "json-object": '"{" ws ( json-member ( "," ws json-member )* ws )? "}"',
    "json-array": '"[" ws ( json-value ( "," ws json-value )* ws )? "]"',
}
_BUILTIN_DEPS = {
    "json-uescape": ("json-hex",), "json-char": ("json-uescape",), "json-string": ("json-char",),
    "json-number": ("json-int",),
    "json-value": ("json-object", "json-array", "json-string", "json-number", "json-bool", "json-null"),
    "json-member": ("json-string", "ws", "json-value"), "json-object": ("ws", "json-member"),
    "json-array": ("ws", "json-value"),
}


def canonical_json(value, where: str = "") -> str:
    """Compact JSON text of a literal (enum/const value)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise GrammarError(f"{where or 'value'}: {value!r} is not a JSON value ({exc})") from None


def resolve_ref(root, ref: str, where: str = "$ref"):
    """The target of a local ``$ref`` (a JSON pointer into ``root``)."""
    if not isinstance(ref, str):
        raise GrammarError(f"{where}: $ref must be a string")
    if not ref.startswith("#"):
        raise GrammarError(f"{where}: only local references (starting with '#') are supported, got {ref!r}")
    pointer = urllib.parse.unquote(ref[1:])
    if pointer and not pointer.startswith("/"):
        raise GrammarError(f"{where}: anchor references such as {ref!r} are not supported; use a JSON pointer "
                           "like '#/$defs/name'")
    node = root
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise GrammarError(f"{where}: {ref!r} does not resolve (no {part!r})")
    return node


def int_bounds(schema: dict, where: str):
    """(lo, hi) integer bounds from minimum/maximum/exclusive*; None = unbounded."""
    lo = hi = None
    for key in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        if key not in schema:
            continue
        v = schema[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise GrammarError(f"{where}: {key} must be a finite number (draft-4 boolean exclusive bounds are "
                               f"not supported), got {v!r}")
        if key == "minimum":
            b = math.ceil(v)
            lo = b if lo is None else max(lo, b)
        elif key == "exclusiveMinimum":
            b = math.floor(v) + 1
            lo = b if lo is None else max(lo, b)
        elif key == "maximum":
            b = math.floor(v)
            hi = b if hi is None else min(hi, b)
        else:
            b = math.ceil(v) - 1
            hi = b if hi is None else min(hi, b)
    return lo, hi


def _count(schema, key, where, default=None):
    if key not in schema:
        return default
    v = schema[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or not float(v).is_integer():
        raise GrammarError(f"{where}: {key} must be a non-negative integer, got {v!r}")
    return int(v)


def schema_type_of(value) -> str:
    """The JSON type name of a decoded value ('integer' for whole numbers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def type_matches(value, t: str) -> bool:
    actual = schema_type_of(value)
    return actual == t or (t == "number" and actual == "integer")


def property_order(schema: dict, props: dict, where: str) -> list:
    """Property names in output order: ``x-order`` first (if given), then the rest in dict order."""
    order = schema.get("x-order")
    if order is None:
        return list(props)
    if not isinstance(order, list) or not all(isinstance(n, str) for n in order):
        raise GrammarError(f"{where}: x-order must be a list of property names")
    unknown = [n for n in order if n not in props]
    if unknown or len(set(order)) != len(order):
        raise GrammarError(f"{where}: x-order names {unknown or 'a property twice'}; it must list declared "
                           "properties once each")
    return list(order) + [n for n in props if n not in order]


class _Converter:
    def __init__(self, schema, deadline: float | None = None):
        self.root = schema
        self.rules: dict[str, str | None] = {"root": None}
        self.by_body: dict[str, str] = {}
        self.refs: dict[str, str] = {}
        self.loosened = False
        self.expansion = 0
        self.clock = Deadline(deadline, "the schema")
        # $refs being resolved since the last '{' or '[' of output: meeting one
        # of them again means a loop that never writes any JSON.
        self.bare: list[str] = []

    # rules
    def builtin(self, name: str) -> str:
        if name not in self.rules:
            self.rules[name] = _BUILTINS[name]
            for dep in _BUILTIN_DEPS.get(name, ()):
                self.builtin(dep)
        return name

    def fresh(self, hint: str) -> str:
        base = rule_name(hint)
        name, n = base, 1
        while name in self.rules or name in _BUILTINS:
            n += 1
            name = f"{base}-{n}"
        self.rules[name] = None  # reserved
        return name

    def rule(self, hint: str, body: str) -> str:
        """A named rule for ``body`` (identical bodies share one rule)."""
        if body in self.by_body:
            return self.by_body[body]
        if re.fullmatch(r"[A-Za-z0-9-]+", body) and body in self.rules:
            return body  # already a rule name
        name = self.fresh(hint)
        self.rules[name] = body
        self.by_body[body] = name
        return name

    def repeat(self, atom: str, lo: int, hi: int | None, where: str, what: str) -> str:
        """``atom`` (a rule name, literal or class) repeated, within llama.cpp's limits."""
        if lo > LLAMA_REPEAT_LIMIT:
            raise GrammarError(f"{where}: {what} minimum {lo} is above the supported limit {LLAMA_REPEAT_LIMIT}")
        if hi is not None and (hi > LLAMA_REPEAT_LIMIT or hi - lo > REPEAT_SPAN_CAP):
            hi = None  # the validator enforces the real maximum
            self.loosened = True
        if hi is not None:
            self.expansion += hi - lo
        else:
            self.expansion += 1
        return atom + repeat_suffix(lo, hi)

    def convert(self) -> str:
        body = self.visit(self.root, "#", "root", 0)
        # (the rule's own body counts too: a recursive rule cannot be inlined)
        if self.rules.get(body) and body not in _BUILTINS and not any(
                re.search(rf"(?<![A-Za-z0-9-]){re.escape(body)}(?![A-Za-z0-9-])", b or "")
                for b in self.rules.values()):
            body = self.rules.pop(body)  # inline a rule only the root uses: "root ::= root-2" reads badly
        self.rules["root"] = body
        if len(self.rules) > MAX_RULES:
            raise GrammarError(f"schema is too large: {len(self.rules)} grammar rules (limit {MAX_RULES})")
        if self.expansion > MAX_EXPANSION:
            raise GrammarError(f"schema is too large: its length/item bounds expand to {self.expansion} grammar "
                               f"rules (limit {MAX_EXPANSION}); loosen some maxLength/maxItems")
        text = "".join(f"{name} ::= {body}\n" for name, body in self.rules.items())
        if len(text) > MAX_GBNF_CHARS:
            raise GrammarError(f"schema is too large: the grammar has {len(text)} characters "
                               f"(limit {MAX_GBNF_CHARS})")
        return text

    # schemas
    def visit(self, schema, path: str, hint: str, depth: int) -> str:
        """GBNF for ``schema``: a rule name, builtin name or literal."""
        self.clock.tick()
        if depth > MAX_DEPTH:
            raise GrammarError(f"{path[:200]}{'...' if len(path) > 200 else ''}: schema nested more than "
                               f"{MAX_DEPTH} levels deep")
        if schema is True:
            return self.builtin("json-value")
        if schema is False:
            raise GrammarError(f"{path}: the schema false matches nothing")
        if not isinstance(schema, dict):
            raise GrammarError(f"{path}: a schema must be an object (dict) or a boolean, got "
                               f"{type(schema).__name__}")
        unknown = [k for k in schema if k not in KEYWORDS]
        if unknown:
            raise GrammarError(f"{path}: unsupported JSON Schema keyword(s) {sorted(map(str, unknown))}; "
                               f"supported: {sorted(KEYWORDS - ANNOTATIONS)}")
        for key in ("$defs", "definitions"):
            if key in schema and not isinstance(schema[key], dict):
                raise GrammarError(f"{path}: {key} must be an object")
        assertions = [k for k in schema if k not in ANNOTATIONS]
        if "$ref" in schema:
            self._alone(schema, "$ref", assertions, path)
            return self.ref(schema["$ref"], path, depth)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                self._alone(schema, key, assertions, path)
                return self.union(schema[key], f"{path}/{key}", hint, depth)
        types = schema.get("type")
        if isinstance(types, list):
            if not types or not all(t in TYPES for t in types) or len(set(types)) != len(types):
                raise GrammarError(f"{path}: type must be one of {list(TYPES)} or a list of distinct ones, "
                                   f"got {types!r}")
            if len(types) == 1:
                types = types[0]
        elif types is not None and types not in TYPES:
            raise GrammarError(f"{path}: unknown type {types!r}; use one of {list(TYPES)}")
        if "enum" in schema or "const" in schema:
            return self.literals(schema, types, path, hint)
        if isinstance(types, list):
            alts = [self.visit({**schema, "type": t}, path, f"{hint}-{t}", depth + 1) for t in types]
            return self.rule(hint, " | ".join(dict.fromkeys(alts)))
        if types is None:
            keys = set(schema)
            if keys & OBJECT_KEYS:
                types = "object"
            elif keys & ARRAY_KEYS:
                types = "array"
            elif keys & STRING_KEYS:
                types = "string"
            elif keys & NUMBER_KEYS:
                types = "number"
            else:
                return self.builtin("json-value")
        if types in ("object", "array"):
            saved, self.bare = self.bare, []   # its members come after '{' or '['
            try:
                return getattr(self, "t_" + types)(schema, path, hint, depth)
            finally:
                self.bare = saved
        return getattr(self, "t_" + types)(schema, path, hint, depth)

    @staticmethod
    def _alone(schema, key, assertions, path):
        others = [k for k in assertions if k != key]
        if others:
            raise GrammarError(f"{path}: {key} together with {sorted(others)} is not supported; move those "
                               f"keywords into each alternative or the referenced schema")

    def ref(self, ref, path, depth) -> str:
        target = resolve_ref(self.root, ref, f"{path}/$ref")
        key = ref if isinstance(ref, str) else ""
        if key in self.bare:
            loop = self.bare[self.bare.index(key):] + [key]
            raise GrammarError(f"{path}: $ref {key!r} leads back to itself ({' -> '.join(loop)}) before any JSON "
                               "is written, so the schema describes an endless value; put the reference inside "
                               "an object property or array items")
        if key in self.refs:
            return self.refs[key]
        tail = key.rsplit("/", 1)[-1] if key not in ("#", "") else "root-ref"
        name = self.fresh(tail or "ref")
        self.refs[key] = name
        self.bare.append(key)
        try:
            body = self.visit(target, key, name + "-body", depth + 1)
        finally:
            self.bare.pop()
        self.rules[name] = body
        return name

    def union(self, branches, path, hint, depth) -> str:
        if not isinstance(branches, list) or not branches:
            raise GrammarError(f"{path}: must be a non-empty list of schemas")
        alts = [self.visit(b, f"{path}/{i}", f"{hint}-{i}", depth + 1) for i, b in enumerate(branches)]
        return self.rule(hint, " | ".join(dict.fromkeys(alts)))

    def literals(self, schema, types, path, hint) -> str:
        if "const" in schema:
            values = [schema["const"]]
            if "enum" in schema:
                if not isinstance(schema["enum"], list):
                    raise GrammarError(f"{path}: enum must be a list")
                values = [v for v in values if any(canonical_json(v) == canonical_json(e) for e in schema["enum"])]
        else:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise GrammarError(f"{path}: enum must be a non-empty list")
        if types is not None:
            allowed = types if isinstance(types, list) else [types]
            values = [v for v in values if any(type_matches(v, t) for t in allowed)]
        texts = list(dict.fromkeys(canonical_json(v, f"{path}/enum") for v in values))
        if not texts:
            raise GrammarError(f"{path}: no enum/const value matches the schema's type, so nothing can be "
                               "generated")
        if len(texts) == 1:
            return gbnf_literal(texts[0])
        return self.rule(hint, " | ".join(gbnf_literal(t) for t in texts))

    def t_null(self, schema, path, hint, depth):
        return self.builtin("json-null")

    def t_boolean(self, schema, path, hint, depth):
        return self.builtin("json-bool")

    def t_number(self, schema, path, hint, depth):
        bounded = sorted(set(schema) & NUMBER_KEYS)
        if bounded:
            raise GrammarError(f"{path}: {bounded} on type number are not supported; use type integer (for "
                               "example a percentage 0-100) or an enum")
        return self.builtin("json-number")

    def t_integer(self, schema, path, hint, depth):
        lo, hi = int_bounds(schema, path)
        if lo is None and hi is None:
            return self.builtin("json-int")
        if lo is not None and hi is not None and lo > hi:
            raise GrammarError(f"{path}: no integer lies between the bounds (minimum {lo} > maximum {hi})")
        return self.rule(f"int-{lo}-{hi}".replace("None", "inf").replace("--", "-m"), int_range(lo, hi))

    def t_string(self, schema, path, hint, depth):
        lo = _count(schema, "minLength", path, 0)
        hi = _count(schema, "maxLength", path)
        if hi is not None and hi < lo:
            raise GrammarError(f"{path}: maxLength {hi} is below minLength {lo}")
        if lo > LLAMA_REPEAT_LIMIT:
            raise GrammarError(f"{path}: minLength {lo} is above the supported limit {LLAMA_REPEAT_LIMIT}")
        if "pattern" in schema:
            if "minLength" in schema or "maxLength" in schema:
                raise GrammarError(f"{path}: pattern together with minLength/maxLength is not supported; put "
                                   "the length into the pattern (e.g. ^[a-z]{3,8}$)")
            return self.rule(f"{hint}-pattern", '"\\"" ' + self.pattern(schema["pattern"], path, hint) + ' "\\""')
        if lo == 0 and hi is None:
            return self.builtin("json-string")
        char = self.builtin("json-char")
        body = '"\\"" ' + self.repeat(char, lo, hi, path, "length") + ' "\\""'
        return self.rule(f"string-{lo}-{'inf' if hi is None else hi}", body)

    def pattern(self, source, path, hint) -> str:
        pat = Pattern(source)
        char = self.builtin("json-char")
        alts = []
        for start, end, node in pat.branches:
            parts = [] if start else [char + "*"]
            body = self.emit(node, path, hint)
            if body:
                parts.append(body)
            if not end:
                parts.append(char + "*")
            alts.append(" ".join(parts) or '""')
        return alts[0] if len(alts) == 1 else "( " + " | ".join(alts) + " )"

    def emit(self, node, path, hint) -> str:
        """GBNF for a pattern node, matching the JSON-escaped form of its strings."""
        kind = node[0]
        if kind == "set":
            return json_set(node[1], f"{path}/pattern")
        if kind == "seq":
            return join_sequence(self.emit(n, path, hint) for n in node[1])
        if kind == "alt":
            return "( " + " | ".join(self.emit(n, path, hint) or '""' for n in node[1]) + " )"
        _, inner, lo, hi = node
        body = self.emit(inner, path, hint) or '""'
        atom = body if re.fullmatch(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]', body) else self.rule(
            f"{hint}-pattern-part", body)
        return self.repeat(atom, lo, hi, path, "pattern repetition")

    def t_array(self, schema, path, hint, depth):
        items = schema.get("items", True)
        if isinstance(items, list):
            raise GrammarError(f"{path}: items as a list (tuple validation) is not supported")
        lo = _count(schema, "minItems", path, 0)
        hi = _count(schema, "maxItems", path)
        if hi is not None and hi < lo:
            raise GrammarError(f"{path}: maxItems {hi} is below minItems {lo}")
        if lo > LLAMA_REPEAT_LIMIT:
            raise GrammarError(f"{path}: minItems {lo} is above the supported limit {LLAMA_REPEAT_LIMIT}")
        ws = self.builtin("ws")
        if hi == 0:
            return gbnf_literal("[") + f" {ws} " + gbnf_literal("]")
        item = self.visit(items, f"{path}/items", f"{hint}-item", depth + 1)
        item = self.rule(f"{hint}-item", item)
        nxt = self.rule(f"{hint}-next", f'"," {ws} {item}')
        if lo == 0:
            more = self.repeat(nxt, 0, None if hi is None else hi - 1, path, "maxItems")
            body = f'"[" {ws} ( {item} {more} {ws} )? "]"'
        else:
            more = self.repeat(nxt, lo - 1, None if hi is None else hi - 1, path, "minItems/maxItems")
            body = f'"[" {ws} {item} {more} {ws} "]"'
        return self.rule(hint, body)

    def t_object(self, schema, path, hint, depth):
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            raise GrammarError(f"{path}: properties must be an object")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise GrammarError(f"{path}: required must be a list of property names")
        missing = [r for r in required if r not in props]
        if missing:
            raise GrammarError(f"{path}: required property {missing[0]!r} is not declared in properties")
        extra = schema.get("additionalProperties", None)
        ws = self.builtin("ws")
        if not props:
            if extra is False:
                return gbnf_literal("{") + f" {ws} " + gbnf_literal("}")
            value = self.visit(True if extra is None else extra, f"{path}/additionalProperties",
                               f"{hint}-value", depth + 1)
            member = self.rule(f"{hint}-member", f'{self.builtin("json-string")} ":" {ws} {value}')
            return self.rule(hint, f'"{{" {ws} ( {member} ( "," {ws} {member} )* {ws} )? "}}"')
        if extra not in (None, False):
            raise GrammarError(f"{path}: additionalProperties other than false together with properties is not "
                               "supported")
        kvs = []
        for name in property_order(schema, props, path):
            sub = props[name]
            if sub is False:
                if name in required:
                    raise GrammarError(f"{path}/properties/{name}: a required property with schema false can "
                                       "never be satisfied")
                continue
            value = self.visit(sub, f"{path}/properties/{name}", f"{hint}-{name}", depth + 1)
            key = gbnf_literal(canonical_json(name))
            kvs.append((self.rule(f"{hint}-{name}-kv", f'{key} ":" {ws} {value}'), name in required))
        if not kvs:
            return gbnf_literal("{") + f" {ws} " + gbnf_literal("}")
        if all(req for _, req in kvs):
            body = " ".join([kvs[0][0]] + [f'"," {ws} {kv}' for kv, _ in kvs[1:]])
            return self.rule(hint, f'"{{" {ws} {body} {ws} "}}"')
        # optional properties keep their order: rest_i = what may follow once something was written
        rest = [""] * (len(kvs) + 1)
        for i in range(len(kvs) - 1, 0, -1):
            kv, req = kvs[i]
            piece = f'"," {ws} {kv}' if req else f'( "," {ws} {kv} )?'
            body = f"{piece} {rest[i + 1]}".strip()
            rest[i] = self.rule(f"{hint}-after-{i}", body)
        firsts = []
        for i, (kv, req) in enumerate(kvs):
            firsts.append(f"{kv} {rest[i + 1]}".strip())
            if req:
                break
        start = self.rule(f"{hint}-props", " | ".join(firsts))
        if not any(req for _, req in kvs):
            return self.rule(hint, f'"{{" {ws} ( {start} {ws} )? "}}"')
        return self.rule(hint, f'"{{" {ws} {start} {ws} "}}"')


def json_set(ranges, where: str) -> str:
    """GBNF matching the JSON string encoding of one character from ``ranges``."""
    plain = minus_ranges(ranges, [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C)])
    parts = [gbnf_set(plain)] if plain else []
    if contains(ranges, 0x22):
        parts.append(gbnf_literal('\\"'))
    if contains(ranges, 0x5C):
        parts.append(gbnf_literal("\\\\"))
    controls = [cp for cp in range(0x20) if contains(ranges, cp)]
    short = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
    others = [cp for cp in controls if cp not in short]
    for cp in controls:
        if cp in short:
            parts.append(gbnf_literal(short[cp]))
        elif len(others) <= 4:  # a few explicit ones; a broad class just skips the rare controls
            parts.append(gbnf_literal(f"\\u{cp:04x}"))
    if not parts:
        raise GrammarError(f"{where}: a character class matches nothing that can be generated")
    return parts[0] if len(parts) == 1 else "( " + " | ".join(parts) + " )"


def _digits_class(lo: str, hi: str) -> str:
    return f"[{lo}]" if lo == hi else f"[{lo}-{hi}]"


def _same_len(x: str, y: str) -> str:
    """GBNF for the digit strings of one length n from x to y (x <= y)."""
    n = len(x)
    if n == 1:
        return _digits_class(x, y)
    if x[0] == y[0]:
        return f'"{x[0]}" ' + _same_len(x[1:], y[1:])
    alts = []
    mid_lo, mid_hi = int(x[0]), int(y[0])
    if x[1:] != "0" * (n - 1):
        alts.append(f'"{x[0]}" ' + _same_len(x[1:], "9" * (n - 1)))
        mid_lo += 1
    tail = None
    if y[1:] != "9" * (n - 1):
        tail = f'"{y[0]}" ' + _same_len("0" * (n - 1), y[1:])
        mid_hi -= 1
    if mid_lo <= mid_hi:
        alts.append(_digits_class(str(mid_lo), str(mid_hi)) + f" [0-9]{{{n - 1}}}")
    if tail:
        alts.append(tail)
    return alts[0] if len(alts) == 1 else "( " + " | ".join(alts) + " )"


def _nonneg(a: int, b: int | None) -> str:
    """GBNF for the decimal integers a..b (b None: unbounded, up to 16 digits), no leading zeros."""
    alts = []
    da = len(str(a))
    top = max(16, da) if b is None else len(str(b))
    for d in range(da, top + 1):
        lo = max(a, 10 ** (d - 1) if d > 1 else 0)
        hi = 10 ** d - 1 if b is None else min(b, 10 ** d - 1)
        if lo > hi:
            continue
        if b is None and lo == 10 ** (d - 1) and d > da:
            alts.append(f"[1-9] [0-9]{{{d - 1},{top - 1}}}" if d < top else f"[1-9] [0-9]{{{d - 1}}}")
            break
        alts.append(_same_len(str(lo), str(hi)))
    return alts[0] if len(alts) == 1 else "( " + " | ".join(alts) + " )"


def int_range(lo: int | None, hi: int | None) -> str:
    """GBNF for the JSON integers in [lo, hi] (None: unbounded on that side)."""
    alts = []
    if hi is None or hi >= 0:
        alts.append(_nonneg(max(lo, 0) if lo is not None else 0, hi))
    if lo is None or lo < 0:
        top = min(hi, -1) if hi is not None else -1
        alts.append('"-" ' + _nonneg(-top, None if lo is None else -lo))
    return alts[0] if len(alts) == 1 else " | ".join(f"( {a} )" for a in alts)


def to_gbnf(schema, *, deadline: float | None = None) -> tuple[str, bool]:
    """Convert a schema to GBNF (root rule ``root``).

    Returns ``(gbnf, loosened)``; ``loosened`` is True when some maximum was
    too wide to write into the grammar and only the validator enforces it.
    ``deadline`` (time.monotonic()) bounds the work as in check_gbnf.
    """
    conv = _Converter(schema, deadline)
    try:
        return conv.convert(), conv.loosened
    except RecursionError:  # a backstop: visit() is bounded by MAX_DEPTH
        raise GrammarError(f"the schema is nested too deeply (limit {MAX_DEPTH} levels)") from None
