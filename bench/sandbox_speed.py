"""A game-like mod workload, sandboxed vs trusted (JIT on, no watchdog), in one run.

    .venv/bin/python bench/sandbox_speed.py [--frames 40] [--repeat 3]

The same Lua code runs as one "frame" of mod logic in two mods of one host:
one sandboxed (the watchdog, the wrapped string library), one trusted by a
grant from the host (`Grant(trusted=True)`: the raw standard library, no
watchdog). A frame is a sieve of Eratosthenes, vector math over 20,000 entity
tables, string building with `..`, `string.format` and `table.concat`, and a
`gmatch` parse of the text it built, plus `find` calls on short strings. The
frames alternate between the two mods so both see the same machine state; the
figure is the median frame time and the ratio sandboxed / trusted. Pattern
calls are timed too: `gsub` with "(%a+)," over 1 MB of words, and 400,000
small `find` calls. The mods have the default 50 ms budget (which sets the
pattern-cost cap that decides between the C and the Lua matcher); each timed
call gets 10 s.  500,000 short `..` chains (five operands each) time the
checked concatenation the sandbox rewrites `..` into.
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

from host.runtime.grants import Grant
from host.runtime.host import Host  # noqa: E402

WORKLOAD = r"""
local entities = {}
for i = 1, 20000 do
  entities[i] = { x = i % 97, y = i % 89, vx = (i % 7) - 3, vy = (i % 5) - 2, hp = 100 }
end

local function sieve(n)
  local composite, count = {}, 0
  for i = 2, n do
    if not composite[i] then
      count = count + 1
      for j = i * i, n, i do composite[j] = true end
    end
  end
  return count
end

local function physics(dt)
  local sum = 0
  for i = 1, #entities do
    local e = entities[i]
    e.x = e.x + e.vx * dt
    e.y = e.y + e.vy * dt
    local len = math.sqrt(e.x * e.x + e.y * e.y)
    if len > 100 then e.vx, e.vy = -e.vx, -e.vy end
    sum = sum + len
  end
  return sum
end

local function build_text(n)
  local parts = {}
  for i = 1, n do
    parts[#parts + 1] = "item" .. i .. "=" .. (i * 7 % 1000)
    if i % 50 == 0 then parts[#parts + 1] = string.format("section%d=%d", i, i) end
  end
  return table.concat(parts, ",")
end

local function parse(text)
  local total, n = 0, 0
  for k, v in text:gmatch("(%w+)=(%d+)") do
    total = total + tonumber(v)
    n = n + 1
  end
  return total, n
end

local function finds(n)
  local hits = 0
  local names = { "guard_01", "merchant", "thief_7", "npc:blacksmith", "player" }
  for i = 1, n do
    local s = names[i % 5 + 1]
    if s:find("_", 1, true) then hits = hits + 1 end
    if s:find("^%a+") then hits = hits + 1 end
  end
  return hits
end

function frame()
  local primes = sieve(60000)
  local sum = physics(1 / 60)
  local text = build_text(3000)
  local total, n = parse(text)
  local hits = finds(3000)
  return primes + n + hits
end

local big
function gsub_1mb()
  if not big then          -- 1 MB of words, spaces and some commas
    local words = { "a", "to", "the", "lord", "quick", "brown", "jumped", "lazydog", "extraordinary",
                    "Wonderful", "x", "mountains,", "river,", "ok" }
    local t, n, i = {}, 0, 0
    while n < 1024 * 1024 do
      local w = words[(i * 7 + math.floor(i / 3)) % #words + 1]
      t[#t + 1] = w
      n = n + #w + 1
      i = i + 1
    end
    big = table.concat(t, " "):sub(1, 1024 * 1024)
  end
  local _, n = big:gsub("(%a+),", "%1;")
  return n
end

function short_concats()
  local n = 0
  for i = 1, 500000 do
    local s = "npc" .. i .. ":" .. (i % 7) .. "hp"
    n = n + #s
  end
  return n
end

function small_finds()
  local n = 0
  local s = "the quick brown fox jumps over the lazy dog"
  for i = 1, 200000 do
    if s:find("fox", 1, true) then n = n + 1 end
    if s:find("l%a+") then n = n + 1 end
  end
  return n
end
"""

BODY = WORKLOAD


def make_mods(root: Path) -> None:
    for mod_id, trusted in (("boxed", False), ("trusted", True)):
        d = root / mod_id
        d.mkdir(parents=True)
        (d / "mod.toml").write_text(f"trusted = {'true' if trusted else 'false'}\nbudget_ms = 50\n"
                                    "memory_mb = 256\n")
        (d / "init.lua").write_text(BODY + "\nreturn { frame = frame, gsub_1mb = gsub_1mb, "
                                    "small_finds = small_finds, short_concats = short_concats }\n")


def timed(mod, fname: str) -> tuple[float, object]:
    fn = mod.public[fname]
    t0 = time.perf_counter()
    ok, res = mod.call(fn, budget=10.0)
    dt = time.perf_counter() - t0
    if not ok:
        raise Stopped(f"{mod.id}.{fname}: {mod.reason or 'failed, see its log'}")
    return dt, res


class Stopped(Exception):
    """A timed call failed (the watchdog stopped it, say)."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mods"
        make_mods(root)
        host = Host(root, console=lambda line: None,
                    grants={"boxed": Grant(memory_mb=256), "trusted": Grant(trusted=True, memory_mb=256)})
        host.load()
        boxed, trusted = host.mods["boxed"], host.mods["trusted"]
        for m in (boxed, trusted):
            if m.state != "loaded":
                raise SystemExit(f"{m.id}: {m.reason}")
        rows = []
        for name, fname, n in (("game frame", "frame", args.frames),
                               ("400k small finds", "small_finds", args.repeat),
                               ("500k short `..` chains", "short_concats", args.repeat),
                               ("gsub '(%a+),' 1 MB", "gsub_1mb", args.repeat)):
            if boxed.state != "loaded":
                rows.append((name, None, None, None))
                continue
            times = {"boxed": [], "trusted": []}
            results = {}
            warm = 5
            try:
                for i in range(n + warm):
                    for m in ((boxed, trusted) if i % 2 == 0 else (trusted, boxed)):
                        dt, res = timed(m, fname)
                        if i >= warm:
                            times[m.id].append(dt)
                        results[m.id] = res
            except Stopped as e:
                print(f"{name}: {e}")
                rows.append((name, None, None, None))
                continue
            if results["boxed"] != results["trusted"]:
                raise SystemExit(f"{name}: results differ {results}")
            b, t = statistics.median(times["boxed"]), statistics.median(times["trusted"])
            # each round ran both back to back: the median of the per-round
            # ratios is the figure least moved by other load on the machine
            r = statistics.median(x / y for x, y in zip(times["boxed"], times["trusted"]))
            rows.append((name, b, t, r))
        host.shutdown()
    print("sandboxed vs trusted (JIT on, no watchdog), median ms per call")
    print(f"{'workload':22} {'sandboxed':>10} {'trusted':>10} {'ratio':>7}  (median of per-round ratios)")
    for name, b, t, r in rows:
        if b is None:
            print(f"{name:22} {'stopped':>10}")
        else:
            print(f"{name:22} {b * 1000:10.2f} {t * 1000:10.2f} {r:7.2f}x")
    if args.json:
        args.json.write_text(json.dumps({name: ({"sandboxed_ms": round(b * 1000, 3), "trusted_ms": round(t * 1000, 3),
                                                 "ratio": round(r, 3)} if b is not None else {"stopped": True})
                                         for name, b, t, r in rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
