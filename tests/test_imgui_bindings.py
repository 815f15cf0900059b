"""Every row of the ImGui binding table, called from a real mod: with valid arguments it runs
(real Dear ImGui without a window, and headless) and returns as many values as the table says;
with hostile arguments it is a clear Lua error naming the function, never a crash.
"""

from __future__ import annotations

import re

import pytest

from modhost_util import make_host, mods_dir, read_log  # noqa: F401
from host.ui.imgui_names import BINDINGS, calls_markdown

VALID = {
    "s": '"x"', "f": "1", "i": "0", "b": "true", "u": "0xFF00FF00", "xy": "12, 14", "rgba": "1, 0, 0, 1",
    "f2": "{ 1, 2 }", "f3": "{ 1, 2, 3 }", "f4": "{ 0.5, 0.5, 0.5, 1 }", "i2": "{ 1, 2 }",
    "i3": "{ 1, 2, 3 }", "i4": "{ 1, 2, 3, 4 }", "items": '{ "a", "b", "c" }', "dl": "dl",
    "key": "ImGuiKey.Enter", "btn": "0", "col": "ImGuiCol.Text", "var": "ImGuiStyleVar.Alpha",
    "dir": "ImGuiDir.Left", "cursor": "ImGuiMouseCursor.Hand", "segs": "12", "cols": "2",
    "ffmt": '"%.2f"', "ifmt": '"%d"', "tex": "tex",
}
# per-name argument overrides (values the function needs to make sense)
SPECIAL = {
    "InvisibleButton": '"inv", 10, 10', "Combo": '"combo", 1, { "a", "b", "c" }, 3',
    "ListBox": '"lb", 1, { "a", "b", "c" }, 3', "PushStyleColor": "ImGuiCol.Text, 1, 0, 0, 1",
    "PushStyleVar": "ImGuiStyleVar.Alpha, 0.5", "Image": "tex, ImVec2.new(8, 8)",
    "LoadTexture": '"pic.png"', "SetWindowFocus": "", "PushID": "7",
    "PlotLines": '"pl", { 1, 3, 2 }', "PlotHistogram": '"ph", { 1, 3, 2 }',
    "ImDrawListAddText": 'dl, 20, 20, 0xFFFFFFFF, "drawn text"', "SetKeyboardFocusHere": "0",
    "TableSetColumnIndex": "1", "TableSetBgColor": "ImGuiTableBgTarget.CellBg, 0xFF0000FF",
    "SetColumnWidth": "0, 50", "SetColumnOffset": "1, 60", "GetColorU32": "ImGuiCol.Text, 1",
    "BeginChildFrame": "7, 20, 20", "TableGetColumnName": "0",
    "ShowToast": 'ImGui.Toast.new(ImGui.ToastType.Info, 100, "toast")',
}
# the context a row needs (Lua before and after the call)
CONTEXT = {
    "Tables": ('if ImGui.BeginTable("ctx_t", 2) then ImGui.TableSetupColumn("a") ImGui.TableSetupColumn("b") '
               'ImGui.TableNextRow() ImGui.TableNextColumn()', "ImGui.EndTable() end"),
    "Tab bars": ('if ImGui.BeginTabBar("ctx_tb") then', "ImGui.EndTabBar() end"),
    "Columns (legacy)": ('ImGui.Columns(2, "ctx_c", true)', "ImGui.Columns(1)"),
}
CONTEXT_BY_NAME = {"TableSetupScrollFreeze": ('if ImGui.BeginTable("ctx_f", 2) then', "ImGui.EndTable() end")}
NO_CONTEXT = {"BeginTable", "TableSetupColumn", "BeginTabBar", "Columns"}
# rows that close what another row opened: run as pairs (the opener makes the stack right)
OPENERS = {
    "End": 'ImGui.Begin("pair")', "EndChild": 'ImGui.BeginChild("pair")', "EndChildFrame": "ImGui.BeginChildFrame(9, 20, 20)",
    "PopStyleColor": "ImGui.PushStyleColor(ImGuiCol.Text, 1, 1, 1, 1)",
    "PopStyleVar": "ImGui.PushStyleVar(ImGuiStyleVar.Alpha, 1)", "PopItemFlag": "ImGui.PushItemFlag(0, true)",
    "PopItemWidth": "ImGui.PushItemWidth(50)", "PopTextWrapPos": "ImGui.PushTextWrapPos(100)",
    "PopTabStop": "ImGui.PushTabStop(true)", "PopButtonRepeat": "ImGui.PushButtonRepeat(true)",
    "PopAllowKeyboardFocus": "ImGui.PushAllowKeyboardFocus(true)", "EndGroup": "ImGui.BeginGroup()",
    "PopID": 'ImGui.PushID("pair")', "TreePop": 'ImGui.TreePush("pair")',
    "EndDisabled": "ImGui.BeginDisabled(true)", "PopClipRect": "ImGui.PushClipRect(0, 0, 100, 100, true)",
    "EndTable": 'assert(ImGui.BeginTable("pair", 2))', "EndTabBar": 'assert(ImGui.BeginTabBar("pair"))',
    "EndTabItem": 'assert(ImGui.BeginTabBar("pair2")) assert(ImGui.BeginTabItem("first"))',
    "EndTooltip": "assert(ImGui.BeginTooltip())",
}
AFTER = {"EndTabItem": "ImGui.EndTabBar()"}
# closers whose opener may return false (a popup that is not open, a closed combo or menu): their
# families are run by test_imgui_conventions.py (bars, popups, modals) and test_imgui.py (list boxes)
SKIP_PAIRS = {"EndPopup", "EndCombo", "EndMenu", "EndMenuBar", "EndMainMenuBar", "EndListBox"}


def _args(b) -> str:
    if b.name in SPECIAL:
        return SPECIAL[b.name]
    return ", ".join(VALID[a.type] for a in b.args if not a.optional)


def _expected_count(b) -> int:
    if b.name in ("Begin",):
        return 1
    return sum(2 if k == "xy" else 4 if k == "xyzw" else 1 for _, k in b.results)


def _closer(b) -> str:
    from host.ui.imgui_api import CLOSERS
    kind = b.tag("push") or b.tag("pushif")
    if not kind:
        return "nil, false"
    return f"ImGui.{CLOSERS[kind][0]}, {'true' if b.tag('push') else 'false'}"


def _call_lua(b) -> str:
    args = _args(b)
    body = f'run("{b.name}", {_closer(b)}{", " if args else ""}{args})'
    if b.tag("pop") or b.name in OPENERS:
        if b.name in SKIP_PAIRS:
            return ""
        body = f"{OPENERS[b.name]} {body} {AFTER.get(b.name, '')}"
    elif b.name in CONTEXT_BY_NAME or (b.family in CONTEXT and b.name not in NO_CONTEXT):
        before, after = CONTEXT_BY_NAME.get(b.name) or CONTEXT[b.family]
        body = f"{before} {body} {after}"
    return body


def _mod_source() -> str:
    calls = "\n".join(f"  {_call_lua(b)}" for b in BINDINGS.values())
    return f"""
local tex = ImGui.LoadTexture("pic.png")
local results = {{}}
function run(name, closer, always, ...)
  local res = {{ n = 0 }}
  local function keep(...) res = {{ n = select("#", ...), ... }} end
  keep(pcall(ImGui[name], ...))
  if res[1] then results[#results + 1] = name .. "=" .. (res.n - 1)
  else results[#results + 1] = name .. "!" .. tostring(res[2]) end
  if res[1] and closer and (always or res[2]) then closer() end
end
local frames = 0
registerForEvent("onDraw", function()
  frames = frames + 1
  if frames ~= 2 then return end
  ImGui.SetNextWindowSize(500, 600)
  ImGui.Begin("bindings", ImGuiWindowFlags.MenuBar)
  local dl = ImGui.GetWindowDrawList()
{calls}
  ImGui.End()
end)
return {{ results = function() return table.concat(results, string.char(10)) end }}
"""


# a 1x1 PNG (red), written into the mod's folder for LoadTexture / Image
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408"
                    "d763f8cfc000000301010018dd8db00000000049454e44ae426082")


def _run(make_host, real: bool, source: str, frames: int = 3, budget_ms: int | None = None):
    from host.limits import Limits
    host, console = make_host({"m": source}, load=False, limits=Limits(budget_ms=budget_ms) if budget_ms else None)
    (host.mods_dir / "m" / "pic.png").write_bytes(PNG)
    if real:
        from host.ui.imgui_api import ImGuiLayer
        from host.ui.imgui_backend import ImGuiBackend
        host.ui = ImGuiLayer(ImGuiBackend(800, 600))
    host.load()
    for _ in range(frames):
        host.draw()
    assert host.mods["m"].state == "loaded", read_log(host, "m")
    return host, console


@pytest.mark.parametrize("real", [False, True], ids=["headless", "dear-imgui"])
def test_every_binding_runs_with_valid_arguments_and_returns_cet_result_counts(make_host, real):
    host, console = _run(make_host, real, _mod_source(), budget_ms=5000)
    mod = host.mods["m"]
    ok, text = mod.call(mod.public.results)
    assert ok, read_log(host, "m")
    lines = text.split("\n")
    got = {}
    for line in lines:
        name, sep, rest = re.split(r"([=!])", line, maxsplit=1)
        got[name] = (sep, rest)
    failed = {n: r for n, (s, r) in got.items() if s == "!"}
    assert not failed, failed
    expected = {b.name for b in BINDINGS.values() if b.name not in SKIP_PAIRS}
    assert set(got) == expected
    wrong = {n: (int(r), _expected_count(BINDINGS[n])) for n, (s, r) in got.items()
             if int(r) != _expected_count(BINDINGS[n])}
    assert not wrong, wrong
    assert host.ui.errors == 0, host.ui.last_error


HOSTILE = ["{}", '"str"', "0/0", "1e300", "-1e300", "-1", "2^40", 'string.rep("x", 70000)', "true",
           "function() end", '"%s%s%n%n"', "nil"]


def _hostile_source() -> str:
    cases = []
    for b in BINDINGS.values():
        if b.tag("pop") or b.name in ("Begin", "LoadTexture"):
            continue
        args = ", ".join(VALID[a.type] for a in b.args)
        cases.append(f'  {{ "{b.name}", function(dl, tex) return pack({args}) end, {_closer(b)} }},')
    body = "\n".join(cases)
    bad = ", ".join(f"function() return {h} end" for h in HOSTILE)
    return f"""
local tex = ImGui.LoadTexture("pic.png")
local function pack(...) return {{ n = select("#", ...), ... }} end
local cases = {{
{body}
}}
local hostile = {{ {bad} }}
local refused, unclear = 0, {{}}
local frames = 0
registerForEvent("onDraw", function()
  frames = frames + 1
  if frames ~= 2 then return end
  ImGui.SetNextWindowSize(400, 400)
  ImGui.Begin("hostile")
  local dl = ImGui.GetWindowDrawList()
  for _, case in ipairs(cases) do
    local name, make, closer, always = case[1], case[2], case[3], case[4]
    local n = make(dl, tex).n
    for i = 1, n do
      for _, h in ipairs(hostile) do
        local args = make(dl, tex)
        args[i] = h()
        local ok, err = pcall(ImGui[name], unpack(args, 1, n))
        if ok and closer and (always or err) then pcall(closer) end
        if not ok then
          refused = refused + 1
          local e = tostring(err)
          if (not e:find("ImGui." .. name, 1, true) and not e:find("ImGui:", 1, true))
              or e:find("host binding error", 1, true) then
            unclear[#unclear + 1] = name .. ": " .. tostring(err)
          end
        end
      end
    end
  end
  ImGui.End()
  print("refused " .. refused)
  for j = 1, math.min(#unclear, 50) do print("unclear: " .. unclear[j]) end
end)
"""


@pytest.mark.parametrize("real", [False, True], ids=["headless", "dear-imgui"])
def test_hostile_arguments_are_clear_errors_never_a_crash(make_host, real):
    """Wrong types, NaN, huge numbers, 70 KB strings, printf formats reading memory (%s %n), tables
    and functions in every argument of every row: Lua errors naming the function; the frame
    finishes; formats that would crash Dear ImGui never reach it."""
    host, console = _run(make_host, real, _hostile_source(), budget_ms=10000)
    lines = console.mod_lines("m")
    assert lines and lines[0].startswith("refused "), read_log(host, "m")
    assert int(lines[0].split()[1]) > 2000
    assert [l for l in lines if l.startswith("unclear")] == []
    assert host.ui.errors == 0, host.ui.last_error


def test_docs_list_every_call_of_the_table():
    """docs/MODDING.md's ImGui list is the table's (regenerate: python -m host.ui.imgui_names)."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "MODDING.md").read_text(encoding="utf-8")
    begin, end = "<!-- imgui-calls: generated by python -m host.ui.imgui_names -->", "<!-- /imgui-calls -->"
    block = text.split(begin, 1)[1].split(end, 1)[0].strip()
    assert block == calls_markdown()
