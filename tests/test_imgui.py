"""CET's ImGui for mods: headless (accepted, draws nothing), real Dear ImGui, and the
pygame overlay under Xvfb with a screenshot.

The real-ImGui and overlay tests need the `ui` extra (imgui-bundle, pygame-ce; `make test`
installs them with the game extra) and Xvfb (`make xvfb`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modhost_util import Console, make_host, mods_dir, read_log, write_mod  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]

# A CET-style settings window: toggled with the overlay, all the common widgets.
CET_WINDOW = r"""
local state = { open = false, enabled = true, name = "Vex", volume = 3, speed = 1.5, mode = 1,
                notes = "", clicks = 0 }
registerForEvent("onOverlayOpen", function() state.open = true end)
registerForEvent("onOverlayClose", function() state.open = false end)
registerForEvent("onDraw", function()
  if not state.open then return end
  ImGui.SetNextWindowPos(40, 40, ImGuiCond.Always)
  ImGui.SetNextWindowSize(360, 320, ImGuiCond.Always)
  ImGui.PushStyleColor(ImGuiCol.WindowBg, 0.1, 0.1, 0.4, 1.0)
  if ImGui.Begin("Market tools", ImGuiWindowFlags.NoCollapse + ImGuiWindowFlags.NoMove) then
    ImGui.Text("Hello from a CET-style mod")
    ImGui.TextWrapped("This window is drawn by Dear ImGui into the game's surface.")
    state.enabled = ImGui.Checkbox("Enabled", state.enabled)
    state.cb_x, state.cb_y = ImGui.GetItemRectMin()
    state.name = ImGui.InputText("Name", state.name, 64)
    state.volume = ImGui.SliderInt("Volume", state.volume, 0, 10)
    state.speed = ImGui.SliderFloat("Speed", state.speed, 0, 5)
    state.mode = ImGui.Combo("Mode", state.mode, { "calm", "busy", "storm" }, 3)
    ImGui.Separator()
    if ImGui.Button("Count", 120, 0) then state.clicks = state.clicks + 1 end
    state.bt_x, state.bt_y = ImGui.GetItemRectMin()
    ImGui.SameLine()
    ImGui.Text("clicks " .. state.clicks)
    ImGui.Spacing()
    if ImGui.BeginTabBar("tabs") then
      if ImGui.BeginTabItem("Stats") then ImGui.Text("volume " .. state.volume) ImGui.EndTabItem() end
      if ImGui.BeginTabItem("Notes") then
        state.notes = ImGui.InputTextMultiline("##notes", state.notes, 256, 200, 60)
        ImGui.EndTabItem()
      end
      ImGui.EndTabBar()
    end
    if ImGui.BeginChild("child", 0, 40, true) then ImGui.Text("in a child") end
    ImGui.EndChild()
  end
  ImGui.End()
  ImGui.PopStyleColor()
end)
return { state = function() return state end }
"""


MORE_WIDGETS = r"""
registerForEvent("onDraw", function()
  ImGui.SetNextWindowBgAlpha(0.8)
  if ImGui.Begin("More") then
    ImGui.SeparatorText("section")
    ImGui.Bullet() ImGui.TextUnformatted("bullet")
    ImGui.PlotLines("lines", { 1, 3, 2, 5, 4 }, 5)
    ImGui.PlotHistogram("hist", { 1, 3, 2, 5, 4 }, 5, 0, nil, 0, 6, 0, 40)
    ImGui.ColorPicker3("pick", { 1, 0, 0 })
    ImGui.ColorEdit4("edit", { 0, 1, 0, 1 })
    local a = ImGui.SliderAngle("angle", 1.0)
    ImGui.Columns(2, "cols", true) ImGui.Text("a") ImGui.NextColumn() ImGui.Text("b") ImGui.Columns(1)
    ImGui.ArrowButton("arrow", ImGuiDir.Left)
    ImGui.InvisibleButton("inv", 10, 10)
    if ImGui.BeginListBox("lb", 100, 50) then ImGui.Selectable("x") ImGui.EndListBox() end
    if ImGui.BeginPopupContextItem("ctx") then ImGui.Text("menu") ImGui.EndPopup() end
    if ImGui.CollapsingHeader("header") then ImGui.Text("inside") end
    if ImGui.TreeNode("tree") then ImGui.BulletText("leaf") ImGui.TreePop() end
    if ImGui.BeginTable("t", 2, ImGuiTableFlags.Borders) then
      ImGui.TableSetupColumn("k") ImGui.TableSetupColumn("v") ImGui.TableHeadersRow()
      ImGui.TableNextRow() ImGui.TableNextColumn() ImGui.Text("1") ImGui.TableNextColumn() ImGui.Text("2")
      ImGui.EndTable()
    end
    ImGui.ProgressBar(0.5, -1, 0, "half")
    ImGui.PushStyleVar(ImGuiStyleVar.FramePadding, 4, 2) ImGui.SmallButton("s") ImGui.PopStyleVar()
    ImGui.Text(tostring(ImGui.GetTime() >= 0) .. " " .. tostring(ImGui.IsPopupOpen("p")))
    ImGui.Text(tostring(ImGui.IsKeyPressed(ImGuiKey.Enter)) .. tostring(ImGui.IsKeyDown(ImGuiKey.F1)))
    ImGui.SetWindowSize(400, 500)
  end
  ImGui.End()
  print("drawn")
end)
"""


@pytest.mark.parametrize("real", [False, True])
def test_many_widgets_run_headless_and_real(make_host, real):
    host, console = make_host({"m": MORE_WIDGETS}, load=False)
    if real:
        _require_ui()
        from host.ui.imgui_api import ImGuiLayer
        from host.ui.imgui_backend import ImGuiBackend
        host.ui = ImGuiLayer(ImGuiBackend(800, 600))
    host.load()
    for _ in range(3):
        host.draw()
    assert host.mods["m"].state == "loaded", read_log(host, "m")
    assert console.mod_lines("m") == ["drawn"] * 3
    assert host.ui.errors == 0


def test_a_call_dear_imgui_refuses_is_a_clear_error_and_the_frame_goes_on(make_host):
    _require_ui()
    from host.ui.imgui_api import ImGuiLayer
    from host.ui.imgui_backend import ImGuiBackend
    host, console = make_host({"bad": """
        registerForEvent("onDraw", function()
          ImGui.Begin("w")
          print(pcall(ImGui.BeginTable, "t", 0))                         -- no columns
          print(pcall(ImGui.BeginPopupContextItem, "c", 0x7fffffff))    -- invalid popup flags
          ImGui.End()
        end)
    """, "good": MORE_WIDGETS}, load=False)
    host.ui = ImGuiLayer(ImGuiBackend(800, 600))
    host.load()
    for _ in range(2):
        host.draw()
    lines = console.mod_lines("bad")
    assert lines[0].startswith("false\t") and "bad argument #2 (columns): 0 is out of range (1..64)" in lines[0]
    assert lines[1].startswith("false\t") and "Dear ImGui refused the call" in lines[1]
    assert console.mod_lines("good") == ["drawn"] * 2
    assert host.mods["bad"].state == "loaded" and host.mods["good"].state == "loaded"


def test_headless_imgui_accepts_the_calls_and_draws_nothing(make_host):
    host, console = make_host({"w": CET_WINDOW, "probe": """
        print(pcall(ImGui.Text, "outside onDraw"))
        print(ImGuiWindowFlags.NoResize + ImGuiCol.Text, type(ImGui.Begin))
    """})
    assert host.ui.headless
    host.run_command("overlay open")
    for _ in range(3):
        host.update(1 / 60)
        host.draw()
    assert host.mods["w"].state == "loaded", read_log(host, "w")
    ok, state = host.mods["w"].call(host.mods["w"].public.state)
    assert state.open and state.volume == 3 and state.name == "Vex" and state.clicks == 0
    lines = console.mod_lines("probe")
    assert lines[0].startswith("false\t") and "only be used inside onDraw" in lines[0]
    assert lines[1] == "0\tfunction"


def test_unbalanced_imgui_calls_are_clear_errors_and_are_repaired(make_host):
    host, console = make_host({"bad": """
        local n = 0
        registerForEvent("onDraw", function()
          n = n + 1
          if n == 1 then ImGui.End() end                          -- End without Begin
          if n == 2 then ImGui.Begin("x") ImGui.PushStyleColor(ImGuiCol.Text, 1, 0, 0, 1) error("boom") end
          if n == 3 then ImGui.Begin("y") ImGui.PopStyleColor() end  -- pops a color it never pushed
          if n == 4 then ImGui.Begin("z") ImGui.End() print("clean frame") end
        end)
    """})
    for _ in range(4):
        host.update(1 / 60)
        host.draw()
    log = read_log(host, "bad")
    assert "ImGui.End: nothing to close" in log
    assert "boom" in log
    assert "ImGui.PopStyleColor: nothing to close (the innermost open call needs ImGui.End first)" in log
    assert console.mod_lines("bad") == ["clean frame"]


def _require_ui():
    """The ui extra: a missing package fails the test, or skips it under --skip-missing-ui (conftest)."""
    import imgui_bundle  # noqa: F401
    import pygame  # noqa: F401


def test_real_imgui_widgets_respond_to_input(make_host):
    """Dear ImGui without a window: a click on the button and the checkbox changes the mod's state."""
    _require_ui()
    from host.ui.imgui_api import ImGuiLayer
    from host.ui.imgui_backend import ImGuiBackend

    host, console = make_host({"w": CET_WINDOW}, load=False)
    backend = ImGuiBackend(800, 600)
    host.ui = ImGuiLayer(backend)
    host.load()
    host.run_command("overlay open")
    mod = host.mods["w"]

    def frame():
        host.update(1 / 60)
        host.draw()

    frame()
    frame()
    assert mod.state == "loaded", read_log(host, "w")
    ok, state = mod.call(mod.public.state)
    assert ok and state.enabled is True and state.clicks == 0

    def click(x, y):
        backend.mouse_pos(x, y)
        frame()
        backend.mouse_button(0, True)
        frame()
        backend.mouse_button(0, False)
        frame()

    click(state.cb_x + 5, state.cb_y + 5)          # the checkbox, where the mod saw it drawn
    click(state.bt_x + 10, state.bt_y + 5)         # the Count button
    click(state.bt_x + 10, state.bt_y + 5)
    assert mod.state == "loaded", read_log(host, "w")
    ok, state = mod.call(mod.public.state)
    assert state.enabled is False and state.clicks == 2
    host.run_command("overlay close")
    frame()
    ok, state = mod.call(mod.public.state)
    assert state.open is False
    assert mod.state == "loaded", read_log(host, "w")


WINDOW_SCRIPT = textwrap.dedent(r"""
    import sys, json
    import pygame
    from host.runtime.host import Host
    from host.ui.imgui_overlay import ImGuiOverlay, imgui_layer

    mods, out = sys.argv[1], sys.argv[2]
    pygame.display.init()
    screen = pygame.display.set_mode((640, 400))
    host = Host(mods, console=print, ui=imgui_layer(screen.get_size()))
    overlay = ImGuiOverlay(host)
    host.load()

    def frame(events=()):
        for e in events:
            pygame.event.post(e)
        for e in pygame.event.get():
            overlay.handle_event(e)
        host.update(1 / 60)
        screen.fill((30, 60, 40))
        host.draw()
        overlay.draw(screen)
        pygame.display.flip()

    frame()
    pygame.image.save(screen, out + "/closed.png")
    key = dict(mod=0, unicode="", scancode=0)
    frame([pygame.event.Event(pygame.KEYDOWN, key=pygame.K_F1, **key),
           pygame.event.Event(pygame.KEYUP, key=pygame.K_F1, **key)])
    for _ in range(3):
        frame()
    pygame.image.save(screen, out + "/open.png")
    mod = host.mods["w"]
    ok, state = mod.call(mod.public.state)
    print(json.dumps({"open": host.overlay_open, "state": mod.state, "tris": overlay.renderer.triangles,
                      "lua_open": state.open}))
    host.shutdown()
""")


def test_overlay_screenshot_under_xvfb(display, tmp_path):
    _require_ui()
    mods = tmp_path / "mods"
    write_mod(mods, "w", CET_WINDOW)
    script = tmp_path / "window.py"
    script.write_text(WINDOW_SCRIPT)
    env = dict(os.environ, DISPLAY=display, SDL_VIDEODRIVER="x11", SDL_AUDIODRIVER="dummy",
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script), str(mods), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json

    import pygame
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"open": True, "state": "loaded", "tris": report["tris"], "lua_open": True}
    assert report["tris"] > 100
    closed = pygame.image.load(str(tmp_path / "closed.png"))
    opened = pygame.image.load(str(tmp_path / "open.png"))
    # closed: only the game's background; open: the window with its pushed WindowBg colour
    assert closed.get_at((200, 200))[:3] == (30, 60, 40)
    bg = (26, 26, 102)                                   # 0.1, 0.1, 0.4 -> the pushed WindowBg
    inside = [opened.get_at((x, 300))[:3] for x in range(60, 380, 10)]
    assert sum(1 for c in inside if c == bg) > len(inside) // 2, inside
    assert opened.get_at((600, 380))[:3] == (30, 60, 40)    # outside the window: the game
    # text was drawn: light pixels inside the title bar and the first text line
    light = sum(1 for x in range(45, 300) for y in range(42, 80)
                if sum(opened.get_at((x, y))[:3]) > 500)
    assert light > 100, light


def test_console_commands_drive_overlay_hotkeys_and_inputs(make_host):
    host, console = make_host({"k": """
        registerHotkey("toggle_ui", "Toggle the UI", function() print("hotkey") end)
        registerInput("sprint", "Sprint", function(down) print("input", down) end)
        registerForEvent("onOverlayOpen", function() print("open") end)
        registerForEvent("onOverlayClose", function() print("close") end)
    """})
    for line in ("help", "overlay open", "overlay", "hotkey toggle_ui", "input sprint down",
                 "input sprint up k", "hotkey nope", "input sprint sideways"):
        host.run_command(line)
    assert console.mod_lines("k") == ["open", "close", "hotkey", "input\ttrue", "input\tfalse"]
    text = console.text
    assert "overlay [open|close|toggle]" in text and "hotkey <id> [mod]" in text
    assert "toggle_ui (k, hotkey)" in text and "sprint (k, input)" in text
    assert "no mod registered hotkey 'nope'" in text and "usage: input <id> down|up [mod]" in text


@pytest.mark.parametrize("real", [False, True], ids=["headless", "dear-imgui"])
def test_modding_guide_imgui_example_draws(make_host, real):
    """The ImGui example of docs/MODDING.md runs its onDraw (overlay open) without an error."""
    import re
    text = (ROOT / "docs" / "MODDING.md").read_text(encoding="utf-8")
    section = text.split("## ImGui\n", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```lua\n(.*?)```", section, re.S)[0]
    host, console = make_host({"ex": code}, load=False)
    if real:
        _require_ui()
        from host.ui.imgui_api import ImGuiLayer
        from host.ui.imgui_backend import ImGuiBackend
        host.ui = ImGuiLayer(ImGuiBackend(800, 600))
    host.load()
    host.run_command("overlay open")
    for _ in range(3):
        host.update(1 / 60)
        host.draw()
    log = read_log(host, "ex")
    assert host.mods["ex"].state == "loaded" and "[error]" not in log, log
    assert console.mod_lines("ex") == ["done"]
    if real:
        assert host.ui.errors == 0 and host.ui.draw_data is not None
        assert sum(cl.vtx_buffer.size() for cl in host.ui.draw_data.cmd_lists) > 100


def test_a_released_mods_lua_state_is_freed_at_once_not_by_the_cycle_collector(make_host):
    """The cause of a flaky ImGui test: every value handed to Lua left a reference cycle holding the
    runtime, so a shut-down host's Lua states were freed by Python's cycle collector at some later
    time, often inside another mod's onDraw, and charged to that mod's budget (quarantined)."""
    import gc

    def runtimes():
        return sum(1 for o in gc.get_objects() if type(o).__name__ == "LuaRuntime")

    gc.collect()
    gc.disable()
    try:
        before = runtimes()
        host, console = make_host({"m": """
            local big = {} for i = 1, 1000 do big[i] = { i } end
            registerForEvent("onDraw", function() ImGui.Text("x") end)
            return { n = function() return #big end, t = function() return { 1, { 2 } } end }
        """})
        host.draw()
        mod = host.mods["m"]
        assert mod.call(mod.public.n) == (True, 1000)
        assert mod.call(mod.public.t)[0]              # tables handed out and back
        assert runtimes() > before
        host.shutdown()
        del mod
        assert runtimes() == before
    finally:
        gc.enable()


def test_a_garbage_collection_inside_a_mods_call_is_not_charged_to_the_mod(make_host):
    """Python's cycle collector runs on the frame thread when an allocation hits its threshold, often
    while a mod's callback runs; a full collection of a large heap costs more than a mod's whole
    50 ms budget.  That time is the host's: the mod keeps running."""
    import gc

    import time

    class Collector:
        def collect(self):
            t = time.thread_time()
            gc.collect()
            return time.thread_time() - t

    def make_garbage():
        junk = []
        for _ in range(400_000):          # cycles: only the collector frees them
            a = []
            a.append(a)
            junk.append(a)

    host, console = make_host({"m": """
        registerForEvent("onDraw", function() print(string.format("%.3f", Heap.collect())) end)
    """}, load=False)
    host.expose("Heap", Collector())
    host.load()
    for _ in range(2):
        make_garbage()
        host.draw()
    lines = console.mod_lines("m")
    assert host.mods["m"].state == "loaded", read_log(host, "m")
    assert len(lines) == 2
    # the collections really were longer than the budget (else the test proves nothing)
    assert max(float(x) for x in lines) > 0.05 or pytest.skip("the collection was faster than the budget here")


DRAW_MOD = r"""
local tex, err = ImGui.LoadTexture("magenta.png")
local bad = { ImGui.LoadTexture("../escape.png") }
local where = {}
registerForEvent("onDraw", function()
  local bg = ImGui.GetBackgroundDrawList()
  ImGui.ImDrawListAddRectFilled(bg, 10, 10, 60, 60, ImGui.ColorConvertFloat4ToU32({ 1, 0, 0, 1 }))
  ImGui.ImDrawListAddCircleFilled(bg, 100, 35, 20, ImGui.GetColorU32(0, 1, 0, 1))
  ImGui.ImDrawListAddTriangleFilled(bg, 140, 10, 190, 10, 165, 60, 0xFFFF0000)
  ImGui.ImDrawListAddRect(bg, 10, 80, 60, 130, 0xFFFFFFFF, 0, 0, 3)
  ImGui.ImDrawListAddLine(bg, 80, 100, 180, 100, 0xFF00FFFF, 4)
  ImGui.ImDrawListAddText(bg, 24, 80, 140, 0xFFFFFFFF, "Relic")
  ImGui.SetNextWindowPos(240, 0)
  ImGui.SetNextWindowSize(120, 120)
  if ImGui.Begin("img", ImGuiWindowFlags.NoDecoration) then
    where.x, where.y = ImGui.GetCursorScreenPos()
    ImGui.Image(tex, ImVec2.new(40, 40))
    local visible, open = ImGui.CollapsingHeader("hdr", true)
    ImGui.SetNextItemOpen(true)
    local visible2, open2 = ImGui.CollapsingHeader("hdr2", true)
    where.header = tostring(visible) .. "," .. tostring(open) .. "," .. tostring(visible2) .. "," .. tostring(open2)
  end
  ImGui.End()
end)
return { where = function() return where end, info = function()
  return tostring(tex) .. " " .. tex.size.x .. "x" .. tex.size.y .. " " .. tostring(err) .. " | "
         .. tostring(bad[1]) .. " " .. tostring(bad[2])
end }
"""

DRAW_SCRIPT = textwrap.dedent(r"""
    import sys, json
    import pygame
    from host.runtime.host import Host
    from host.ui.imgui_overlay import ImGuiOverlay, imgui_layer

    mods, out = sys.argv[1], sys.argv[2]
    pygame.display.init()
    screen = pygame.display.set_mode((400, 300))
    host = Host(mods, console=print, ui=imgui_layer(screen.get_size()))
    overlay = ImGuiOverlay(host)
    host.load()
    for _ in range(3):
        for e in pygame.event.get():
            overlay.handle_event(e)
        host.update(1 / 60)
        screen.fill((0, 0, 0))
        host.draw()
        overlay.draw(screen)
        pygame.display.flip()
    pygame.image.save(screen, out + "/draw.png")
    mod = host.mods["d"]
    ok, where = mod.call(mod.public.where)
    ok, info = mod.call(mod.public.info)
    print(json.dumps({"state": mod.state, "x": where.x, "y": where.y, "header": where.header, "info": info,
                      "errors": host.ui.errors}))
    host.shutdown()
""")


def test_draw_lists_and_textures_on_screen_under_xvfb(display, tmp_path):
    """Background draw list shapes, a texture from the mod's folder, and CET's two-value
    CollapsingHeader, drawn by the pygame overlay and read back from the screenshot."""
    _require_ui()
    import json

    import pygame
    mods = tmp_path / "mods"
    folder = write_mod(mods, "d", DRAW_MOD)
    img = pygame.Surface((4, 4))
    img.fill((255, 0, 255))
    pygame.image.save(img, str(folder / "magenta.png"))
    (tmp_path / "escape.png").write_bytes((folder / "magenta.png").read_bytes())
    script = tmp_path / "draw.py"
    script.write_text(DRAW_SCRIPT)
    env = dict(os.environ, DISPLAY=display, SDL_VIDEODRIVER="x11", SDL_AUDIODRIVER="dummy",
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script), str(mods), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["state"] == "loaded" and report["errors"] == 0, proc.stdout[-3000:]
    assert report["header"] == "true,false,true,true"
    assert report["info"].startswith("ImguiTexture 4x4 nil | nil Failed to load '../escape.png'"), report
    shot = pygame.image.load(str(tmp_path / "draw.png"))
    assert shot.get_at((35, 35))[:3] == (255, 0, 0)          # AddRectFilled
    assert shot.get_at((100, 35))[:3] == (0, 255, 0)         # AddCircleFilled
    assert shot.get_at((165, 25))[:3] == (0, 0, 255)         # AddTriangleFilled (0xAABBGGRR)
    assert shot.get_at((11, 105))[:3] == (255, 255, 255)     # AddRect outline, 3 px
    assert shot.get_at((35, 105))[:3] == (0, 0, 0)           # ... not filled
    assert shot.get_at((130, 100))[:3] == (255, 255, 0)      # AddLine
    light = sum(1 for x in range(80, 160) for y in range(140, 170) if sum(shot.get_at((x, y))[:3]) > 500)
    assert light > 30, light                                 # AddText at 24 px
    x, y = int(report["x"]), int(report["y"])
    assert shot.get_at((x + 20, y + 20))[:3] == (255, 0, 255)   # Image of the 4x4 texture at 40x40


def test_renderer_survives_extreme_draw_list_coordinates_and_huge_images(make_host):
    """A mod's draw list may hold any coordinate and an Image any size: the pygame renderer
    clamps them and scales only the visible part, never raising into the game's loop."""
    _require_ui()
    import pygame
    from host.ui.imgui_api import ImGuiLayer
    from host.ui.imgui_backend import ImGuiBackend
    from host.ui.imgui_overlay import SurfaceRenderer
    host, console = make_host({"m": r'''
        local tex = ImGui.LoadTexture("t.png")
        registerForEvent("onDraw", function()
          local bg = ImGui.GetBackgroundDrawList()
          ImGui.ImDrawListAddLine(bg, 0, 0, 3e38, 3e38, 0xFFFFFFFF, 1e30)
          ImGui.ImDrawListAddRectFilled(bg, -1e30, -1e30, 1e30, 1e30, 0x80FF0000)
          ImGui.ImDrawListAddCircleFilled(bg, 100, 100, 1e30, 0xFF00FF00)
          ImGui.ImDrawListAddTriangleFilled(bg, -math.huge, 0, math.huge, 0, 0, math.huge, 0xFF0000FF)
          ImGui.SetNextWindowPos(0, 0)
          ImGui.Begin("w")
          ImGui.Image(tex, ImVec2.new(1e6, 1e6))
          ImGui.Image(tex, ImVec2.new(3e38, 3e38))
          ImGui.End()
        end)
    '''}, load=False)
    img = pygame.Surface((8, 8))
    img.fill((200, 0, 0))
    pygame.image.save(img, str(host.mods_dir / "m" / "t.png"))
    layer = ImGuiLayer(ImGuiBackend(320, 240))
    host.ui = layer
    host.load()
    renderer = SurfaceRenderer(layer.backend.imgui, layer.textures)
    surface = pygame.Surface((320, 240))
    for _ in range(2):
        host.update(1 / 60)
        host.draw()
        renderer.render(layer.draw_data, surface)
    assert host.mods["m"].state == "loaded", read_log(host, "m")
    assert layer.errors == 0 and renderer.triangles > 0
    # the window's content (inside its padding) shows the huge image's top-left texels
    assert surface.get_at((30, 60))[:3] == (200, 0, 0)
