"""How fast the watchdog stops runaway mods, per loop shape, and memory bombs.

    .venv/bin/python bench/watchdog_latency.py [--repeat 5] [--budget-ms 50]

For each shape a fresh host loads one hostile mod; the shape runs in onUpdate.
"stop" is the wall time of that update() call (what the frame loop lost);
"late" is stop minus the budget (how far past its deadline the mod ran).
Memory bombs run with memory_mb = 64 and a 2 s budget, so what stops them is
the memory cap; their "stop" is the time to reach the cap and unwind.
"""

from __future__ import annotations

import argparse
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
}

BOMBS = {
    "1 MiB strings": "local t = {} while true do t[#t + 1] = ('x'):rep(1024 * 1024) .. #t end",
    "array of ints": "local t = {} for i = 1, 1e9 do t[i] = i end",
    "swallowed by pcall": ("local t = {} while true do pcall(function() "
                           "while true do t[#t + 1] = ('y'):rep(1024 * 1024) .. #t end end) end"),
    "string doubling": "local s = 'x' while true do s = s .. s end",
}


def measure(code: str, toml: str) -> tuple[float, str]:
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
        t0 = time.perf_counter()
        host.update(1 / 60)
        stop = time.perf_counter() - t0
        m = host.mods["hostile"]
        state = f"{m.state}: {(m.reason or '').split(':')[0]}"
        host.shutdown()
        return stop, state


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--budget-ms", type=int, default=50)
    args = ap.parse_args()
    budget = args.budget_ms / 1000.0
    print(f"watchdog stop latency, budget {args.budget_ms} ms, median / max of {args.repeat} runs")
    print(f"{'shape':24} {'stop ms':>16} {'late ms':>16}  outcome")
    for name, code in LOOPS.items():
        runs = [measure(code, f"budget_ms = {args.budget_ms}\n") for _ in range(args.repeat)]
        stops = [r[0] for r in runs]
        late = [s - budget for s in stops]
        print(f"{name:24} {statistics.median(stops) * 1000:7.1f} / {max(stops) * 1000:6.1f} "
              f"{statistics.median(late) * 1000:7.1f} / {max(late) * 1000:6.1f}  {runs[-1][1]}")
    print("memory bombs (memory_mb = 64, budget 2000 ms)")
    for name, code in BOMBS.items():
        runs = [measure(code, "memory_mb = 64\nbudget_ms = 2000\n") for _ in range(args.repeat)]
        stops = [r[0] for r in runs]
        print(f"{name:24} {statistics.median(stops) * 1000:7.1f} / {max(stops) * 1000:6.1f} "
              f"{'':16}  {runs[-1][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
