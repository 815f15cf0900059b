"""The validator of decoded values: JSON Schema's own meaning over the supported subset."""

from __future__ import annotations

import pytest

from host.engine.schema_validate import is_valid, json_equal, validate
from host.errors import GrammarError

NPC = {"type": "object", "properties": {
    "speaker": {"type": "string", "minLength": 1, "maxLength": 12},
    "emotion": {"enum": ["happy", "sad", "angry"]},
    "hp": {"type": "integer", "minimum": 0, "maximum": 100},
    "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}, "maxItems": 2}},
    "required": ["speaker", "emotion"], "additionalProperties": False}


def test_valid_value_has_no_errors():
    assert validate({"speaker": "Bo", "emotion": "sad", "hp": 7, "tags": ["a"]}, NPC) == []
    assert is_valid({"speaker": "Bo", "emotion": "sad"}, NPC)


@pytest.mark.parametrize("value,expected", [
    ({"emotion": "sad"}, "$: missing required property 'speaker'"),
    ({"speaker": "", "emotion": "sad"}, "$.speaker: '' is shorter than minLength 1"),
    ({"speaker": "x" * 13, "emotion": "sad"}, "is longer than maxLength 12"),
    ({"speaker": "Bo", "emotion": "bored"}, "$.emotion: 'bored' is not one of"),
    ({"speaker": "Bo", "emotion": "sad", "hp": 101}, "$.hp: 101 violates maximum 100"),
    ({"speaker": "Bo", "emotion": "sad", "hp": 1.5}, "$.hp: expected integer, got number 1.5"),
    ({"speaker": "Bo", "emotion": "sad", "hp": True}, "$.hp: expected integer, got boolean True"),
    ({"speaker": "Bo", "emotion": "sad", "tags": ["a", "b", "c"]}, "$.tags: has 3 items, more than maxItems 2"),
    ({"speaker": "Bo", "emotion": "sad", "tags": ["A"]}, "$.tags[0]: 'A' does not match the pattern"),
    ({"speaker": "Bo", "emotion": "sad", "mood": 1}, "$: unexpected property 'mood'"),
    (["not", "an", "object"], "$: expected object, got array"),
])
def test_errors_name_the_path_and_problem(value, expected):
    errors = validate(value, NPC)
    assert errors and any(expected in e for e in errors), errors


def test_json_semantics_of_numbers_and_booleans():
    assert json_equal(1, 1.0) and not json_equal(True, 1) and not json_equal("1", 1)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert validate(3.0, {"type": "integer"}) == []
    assert validate(False, {"enum": [0]})
    assert validate(0, {"const": False})
    assert validate(float("inf"), {"type": "number"})


def test_absent_additional_properties_allows_extras():
    assert validate({"a": 1, "zzz": 2}, {"type": "object", "properties": {"a": {"type": "integer"}}}) == []
    errors = validate({"a": 1, "b": "x"}, {"type": "object", "additionalProperties": {"type": "integer"}})
    assert errors == ["$.b: expected integer, got string 'x'"]


def test_type_specific_keywords_apply_only_to_their_type():
    schema = {"type": ["string", "null"], "maxLength": 2}
    assert validate(None, schema) == [] and validate("ab", schema) == []
    assert validate("abc", schema)


def test_any_of_one_of_and_refs():
    schema = {"$defs": {"pos": {"type": "integer", "minimum": 1}}, "oneOf": [{"$ref": "#/$defs/pos"},
                                                                            {"type": "number", "maximum": 10}]}
    assert validate(20, schema) == []
    assert validate(0.5, schema) == []
    assert "matches 2 of the oneOf alternatives" in validate(5, schema)[0]
    errors = validate(-1, {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]})
    assert errors == ["$: matches none of the anyOf alternatives (closest is #1: $: -1 violates minimum 0)"]


def test_exclusive_bounds_and_lengths_in_code_points():
    assert validate(5, {"exclusiveMaximum": 5}) and not validate(4.99, {"exclusiveMaximum": 5})
    assert validate("🎲🎲", {"type": "string", "maxLength": 2}) == []


def test_pattern_is_a_search_unless_anchored():
    assert validate("xxabcxx", {"type": "string", "pattern": "abc"}) == []
    assert validate("xxabcxx", {"type": "string", "pattern": "^abc"})
    assert validate("abc\n", {"type": "string", "pattern": "^abc$"})


def test_recursive_schema_validates_nested_values():
    node = {"$defs": {"n": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
                            "additionalProperties": False}}, "$ref": "#/$defs/n"}
    assert validate({"kids": [{"kids": []}, {}]}, node) == []
    assert validate({"kids": [{"kids": [{"x": 1}]}]}, node) == ["$.kids[0].kids[0]: unexpected property 'x'"]


def test_unsupported_keywords_fail_closed():
    with pytest.raises(GrammarError, match="uniqueItems"):
        validate([1], {"uniqueItems": True})
    with pytest.raises(GrammarError, match="tuple"):
        validate([1], {"items": [{}]})


def test_error_list_is_bounded():
    errors = validate(list(range(100)), {"type": "array", "items": {"type": "string"}})
    assert 0 < len(errors) <= 20


def test_module_docstring_example_runs():
    import doctest

    from host.engine import schema_validate

    result = doctest.testmod(schema_validate)
    assert result.attempted >= 2 and result.failed == 0
