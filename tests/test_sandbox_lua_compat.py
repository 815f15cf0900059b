"""The sandbox runs Lua as LuaJIT does: fixed differences, each checked against plain LuaJIT.

Every test runs the same code in a sandboxed mod, a trusted mod and a bare
LuaJIT runtime (tests/lua_diff_util.py) and compares what it printed.
"""

from __future__ import annotations

import textwrap

import pytest

from lua_diff_util import run_mod, run_plain
from modhost_util import make_host, mods_dir  # noqa: F401

MODES = ["sandboxed", "trusted"]


def same_everywhere(make_host, mods_dir, src, files=None, name="m"):
    """Run src three ways; assert the sandboxed and trusted output equal LuaJIT's; return it."""
    folder = mods_dir.parent / "plain"
    folder.mkdir(exist_ok=True)
    for rel, content in (files or {}).items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    code = src if isinstance(src, bytes) else textwrap.dedent(src).encode()
    plain = run_plain(code, folder, chunkname=f"@mods/{name}/init.lua")
    for mode in MODES:
        mid = f"{name}_{mode[0]}"
        got = run_mod(make_host, mods_dir, mid, code.replace(f"mods/{name}/".encode(), f"mods/{mid}/".encode()),
                      trusted=(mode == "trusted"), files=files)
        want = [l.replace(f"mods/{name}/", f"mods/{mid}/") for l in plain]
        assert got == want, (mode, got, want)
    return plain


# -- chunk headers ----------------------------------------------------------------------------

HEADERS = [b"#!/usr/bin/env luajit\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf#!/bin/lua -e x\r\n", b"# comment line\n"]


@pytest.mark.parametrize("header", HEADERS, ids=["shebang", "bom", "bom+shebang-crlf", "hash-line"])
def test_a_shebang_line_or_bom_is_skipped_in_init_require_dofile_and_load(make_host, mods_dir, header):
    """A first line starting with '#' and a UTF-8 BOM are skipped as LuaJIT skips them (they
    used to fail the rewrite with "unexpected symbol near '#'", and the BOM became part of the
    first identifier), in init.lua, required modules, dofile and load/loadstring, with line
    numbers unchanged."""
    body = (b"x = 1\n"
            b"local m = require('lib')\n"
            b"print(x, m.v, dofile('other.lua'))\n"
            b"print(pcall(error, 'at line 4'))\n"
            b"print(select(2, pcall(function() error('here') end)))\n"
            b"local h = " + repr(header.decode("latin-1")).encode("latin-1") + b"\n")
    src = header + body + (
        b"for _, s in ipairs { h .. 'return 7', h .. 'y = ', h .. '\\n\\nerror(\"line 3\")' } do\n"
        b"  local f, err = loadstring(s)\n"
        b"  if f then print(pcall(f)) else print(f, err) end\n"
        b"  f, err = load(s, '=chunk')\n"
        b"  if f then print(pcall(f)) else print(f, err) end\n"
        b"end\n")
    files = {"lib.lua": header + b"local t = {}\nt.v = 'lib'\nreturn t\n",
             "other.lua": header + b"return 'other'\n"}
    out = same_everywhere(make_host, mods_dir, src, files)
    assert out[0] == "1\tlib\tother"
    assert out[2].startswith("mods/m/init.lua:5: here".replace("5", str(5 + header.count(b"\n"))))
    assert out[3] == "true\t7" and out[4] == "true\t7"


def test_a_bom_is_not_part_of_the_first_identifier(make_host, mods_dir):
    out = same_everywhere(make_host, mods_dir, "\ufeffabc = 5 print(abc, rawget(_G, '\\239\\187\\191abc'))")
    assert out == ["5\tnil"]


def test_a_hash_not_on_the_first_line_is_still_a_syntax_error(make_host, mods_dir):
    out = same_everywhere(make_host, mods_dir, "print(load('\\n#!x'))\nprint(load('  #!x'))")
    assert all(l.startswith("nil\t") for l in out), out


# -- upvalues ---------------------------------------------------------------------------------

def _upvalue_source(n: int) -> str:
    names = [f"u{i}" for i in range(n)]
    return "local " + ", ".join(names) + " = " + ", ".join(str(i) for i in range(n)) + "\n"


def test_functions_at_luajits_upvalue_limit_still_load(make_host, mods_dir):
    """A function using 60 upvalues (LuaJIT's limit) failed to load once the rewrite added
    its own; functions nested in it and functions that reach the limit through a nested
    function load too."""
    names = [f"u{i}" for i in range(60)]
    src = (_upvalue_source(60)
           + "local function sum()\n  local s = 0\n  for _ = 1, 2 do s = s + " + " + ".join(names) + " end\n"
           + "  local function inner() local t = 0 for i = 1, 3 do t = t + i end return t end\n"
           + "  return s, inner()\nend\n"
           + "local function outer()\n  return function() return " + " + ".join(names[:59]) + " end, "
           + "function() return u59 end\nend\n"
           + "local a, b = outer()\n"
           + "print(sum())\nprint(a() + b())\n"
           + "print(load(" + repr(_upvalue_source(60) + "return function() return " + " + ".join(names) + " end") + ")()())\n"
           )
    out = same_everywhere(make_host, mods_dir, src)
    assert out[:3] == [f"{2 * sum(range(60))}\t6", str(sum(range(60))), str(sum(range(60)))]


def test_a_runaway_loop_in_a_function_at_the_upvalue_limit_is_still_stopped(make_host, mods_dir):
    names = [f"u{i}" for i in range(60)]
    src = (_upvalue_source(60)
           + "registerForEvent('onUpdate', function()\n  local s = " + " + ".join(names) + "\n"
           + "  while true do s = s + 1 end\nend)\n"
           # the function ticks through the boolean metatable (all a mod can get there is the tick)
           + "print(type((true)['__relic' .. '_wd']), pcall(function() return (true).x end))\n")
    host, console = make_host({"runaway": src, "bystander": "registerForEvent('onUpdate', function() n = (n or 0) + 1 end)"})
    assert host.mods["runaway"].state == "loaded"
    assert console.mod_lines("runaway") == ["function\tfalse\tmods/runaway/init.lua:6: attempt to index a boolean value"]
    host.update(0.01)
    assert host.mods["runaway"].state == "quarantined"
    assert "watchdog" in host.mods["runaway"].reason   # the budget or, on a loaded machine, the ceiling
    host.update(0.01)
    assert host.mods["bystander"].state == "loaded"


# -- rawlen, isyieldable ----------------------------------------------------------------------

def test_rawlen_ignores_len_metamethods(make_host, mods_dir):
    """rawlen honoured __len in the sandbox."""
    src = """
        local t = setmetatable({ 1, 2, 3 }, { __len = function() return 99 end })
        print(rawlen(t), rawlen("abcd"), rawlen({}), (pcall(rawlen, 5)))
        local s = setmetatable({}, { __len = function() return 7 end, __index = function() return 1 end })
        print(rawlen(s))
    """
    host, console = make_host({"r": src})
    assert console.mod_lines("r") == ["3\t4\t0\tfalse", "0"]


def test_coroutine_isyieldable(make_host, mods_dir):
    out = same_everywhere(make_host, mods_dir, """
print(coroutine.isyieldable())
print(coroutine.wrap(function() return coroutine.isyieldable() end)())
print(coroutine.resume(coroutine.create(function() return coroutine.isyieldable() end)))""")
    assert out == ["false", "true", "true\ttrue"]


# -- load, loadstring, error positions --------------------------------------------------------

def test_load_and_loadstring_name_chunks_as_luajit_does(make_host, mods_dir):
    """Errors of load/loadstring chunks read (loadstring):1: / cfg:1: instead of LuaJIT's
    [string "..."]:1: names."""
    out = same_everywhere(make_host, mods_dir, r"""
print(loadstring("x ="))
print(load("x =", "cfg"))
print(load("x =", "=cfg"))
print(load("x =", "@cfg.lua"))
print(pcall(loadstring("local a = 1\nerror('boom')")))
print(pcall(load("error('boom')", "a very long chunk name that goes on and on and on for more than sixty characters")))
print(pcall(load("error('boom')", "@" .. string.rep("d/", 40) .. "x.lua")))
local parts = { "return ", "1 +", " 2" }
local i = 0
print(load(function() i = i + 1 return parts[i] end)())
local once = false
print(load(function() if once then return nil end once = true return "x =" end))""")
    assert out[0] == 'nil\t[string "x ="]:1: unexpected symbol near \'<eof>\''
    assert out[1].startswith('nil\t[string "cfg"]:1:') and out[2].startswith("nil\tcfg:1:")
    assert out[7] == "3"


def test_an_error_inside_a_load_reader_makes_load_return_nil_and_the_message(make_host, mods_dir):
    out = same_everywhere(make_host, mods_dir, """
print(load(function() error("reader broke") end))
print(load(function() error({}) end) == nil)
local n = 0
print(load(function() n = n + 1 if n == 1 then return {} end end))""")
    assert out[0] == "nil\tmods/m/init.lua:2: reader broke"
    assert out[2] == "nil\tmods/m/init.lua:5: reader function must return a string"


def test_error_levels_never_show_a_host_file(make_host, mods_dir):
    """pcall(error, "m", 2) showed relic/sandbox.lua:NNN:; the same for levels that reach past
    a pcall, xpcall or coroutine, and for C functions the sandbox wraps."""
    src = """
local function h(level) error("m", level) end
print(pcall(error, "m", 2))
print(pcall(error, "m", 1))
print(pcall(h, 2))
print(pcall(h, 3))
print(xpcall(h, function(e) return "handled: " .. e end, 3))
print(coroutine.resume(coroutine.create(h), 2))
print(pcall(function() table.concat({ {} }) end))
print(pcall(function() table.insert(nil, 1) end))
print(pcall(function() local s = ("x"):rep(-1, 5) return #s end))
"""
    out = same_everywhere(make_host, mods_dir, src)
    assert out[0] == "false\tmods/m/init.lua:3: m" and out[3] == "false\tmods/m/init.lua:6: m"
    # where the wrapper changes the function's name in the message, the position still is the mod's
    host, console = make_host({"w": "print(pcall(function() string.rep() end))"})
    (line,) = console.mod_lines("w")
    assert line.startswith("false\tmods/w/init.lua:1: bad argument #1 to "), line


# -- io.stdout, io.flush ----------------------------------------------------------------------

def test_io_stdout_and_io_flush_write_to_the_mods_log(make_host, mods_dir):
    """io.stdout and io.flush were missing (CET mods write to io.stdout); io.stdout writes go to
    the mod's log, one line per line."""
    host, console = make_host({"o": r"""
        io.stdout:write("a", 1, "\n")
        io.stdout:write("two\nlines\n")
        io.write("partial ") io.write("line\n")
        print(io.flush(), io.type(io.stdout), io.stdout:flush(), io.stdout == io.output(), io.stderr ~= nil)
        print(io.stdout:close())
    """})
    assert console.mod_lines("o") == ["a1", "two", "lines", "partial line", "true\tfile\ttrue\ttrue\ttrue",
                                      "nil\tcannot close standard file"]


# -- trusted mods -----------------------------------------------------------------------------

def test_code_a_trusted_mod_loads_runs_in_its_own_globals(make_host, mods_dir):
    """In trusted mods, require/load/loadstring/dofile ran code in the runtime's raw globals: it
    could not see registerForEvent or the mod's globals, printed to stdout and opened files
    relative to the process directory; `table` was read-only there too."""
    from host.runtime.grants import Grant
    from modhost_util import write_mod

    write_mod(mods_dir, "t", """
        MINE = "mod global"
        table.unpack = table.unpack or unpack
        function string:shout() return self:upper() .. "!" end
        local helper = require("helper")
        print(helper.seen, helper.can_register)
        print(load("return MINE, type(registerForEvent)")())
        print(loadstring("return MINE")())
        print(dofile("sub/other.lua"))
        print(io.open("data.txt"):read("*a"), (io.lines("data.txt")()))
        print(("hi"):shout(), table.unpack({ 1, 2 }))
        print(require("missing_module"))
    """, files={
        "helper.lua": "print('helper prints') return { seen = MINE, can_register = type(registerForEvent) }",
        "sub/other.lua": "return 'other sees ' .. MINE",
        "data.txt": "file in the mod folder",
    })
    host, console = make_host(grants={"t": Grant(trusted=True)})
    assert host.mods["t"].trusted and host.mods["t"].state == "loaded", host.mods["t"].reason
    lines = console.mod_lines("t")
    assert lines[:6] == ["helper prints", "mod global\tfunction", "mod global\tfunction", "mod global",
                         "other sees mod global", "file in the mod folder\tfile in the mod folder"]
    assert lines[6] == "HI!\t1\t2"
    assert lines[7].startswith("nil\tmodule 'missing_module' not found")
