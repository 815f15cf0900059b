"""Synchronous mod API calls are bounded, and bad grammars get clear errors.

`grammar.gbnf` with 60,000 alternatives froze the frame 7.5 s, `grammar.choice`
with 100,000 options 26 s; nesting 200 parentheses or a 3,000-rule chain gave
"internal host error: RecursionError" and `{ ["$ref"] = "#" }` a rule name the
modder never wrote.  Each attack runs from a real mod next to a well-behaved
mod that builds a small grammar every frame.
"""

from __future__ import annotations

import time

from modhost_util import frames, make_host, mods_dir, read_log  # noqa: F401

from host.api.grammar import GrammarProvider
from host.runtime.grants import Grant

GOOD = """
    made = 0
    registerForEvent("onUpdate", function()
      local g = grammar.choice { "yes", "no" }
      if g.kind == "choice" then made = made + 1 end
    end)
    return { made = function() return made end }
"""

ATTACKS = {
    "alternatives_60k": 'grammar.gbnf("root ::= " .. big_alts(60000))',
    "choice_100k": "grammar.choice(options(100000))",
    "choice_huge_option": 'grammar.choice { string.rep("x", 100000) }',
    "parens_200": 'grammar.gbnf("root ::= " .. string.rep("(", 200) .. "\\"a\\"" .. string.rep(")", 200))',
    "rule_chain_3000": "grammar.gbnf(chain(3000))",
    "left_chain_600": "grammar.gbnf(left_chain(600))",
    "stacked_repeats": 'grammar.gbnf("root ::= \\"a\\"" .. string.rep("*", 50))',
    "ref_self": 'grammar.schema { ["$ref"] = "#" }',
    "ref_cycle": 'grammar.schema { ["$ref"] = "#/$defs/a", ["$defs"] = { a = { ["$ref"] = "#/$defs/b" }, '
                 'b = { ["$ref"] = "#/$defs/a" } } }',
    "ref_union_self": 'grammar.schema { anyOf = { { ["$ref"] = "#" }, { type = "null" } } }',
    "deep_schema": "grammar.schema(deep_schema(30))",
    "lazy_many_words": "grammar.lazy(grammar.choice { 'a' }, { words = options(1000) })",
    "schema_as_schema_option": "grammar.schema { type = 'object', properties = options(3000) }",
}

EXPECT = {
    "alternatives_60k": "GBNF text is",
    "choice_100k": "the choice list is 100000 options; the limit is",
    "choice_huge_option": "the choice options together is 100000 bytes",
    "parens_200": "parentheses nested more than 64 deep",
    "rule_chain_3000": "GBNF text is",
    "left_chain_600": "left recursion: r0 -> r1 -> r2 -> r3 -> ...",
    "stacked_repeats": "repetition operators in a row",
    "ref_self": "$ref '#' leads back to itself",
    "ref_cycle": "leads back to itself (#/$defs/a -> #/$defs/b -> #/$defs/a)",
    "ref_union_self": "$ref '#' leads back to itself",
    "deep_schema": "",   # accepted or refused by size, never an internal error
    "lazy_many_words": "the trigger list is 1000 triggers",
    "schema_as_schema_option": "",
}

HELPERS = """
    function big_alts(n) local t = {} for i = 1, n do t[i] = '"o' .. i .. '"' end return table.concat(t, " | ") end
    function options(n) local t = {} for i = 1, n do t[i] = "o" .. i end return t end
    function chain(n)
      local t = { "root ::= r0" }
      for i = 0, n - 1 do t[#t + 1] = "r" .. i .. ' ::= "a" r' .. (i + 1) end
      t[#t + 1] = "r" .. n .. ' ::= "z"'
      return table.concat(t, "\\n")
    end
    function left_chain(n)
      local t = { "root ::= r0" }
      for i = 0, n - 1 do t[#t + 1] = "r" .. i .. " ::= r" .. (i + 1) end
      t[#t + 1] = "r" .. n .. " ::= r0"
      return table.concat(t, "\\n")
    end
    function deep_schema(n)
      local s = { type = "string" }
      for i = 1, n do s = { type = "object", properties = { x = s }, required = { "x" } } end
      return s
    end
"""


def attacker_source() -> str:
    calls = "\n".join(
        f"""  do
    local t0 = os.clock()
    local ok, err = pcall(function() local g = {expr} return g end)
    results[#results + 1] = {{ name = {name!r}, ok = ok, err = tostring(err), ms = (os.clock() - t0) * 1000 }}
  end""" for name, expr in ATTACKS.items())
    return HELPERS + "results = {}\nregisterForEvent('onUpdate', function()\n  if #results > 0 then return end\n" \
        + calls + "\nend)\nreturn { results = function() return results end }\n"


def grammar_host(make_host, mods, tomls=None, grants=None):
    host, console = make_host(load=False, mods=mods, tomls=tomls, grants=grants)
    host.add_provider(GrammarProvider(None))   # checks need no model: llama.cpp's parse runs on the worker
    host.load()
    return host, console


def test_every_grammar_attack_gets_a_clear_error_quickly(make_host):
    host, console = grammar_host(make_host, {"attacker": attacker_source(), "good": GOOD},
                                 tomls={"attacker": "budget_ms = 10000\n"},
                                 grants={"attacker": Grant(budget_ms=10000)})
    worst = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        frames(host, 1)
        worst = max(worst, time.perf_counter() - t0)
    attacker, good = host.mods["attacker"], host.mods["good"]
    assert attacker.state == "loaded", attacker.reason
    ok, results = attacker.call(attacker.public.results)
    got = {r["name"]: r for r in host.mods["attacker"].from_lua(results)}
    assert set(got) == set(ATTACKS)
    for name, want in EXPECT.items():
        r = got[name]
        assert "internal host error" not in r["err"] and "RecursionError" not in r["err"], (name, r)
        if want:
            assert not r["ok"] and want in r["err"], (name, r)
        if not r["ok"]:   # at the modder's line, not inside the host's grammar.lua
            assert r["err"].startswith("mods/attacker/init.lua:"), (name, r)
    ok, made = good.call(good.public.made)
    assert ok and made == 3
    # generous "did not hang" bound; bench/hostile.py measures the real frame times
    assert worst < 10, worst


def test_grammar_work_stops_at_the_mods_budget(make_host):
    """A grammar under the size caps but too slow for a 5 ms budget: the check stops at the deadline."""
    alts = " | ".join(f'"w{i}"' for i in range(1000))
    host, console = grammar_host(make_host, {"attacker": f"""
        registerForEvent("onUpdate", function()
          for i = 1, 100 do grammar.gbnf('root ::= {alts}') end
        end)
    """, "good": GOOD}, tomls={"attacker": "budget_ms = 5\n"})
    assert len(alts) < host.limits.grammar.max_gbnf_bytes
    t0 = time.perf_counter()
    frames(host, 1)
    first = time.perf_counter() - t0
    frames(host, 4)
    attacker = host.mods["attacker"]
    assert attacker.state == "quarantined" and "budget" in attacker.reason
    # either the grammar check saw its deadline first or the watchdog did: both stop it at the budget
    log_text = read_log(host, "attacker")
    assert ("too large to check within the time left" in log_text
            or "ran past its 5 ms budget" in log_text), log_text
    good = host.mods["good"]
    ok, made = good.call(good.public.made)
    assert ok and made == 5
    assert first < 5, first   # 100 grammars of ~20 ms each would take 2 s without the deadline
