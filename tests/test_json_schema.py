"""JSON Schema -> GBNF without a model: the grammar accepts exactly what it should.

Non-recursive grammars are turned into Python regexes (host.engine.gbnf.gbnf_regex),
so texts can be checked against the generated grammar directly.
"""

from __future__ import annotations

import itertools
import json
import random
import re

import pytest

from host.engine import json_schema as js
from host.engine.gbnf import check_gbnf, gbnf_regex
from host.engine.pattern import Pattern
from host.engine.schema_validate import validate
from host.errors import GrammarError


def grammar_rx(schema) -> re.Pattern:
    gbnf, _ = js.to_gbnf(schema)
    check_gbnf(gbnf)
    return re.compile(gbnf_regex(gbnf))


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


NPC = {"type": "object", "properties": {
    "speaker": {"type": "string", "minLength": 1, "maxLength": 12},
    "emotion": {"enum": ["happy", "sad", "angry"]},
    "line": {"type": "string", "maxLength": 40}},
    "required": ["speaker", "emotion", "line"], "additionalProperties": False}


def test_required_object_in_schema_order():
    rx = grammar_rx(NPC)
    good = {"speaker": "Bo", "emotion": "sad", "line": "Halt!"}
    assert rx.fullmatch(compact(good))
    assert rx.fullmatch(json.dumps(good, indent=2))
    assert rx.fullmatch(json.dumps(good))  # ", " and ": " separators
    reordered = {"emotion": "sad", "speaker": "Bo", "line": "Halt!"}
    assert not rx.fullmatch(compact(reordered))
    assert not rx.fullmatch(compact({**good, "emotion": "bored"}))
    assert not rx.fullmatch(compact({**good, "speaker": ""}))
    assert not rx.fullmatch(compact({**good, "speaker": "x" * 13}))
    assert not rx.fullmatch(compact({"speaker": "Bo", "emotion": "sad"}))
    assert not rx.fullmatch(compact(good) + " ")  # nothing after the root value


def test_whitespace_is_limited():
    rx = grammar_rx({"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]})
    assert rx.fullmatch('{ "a": true }')
    assert rx.fullmatch('{\n    "a":\ttrue\n}') is None  # tab is indentation only after a newline
    assert rx.fullmatch('{\n\t"a": true\n}')
    assert not rx.fullmatch('{  "a": true}')  # at most one space
    assert not rx.fullmatch('{\n\n"a": true}')
    assert not rx.fullmatch('{"a" : true}')
    assert not rx.fullmatch("{\n" + " " * 17 + '"a": true}')


def test_optional_properties_keep_order_in_every_combination():
    props = {n: {"type": "integer", "minimum": 0, "maximum": 9} for n in "abcd"}
    for required in ([], ["b"], ["a", "d"], ["c"]):
        schema = {"type": "object", "properties": props, "required": required}
        rx = grammar_rx(schema)
        for k in range(5):
            for keys in itertools.combinations("abcd", k):
                text = compact({key: 1 for key in keys})
                assert bool(rx.fullmatch(text)) == (set(required) <= set(keys)), (required, text)
        assert not rx.fullmatch('{"b":1,"a":1}')


def test_x_order_sets_the_order_for_unordered_tables():
    schema = {"type": "object", "properties": {"line": {"type": "string"}, "speaker": {"type": "string"}},
              "required": ["line", "speaker"], "x-order": ["speaker", "line"]}
    rx = grammar_rx(schema)
    assert rx.fullmatch('{"speaker":"a","line":"b"}')
    assert not rx.fullmatch('{"line":"b","speaker":"a"}')
    with pytest.raises(GrammarError, match="x-order"):
        js.to_gbnf({**schema, "x-order": ["speaker", "nope"]})


@pytest.mark.parametrize("lo,hi", [(0, 0), (0, 9), (1, 1), (3, 17), (0, 100), (7, 1234), (99, 1000), (-5, 120),
                                   (-1200, -31), (-9, -1), (None, 42), (42, None), (None, -7), (-7, None),
                                   (0, None), (100, 199), (1000, 1009)])
def test_integer_ranges_exactly(lo, hi):
    schema = {"type": "integer"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    rx = grammar_rx(schema)
    for n in range(-1500, 1600):
        inside = (lo is None or n >= lo) and (hi is None or n <= hi)
        assert bool(rx.fullmatch(str(n))) == inside, n
    assert not rx.fullmatch("007") and not rx.fullmatch("+1") and not rx.fullmatch("1.0")


def test_exclusive_and_fractional_integer_bounds():
    rx = grammar_rx({"type": "integer", "exclusiveMinimum": 2, "exclusiveMaximum": 5.5})
    assert [n for n in range(-3, 10) if rx.fullmatch(str(n))] == [3, 4, 5]
    rx = grammar_rx({"type": "integer", "minimum": 1.5, "maximum": 4.0})
    assert [n for n in range(-3, 10) if rx.fullmatch(str(n))] == [2, 3, 4]
    with pytest.raises(GrammarError, match="no integer"):
        js.to_gbnf({"type": "integer", "minimum": 5, "maximum": 4})


def test_numbers_strings_and_literals():
    rx = grammar_rx({"type": "number"})
    for t in ("0", "-0.5", "12.25e-3", "3E+12", "1e5"):
        assert rx.fullmatch(t), t
    for t in ("01", ".5", "1.", "NaN", "1e999", "--1"):
        assert not rx.fullmatch(t), t
    rx = grammar_rx({"type": "string", "minLength": 2, "maxLength": 3})
    for s, ok in (("ab", True), ("abc", True), ("a", False), ("abcd", False), ('"\\', True), ("é€", True),
                  ("\n\t", True), ("\x01\x02", True)):
        assert bool(rx.fullmatch(json.dumps(s))) == ok, s
        assert bool(rx.fullmatch(json.dumps(s, ensure_ascii=False))) == ok, s
    assert not rx.fullmatch('"a\nb"')  # raw control characters are not JSON
    assert not rx.fullmatch('"\\ud83d\\ude00"')  # surrogate escapes would count as two characters
    rx = grammar_rx({"enum": ["a", 1, None, True, [1, 2], {"k": "v"}]})
    for v in ("a", 1, None, True, [1, 2], {"k": "v"}):
        assert rx.fullmatch(compact(v))
    assert not rx.fullmatch("2")
    rx = grammar_rx({"const": "exact \"q\""})
    assert rx.fullmatch(json.dumps("exact \"q\""))


def test_type_lists_nullable_and_type_filtered_enum():
    rx = grammar_rx({"type": ["string", "null"], "maxLength": 2})
    assert rx.fullmatch("null") and rx.fullmatch('"ab"') and not rx.fullmatch('"abc"') and not rx.fullmatch("1")
    rx = grammar_rx({"type": "string", "enum": ["a", 1, "b"]})
    assert rx.fullmatch('"a"') and not rx.fullmatch("1")
    with pytest.raises(GrammarError, match="no enum/const value"):
        js.to_gbnf({"type": "integer", "enum": ["a"]})


def test_arrays_with_bounds():
    rx = grammar_rx({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9},
                     "minItems": 2, "maxItems": 4})
    for n in range(7):
        assert bool(rx.fullmatch(compact(list(range(n))))) == (2 <= n <= 4), n
    assert rx.fullmatch("[ 1, 2 ]") and rx.fullmatch("[\n  1,\n  2\n]")
    assert not rx.fullmatch("[1,2,]")
    rx = grammar_rx({"type": "array", "maxItems": 0})
    assert rx.fullmatch("[]") and not rx.fullmatch("[1]")
    rx = grammar_rx({"type": "array", "items": {"type": "boolean"}})
    assert rx.fullmatch("[]") and rx.fullmatch("[true,false,true]")


def test_huge_bounds_stay_small_and_are_left_to_the_validator():
    schema = {"type": "array", "items": {"type": "integer"}, "maxItems": 10000}
    gbnf, loosened = js.to_gbnf(schema)
    assert loosened and len(gbnf) < 2000
    schema = {"type": "string", "maxLength": 100000}
    gbnf, loosened = js.to_gbnf(schema)
    assert loosened and len(gbnf) < 2000
    assert validate("x" * 100001, schema)  # the validator still enforces the real bound
    gbnf, loosened = js.to_gbnf({"type": "array", "minItems": 1990, "maxItems": 2000})
    assert not loosened
    with pytest.raises(GrammarError, match="minItems 5000 is above"):
        js.to_gbnf({"type": "array", "minItems": 5000})
    too_big = {"type": "object", "properties": {f"p{i}": {"type": "string", "maxLength": 250 - i % 7}
                                                for i in range(100)}}
    with pytest.raises(GrammarError, match="too large"):
        js.to_gbnf(too_big)


def test_identical_subschemas_share_rules():
    prop = {"type": "string", "maxLength": 200}
    gbnf, _ = js.to_gbnf({"type": "object", "properties": {f"p{i}": prop for i in range(50)}})
    assert gbnf.count("json-char{0,200}") == 1


def test_refs_defs_anyof_oneof():
    schema = {"$defs": {"item": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1,
                                                                          "maximum": 99}},
                                 "required": ["id"]},
                        "alias": {"$ref": "#/$defs/item"}},
              "anyOf": [{"$ref": "#/$defs/alias"}, {"type": "array", "items": {"$ref": "#/definitions/x"},
                                                     "maxItems": 2}],
              "definitions": {"x": {"oneOf": [{"const": "a"}, {"type": "boolean"}]}}}
    rx = grammar_rx(schema)
    for text, ok in (('{"id":5}', True), ('{"id":0}', False), ('["a",true]', True), ('["b"]', False), ("[]", True),
                     ('["a","a","a"]', False)):
        assert bool(rx.fullmatch(text)) == ok, text


def test_recursive_ref_converts_and_checks():
    schema = {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 3}},
        "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"}
    gbnf, _ = js.to_gbnf(schema)
    check_gbnf(gbnf)
    with pytest.raises(GrammarError, match="recursive"):
        gbnf_regex(gbnf)
    with pytest.raises(GrammarError, match="leads back to itself"):
        js.to_gbnf({"anyOf": [{"$ref": "#"}, {"type": "null"}]})


def test_free_objects_maps_and_any_value():
    rx = grammar_rx({"type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 5}})
    assert rx.fullmatch('{"x":1, "y":5}') and rx.fullmatch("{}") and not rx.fullmatch('{"x":6}')
    rx = grammar_rx({"type": "object", "additionalProperties": False})
    assert rx.fullmatch("{}") and not rx.fullmatch('{"a":1}')
    gbnf, _ = js.to_gbnf({})
    check_gbnf(gbnf)
    assert "json-value" in gbnf
    gbnf, _ = js.to_gbnf(True)
    assert "json-object" in gbnf


# (schema, words the error must contain)
UNSUPPORTED = [
    ({"allOf": [{"type": "string"}]}, ["allOf"]),
    ({"not": {"type": "string"}}, ["'not'"]),
    ({"type": "string", "format": "date"}, ["format"]),
    ({"type": "array", "uniqueItems": True}, ["uniqueItems"]),
    ({"type": "object", "minProperties": 1}, ["minProperties"]),
    ({"type": "array", "prefixItems": [{}]}, ["prefixItems"]),
    ({"type": "array", "items": [{"type": "string"}]}, ["tuple"]),
    ({"type": "object", "patternProperties": {"a": {}}}, ["patternProperties"]),
    ({"type": "number", "multipleOf": 2}, ["multipleOf"]),
    ({"type": "number", "minimum": 0}, ["type number", "integer"]),
    ({"$ref": "other.json#/a"}, ["local"]),
    ({"$ref": "#foo"}, ["anchor"]),
    ({"$ref": "#/$defs/missing"}, ["does not resolve"]),
    ({"type": "object", "properties": {"a": {}}, "additionalProperties": True}, ["additionalProperties"]),
    ({"type": "string", "pattern": "^a+$", "maxLength": 3}, ["pattern together with"]),
    ({"type": "string", "pattern": "(?=a)"}, ["lookaround"]),
    ({"type": "string", "pattern": "(a)\\1"}, ["backreferences"]),
    ({"type": "string", "pattern": "\\bword"}, ["word boundaries"]),
    ({"type": "string", "pattern": "a^b"}, ["'^'"]),
    ({"type": "string", "pattern": "[b-a]"}, ["out of order"]),
    (False, ["matches nothing"]),
    ({"type": "object", "properties": {"a": False}, "required": ["a"]}, ["never be satisfied"]),
    ({"type": "object", "required": ["ghost"], "properties": {"a": {}}}, ["'ghost'", "not declared"]),
    ({"type": "date"}, ["unknown type"]),
    ({"type": "integer", "exclusiveMinimum": True}, ["draft-4"]),
    ({"anyOf": [{"type": "string"}], "minLength": 2}, ["anyOf together with"]),
    ({"enum": []}, ["non-empty"]),
    ({"const": float("nan")}, ["not a JSON value"]),
    ({"type": "string", "maxLength": 2, "minLength": 3}, ["below minLength"]),
    ({"type": "array", "minItems": -1}, ["non-negative"]),
    ([{"type": "string"}], ["must be an object"]),
]


@pytest.mark.parametrize("schema,words", UNSUPPORTED)
def test_unsupported_or_invalid_schemas_fail_closed(schema, words):
    with pytest.raises(GrammarError) as info:
        js.to_gbnf(schema)
    for w in words:
        assert w in str(info.value), str(info.value)


def test_error_paths_point_into_the_schema():
    with pytest.raises(GrammarError, match=r"#/properties/a/items: unsupported JSON Schema keyword\(s\) \['format'\]"):
        js.to_gbnf({"type": "object", "properties": {"a": {"type": "array", "items": {"format": "x"}}}})


def test_annotations_are_ignored():
    gbnf, _ = js.to_gbnf({"title": "T", "description": "d", "$schema": "x", "$id": "y", "default": 1,
                          "examples": [1], "$comment": "c", "type": "boolean", "deprecated": False})
    assert re.fullmatch(gbnf_regex(gbnf), "true")


def test_too_deep_schemas_are_refused():
    schema: dict = {"type": "null"}
    for _ in range(80):
        schema = {"type": "array", "items": schema}
    with pytest.raises(GrammarError, match="nested"):
        js.to_gbnf(schema)


# --- patterns ----------------------------------------------------------------------

PATTERNS = ["^[A-Z][a-z]{1,8}$", "ab+c", "^(foo|ba[rz])\\.txt$", '^say "hi"\\\\$', "^\\d{3}-\\d{4}$", "^.{2}$",
            "^[^a-z]$", "x|^y$", "^a*?b$", "^(?:ab)+$", "^\\w+\\s\\w+$", "^\\D\\S\\W$", "[\\]\\-]", "^\\x41\\u00e9$",
            "^[.]$", "^a{2,}$", "^(a|)b$", "^[\\d.]+$"]
ALPHABET = ["a", "b", "c", "x", "y", "A", "Z", "f", "o", "r", "z", ".", "t", "1", "5", "-", " ", "\n", '"', "\\",
            "é", "]", "_", "\t"]


@pytest.mark.parametrize("source", PATTERNS)
def test_pattern_grammar_agrees_with_the_regex(source):
    rx = grammar_rx({"type": "string", "pattern": source})
    py = re.compile(Pattern(source).python())
    rnd = random.Random(source)
    samples = ["foo.txt", "baz.txt", "Hello", "abbbc", "555-1234", 'say "hi"\\', "ab", "aab", "ababab", "b",
               "x", "y", "xy", "Ae", "Aé", "a1 b2", "1a-", "]", "-", ".", "aaa", "1.5", "5"]
    samples += ["".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 6))) for _ in range(400)]
    for s in samples:
        expected = bool(py.search(s))
        assert bool(rx.fullmatch(json.dumps(s, ensure_ascii=False))) == expected, (source, s)


def test_pattern_python_form_uses_strict_anchors():
    # Python's $ also matches before a final newline; ECMAScript's does not
    assert not re.search(Pattern("^a$").python(), "a\n")
    assert re.search(Pattern("^a$").python(), "a")


def test_pattern_syntax_errors_name_the_position():
    with pytest.raises(GrammarError, match=r"unclosed '\(' at position 2"):
        Pattern("ab(cd")
    with pytest.raises(GrammarError, match="nothing to repeat"):
        Pattern("*a")
    with pytest.raises(GrammarError, match="escape a literal brace"):
        Pattern("a{")


def test_last_characters_and_nullability():
    assert Pattern("ab?").last_bytes() == {ord("a"), ord("b")}
    assert Pattern("[xy]:|z+").last_bytes() == {ord(":"), ord("z")}
    assert Pattern("a*").nullable() and not Pattern("a+").nullable()


def test_self_references_without_json_between_are_named():
    """{"$ref": "#"} used to say "rule 'root-ref' is used but never defined"."""
    with pytest.raises(GrammarError, match=r"\$ref '#' leads back to itself \(# -> #\)"):
        js.to_gbnf({"$ref": "#"})
    with pytest.raises(GrammarError, match=r"#/\$defs/a -> #/\$defs/b -> #/\$defs/a"):
        js.to_gbnf({"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}})
    # recursion through an array or object is fine, also when the root is the recursive rule
    gbnf, _ = js.to_gbnf({"$ref": "#/$defs/a",
                          "$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}, "maxItems": 2}}})
    check_gbnf(gbnf)
    gbnf, _ = js.to_gbnf({"type": "object", "properties": {"kid": {"$ref": "#"}}})
    check_gbnf(gbnf)


def test_deep_schema_errors_are_short_and_named():
    s = {"type": "string"}
    for _ in range(300):
        s = {"type": "object", "properties": {"x": s}}
    with pytest.raises(GrammarError, match="nested more than 64 levels deep") as e:
        js.to_gbnf(s)
    assert len(str(e.value)) < 400
