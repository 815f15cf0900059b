"""Python -> Lua conversions check room for their real size first.

`llm.tokenize` of a multi-MiB string used to build a Lua table of millions of
entries after checking room for 64 bytes; the table outgrew the mod's cap
inside lupa's unprotected table building and the process froze (or aborted:
"PANIC: unprotected error in call to Lua API").  Now `to_lua` measures the
whole value first and refuses it with a QuotaExceeded naming the sizes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from modhost_util import frames, make_host, mods_dir, read_log  # noqa: F401

from host.errors import QuotaExceeded
from host.runtime.convert import lua_cost, to_lua
from host.runtime.sandbox import MemoryGate, new_runtime
from host.runtime.grants import Grant

LUPA_LEVEL = textwrap.dedent("""
    from host.runtime.convert import to_lua
    from host.runtime.sandbox import MemoryGate, new_runtime
    rt = new_runtime(8)
    gate = MemoryGate(lambda: rt, 8)
    big = list(range(6_000_000))          # ~48-96 MB as a Lua table: past cap + headroom
    try:
        to_lua(rt, {"tokens": big}, room=gate.room)
        print("BUILT")
    except Exception as e:
        print(type(e).__name__, e)
    t = to_lua(rt, list(range(50_000)), room=gate.room)   # what fits still converts
    print("ok", len(t))
""")


def test_lupa_level_table_past_the_cap_is_refused_not_a_crash():
    """Regression at the lupa level: before the fix this process aborted (PANIC) or hung."""
    p = subprocess.run([sys.executable, "-c", LUPA_LEVEL], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("QuotaExceeded") and "memory cap" in lines[0], p.stdout
    assert lines[1] == "ok 50000"


def test_cost_is_an_upper_bound_of_what_lupa_allocates():
    rt = new_runtime(256)
    samples = [list(range(100_000)), {f"k{i}": i for i in range(50_000)},
               ["x" * 100 for _ in range(20_000)], {"nested": [{"a": "é" * 50}] * 5_000}]
    for value in samples:
        before = rt.get_memory_used()
        keep = to_lua(rt, value)
        used = rt.get_memory_used() - before
        assert used <= lua_cost(value), (type(value).__name__, used, lua_cost(value))
        del keep


def test_room_is_checked_against_the_whole_value():
    rt = new_runtime(4)
    gate = MemoryGate(lambda: rt, 4)
    with pytest.raises(QuotaExceeded, match="memory cap"):
        to_lua(rt, [[0] * 1000 for _ in range(1000)], room=gate.room)
    with pytest.raises(QuotaExceeded, match="memory cap"):
        to_lua(rt, "é" * (2 * 1024 * 1024), room=gate.room)


GOOD = """
    n = 0
    registerForEvent("onUpdate", function() n = n + #string.rep("ab", 10) end)
    return { n = function() return n end }
"""

ATTACKER = """
    results = {}
    registerForEvent("onUpdate", function()
      local ok, err = pcall(bigdata.list, 1000000)
      results[#results + 1] = tostring(ok) .. " " .. tostring(err)
      local ok2, t = pcall(bigdata.list, 1000)
      results[#results + 1] = tostring(ok2) .. " " .. tostring(ok2 and #t)
      local ok3, s = pcall(bigdata.text, 20 * 1024 * 1024)
      results[#results + 1] = tostring(ok3) .. " " .. tostring(ok3 and #s or s)
    end)
    return { results = function() return table.concat(results, "\\n") end }
"""


class BigData:
    """A provider whose host functions return as much data as a mod asks for."""

    def install(self, mod):
        mod.expose("bigdata", {"list": lambda n: list(range(int(n))),
                               "text": lambda n: "z" * int(n)})


def test_host_function_results_past_the_cap_fail_cleanly_in_the_mod(make_host):
    host, console = make_host(load=False, mods={"attacker": ATTACKER, "good": GOOD},
                              tomls={"attacker": 'memory_mb = 4\nbudget_ms = 5000\n'},
                              grants={"attacker": Grant(budget_ms=5000)})
    host.add_provider(BigData())
    host.load()
    frames(host, 3)
    attacker, good = host.mods["attacker"], host.mods["good"]
    assert attacker.state == "loaded", attacker.reason
    ok, text = attacker.call(attacker.public.results)
    lines = text.split("\n")
    assert len(lines) == 9
    assert lines[0].startswith("false ") and "too large for the mod's memory cap" in lines[0]
    assert lines[1] == "true 1000"
    assert lines[2].startswith("false ") and "memory cap" in lines[2]
    ok, n = good.call(good.public.n)
    assert ok and n == 60


def test_llm_tokenize_past_the_cap_is_a_clear_error_from_a_mod(llm_host):
    """The first case found: llm.tokenize's token list would not fit under a 4 MiB cap."""
    host, console = llm_host({"attacker": """
        local done = false
        registerForEvent("onUpdate", function()
          if done then return end
          done = true
          local text = string.rep("a ", 200000)     -- 400 KB, ~200,000 tokens: > 3 MiB as a Lua table
          local ok, err = pcall(llm.tokenize, text)
          print(ok, err)
          local ok2, ids = pcall(llm.tokenize, "hello there")
          print(ok2, type(ids) == "table" and #ids > 0)
        end)
    """, "good": GOOD}, tomls={"attacker": "memory_mb = 4\nbudget_ms = 5000\n"},
       grants={"attacker": Grant(budget_ms=5000)})
    frames(host, 3)
    lines = console.mod_lines("attacker")
    assert len(lines) == 2, console.text
    assert lines[0].startswith("false\t"), lines
    assert "memory cap" in lines[0] or "limit" in lines[0], lines
    assert lines[1] == "true\ttrue"
    assert host.mods["attacker"].state == "loaded"
    good = host.mods["good"]
    ok, n = good.call(good.public.n)
    assert ok and n == 60
