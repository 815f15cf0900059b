"""The interruptible Lua pattern matcher (host/runtime/patterns.lua) must agree
with LuaJIT's C matcher, since the sandbox silently picks one or the other."""

from __future__ import annotations

import pytest
from lupa import luajit21 as lupa

from host.runtime.sandbox import _prelude

from modhost_util import frames, make_host, mods_dir  # noqa: F401

COMPARE = r"""
local G, seed, rounds = ...
math.randomseed(seed)
local rand = math.random
local atoms = { "a", "b", "c", ".", "%a", "%d", "%s", "%w", "[ab]", "[^a]", "[a-c]",
                "[%a%d]", "%(", "%%", "x", " ", "1" }
local quants = { "", "", "", "*", "+", "-", "?" }
local function pattern()
  local parts, open = {}, 0
  if rand() < 0.2 then parts[#parts + 1] = "^" end
  for _ = 1, rand(1, 6) do
    local r = rand()
    if r < 0.08 then parts[#parts + 1] = "(" open = open + 1
    elseif r < 0.14 and open > 0 then parts[#parts + 1] = ")" open = open - 1
    elseif r < 0.17 then parts[#parts + 1] = "()"
    elseif r < 0.20 then parts[#parts + 1] = "%b()"
    elseif r < 0.23 then parts[#parts + 1] = "%f[%a]"
    elseif r < 0.25 then parts[#parts + 1] = "%1"
    else parts[#parts + 1] = atoms[rand(#atoms)] .. quants[rand(#quants)] end
  end
  while open > 0 and rand() < 0.9 do parts[#parts + 1] = ")" open = open - 1 end
  if rand() < 0.15 then parts[#parts + 1] = "$" end
  return table.concat(parts)
end
local alphabet = { "a", "a", "b", "c", " ", "(", ")", "1", "x", "\n" }
local function subject()
  local t = {}
  for i = 1, rand(0, 14) do t[i] = alphabet[rand(#alphabet)] end
  return table.concat(t)
end
local function pack(...) return { n = select("#", ...), ... } end
local function same(a, b)
  if a[1] ~= b[1] then return false end
  if not a[1] then return true end          -- both raised (messages may differ)
  if a.n ~= b.n then return false end
  for i = 1, a.n do if a[i] ~= b[i] then return false end end
  return true
end
local function show(r)
  local out = {}
  for i = 1, r.n do out[i] = tostring(r[i]) end
  return table.concat(out, ",")
end
local function gm(f, s, p)
  local out = {}
  local ok, err = pcall(function()
    for a, b in f(s, p) do
      out[#out + 1] = tostring(a) .. "|" .. tostring(b)
      if #out > 100 then break end
    end
  end)
  if not ok then return { false, n = 1 } end
  return { true, table.concat(out, ";"), n = 2 }
end
local checked = 0
for _ = 1, rounds do
  local s, p = subject(), pattern()
  local init = rand() < 0.3 and rand(-3, 6) or nil
  local cases = {
    { "find", pack(pcall(string.find, s, p, init)), pack(pcall(G.lua.find, s, p, init)) },
    { "match", pack(pcall(string.match, s, p, init)), pack(pcall(G.lua.match, s, p, init)) },
    { "gsub str", pack(pcall(string.gsub, s, p, "<%0%1>")), pack(pcall(G.lua.gsub, s, p, "<%0%1>")) },
    { "gsub fn", pack(pcall(string.gsub, s, p, function(a, b) return b and "F" end, 3)),
                 pack(pcall(G.lua.gsub, s, p, function(a, b) return b and "F" end, 3)) },
    { "gsub tbl", pack(pcall(string.gsub, s, p, { a = "A", [" "] = false })),
                  pack(pcall(G.lua.gsub, s, p, { a = "A", [" "] = false })) },
    { "gmatch", gm(string.gmatch, s, p), gm(G.lua.gmatch, s, p) },
  }
  for _, c in ipairs(cases) do
    if not same(c[2], c[3]) then
      return false, string.format("%s differs for s=%q p=%q init=%s: C {%s} vs Lua {%s}",
                                  c[1], s, p, tostring(init), show(c[2]), show(c[3]))
    end
    checked = checked + 1
  end
end
return true, checked
"""


def guard(cap: float = 1e7):
    rt = lupa.LuaRuntime()
    patterns = rt.globals().load(_prelude("patterns.lua"), "@relic/patterns.lua")()
    g = patterns.new(rt.table_from({"cap": cap, "raw": rt.globals().string}))
    return rt, g


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_lua_matcher_agrees_with_c(seed):
    rt, g = guard()
    ok, detail = rt.execute(COMPARE, g, seed, 1500)
    assert ok, detail
    assert detail == 1500 * 6


@pytest.mark.parametrize("s, p", [
    ("hello world", "(%w+) (%w+)"),
    ("key = value\nother=thing", "(%w+)%s*=%s*(%w+)"),
    ("  padded  ", "^%s*(.-)%s*$"),
    ("f(a(b)c) d", "%b()"),
    ("THE (quick) fox", "%f[%a]%a+"),
    ("abcabc", "(abc)%1"),
    ("x\0y", "x%zy"),
    ("a.b", "a.b"),
])
def test_lua_matcher_known_cases(s, p):
    rt, g = guard()
    c = rt.eval("function(f, s, p) return {f(s, p)} end")
    for name in ("find", "match"):
        expect = list(c(rt.globals().string[name], s, p).values())
        got = list(c(g.lua[name], s, p).values())
        assert got == expect, (name, s, p)


def test_estimate_routes_catastrophic_calls_to_lua_and_ordinary_ones_to_c():
    rt, g = guard(cap=1e7)
    cheap = g.lua.cheap
    long_a = "a" * 100_000
    text = "key = value\n" * 5000
    assert cheap(text, "(%w+)%s*=%s*(%w+)", 1, True)
    assert cheap(text, "[^\n]+", 1, True)
    assert cheap(text, "^%s*(.-)%s*$", 1, False)
    assert cheap("short", ".-.-.-.-b", 1, False)
    assert not cheap(long_a, ".-.-.-b", 1, False)
    assert not cheap(long_a, "a*a*b", 1, False)
    assert not cheap(long_a, "a*b", 1, False)          # quadratic over starts
    assert not cheap("(" * 100_000, "%b()", 1, False)
    assert cheap(long_a, "b", 1, False)


ODD_ARGS = r"""
local G = ...
local function show(...)
  local t = {}
  for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
  return table.concat(t, ",")
end
local vals = { 1.5, -1.5, 2.9, "2", " 0x2 ", "1e1", "x", {}, true, false, 0, -0.5, 2^31 - 1,
               2^31, -2^31, 2^32 + 1, 1e10, -1e10, 2^53 + 3, 2^63, -2^63, 0/0, math.huge, -math.huge }
local subjects = { "aaa", ("ab"):rep(3000) .. "a" }
local calls = {
  { "gsub", function(f, s, v) return f(s, "a", "b", v) end },
  { "gsub", function(f, s, v) return f(s, "a.-b", "<%0>", v) end },
  { "gsub", function(f, s, v) return f(s, "a", v) end },
  { "find", function(f, s, v) return f(s, "b", v) end },
  { "find", function(f, s, v) return f(s, "b", v, true) end },
  { "find", function(f, s, v) return f(s, "a.-b", v) end },
  { "find", function(f, s, v) return f(v, "1") end },
  { "match", function(f, s, v) return f(s, "(a)", v) end },
  { "match", function(f, s, v) return f(s, v) end },
  { "gmatch", function(f, s, v) return f(s, v) and "iterator" end },
}
local diffs, n = {}, 0
for _, s in ipairs(subjects) do
  for _, v in ipairs(vals) do
    for _, c in ipairs(calls) do
      -- C names the function as the caller sees it ('f' here); the wrapper by its name
      local a = show(pcall(c[2], string[c[1]], s, v)):gsub("to '[^']*'", "to '" .. c[1] .. "'")
      local b = show(pcall(c[2], G[c[1]], s, v))
      n = n + 1
      if a ~= b then
        diffs[#diffs + 1] = string.format("%s(%q..., %s): C {%s} vs wrapper {%s}", c[1], s:sub(1, 6),
                                          tostring(v), a:sub(1, 80), b:sub(1, 80))
      end
    end
  end
end
return n, table.concat(diffs, "\n")
"""


@pytest.mark.parametrize("cap", [1e7, 100])
def test_odd_arguments_are_checked_exactly_like_c(cap):
    """Gsub(s, p, r, 1.5) replaced twice in the Lua port, and
    non-number init/max were accepted on subjects large enough for the port.
    cap = 100 sends every call on the long subject to the Lua matcher."""
    rt, g = guard(cap=cap)
    n, diffs = rt.execute(ODD_ARGS, g)
    assert diffs == ""
    assert n == 2 * 24 * 10


def test_odd_arguments_from_a_mod_on_a_large_subject(make_host):
    """The same checks from a real sandboxed mod, with a call the cost estimate
    sends to the Lua matcher (a long run of 'a' before 'b'), beside a good mod."""
    host, console = make_host({"odd": """
        local s = ("a"):rep(20000) .. "bbb"
        print(s:gsub("(a*)b", "x", 1.5) == "xbb", select(2, s:gsub("(a*)b", "x", 2.9)))
        print(pcall(function() local r = s:find("(a*)b", {}) return r end))
        print(pcall(function() local r = s:gsub("(a*)b", "x", "many") return r end))
        print(pcall(function() local r = s:match("(a*)b", true) return r end))
        print(pcall(function() local r = s:gsub("(a*)b") return r end))
        local a, b = s:find("(a*)b", "2")
        print(a, b, s:match("(a*)b", " 0x4E1F "))
    """, "good": """
        registerForEvent("onUpdate", function() ticks = (ticks or 0) + 1 end)
        return { ticks = function() return ticks end }
    """})
    lines = console.mod_lines("odd")
    assert lines[0] == "true\t2"
    assert lines[1] == ("false\tmods/odd/init.lua:4: bad argument #3 to 'find' "
                        "(number expected, got table)")
    assert lines[2] == ("false\tmods/odd/init.lua:5: bad argument #4 to 'gsub' "
                        "(number expected, got string)")
    assert lines[3] == ("false\tmods/odd/init.lua:6: bad argument #3 to 'match' "
                        "(number expected, got boolean)")
    assert lines[4] == ("false\tmods/odd/init.lua:7: bad argument #3 to 'gsub' "
                        "(string/function/table expected)")
    assert lines[5] == "2\t20001\taa"
    assert host.mods["odd"].state == "loaded"
    frames(host, 2)
    good = host.mods["good"]
    assert good.call(good.public.ticks) == (True, 2)


def test_estimate_keeps_linear_patterns_over_long_text_on_c():
    """Gsub with "(%a+)," over 1 MB of text went to the Lua
    matcher (2 s instead of 54 ms in C): the per-start bound multiplied the
    longest word by every start.  Summed over the starts, a class quantifier
    followed by a disjoint item costs at most (longest run + 1) / 2 per byte."""
    rt, g = guard(cap=1.2e7)
    cheap = g.lua.cheap
    words = ["a", "to", "the", "lord", "quick", "brown", "jumped", "lazydog", "extraordinary",
             "Wonderful", "x", "mountains,", "river,", "ok"]
    text = " ".join(words[(i * 7 + i // 3) % len(words)] for i in range(200_000))[: 1 << 20]
    assert len(text) == 1 << 20
    assert cheap(text, "(%a+),", 1, False)
    assert cheap(text, "(%a+),", 1, True)
    # still quadratic where it really is: one long run, and a lazy dot before $
    letters = "abcdefghij" * 100_000
    assert not cheap(letters, "(%a+),", 1, False)
    assert not cheap(text, ".-$", 1, False)
    assert not cheap("a" * 100_000, "a*b", 1, False)
