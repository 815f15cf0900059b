"""What LuaJIT's C library functions cost on this machine, measured once per process.

The watchdog stops Lua code at its next check, but a C function (``s:upper()``,
``table.sort``, ``s:gsub``) runs to its end first, and a loop of such calls
checks the stop flag only every few iterations.  So the sandbox charges each
call that can run long against what is left of the mod's budget *before* it
runs (sandbox.lua's ``charge``): the estimate is the call's size (bytes of
input or output, elements, n·log2 n comparisons) times the rate measured here.
A call whose estimate does not fit is refused with an error that says so; a
call that fits runs, and the clocks are read right after it, so a loop of
them stops at the first call past the budget.

Rates are nanoseconds per unit, measured on plain (unsandboxed) LuaJIT with
sizes large enough to leave the caches, on this thread's CPU clock (so other
threads' work does not count), taking the fastest of a few runs (the work
itself, without the machine's noise) and never below a floor (a fast machine still gets a safe figure), then doubled
as a margin: an estimate errs on the side of refusing.
"""

from __future__ import annotations

import functools
import time

# Floors, ns per unit: figures of a slow desktop CPU, so that a lucky
# measurement never makes the estimates optimistic.
FLOORS = {
    "bytes": 0.25,      # upper/lower/reverse/rep/sub/format/concat: per byte made
    "gsub": 12.0,       # gsub/find/match on the C matcher: per byte of subject (every byte a match)
    "concat": 20.0,     # table.concat: per element
    "sort": 25.0,       # table.sort: per n*log2(n)
    "move": 1.0,        # table.insert/remove at a position: per element moved
}
MARGIN = 2.0

# Each entry: (kind, Lua function doing the work, units of work it does).
_BENCH = """
local s = string.rep("a", 1024 * 1024)
local g = string.rep("a", 128 * 1024)
local parts = {} for i = 1, 50000 do parts[i] = "ab" end
local n = 30000
local function fill() local t = {} for i = 1, n do t[i] = (i * 7919) % n end return t end
local m = {} for i = 1, 100000 do m[i] = i end
return {
  { "bytes", function() return s:upper() end, #s },
  { "gsub", function() return (g:gsub("a", "a")) end, #g },
  { "concat", function() return table.concat(parts) end, #parts },
  { "sort", function() local t = fill() local t0 = os.clock() table.sort(t) return os.clock() - t0 end,
    n * math.log(n) / math.log(2) },
  { "move", function() table.insert(m, 1, 0) table.remove(m, 1) end, 2 * #m },
}
"""


@functools.cache
def rates() -> dict[str, float]:
    """ns per unit for each kind of C call (see the module docstring); measured on first use."""
    import lupa.luajit21 as lupa

    lua = lupa.LuaRuntime()
    t0 = time.perf_counter()
    out = {}
    for entry in lua.execute(_BENCH).values():
        kind, fn, units = entry[1], entry[2], entry[3]
        best = float("inf")
        for _ in range(3):
            c0 = time.thread_time()          # this thread's CPU: other threads' work does not count
            extra = fn()
            took = time.thread_time() - c0
            if kind == "sort":               # the table was filled inside the call: its own clock
                took = float(extra)
            best = min(best, took)
        out[kind] = max(FLOORS[kind], best / units * 1e9) * MARGIN
    del lua
    out["measured_in_s"] = time.perf_counter() - t0
    return out
