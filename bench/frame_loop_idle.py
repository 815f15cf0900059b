"""Frame-time cost of the mod host at 60 FPS with ten idle mods loaded.

    .venv/bin/python bench/frame_loop_idle.py [--mods 10] [--frames 600] [--fps 60]

Each mod is sandboxed and registers onUpdate and onDraw (a counter), so every
frame makes 20 guarded calls into 10 LuaJIT runtimes.  Prints the work per
frame (update + draw) and the frame interval as p50 / p99 / max.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host.runtime.console import FrameStats  # noqa: E402
from host.runtime.host import Host  # noqa: E402

IDLE_MOD = """
local frames = 0
registerForEvent("onInit", function() end)
registerForEvent("onUpdate", function(dt) frames = frames + 1 end)
registerForEvent("onDraw", function() end)
return { frames = function() return frames end }
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mods", type=int, default=10)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--fps", type=float, default=60.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mods"
        for i in range(args.mods):
            d = root / f"idle{i:02d}"
            d.mkdir(parents=True)
            (d / "init.lua").write_text(IDLE_MOD)
        lines: list[str] = []
        host = Host(root, console=lines.append)
        t0 = time.perf_counter()
        host.load()
        load_s = time.perf_counter() - t0
        loaded = sum(1 for m in host.mods.values() if m.state == "loaded")

        stats = FrameStats()
        period = 1.0 / args.fps
        last = time.perf_counter()
        next_frame = last
        for n in range(args.frames):
            start = time.perf_counter()
            dt = start - last if n else period
            if n:
                stats.interval.append(dt)
            last = start
            host.update(dt)
            host.draw()
            stats.work.append(time.perf_counter() - start)
            next_frame += period
            delay = next_frame - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        counts = []
        for m in host.mods.values():
            ok, c = m.call(m.public.frames)
            counts.append(c if ok else None)
        host.shutdown()

    print(f"python {platform.python_version()} on {platform.machine()}, {args.mods} idle sandboxed mods "
          f"({loaded} loaded in {load_s * 1000:.1f} ms), {args.frames} frames at {args.fps:g} FPS")
    print(f"onUpdate calls per mod: {sorted(set(counts))}")
    print(stats.report())
    per_call = FrameStats.percentile(stats.work, 50) / (2 * max(loaded, 1))
    print(f"p50 cost per guarded callback: {per_call * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
