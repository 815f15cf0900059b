"""What a CET-style ImGui window costs per frame: headless, Dear ImGui, and drawn into pygame.

    .venv/bin/python bench/imgui_overlay.py [--frames 300]

One mod draws the settings window of tests/test_imgui.py (text, checkbox, input, sliders, combo,
button, tab bar, child) in onDraw every frame.  Printed, p50 / p99 / max in ms per frame:

- headless: Host.draw() with no Dear ImGui (the calls are accepted and draw nothing);
- imgui: Host.draw() with a real Dear ImGui context (frame built, not drawn);
- imgui + render: the same plus SurfaceRenderer drawing the frame into a 960x540 pygame surface;
- and the cost of one ImGui call from Lua (ImGui.Text in a loop).

Needs the `ui` extra (imgui-bundle, pygame-ce).  No display needed (SDL's dummy driver).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def run(kind: str, frames: int) -> list[float]:
    import pygame

    from host.runtime.host import Host
    from host.ui.imgui_api import ImGuiLayer
    from host.ui.imgui_backend import ImGuiBackend
    from host.ui.imgui_overlay import SurfaceRenderer
    from modhost_util import write_mod
    from test_imgui import CET_WINDOW

    mods = Path(tempfile.mkdtemp()) / "mods"
    write_mod(mods, "w", CET_WINDOW)
    host = Host(mods, console=lambda line: None)
    renderer = surface = None
    if kind != "headless":
        backend = ImGuiBackend(960, 540)
        host.ui = ImGuiLayer(backend)
        if kind == "render":
            pygame.display.init()
            surface = pygame.Surface((960, 540))
            renderer = SurfaceRenderer(backend.imgui)
    host.load()
    host.open_overlay()
    times = []
    for i in range(frames + 10):
        host.update(1 / 60)
        t0 = time.perf_counter()
        host.draw()
        if renderer is not None:
            surface.fill((30, 60, 40))
            renderer.render(host.ui.draw_data, surface)
        if i >= 10:
            times.append((time.perf_counter() - t0) * 1000)
    assert host.mods["w"].state == "loaded", host.mods["w"].reason
    host.shutdown()
    return times


def call_cost(n: int = 2000) -> float:
    from host.runtime.host import Host
    from host.ui.imgui_api import ImGuiLayer
    from host.ui.imgui_backend import ImGuiBackend
    from modhost_util import write_mod

    mods = Path(tempfile.mkdtemp()) / "mods"
    write_mod(mods, "c", f"""
        registerForEvent("onDraw", function()
          ImGui.Begin("calls")
          for i = 1, {n} do ImGui.Text("x") end
          ImGui.End()
        end)
    """, toml="budget_ms = 5000\n")
    host = Host(mods, console=lambda line: None)
    host.ui = ImGuiLayer(ImGuiBackend(960, 540))
    host.load()
    host.draw()
    t0 = time.perf_counter()
    host.draw()
    dt = time.perf_counter() - t0
    host.shutdown()
    return dt / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    for kind, label in (("headless", "headless (no Dear ImGui)"), ("imgui", "Dear ImGui frame"),
                        ("render", "Dear ImGui + pygame render")):
        t = run(kind, args.frames)
        print(f"{label:30} p50 {pct(t, 50):6.3f}  p99 {pct(t, 99):6.3f}  max {max(t):6.3f} ms/frame "
              f"(mean {statistics.mean(t):.3f})")
    print(f"one ImGui.Text call from Lua: {call_cost():.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
