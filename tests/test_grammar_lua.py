"""The Lua `grammar` module with llm calls, through the real host, worker and model."""

from __future__ import annotations

import json
import time

import pytest

from modhost_util import run_until


def out(console, mod, prefix):
    return [l[len(prefix):] for l in console.mod_lines(mod) if l.startswith(prefix)]


def test_schema_results_carry_a_decoded_value(llm_host):
    host, console = llm_host({"npc": """
        local line = grammar.schema{
          type = "object",
          properties = {
            speaker = { type = "string", enum = { "Ada", "Bo" } },
            line = { type = "string", maxLength = 60 },
            mood = { type = "string", enum = { "calm", "angry", "happy" } },
          },
          required = { "speaker", "line", "mood" },
          additionalProperties = false,
        }
        local deltas = {}
        llm.chat{ messages = { {role = "user", content = "Ada greets Bo at the market. Reply as JSON."} },
          grammar = line, max_tokens = 80, temperature = 0.7, seed = 4,
          on_token = function(t) deltas[#deltas + 1] = t end,
          on_done = function(r)
            print("raw " .. (r.text:gsub("\\n", " ")))  -- one console line (JSON whitespace)
            print("streamed " .. tostring(table.concat(deltas) == r.text))
            print("value " .. tostring(r.value and r.value.speaker) .. " " .. tostring(r.value and r.value.mood))
            print("error " .. tostring(r.error))
          end }
    """})
    run_until(host, lambda: out(console, "npc", "error "))
    value = json.loads(out(console, "npc", "raw ")[0])
    assert set(value) == {"speaker", "line", "mood"}
    assert out(console, "npc", "streamed ") == ["true"]
    assert out(console, "npc", "value ") == [f"{value['speaker']} {value['mood']}"]
    assert out(console, "npc", "error ") == ["nil"]


def test_choice_and_gbnf_constrain_output(llm_host):
    host, console = llm_host({"picker": """
        local act = grammar.choice{ "attack", "flee", "trade" }
        local yes = grammar.gbnf('root ::= "yes" | "no"')
        llm.generate{ prompt = "The merchant should", grammar = act, max_tokens = 8,
          on_done = function(r) print("act " .. r.text) end }
        llm.generate{ prompt = "Is the sea wet?", grammar = yes, max_tokens = 4, stop = { "s" },
          on_done = function(r) print("yn " .. r.text .. "|" .. r.finish_reason) end }
    """})
    run_until(host, lambda: out(console, "picker", "act ") and out(console, "picker", "yn "))
    assert out(console, "picker", "act ")[0] in ("attack", "flee", "trade")
    yn = out(console, "picker", "yn ")[0]
    assert yn in ("no|stop", "ye|stop"), yn  # the stop string cuts "yes" and is never emitted


def test_invalid_grammars_are_lua_errors_naming_the_problem(llm_host):
    host, console = llm_host({"broken": """
        local function try(f) local ok, e = pcall(f); print("err " .. tostring(e)) end
        try(function() grammar.gbnf('root ::= "a" undefined-rule') end)
        try(function() grammar.gbnf('root ::= ("a" | "b"') end)
        try(function() grammar.schema{ type = "object", properties = { x = { type = "string", format = "email" } } } end)
        try(function() grammar.schema{ type = "fish" } end)
        try(function() grammar.choice{} end)
        try(function() llm.generate{ prompt = "x", grammar = { __relic_grammar = 999 } } end)
        try(function() llm.generate{ prompt = "x", schema = 5 } end)
        print("alive")
    """})
    errs = out(console, "broken", "err ")
    assert len(errs) == 7, errs
    assert "undefined-rule" in errs[0]
    assert "format" in errs[2]
    assert "fish" in errs[3]
    assert out(console, "broken", "alive") == [""]
    assert host.mods["broken"].state == "loaded"


def test_a_mod_cannot_use_another_mods_grammar(llm_host):
    host, console = llm_host({
        "owner": "g = grammar.choice{ 'a', 'b' }; print('id ' .. g.__relic_grammar)",
        "thief": """
            local ok, e = pcall(function() llm.generate{ prompt = "x", grammar = { __relic_grammar = 1, kind = "choice" } } end)
            print("stolen " .. tostring(ok))
        """})
    # the thief's registry is its own: id 1 does not exist there
    assert out(console, "thief", "stolen ") == ["false"]
