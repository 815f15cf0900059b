"""One limits tree: every limit declared once (default, unit, meaning), set from the config file's
[limits] tables, enforced from the tree the host was given, and the MODDING table generated from it."""

from __future__ import annotations

import re
from dataclasses import fields, replace
from pathlib import Path

import pytest
from modhost_util import frames, make_host, mods_dir  # noqa: F401

from host.api.grammar import GrammarProvider
from host.api.quotas import QuotaLedger
from host.config import Config
from host.errors import ConfigError, QuotaExceeded
from host.limits import DEFAULT_LIMITS, GrammarLimits, LlmLimits, Limits, RagLimits, limit_fields, limits_table

ROOT = Path(__file__).resolve().parents[1]


def test_the_modding_limits_table_is_generated_from_the_tree():
    doc = (ROOT / "docs" / "MODDING.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- limits:start -->\n(.*?)\n<!-- limits:end -->", doc, re.S)
    assert block, "docs/MODDING.md has no generated limits table (python -m host.limits)"
    assert block.group(1) == limits_table()


def test_every_limit_is_declared_with_a_unit_and_a_meaning_and_appears_in_the_table():
    table = limits_table()
    names = [name for name, _, _ in limit_fields()]
    assert len(names) == len(set(names)) and len(names) > 40
    for name, value, f in limit_fields():
        assert isinstance(value, (int, float)) and value > 0, name
        assert f.metadata["unit"] and len(f.metadata["meaning"]) > 8, name
        assert f"| `{name}` |" in table, name
    # a changed default shows in the generated table (so the doc test above catches a stale doc)
    assert limits_table(replace(DEFAULT_LIMITS, llm=replace(DEFAULT_LIMITS.llm, max_pending=17))) != table


def test_the_tree_is_frozen_and_its_groups_too():
    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.budget_ms = 1
    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.llm.max_tokens = 1
    assert {f.name for f in fields(Limits) if f.metadata.get("group")} >= {"llm", "grammar", "rag"}


@pytest.mark.parametrize("make,fragment", [
    (lambda: Limits(budget_ms=0), "Limits.budget_ms must be an integer above 0"),
    (lambda: Limits(error_window_s=float("inf")), "Limits.error_window_s must be a number above 0"),
    (lambda: LlmLimits(max_tokens=1.5), "LlmLimits.max_tokens must be an integer above 0"),
    (lambda: RagLimits(max_k=True), "RagLimits.max_k must be an integer above 0"),
])
def test_a_game_that_builds_a_bad_tree_gets_a_clear_error(make, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        make()


def test_the_config_file_sets_top_level_and_group_limits(tmp_path):
    f = tmp_path / "relic.toml"
    f.write_text("[limits]\nbudget_ms = 80\nrag.max_stores = 3\n"
                 "[limits.grammar]\nmax_gbnf_bytes = 100\n"
                 "[limits.llm]\nmax_stop_strings = 3\nmax_pending = 5\nmax_pending_bytes = 1000\n")
    cfg = Config.load(file=f)
    assert cfg.limits.budget_ms == 80
    assert cfg.limits.llm == replace(LlmLimits(), max_stop_strings=3, max_pending=5, max_pending_bytes=1000)
    assert cfg.limits.grammar == replace(GrammarLimits(), max_gbnf_bytes=100)
    assert cfg.limits.rag == RagLimits(max_stores=3)
    w = cfg.worker_config()    # the worker's request quotas come from the tree
    assert (w.max_pending_per_mod, w.max_pending_bytes_per_mod) == (5, 1000)
    assert Config.load().worker_config().max_pending_per_mod == DEFAULT_LIMITS.llm.max_pending


@pytest.mark.parametrize("text,fragment", [
    ("[limits.llm]\nno_such = 1\n", "[limits.llm] has no 'no_such'"),
    ("[limits.nogroup]\nx = 1\n", "[limits] has no 'nogroup'"),
    ("[limits]\nllm = 5\n", "[limits.llm] must be a table"),
    ("[limits.grammar]\nmax_choices = 0\n", "[limits.grammar] max_choices must be above 0"),
    ("[limits.llm]\nmax_tokens = 1.5\n", "[limits.llm] max_tokens must be an integer"),
    ("[limits.llm]\nmax_tokens = true\n", "[limits.llm] max_tokens must be an integer"),
])
def test_a_bad_limits_table_names_the_file_the_group_and_the_key(tmp_path, text, fragment):
    f = tmp_path / "relic.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        Config.load(file=f)
    assert fragment in str(info.value) and str(f) in str(info.value)


def test_the_ledger_counts_against_the_tree_it_was_given():
    limits = replace(DEFAULT_LIMITS, llm=replace(DEFAULT_LIMITS.llm, max_sessions=1),
                     rag=RagLimits(max_stores=1), grammar=replace(DEFAULT_LIMITS.grammar, max_grammars=1))
    ledger = QuotaLedger(limits)
    assert ledger.check_session("m", 10) is None
    ledger.add_session("m", 1, 10)
    assert "already has 1 sessions" in ledger.check_session("m", 10)
    ledger.open_store("m", "a")
    with pytest.raises(QuotaExceeded, match="1 stores"):
        ledger.open_store("m", "b")
    ledger.grammars("m", +1)
    assert "holds 1 grammars" in ledger.check_grammar("m")
    assert QuotaLedger().check_session("m", 10) is None   # the defaults: 32 sessions


def test_a_mod_meets_the_grammar_limits_its_host_was_given(make_host):
    source = """
        ok_small, err_small = pcall(grammar.gbnf, 'root ::= "yes" | "no"')
        ok_big, err_big = pcall(grammar.gbnf, 'root ::= ' .. string.rep('"a" | ', 20) .. '"b"')
        return { result = function()
          return tostring(ok_small) .. "|" .. tostring(ok_big) .. "|" .. tostring(err_big)
        end }
    """
    small = replace(DEFAULT_LIMITS, grammar=replace(DEFAULT_LIMITS.grammar, max_gbnf_bytes=64))
    host, _ = make_host(load=False, mods={"m": source}, limits=small)
    host.add_provider(GrammarProvider(None))
    host.load()
    ok, out = host.mods["m"].call(host.mods["m"].public.result)
    ok_small, ok_big, err = out.split("|", 2)
    assert ok and (ok_small, ok_big) == ("true", "false")
    assert "the GBNF text is" in err and "the limit is 64" in err
    # the same mod under the default tree builds the bigger grammar
    host2, _ = make_host(load=False, mods={"m": source})
    host2.add_provider(GrammarProvider(None))
    host2.load()
    ok, out = host2.mods["m"].call(host2.mods["m"].public.result)
    assert ok and out.startswith("true|true|"), out


def test_a_mod_meets_the_runtime_and_ui_limits_its_host_was_given(make_host):
    from test_imgui_bindings import PNG

    source = """
        local a = sqlite3.open_memory()
        local b = sqlite3.open_memory()
        local okc, c, cerr = pcall(sqlite3.open_memory)
        c = okc and c ~= nil and "opened" or tostring(cerr or c)
        local ok_db = pcall(function() return a:exec("SELECT 1; " .. string.rep(" ", 200)) end)
        local t1 = ImGui.LoadTexture("pic.png")
        local t2, terr = ImGui.LoadTexture("pic.png")
        return { result = function()
          return tostring(b ~= nil) .. "|" .. tostring(c) .. "|" .. tostring(ok_db) .. "|"
                 .. tostring(t1 ~= nil) .. "|" .. tostring(t2) .. "|" .. tostring(terr)
        end }
    """
    small = replace(DEFAULT_LIMITS, db_max_databases=2, db_max_sql_bytes=100,
                    ui=replace(DEFAULT_LIMITS.ui, max_textures=1))
    results = {}
    for name, limits in (("small", small), ("default", None)):
        host, _ = make_host(load=False, mods={name: source}, limits=limits)
        (host.mods_dir / name / "pic.png").write_bytes(PNG)
        host.load()
        ok, out = host.mods[name].call(host.mods[name].public.result)
        assert ok, out
        results[name] = out.split("|", 5)
    # two databases open: the third is refused
    assert results["small"][0] == "true" and "at most 2 open databases" in results["small"][1], results
    assert results["small"][2:5] == ["false", "true", "nil"], results
    assert "more than 1 textures" in results["small"][5]
    assert results["default"][:4] == ["true", "opened", "true", "true"], results
    assert results["default"][4] != "nil", results


def test_tool_sets_check_the_tool_limits_they_are_given():
    from host.engine.tools import ToolError, ToolSet, tool_result_message
    from host.limits import ToolLimits

    two = {"a": {"description": "x"}, "b": {"description": "y"}}
    ToolSet(two, lambda s: s)
    with pytest.raises(ToolError, match="at most 1 tools"):
        ToolSet(two, lambda s: s, limits=ToolLimits(max_tools=1))
    with pytest.raises(ToolError, match="at most 3 characters"):
        ToolSet({"a": {"description": "long"}}, lambda s: s, limits=ToolLimits(max_description_chars=3))
    made = []
    ToolSet({"a": {}}, lambda s: made.append(s) or s, limits=ToolLimits(max_say_chars=7))
    assert made[0]["properties"]["say"]["maxLength"] == 7
    assert len(tool_result_message("t", "x" * 500, 50)["content"]) < 100


def test_the_config_files_limits_reach_the_llm_module_and_the_worker(tmp_path, prepared):
    """[limits.llm] in the player's file: max_tokens and max_pending as a mod meets them (real model)."""
    import host as relic
    from modhost_util import Console, run_until, write_mod

    f = tmp_path / "relic.toml"
    f.write_text("rag = false\n[limits.llm]\nmax_tokens = 8\nmax_pending = 1\n")
    mods = tmp_path / "mods"
    write_mod(mods, "m", """
        local ok, err = pcall(function() return llm.generate{ prompt = "Hi", max_tokens = 9 } end)
        print("cap", ok, err)
        llm.generate{ prompt = "Hi", max_tokens = 8, on_done = function(r) print("first", r.finish_reason) end }
        llm.generate{ prompt = "Hi", max_tokens = 4,
                      on_done = function(r) print("second", r.finish_reason, r.error_type) end }
    """)
    config = relic.Config.load(args={"model": str(prepared.model), "mods_dir": str(mods)}, file=f)
    assert config.worker_config().max_pending_per_mod == 1
    console = Console()
    host = relic.create_host(config, prepared, console=console)
    try:
        host.load()
        run_until(host, lambda: sum(l.startswith(("first", "second")) for l in console.mod_lines("m")) == 2, 120)
    finally:
        host.shutdown()
    lines = {l.split("\t")[0]: l.split("\t")[1:] for l in console.mod_lines("m")}
    assert lines["cap"][0] == "false" and "max_tokens must be an integer from 1 to 8" in lines["cap"][1], lines
    assert lines["first"][0] in ("stop", "length"), lines
    assert lines["second"][:2] == ["error", "queue_full"], lines


PERSONA_LIMITS = """
  local many = {}
  for i = 1, 33 do many[i] = "word" .. i end
  local examples = {}
  for i = 1, 9 do examples[i] = { "Hello " .. i, "Welcome." } end
  local ok_f, err_f = pcall(function() return llm.persona{ name = "Maren", voice = "a keeper", forbid = many } end)
  local ok_e, err_e = pcall(function() return llm.persona{ name = "Maren", voice = "a keeper", examples = examples } end)
  print("forbid", ok_f, ok_f or err_f)
  print("examples", ok_e, ok_e or err_e)
"""


def test_a_persona_meets_the_persona_limits_its_host_was_given(llm_host):
    _, console = llm_host({"p": PERSONA_LIMITS})
    lines = {l.split("\t")[0]: l.split("\t")[1:] for l in console.mod_lines("p")}
    assert lines["forbid"][0] == "false" and "at most 32 phrases" in lines["forbid"][1], lines
    assert lines["examples"][0] == "false" and "at most 8" in lines["examples"][1], lines
    roomy = replace(DEFAULT_LIMITS, persona=replace(DEFAULT_LIMITS.persona, max_forbid=40, max_examples=9))
    _, console = llm_host({"q": PERSONA_LIMITS}, limits=roomy)
    lines = {l.split("\t")[0]: l.split("\t")[1:] for l in console.mod_lines("q")}
    assert lines["forbid"][0] == "true" and lines["examples"][0] == "true", lines
