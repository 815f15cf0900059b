"""CET's argument and return conventions of the ImGui table, the same with Dear ImGui and headless:
multiple returns, optional arguments, overloads by argument type, tables, ImVec2/ImVec4,
textures, draw list handles, the read-only style copy, and the checks a bad call meets."""

from __future__ import annotations

import struct
import zlib

import pytest

from modhost_util import make_host, mods_dir, read_log  # noqa: F401

CONVENTIONS = r"""
local out, frame, old_dl = {}, 0, nil
local function add(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  out[#out + 1] = table.concat(parts, " ")
end
local tex = ImGui.LoadTexture("ok.png")
add("bomb", ImGui.LoadTexture("bomb.png"))
add("text", ImGui.LoadTexture("notes.txt"))
add("missing", ImGui.LoadTexture("nope.png"))
add("outside", pcall(ImGui.Text, "x"))
add("pure", ImGui.ColorConvertFloat4ToU32({ 1, 0, 0, 1 }))

registerForEvent("onDraw", function()
  frame = frame + 1
  if frame == 1 then
    add("closed", ImGui.Begin("closed", false)) ImGui.End()           -- CET skips Begin; End stays legal
    ImGui.Begin("conv")
    old_dl = ImGui.GetWindowDrawList()
    add("checkbox", ImGui.Checkbox("c", true))
    add("selectable", ImGui.Selectable("s1"), ImGui.Selectable("s2", true))
    add("radio", ImGui.RadioButton("r1", true), ImGui.RadioButton("r2", 1, 2))
    add("combo", ImGui.Combo("cb1", 1, { "a", "b", "c" }, 3), ImGui.Combo("cb2", 2, "a\0b\0c\0"))
    add("input", ImGui.InputText("t", "abcdefgh", 4))
    add("drag3", table.concat(ImGui.DragFloat3("d3", { 1, 2 }), ","))
    add("size", select("#", ImGui.GetWindowSize()), select("#", ImGui.GetStyleColorVec4(ImGuiCol.Text)))
    add("u32", ImGui.GetColorU32(0xFF0000FF) == -16776961, ImGui.ColorConvertU32ToFloat4(0xFF0000FF)[4])
    add("hsv", ImGui.ColorConvertRGBtoHSV(1, 0, 0))
    local st = ImGui.GetStyle()
    add("style", st.WindowPadding.x > 0, st.Alpha, pcall(function() st.Alpha = 0 end))
    local v = ImVec2.new(1, 2)
    add("vec", v.x, v.y, ImVec2(3, 4).y, ImVec4.new(1, 2, 3, 4).w, pcall(function() ImVec2.z = 1 end))
    add("tex", tostring(tex), tex.size.x, tex.size.y)
    ImGui.Image(tex) ImGui.Image(tex, ImVec2.new(8, 8), ImVec2.new(0, 0), ImVec2.new(1, 1), ImVec4.new(1, 1, 1, 0.5))
    tex:Release()
    add("released", pcall(ImGui.Image, tex))
    add("format", pcall(ImGui.DragFloat, "d", 1, 1, 0, 0, "%s"))
    add("format2", pcall(ImGui.SliderInt, "s", 1, 0, 10, "%d%d"))
    add("okfmt", ImGui.SliderInt("s2", 3, 0, 10, "%d items"))
    add("nan", pcall(ImGui.SetCursorPosX, 0/0))
    add("type", pcall(ImGui.Button, {}))
    add("missingarg", pcall(ImGui.SliderFloat, "f", 1))
    add("toomany", pcall(ImGui.Button, "b", 1, 2, 3))
    add("enum", pcall(ImGui.PushStyleColor, 9999, 0))
    pcall(ImGui.PopStyleColor)
    add("table", pcall(ImGui.TableNextRow))
    add("pushid", pcall(function() ImGui.PushID(7) ImGui.PushID("x") ImGui.PopID() ImGui.PopID() end))
    add("nopop", pcall(ImGui.PopID))
    add("segs", pcall(ImGui.ImDrawListAddCircle, old_dl, 10, 10, 5, 0xFFFFFFFF, 100000))
    ImGui.End()
  elseif frame == 2 then
    add("stale", pcall(ImGui.ImDrawListAddLine, old_dl, 0, 0, 1, 1, 0xFFFFFFFF))
  end
end)
return { out = function() return table.concat(out, "\n") end }
"""


def _png(w: int, h: int, rows: bytes | None = None) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = rows if rows is not None else b"".join(b"\0" + b"\xff\x00\xff" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("real", [False, True], ids=["headless", "dear-imgui"])
def test_cet_conventions(make_host, real):
    host, console = make_host({"m": CONVENTIONS}, load=False)
    folder = host.mods_dir / "m"
    (folder / "ok.png").write_bytes(_png(3, 2))
    (folder / "bomb.png").write_bytes(_png(100_000, 100_000, rows=b""))   # claims 10 G pixels
    (folder / "notes.txt").write_text("not an image")
    if real:
        from host.ui.imgui_api import ImGuiLayer
        from host.ui.imgui_backend import ImGuiBackend
        host.ui = ImGuiLayer(ImGuiBackend(800, 600))
    host.load()
    for _ in range(2):
        host.draw()
    mod = host.mods["m"]
    assert mod.state == "loaded", read_log(host, "m")
    ok, text = mod.call(mod.public.out)
    got = dict(line.split(" ", 1) for line in text.split("\n"))
    assert got["bomb"].startswith("nil Failed to load 'bomb.png': 100000x100000 pixels: textures are limited")
    assert got["text"] == "nil Failed to load 'notes.txt': not a PNG, JPEG or BMP image"
    assert got["missing"].startswith("nil Failed to load 'nope.png': ")
    assert got["outside"].startswith("false ImGui.Text: ImGui can only be used inside onDraw")
    assert got["pure"] == "4278190335"
    assert got["closed"] == "false false"
    assert got["checkbox"] == "true false"
    assert got["selectable"] == "false true"
    assert got["radio"] == "false 1 false"
    assert got["combo"] == "1 2 false"            # (a call before the last gives one value)
    assert got["input"] == "abc false"
    assert got["drag3"] == "1,2,0"
    assert got["size"] == "2 4"
    assert got["u32"] == "true 1"
    assert got["hsv"] == "0 1 1"
    assert got["style"] == ("true 1 false mods/m/init.lua:31: ImGuiStyle (a copy: use ImGui.PushStyleVar to "
                            "change the style) is read-only (cannot set field 'Alpha')")
    assert got["vec"] == "1 2 4 4 false mods/m/init.lua:33: ImVec2 is read-only (cannot set field 'z')"
    assert got["tex"] == "ImguiTexture 3 2"
    assert got["released"].startswith("false ImGui.Image: not a texture of this mod")
    assert got["format"].startswith("false ImGui.DragFloat: bad argument #6 (format): bad format '%s'")
    assert got["format2"].startswith("false ImGui.SliderInt: bad argument #5 (format): bad format '%d%d'")
    assert got["okfmt"] == "3 false"
    assert got["nan"] == "false ImGui.SetCursorPosX: bad argument #1 (localX): number expected, got nan"
    assert got["type"] == "false ImGui.Button: bad argument #1 (label): string expected, got table"
    assert got["missingarg"].startswith("false ImGui.SliderFloat: argument #3 (min) is missing")
    assert got["toomany"].startswith("false ImGui.Button: too many arguments")
    if real:                  # headless knows no ImGuiCol values (every flag reads 0 there)
        assert got["enum"].startswith("false ImGui.PushStyleColor: bad argument #1: 9999 is not")
    assert got["table"] == "false ImGui.TableNextRow: only between BeginTable and EndTable"
    assert got["pushid"] == "true"
    assert got["nopop"] == "false ImGui.PopID: nothing to close (the innermost open call needs ImGui.End first)"
    assert got["segs"].startswith("false ImGui.ImDrawListAddCircle: bad argument #6 (numSegments): 100000 is out")
    assert got["stale"].startswith("false ImGui.ImDrawListAddLine: bad argument #1 (drawList): not a draw list "
                                   "of this frame")
    assert host.ui.errors == 0


def test_texture_headers_give_the_size_before_any_decoding(tmp_path):
    """PNG, JPEG and BMP sizes come from the header (checked against the caps before decoding)."""
    pygame = pytest.importorskip("pygame")
    from host.ui.imgui_textures import image_size
    img = pygame.Surface((37, 21))
    img.fill((10, 200, 30))
    for ext in ("png", "jpg", "bmp"):
        path = tmp_path / f"i.{ext}"
        pygame.image.save(img, str(path))
        assert image_size(path.read_bytes())[:2] == (37, 21), ext
    from host.errors import ModError
    with pytest.raises(ModError, match="not a valid JPEG"):
        image_size(b"\xff\xd8" + b"\x00" * 40)


CLIPPER = r"""
local clipper, frame, seen = ImGuiListClipper.new(), 0, {}
registerForEvent("onDraw", function()
  frame = frame + 1
  ImGui.SetNextWindowSize(200, 120)
  ImGui.Begin("clip")
  clipper:Begin(1000, -1)
  local drawn, first = 0, nil
  while clipper:Step() do
    first = first or clipper.DisplayStart
    for i = clipper.DisplayStart + 1, clipper.DisplayEnd do ImGui.Text("row " .. i) drawn = drawn + 1 end
  end
  seen[frame] = drawn .. " " .. tostring(first)
  if frame == 2 then ImGui.SetScrollY(5000) end
  ImGui.End()
end)
return { seen = function() return table.concat(seen, "|") end,
         bad = function() return select(2, pcall(clipper.Begin, clipper, "many")) end }
"""


@pytest.mark.parametrize("real", [False, True], ids=["headless", "dear-imgui"])
def test_list_clipper_draws_the_visible_rows(make_host, real):
    host, console = make_host({"m": CLIPPER}, load=False)
    if real:
        from host.ui.imgui_api import ImGuiLayer
        from host.ui.imgui_backend import ImGuiBackend
        host.ui = ImGuiLayer(ImGuiBackend(800, 600))
    host.load()
    for _ in range(4):
        host.update(1 / 60)
        host.draw()
    mod = host.mods["m"]
    assert mod.state == "loaded", read_log(host, "m")
    frames = [tuple(map(int, f.split())) for f in mod.call(mod.public.seen)[1].split("|")]
    if real:
        assert all(0 < n < 20 for n, _ in frames), frames          # a window's worth of rows, not 1000
        assert frames[1][1] == 0 and frames[3][1] > 250, frames    # scrolled to y 5000: rows near 5000/17
    else:
        assert frames == [(1000, 0)] * 4                           # headless: every row
    assert "bad argument #1 (itemsCount)" in mod.call(mod.public.bad)[1]


BARS_AND_POPUPS = r"""
local out, frame = {}, 0
registerForEvent("onDraw", function()
  frame = frame + 1
  if ImGui.BeginMainMenuBar() then
    if ImGui.BeginMenu("File") then ImGui.MenuItem("Quit") ImGui.EndMenu() end
    ImGui.EndMainMenuBar()
    out.main = true
  end
  ImGui.Begin("bars", ImGuiWindowFlags.MenuBar)
  if ImGui.BeginMenuBar() then out.bar = true ImGui.EndMenuBar() end
  if frame == 1 then ImGui.OpenPopup("p") ImGui.OpenPopup("modal") end
  if ImGui.BeginPopup("p") then
    out.popup = (out.popup or 0) + 1
    if ImGui.BeginCombo("combo", "preview") then ImGui.EndCombo() end
    ImGui.EndPopup()
  end
  if ImGui.BeginPopupModal("modal") then
    out.modal = (out.modal or 0) + 1
    if frame == 3 then ImGui.CloseCurrentPopup() end
    ImGui.EndPopup()
  end
  out.open = tostring(ImGui.IsPopupOpen("modal"))
  ImGui.End()
end)
return { out = function() return out end }
"""


def test_menu_bars_popups_and_modals_open_and_close_with_dear_imgui(make_host):
    host, console = make_host({"m": BARS_AND_POPUPS}, load=False)
    from host.ui.imgui_api import ImGuiLayer
    from host.ui.imgui_backend import ImGuiBackend
    host.ui = ImGuiLayer(ImGuiBackend(800, 600))
    host.load()
    for _ in range(5):
        host.update(1 / 60)
        host.draw()
    mod = host.mods["m"]
    assert mod.state == "loaded", read_log(host, "m")
    out = mod.call(mod.public.out)[1]
    assert out.main is True and out.bar is True
    assert out.modal == 3 and out.open == "false"           # open frames 1..3, closed by CloseCurrentPopup
    assert host.ui.errors == 0 and "[error]" not in read_log(host, "m")


TOASTS = r"""
local frame = 0
registerForEvent("onDraw", function()
  frame = frame + 1
  if frame == 1 then
    local t = ImGui.Toast.new(ImGui.ToastType.Success, 2000, "saved the settings")
    t:SetTitle("My mod")
    ImGui.ShowToast(t)
    ImGui.ShowToast(ImGui.Toast.new(ImGui.ToastType.Error, "went wrong"))
    for i = 1, 20 do ImGui.ShowToast(ImGui.Toast.new(ImGui.ToastType.Info, 500, "spam " .. i)) end
    print(pcall(ImGui.ShowToast, {}))
  end
end)
"""


@pytest.mark.parametrize("real", [False, True], ids=["headless", "dear-imgui"])
def test_toasts_show_in_the_corner_capped_per_mod(make_host, real):
    host, console = make_host({"m": TOASTS}, load=False)
    if real:
        from host.ui.imgui_api import ImGuiLayer
        from host.ui.imgui_backend import ImGuiBackend
        host.ui = ImGuiLayer(ImGuiBackend(800, 600))
    host.load()
    for _ in range(2):
        host.update(1 / 60)
        host.draw()
    assert host.mods["m"].state == "loaded", read_log(host, "m")
    toasts = host.ui.toasts
    assert len(toasts) == 8                                   # limits.ui.max_toasts a mod: the oldest went first
    assert [t["content"] for t in toasts[-2:]] == ["spam 19", "spam 20"]
    assert console.mod_lines("m")[0].startswith("false\tImGui.ShowToast: bad argument #1 (toast)")
    if real:
        names = [cl.owner_name if hasattr(cl, "owner_name") else "" for cl in host.ui.draw_data.cmd_lists]
        assert host.ui.errors == 0 and len(host.ui.draw_data.cmd_lists) >= 8, names
