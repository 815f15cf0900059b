"""How fast the watchdog stops runaway mods, per loop shape, and memory bombs.

    .venv/bin/python bench/watchdog_latency.py [--repeat 5] [--budget-ms 50]

For each shape a fresh host loads one hostile mod; the shape runs in onUpdate.
The budget is CPU time of the frame thread (a busy machine does not count
against a mod), so "cpu" is the frame thread's CPU time during that update()
call and "late" is cpu minus the budget (how far past its budget the mod ran);
"wall" is the update()'s wall time (what the frame loop lost: equal to cpu on
an idle machine, longer when other threads or processes take the CPU).
Memory bombs run with memory_mb = 64 and a 2 s budget, so what stops them is
the memory cap; their "stop" is the time to reach the cap and unwind.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host.runtime.host import Host  # noqa: E402

LOOPS = {
    "plain while": "while true do end",
    "numeric for": "local x = 0 for i = 1, math.huge do x = x + i end",
    "tail recursion": "local function f(n) return f(n + 1) end f(1)",
    "inside pcall": "while true do pcall(function() while true do end end) end",
    "xpcall handler": "while true do xpcall(error, function() while true do end end) end",
    "coroutine": "coroutine.wrap(function() while true do end end)()",
    "resume loop": "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
    "recursive pcall": "local function f() while true do pcall(f) end end f()",
    "gsub callback": "local s = ('a'):rep(1000) while true do s:gsub('a', function() end) end",
    "metamethod": "local t = setmetatable({}, { __index = function() while true do end end }) local _ = t.x",
    "catastrophic pattern": "local s = ('a'):rep(50000) s:find(('.-'):rep(6) .. 'b')",
    "async task": "async(function() while true do end end)",
    "goto loop": "::top:: goto top",
    "empty repeat": "repeat until false",
    "load at run time": "load('local function f() return f() end return f')()()",
    "coroutine ping-pong": ("local co = coroutine.wrap(function() while true do coroutine.yield() end end) "
                            "while true do co() end"),
    "big C calls": "local s = ('x'):rep(1024 * 1024) while true do local t = s:upper() end",
    "json.decode": "local big = '[' .. ('1,'):rep(200000) .. '1]' while true do json.decode(big) end",
}

BOMBS = {
    "1 MiB strings": "local t = {} while true do t[#t + 1] = ('x'):rep(1024 * 1024) .. #t end",
    "array of ints": "local t = {} for i = 1, 1e9 do t[i] = i end",
    "swallowed by pcall": ("local t = {} while true do pcall(function() "
                           "while true do t[#t + 1] = ('y'):rep(1024 * 1024) .. #t end end) end"),
    "string doubling": "local s = 'x' while true do s = s .. s end",
}


def measure(code: str, toml: str) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "mods" / "hostile"
        d.mkdir(parents=True)
        (d / "mod.toml").write_text(toml)
        (d / "init.lua").write_text(
            'registerForEvent("onUpdate", function() if armed then\n' + code + '\nend end)\n'
            'registerCommand("arm", "", function() armed = true end)\n')
        host = Host(d.parent, console=lambda line: None)
        host.load()
        host.run_command("arm")
        t0, c0 = time.perf_counter(), time.thread_time()
        host.update(1 / 60)
        stop, cpu = time.perf_counter() - t0, time.thread_time() - c0
        m = host.mods["hostile"]
        state = f"{m.state}: {(m.reason or '').split(':')[0]}"
        host.shutdown()
        return stop, cpu, state


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--budget-ms", type=int, default=50)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    out = {"budget_ms": args.budget_ms, "loops": {}, "bombs": {}}
    budget = args.budget_ms / 1000.0
    print(f"watchdog stop latency, budget {args.budget_ms} ms (frame-thread CPU time), "
          f"median / max of {args.repeat} runs")
    print(f"{'shape':24} {'cpu ms':>15} {'late ms':>15} {'wall ms':>15}  outcome")
    worst = 0.0
    for name, code in LOOPS.items():
        runs = [measure(code, f"budget_ms = {args.budget_ms}\nmemory_mb = 128\n") for _ in range(args.repeat)]
        walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
        late = [c - budget for c in cpus]
        worst = max(worst, max(late))
        out["loops"][name] = {"cpu_ms": [round(c * 1000, 2) for c in cpus],
                              "wall_ms": [round(w * 1000, 2) for w in walls], "outcome": runs[-1][2]}
        print(f"{name:24} {statistics.median(cpus) * 1000:6.1f} / {max(cpus) * 1000:6.1f} "
              f"{statistics.median(late) * 1000:6.1f} / {max(late) * 1000:6.1f} "
              f"{statistics.median(walls) * 1000:6.1f} / {max(walls) * 1000:6.1f}  {runs[-1][2]}")
    print(f"worst late: {worst * 1000:.1f} ms past the budget")
    print("memory bombs (memory_mb = 64, budget 2000 ms)")
    for name, code in BOMBS.items():
        runs = [measure(code, "memory_mb = 64\nbudget_ms = 2000\n") for _ in range(args.repeat)]
        walls = [r[0] for r in runs]
        out["bombs"][name] = {"wall_ms": [round(w * 1000, 2) for w in walls], "outcome": runs[-1][2]}
        print(f"{name:24} {'':31} {statistics.median(walls) * 1000:6.1f} / {max(walls) * 1000:6.1f}"
              f"  {runs[-1][2]}")
    out["worst_late_ms"] = round(worst * 1000, 2)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
