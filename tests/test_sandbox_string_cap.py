"""Every string a mod builds is held to the sandbox's string cap (`max_string_bytes`), with the error
at the mod's file and line: the `..` operator (rewritten into a checked call when the chunk loads),
`string.format`, `string.gsub`, `string.rep`, `table.concat`, and what the host joins for `print`
and `spdlog`.  Each hostile mod runs beside a well-behaved one."""

from __future__ import annotations

from host.runtime.grants import Grant
from modhost_util import frames, make_host, mods_dir, read_log  # noqa: F401

GOOD = """
ticks = 0
registerForEvent("onUpdate", function() ticks = ticks + 1 end)
return { ticks = function() return ticks end }
"""

CAP = 16 * 1024 * 1024


def good_ticks(host) -> int:
    good = host.mods["good"]
    ok, n = good.call(good.public.ticks)
    assert ok
    return n


def test_concatenation_past_the_string_cap_is_an_error_at_the_mods_line(make_host):
    """`..` was held only by the memory cap: one `s .. s` could build anything up to it, and a single
    one cannot be interrupted."""
    # slow(): 60 upvalues, LuaJIT's most; with the watchdog's own it ticks through the boolean metatable
    upvalues = "\n".join(f"local u{i} = {i}" for i in range(59))
    uses = " + ".join(f"u{i}" for i in range(59))
    host, console = make_host({"good": GOOD, "cat": f"""
        local h = ('x'):rep(8 * 1024 * 1024)
        local function show(ok, err) print(ok, err) end
        show(pcall(function() local r = h .. h .. 'y' end))
        show(pcall(function() return h .. h .. 1 end))
        show(pcall(function() local n = 7 return h .. 'a' .. 'b' .. 'c' .. 'd' .. 'e' .. 'f' .. 'g' .. 'h' .. 'i'
                                    .. 'j' .. 'k' .. 'l' .. 'm' .. 'n' .. 'o' .. 'p' .. 'q' .. h end))
        show(pcall(load("local s = ... return s .. s .. s", "=loaded"), h))
        local co = coroutine.wrap(function() coroutine.yield(1) return h .. h .. h end)
        co()
        show(pcall(co))
        {upvalues}
        local function slow() local x = {uses} return h .. h .. tostring(x) end
        show(pcall(slow))
        print(#(h .. h), #(('x'):rep(CAP_M1) .. 'y'))
        registerForEvent("onUpdate", function() local ok, e = pcall(function() return h .. h .. h end)
          if ok then print("built") end end)
    """.replace("CAP_M1", str(CAP - 1))}, grants={"cat": Grant(memory_mb=128)})
    mod = host.mods["cat"]
    assert mod.state == "loaded", read_log(host, "cat")
    lines = console.mod_lines("cat")
    msg = "string concatenation (..): result of {} bytes exceeds the sandbox limit of 16777216 bytes"
    assert lines[0] == "false\tmods/cat/init.lua:4: " + msg.format(CAP + 1)
    assert lines[1] == "false\tmods/cat/init.lua:5: " + msg.format(CAP + 1)
    assert lines[2] == "false\tmods/cat/init.lua:6: " + msg.format(CAP + 17)     # 18 operands: one check
    assert lines[3] == "false\tloaded:1: " + msg.format(CAP + CAP // 2)
    assert lines[4] == "false\tmods/cat/init.lua:9: " + msg.format(CAP + CAP // 2)
    assert lines[5].startswith("false\tmods/cat/init.lua:") and lines[5].endswith(msg.format(CAP + 4))
    assert lines[6] == f"{CAP}\t{CAP}"         # up to the cap it is built
    frames(host, 3)
    assert "built" not in console.text and mod.state == "loaded"
    assert good_ticks(host) == 3


def test_concatenation_keeps_luas_meaning(make_host):
    host, console = make_host({"good": GOOD, "m": """
        local t = setmetatable({}, { __concat = function(a, b)
          return "[" .. (type(a) == "table" and "T" or a) .. "+" .. (type(b) == "table" and "T" or b) .. "]" end })
        print(t .. "a", "a" .. t, "a" .. "b" .. t .. "c", 1 .. 2, -1.5 .. "", 2^53 .. "")
        print(pcall(function() return "a" .. nil end))
        print(pcall(function() return {} .. "a" end))
        print(pcall(function() local b = true return "x" .. "y" .. b end))
        local function two() return "p", "q" end
        print("z" .. two())
    """})
    lines = console.mod_lines("m")
    assert lines[0] == "[T+a]\t[a+T]\tab[T+c]\t12\t-1.5\t9.007199254741e+15"
    assert lines[1] == "false\tmods/m/init.lua:5: attempt to concatenate a nil value"
    assert lines[2] == "false\tmods/m/init.lua:6: attempt to concatenate a table value"
    assert lines[3] == "false\tmods/m/init.lua:7: attempt to concatenate a boolean value"
    assert lines[4] == "zp"
    assert host.mods["m"].state == "loaded"


def test_other_string_builders_are_held_to_the_cap(make_host):
    """string.format with %s of big strings (and %q, and __tostring results), gsub's replacements and
    spdlog's formatting built past the cap; print joined its values whole before the log line was cut."""
    host, console = make_host({"good": GOOD, "b": """
        local h = ('x'):rep(8 * 1024 * 1024)
        local function show(ok, err) print(ok, (tostring(err):gsub("%d+ bytes exceeds", "N bytes exceeds"))) end
        show(pcall(function() local r = string.format("%s%s!", h, h) return r end))
        show(pcall(function() local r = string.format("%q", ('\\n'):rep(9 * 1024 * 1024)) return r end))
        local big = setmetatable({}, { __tostring = function() return h end })
        show(pcall(function() local r = string.format("%s%s%s", big, big, "y") return r end))
        print(#string.format("%.3s%s", h, h))
        show(pcall(function() local r = ('a'):rep(256 * 1024):gsub("a", ('b'):rep(80)) return r end))
        show(pcall(function() local r = ('a'):rep(256 * 1024):gsub("a", function() return ('c'):rep(80) end) return r end))
        show(pcall(function() spdlog.info("%s%s%s", h, h, "z") end))
        show(pcall(function() local r = string.rep(h, 2, "-") return r end))
        show(pcall(function() local r = table.concat({ h, h }, "-") return r end))
        print(h, h, h)
    """}, grants={"b": Grant(memory_mb=128)})
    assert host.mods["b"].state == "loaded", read_log(host, "b")
    lines = console.mod_lines("b")
    over = "N bytes exceeds the sandbox limit of 16777216 bytes"
    assert lines[0] == f"false\tmods/b/init.lua:4: string.format: result of {over}"
    assert lines[1] == f"false\tmods/b/init.lua:5: string.format: result of {over}"
    assert lines[2] == f"false\tmods/b/init.lua:7: string.format: result of {over}"
    assert lines[3] == str(8 * 1024 * 1024 + 3)
    assert lines[4] == f"false\tmods/b/init.lua:9: string.gsub: result of {over}"
    assert lines[5].startswith("false\tmods/b/init.lua:10: string.gsub: result of")
    assert lines[5].endswith("exceeds the sandbox limit of 16777216 bytes")
    assert lines[6] == f"false\tmods/b/init.lua:11: string.format: result of {over}"
    assert lines[7] == f"false\tmods/b/init.lua:12: string.rep: result of {over}"
    assert lines[8] == f"false\tmods/b/init.lua:13: table.concat: result of {over}"
    assert lines[9] == "x" * 4096 + " [...]"
    frames(host, 2)
    assert good_ticks(host) == 2


def test_a_gsub_that_would_grow_past_the_cap_is_refused_before_it_builds(make_host):
    """gsub's C code adds a replacement byte by byte: 1 MiB of one-byte matches turned into 20 MiB took
    160 ms in one call, and the result was only checked after it was built.  (256 KiB here, so the
    first pass stays within the budget on a loaded machine.)"""
    import time

    host, console = make_host({"good": GOOD, "grow": """
        local a = ('a'):rep(256 * 1024)
        local few = ('x'):rep(200 * 1024) .. "\\n" .. ('y'):rep(200 * 1024)
        registerForEvent("onUpdate", function()
          print(pcall(function() local r = a:gsub("a", ('b'):rep(80)) return r end))
          local r, n = few:gsub("\\n", "<br/>\\n")
          print(#r, n)
        end)
    """}, grants={"grow": Grant(memory_mb=256)})
    c0 = time.thread_time()
    frames(host, 1)
    cpu = time.thread_time() - c0
    lines = console.mod_lines("grow")
    assert lines[0].startswith("false\tmods/grow/init.lua:5: string.gsub: result of 20971520 bytes exceeds"), lines
    assert lines[1] == f"{400 * 1024 + 6}\t1"           # few matches: a big subject still works
    assert host.mods["grow"].state == "loaded"
    assert cpu < 0.1, f"{cpu * 1000:.0f} ms of CPU"      # loose: the first pass only (building it took 0.16 s)
    frames(host, 1)
    assert good_ticks(host) == 2
