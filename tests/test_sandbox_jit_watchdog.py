"""The watchdog with the JIT on and on the frame thread's CPU
clock.

Sandboxed chunks are instrumented when they are loaded (host/runtime/
instrument.lua) instead of running under a count hook with the JIT off.  These
tests aim at what that design could miss: code loaded at run time, goto loops,
empty loop bodies, loops the JIT compiles, metamethods and C callbacks,
coroutines, recursion through pcall, a reserved name a mod could use to reach
the counter, and sources whose strings/comments/numbers a lexer could misread
(checks in the wrong place, or lines shifted in tracebacks).
"""

from __future__ import annotations

import time

import pytest
from lupa import luajit21 as lupa

from modhost_util import frames, make_host, mods_dir, read_log  # noqa: F401

from host.limits import Limits
from host.runtime.sandbox import _prelude
from host.runtime.grants import Grant

BYSTANDER = """
    ticks = 0
    registerForEvent("onUpdate", function() ticks = ticks + 1 end)
    return { ticks = function() return ticks end }
"""


def on_update(code: str) -> str:
    return 'registerForEvent("onUpdate", function(dt)\n' + code + "\nend)\n"


# -- runaways the instrumentation must catch ------------------------------------------

RUNAWAYS = {
    "empty_for": "for i = 1, math.huge do end",
    "empty_repeat": "repeat until false",
    "generic_for_iterator": "for _ in function() return 1 end do end",
    "nested_loops_unrolled": "while true do for i = 1, 10 do end end",
    "goto_loop": "::top:: goto top",
    "goto_loop_with_local": "do ::again:: local x = 1 if x then goto again end end",
    "goto_backward_nested": "local i = 0 ::a:: do i = i + 1 end if i > -1 then goto a end",
    "pcall_tree": "local function f() pcall(f) pcall(f) end f()",
    "stack_overflow_in_pcall": "local function f() return 1 + f() end while true do pcall(f) end",
    "loadstring_runtime": "loadstring('local function f() return f() end return f')()()",
    "load_reader": ("local parts = { 'while true', ' do end' } local i = 0 "
                    "load(function() i = i + 1 return parts[i] end)()"),
    "load_nested": "load('load(\"repeat until false\")()')()",
    "add_metamethod": ("local mt = {} mt.__add = function(a, b) while true do end end "
                       "local t = setmetatable({}, mt) local _ = t + 1"),
    "call_metamethod": "local t = setmetatable({}, { __call = function(self) return self() end }) t()",
    "concat_metamethod": ("local t = setmetatable({}, { __concat = function(a, b) while true do end end }) "
                          "local _ = t .. 'x'"),
    "sort_comparator_recursion": ("local function lt(a, b) return lt(a, b) end "
                                  "table.sort({ 3, 1, 2 }, lt)"),
    "coroutine_ping_pong": ("local co = coroutine.wrap(function() while true do coroutine.yield() end end) "
                            "while true do co() end"),
    "gmatch_iterator_loop": "local s = ('ab '):rep(100) while true do for w in s:gmatch('%a+') do end end",
    "lua_matcher_callback": ("local s = ('a'):rep(30000) .. 'b' "
                             "s:gsub('a-a-a-b', function() while true do end end)"),
    "big_c_calls": "local s = ('x'):rep(1024 * 1024) while true do local t = s:upper() end",
    "json_library": ("local big = '[' .. ('1,'):rep(200000) .. '1]' "
                     "while true do json.decode(big) end"),
}


@pytest.mark.parametrize("shape", sorted(RUNAWAYS))
def test_runaways_are_stopped_with_the_jit_on(make_host, shape):
    host, _ = make_host({"hostile": on_update(RUNAWAYS[shape]), "bystander": BYSTANDER},
                        tomls={"hostile": "memory_mb = 128\n"},
                        grants={"hostile": Grant(memory_mb=128)})
    t0 = time.perf_counter()
    host.update(1 / 60)
    assert time.perf_counter() - t0 < 5.0      # loose; bench/watchdog_latency.py measures
    mod = host.mods["hostile"]
    assert mod.state == "quarantined", read_log(host, "hostile")
    assert "watchdog" in mod.reason
    # the CPU budget, or the wall-clock ceiling on a badly overloaded machine
    assert "50 ms budget" in mod.reason or "2000 ms wall-clock limit" in mod.reason
    frames(host, 2)
    by = host.mods["bystander"]
    assert by.call(by.public.ticks) == (True, 3)


def test_a_caught_stop_keeps_failing(make_host):
    """After the stop, a handler that catches it cannot run one more loop iteration."""
    host, console = make_host({"hostile": on_update("""
        local n = 0
        while true do
          local ok = pcall(function() while true do end end)
          n = n + 1
          print("caught", n)
        end
    """)})
    host.update(1 / 60)
    assert host.mods["hostile"].state == "quarantined"
    assert console.mod_lines("hostile") == []


def test_sandboxed_hot_loops_are_compiled(make_host):
    host, console = make_host({"m": """
        local function sum(n) local s = 0 for i = 1, n do s = s + i % 7 end return s end
        print(sum(200000))
    """})
    assert console.mod_lines("m") == ["599997"]
    # the privileged side of the runtime can ask LuaJIT: a trace was compiled
    assert host.mods["m"].lua.eval("require('jit.util').traceinfo(1) ~= nil")


# -- the reserved name ---------------------------------------------------------------

def test_the_counter_name_is_reserved_everywhere(make_host):
    host, console = make_host({
        "direct": "local x = 1\nlocal __relic_wd = { n = math.huge }\nwhile true do end",
        "runtime": """
            print(load("__relic_wd = nil"))
            print(loadstring("return __relic_wd"))
            print(load("local s = '__relic_wd' return s")())
            print(pcall(require, "sub"))
        """,
    }, load=False)
    (host.mods_dir / "runtime" / "sub.lua").write_text("return __relic_wd\n")
    host.load()
    direct = host.mods["direct"]
    assert direct.state == "failed"
    assert "mods/direct/init.lua:2: the name '__relic_wd' is reserved" in direct.reason
    lines = console.mod_lines("runtime")
    assert lines[0] == 'nil\t[string "__relic_wd = nil"]:1: the name \'__relic_wd\' is reserved'
    assert lines[1] == 'nil\t[string "return __relic_wd"]:1: the name \'__relic_wd\' is reserved'
    assert lines[2] == "__relic_wd"          # inside a string it is just text
    assert lines[3].startswith("true\tnil\t") and "sub.lua:1: the name '__relic_wd' is reserved" in lines[3]


# -- the rewrite keeps the program and its lines ---------------------------------------

TRICKY = r'''
local out = {}
local function add(...) for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end end
local s1 = [==[ while true do ]] end ]=] ]==]
local s2 = "for \"do\" end \\" .. 'repeat \'until\' \z
           x'
--[[ function() while true do end end ]]
--[=[ ]] goto done ]=]
local n = 0x1p4 + 1e-1 + .5 + 3e+2 + 0xA
add(#s1, s2, n)
GOTO_AS_NAME
local t = { ["while"] = 1, f = function(a, b) return a + b end }
function t.m(self, x) return x * 2 end
function t:k(x) return self.f(x, 1) end
add(t["while"], t.f(2, 3), t:m(4), t:k(5))
for i = 1, 3 do
  if i == 2 then goto continue end
  local y = i * 10
  add(y)
  ::continue::
end
local i = 0
repeat local z = i i = i + 1 until z >= 2
add(i)
while (function() do return false end end)() do end
local k = 0
::top:: k = k + 1 if k < 3 then goto top end
add(k, ...)
return table.concat(out, ",")
'''


def instrumented_pair():
    rt = lupa.LuaRuntime()
    inst = rt.globals().load(_prelude("instrument.lua"))()
    # the tick never runs out; c2 ... cn (checked concatenation in the sandbox) join right to left
    # as `..` does, and count their calls and operands
    wd = rt.eval("""setmetatable({ n = math.huge, calls = {} }, {
        __call = function() end,
        __index = function(wd, k)
          return function(...)
            local n, v = select("#", ...), { ... }
            wd.calls[#wd.calls + 1] = k .. ":" .. n
            local acc = v[n]
            for i = n - 1, 1, -1 do acc = v[i] .. acc end
            return acc
          end
        end })""")
    loader = rt.eval("""function(src, wd, name)
        local f, err = load(src, name)
        if not f then return nil, err end
        f = f()
        if debug.getupvalue(f, 1) == "__relic_wd" then debug.setupvalue(f, 1, wd) end
        return f
    end""")
    return rt, inst, wd, loader


def test_instrumented_source_runs_the_same():
    rt, inst, wd, loader = instrumented_pair()
    # goto is a plain identifier in LuaJIT unless built with LUA52COMPAT
    goto_is_a_name = rt.execute("return (load('local goto = 1')) ~= nil")
    src = TRICKY.replace("GOTO_AS_NAME", "local goto = 5 add(goto)" if goto_is_a_name else "add(5)")
    plain = rt.globals().load(src)
    new = inst.instrument(src)
    assert isinstance(new, str), new
    assert new.count("\n") == src.count("\n") + 1      # only the closing line added
    f = loader(new, wd, "=tricky")
    assert plain("a", "b") == f("a", "b")
    assert f("a", "b") == "26,for \"do\" end \\repeat 'until' x,326.6,5,1,5,8,6,10,30,3,3,a,b"
    # every loop body, function entry and goto got a check; strings and comments none
    # add, its for, t.f, t.m, t:k, for i, goto continue, repeat, while, the function in
    # the while header, goto top
    assert new.count("__relic_wd.n = __relic_wd.n - 1") == 11


def test_error_lines_and_tracebacks_point_at_the_modders_file(make_host):
    host, console = make_host({"m": """
        local function inner()
          for i = 1, 2 do
            if i == 2 then error("boom") end
          end
        end
        local function outer() inner() end
        registerCommand("go", "", function() outer() end)
        print(select(2, pcall(outer)))
        print(select(2, pcall(load("\\n\\nlocal x = nil + 1", "=chunk"))))
        print(select(2, pcall(load("local a = 1\\nwhile true do\\n  error('at 3')\\nend", "=chunk2"))))
    """})
    lines = console.mod_lines("m")
    assert lines[0] == "mods/m/init.lua:4: boom"
    assert lines[1] == "chunk:3: attempt to perform arithmetic on a nil value"
    assert lines[2] == "chunk2:3: at 3"
    host.run_command("go")
    log = read_log(host, "m")
    assert "mods/m/init.lua:4: boom" in log
    assert "mods/m/init.lua:4: in function 'inner'" in log or "mods/m/init.lua:4: in upvalue 'inner'" in log
    assert "mods/m/init.lua:7:" in log and "mods/m/init.lua:8:" in log


# -- CPU time, not wall time -------------------------------------------

class Napper:
    """A provider whose `nap(s)` blocks the frame thread without using CPU."""

    def install(self, mod):
        mod.expose("nap", lambda s: time.sleep(float(s)))


def test_budget_is_cpu_time_of_the_frame_thread(make_host):
    """Regression: a well-behaved mod was quarantined for its
    50 ms budget while the machine was busy elsewhere.  Time the frame thread
    does not spend running the mod (here: blocked in a host call) is not
    charged; CPU time is."""
    host, console = make_host({"patient": on_update("nap(0.15) print('woke')"),
                               "busy": on_update("while true do end"),
                               "bystander": BYSTANDER}, load=False)
    host.add_provider(Napper())
    host.load()
    host.update(1 / 60)
    assert host.mods["patient"].state == "loaded", host.mods["patient"].reason
    assert console.mod_lines("patient") == ["woke"]
    assert host.mods["busy"].state == "quarantined"
    assert "50 ms budget" in host.mods["busy"].reason


def test_wall_clock_ceiling_stops_a_blocked_call(make_host):
    host, console = make_host({"stuck": on_update("nap(0.4) print('after')"),
                               "bystander": BYSTANDER}, load=False,
                              limits=Limits(wall_ceiling_factor=2.0, wall_ceiling_min_ms=200))
    host.add_provider(Napper())
    host.load()
    host.update(1 / 60)
    mod = host.mods["stuck"]
    assert mod.state == "quarantined"
    assert mod.reason == "watchdog: mod 'stuck' ran past its 200 ms wall-clock limit and was stopped"
    assert console.mod_lines("stuck") == []
    frames(host, 1)
    by = host.mods["bystander"]
    assert by.call(by.public.ticks) == (True, 2)


def test_watchdog_thread_counts_cpu_not_sleep():
    """The thread's own rules, without Lua: CPU time of the arming thread
    spends the budget, sleeping does not (until the wall-clock ceiling)."""
    import ctypes

    from host.runtime.watchdog import STOP_BUDGET, STOP_CEILING, WATCHDOG

    slot = WATCHDOG.slot()
    # what sandbox.lua's guarded_call does: note this thread's CPU clock in the slot
    cpu_start = ctypes.c_double.from_address(slot.address + 8)
    try:
        slot.arm(0.03, 5.0)
        cpu_start.value = time.thread_time()
        time.sleep(0.15)                      # no CPU: not stopped
        assert slot.stopped == 0
        t0 = time.monotonic()
        x = 0
        while not slot.stopped and time.monotonic() - t0 < 5:
            x += 1                            # burn CPU on this thread
        assert slot.stopped == STOP_BUDGET
        slot.disarm()
        slot.arm(10.0, 0.1)
        cpu_start.value = time.thread_time()
        time.sleep(0.4)
        assert slot.stopped == STOP_CEILING
        slot.disarm()
        slot.arm(0.05, 1.0)                   # arming clears the flag
        assert slot.stopped == 0
        slot.disarm()
    finally:
        slot.release()


def test_a_call_armed_but_not_yet_begun_is_not_charged_wall_time():
    """A mod was quarantined for its 50 ms budget having used under 4 ms of CPU: the frame thread
    waited for a CPU (a loaded machine) between arming the call and the Lua side noting its CPU
    clock, and that wait was counted as the mod's time."""
    from host.runtime.watchdog import STOP_CEILING, WATCHDOG

    slot = WATCHDOG.slot()
    try:
        slot.arm(0.03, 0.5)                   # the Lua side never notes its clock here
        time.sleep(0.15)
        assert slot.stopped == 0
        time.sleep(0.5)
        assert slot.stopped == STOP_CEILING   # the wall-clock ceiling still holds
        slot.disarm()
    finally:
        slot.release()


CONCATS = r'''
local out = {}
local function add(...) for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end end
local x, t = 5, { k = "K", f = function(self, a) return "<" .. a .. ">" end }
local function two() return "p", "q" end
add("a" .. x .. "b", 1 .. 2, -2 .. 3, 2 ^ 2 .. "x", #"ab" .. "c", x + 1 .. x * 2)
add("a" .. "b" == "ab", 1 < 2 and "y" .. "z" or "n" .. "o", not nil == true)
add(t.k .. t:f("m") .. t["k"], ("r"):rep(2) .. [[long]] .. [==[ .. ]==], "z" .. two())
add(select("#", "z" .. two()), "w" .. (two()), "v" .. #{ "a" .. "b", ["c" .. "d"] = 1 })
local s = "" for i = 1, 3 do s = s .. i .. "," end add(s)
local f = function(...) return "f" .. ... end add(f("1", "2"))
add((function() return "g" .. "h" end)(), "i" .. (function() return "j" end)())
local y = "y" .. x;
("k"):len() add(y)
add(x .. -- a comment between
  "l" .. --[[ another ]] "m")
repeat local u = "u" .. x until #u .. "" == "2"
local big = "1" .. "2" .. "3" .. "4" .. "5" .. "6" .. "7" .. "8" .. "9" .. "10" .. "11" .. "12"
  .. "13" .. "14" .. "15" .. "16" .. "17" .. "18"
add(big)
goto skip
::skip:: add("after" .. "label")
return table.concat(out, ",")
'''


def test_concatenation_chains_are_rewritten_whole_and_run_the_same():
    """Each chain of `..` becomes one call of the sandbox's checked concatenation, with its operands as
    Lua's precedence makes them, on the same lines."""
    rt, inst, wd, loader = instrumented_pair()
    plain = rt.globals().load(CONCATS)
    new = inst.instrument(CONCATS)
    assert isinstance(new, str), new
    assert new.count("\n") == CONCATS.count("\n") + 1
    f = loader(new, wd, "=concats")
    assert f() == plain()
    calls = list(wd.calls.values())
    assert "c3:3" in calls and "cn:18" in calls          # "a" .. x .. "b": one call of three; 18 operands
    assert f() == ("a5b,12,-23,4x,2c,610,true,yz,true,K<m>K,rrlong .. ,zp,1,wp,v1,1,2,3,,f1,gh,ij,y5,5lm,"
                   "123456789101112131415161718,afterlabel")
