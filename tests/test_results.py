"""The one result type a mod receives (host/results.py), its conversion to Lua, and
docs/MODDING.md's tables of its fields and error types, checked against the code.
Real lupa; no model."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import host.errors
from host.errors import OptionError, QuotaExceeded
from host.results import Result, Timings, ToolCall, Usage
from modhost_util import make_host, mods_dir  # noqa: F401 - fixtures

MODDING = Path(__file__).resolve().parents[1] / "docs" / "MODDING.md"


def _table_after(heading_regex: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table after a heading matching the regex."""
    text = MODDING.read_text()
    start = re.search(heading_regex, text, re.M)
    assert start, heading_regex
    rows, in_table = [], False
    for line in text[start.start():].splitlines():
        if line.startswith("|"):
            in_table = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                rows.append(cells)
        elif in_table:
            break
    return rows[1:]  # without the header


def test_every_result_field_is_documented_and_no_other():
    documented = {re.sub(r"`", "", row[0]) for row in _table_after(r"^### What a result holds")}
    fields = {f.name for f in dataclasses.fields(Result)}
    assert documented == fields


def test_the_error_type_table_names_every_error_type_and_no_other():
    names = set()
    for row in _table_after(r"^\| `error_type` \| meaning \|"):
        names |= set(re.findall(r'`"([a-z_]+)"`', row[0]))
    in_code = {cls.error_type for _, cls in inspect.getmembers(host.errors, inspect.isclass)
               if issubclass(cls, host.errors.RelicError)}
    in_code |= {"schema", "internal"}  # a schema= output that does not validate; a host bug
    assert names == in_code


def test_constructors_fill_the_fields_consistently():
    ok = Result.generated(text="hi", finish_reason="stop", error="ignored", error_type="option",
                          usage=Usage(3, 1, 2), timings=Timings(prompt_ms=1.0), session_chars=40)
    assert (ok.error, ok.error_type, ok.session_chars) == (None, None, 40)
    cut = Result.generated(text="x", finish_reason="cancelled", usage=Usage(), timings=Timings())
    assert cut.error_type == "cancelled"
    failed = Result.of_exception(QuotaExceeded("too much"))
    assert (failed.finish_reason, failed.error, failed.error_type, failed.usage) == \
        ("error", "too much", "quota", Usage())
    bug = Result.of_exception(ZeroDivisionError("boom"))
    assert (bug.error_type, bug.error) == ("internal", "ZeroDivisionError: boom")
    assert Result.failed("stop", error_type="cancelled").finish_reason == "cancelled"
    call = Result.of_call({"hits": [{"id": "a"}]})
    assert call.hits == [{"id": "a"}] and call.usage is None
    with pytest.raises(TypeError):
        Result.of_call({"session_bytes": 3})  # an unknown field is a bug, not a silent extra
    with pytest.raises(ValueError, match="finish_reason"):
        Result(finish_reason="done")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok.text = "changed"


def test_python_callers_read_it_as_a_mapping_of_its_set_fields():
    r = Result.failed("bad option", error_type=OptionError.error_type)
    assert r["error_type"] == "option" and r.get("value") is None and r["timings"] is None
    assert r["usage"]["completion_tokens"] == 0
    assert set(r) == {f.name for f in dataclasses.fields(Result)}
    with pytest.raises(KeyError):
        r["session_bytes"]


def test_to_plain_is_lua_data_with_nil_for_unset_fields(make_host):
    host, _ = make_host({"m": "return {}"})
    mod = host.mods["m"]
    r = Result.generated(text="said", finish_reason="length", usage=Usage(5, 2, 7),
                         timings=Timings(prompt_ms=1.5, generation_ms=2.5, tokens_per_second=3.5), session_chars=12).with_(
        device="CPU", tool_calls=(ToolCall("give", {"item": "eel"}, {"ok": True}),))
    plain = r.to_plain()
    assert plain["usage"] == {"prompt_tokens": 5, "cached_tokens": 2, "completion_tokens": 7}
    assert "value" not in plain and "error" not in plain
    table = mod.to_lua(plain)
    chunk = mod.box.load_chunk(
        "local r = ...; return table.concat({ r.text, r.finish_reason, tostring(r.error), r.usage.completion_tokens,"
        " r.timings.tokens_per_second, r.device, r.session_chars, #r.tool_calls, r.tool_calls[1].name,"
        " r.tool_calls[1].arguments.item, tostring(r.tool_calls[1].result.ok), tostring(r.value) }, ',')", "=t")
    fn = chunk[0] if isinstance(chunk, tuple) else chunk
    ok, out = mod.call(fn, table)
    assert ok, out
    assert out == "said,length,nil,7,3.5,CPU,12,1,give,eel,true,nil"


def test_every_timing_is_documented_and_no_other():
    documented = set()
    for row in _table_after(r"^Every result says where its time went"):
        documented |= set(re.findall(r"`([a-z_]+)`", row[0]))
    assert documented == {f.name for f in dataclasses.fields(Timings)}
