"""CET's `ImGui` table for mods, over Dear ImGui or over nothing (headless).

Every mod gets `ImGui` with CET's (sol_imgui's) names and return values —
`ImGui.Begin(name [, open] [, flags])`, `ImGui.Checkbox(label, v) -> v, pressed`,
`ImGui.InputText(label, text, maxLength) -> text, changed`, ... — and the flag
tables (`ImGuiWindowFlags`, `ImGuiCol`, `ImGuiCond`, `ImGuiStyleVar`, ...).

As in CET the calls work only while the mod's `onDraw` runs (anywhere else
they raise a Lua error).  The host opens one ImGui frame around all onDraw
callbacks (`ImGuiLayer.begin_frame/end_frame`, called by `Host.draw`).

- With an `ImGuiBackend` (host/ui/imgui_backend.py, the `ui` extra) the calls
  go to Dear ImGui; a renderer (host/ui/imgui_overlay.py) draws the result.
- Without one (a headless host, or no imgui-bundle installed) the calls are
  accepted and draw nothing: `Begin` returns true, buttons are not pressed,
  values come back unchanged, and every flag reads as 0.

Safety: Dear ImGui asserts (and would leave its state broken) on unbalanced
Begin/End and Push/Pop pairs.  Each mod's onDraw has its own stack here: an
End without its Begin is a clear Lua error before ImGui sees it, and whatever
the mod left open (it errored, was stopped, forgot an End) is closed in order
after its onDraw.  Strings are capped; nesting is capped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from host.errors import ModError
from host.ui.imgui_names import FLAG_TABLES

if TYPE_CHECKING:
    from host.runtime.mod import Mod

MAX_TEXT = 64 * 1024         # bytes of one string argument or InputText result
MAX_DEPTH = 64               # open Begin/Push entries per mod per frame

# Ends that close each kind of stack entry (what the mod must call, in order).
_CLOSERS = {
    "window": "End", "child": "EndChild", "tabbar": "EndTabBar", "tabitem": "EndTabItem",
    "tree": "TreePop", "table": "EndTable", "menubar": "EndMenuBar", "menu": "EndMenu",
    "popup": "EndPopup", "tooltip": "EndTooltip", "combo": "EndCombo", "group": "EndGroup",
    "color": "PopStyleColor", "var": "PopStyleVar", "width": "PopItemWidth", "id": "PopID",
    "disabled": "EndDisabled", "listbox": "EndListBox",
}


class ImGuiLayer:
    """The ImGui of a Host: one frame per draw phase, one stack per mod's onDraw."""

    def __init__(self, backend=None):
        self.backend = backend          # ImGuiBackend or None (headless: draw nothing)
        self.overlay = None             # the ImGuiOverlay that renders this layer, if any
        self.errors = 0                 # frames Dear ImGui could not finish
        self.last_error: str | None = None
        self.drawing = False            # inside the draw phase (onDraw allowed to call ImGui)
        self.draw_data = None           # the last frame's draw data (for a renderer)
        self._stack: list[str] = []
        self._flags: dict[str, dict[str, int]] | None = None
        self._flag_src: str | None = None

    @property
    def headless(self) -> bool:
        """True when the calls draw nothing."""
        return self.backend is None

    # -- the draw phase (Host.draw) ----------------------------------------------------------

    def begin_frame(self, dt: float = 1 / 60) -> None:
        """Open the frame in which every mod's onDraw runs."""
        if self.backend is not None:
            self.backend.new_frame(dt)
        self.drawing = True

    def end_frame(self) -> None:
        """Close the frame; with a backend, keep its draw data for the renderer.

        A frame Dear ImGui cannot finish (its state broken by a refused call)
        is dropped, never raised into the game's loop.
        """
        self.drawing = False
        if self.backend is not None:
            try:
                self.draw_data = self.backend.render()
            except RuntimeError as e:
                self.draw_data = None
                self.errors += 1
                self.last_error = str(e)

    def enter_mod(self) -> None:
        """A mod's onDraw starts: a fresh stack."""
        self._stack = []

    def leave_mod(self) -> None:
        """A mod's onDraw ended (or failed): close what it left open, innermost first."""
        while self._stack:
            self._close(self._stack.pop())

    # -- installing into a mod -------------------------------------------------------------------

    def flag_tables(self) -> dict[str, dict[str, int]]:
        """CET's ImGui* flag tables (empty without a backend: every flag reads as 0)."""
        if self._flags is None:
            if self.backend is not None:
                from host.ui.imgui_backend import flag_tables
                self._flags = flag_tables()
            else:
                self._flags = {}
        return self._flags

    def install(self, mod: "Mod") -> None:
        """Expose `ImGui` and the flag tables in a mod being built."""
        api = _ModImGui(self, mod)
        names = [n for n in dir(api) if n[:1].isupper() and callable(getattr(api, n))]

        def dispatch(name, *args):
            fn = getattr(api, name, None) if isinstance(name, str) and name[:1].isupper() else None
            if fn is None:
                raise ModError(f"ImGui.{name} does not exist")
            try:
                return fn(*args)
            except RuntimeError as e:        # Dear ImGui's IM_ASSERT
                raise ModError(f"ImGui.{name}: Dear ImGui refused the call ({e})") from None

        lib = mod.load_lib("relic_imgui")
        mod.expose("ImGui", lib.functions(mod.wrap(dispatch), mod.table(names)))
        values = None
        if self.flag_tables():
            res = mod.box.load_chunk(self._flag_source(), "=relic_imgui_flags")
            values = (res[0] if isinstance(res, tuple) else res)()
        lib.expose_flags(mod.env, values, mod.table(list(FLAG_TABLES)), mod.box.readonly)

    def _flag_source(self) -> str:
        # The flag tables as one Lua table constructor, compiled in each mod's
        # runtime: far cheaper than building ~1,000 fields through lupa.
        if self._flag_src is None:
            parts = []
            for table, values in sorted(self.flag_tables().items()):
                fields = ", ".join(f"[{k!r}] = {int(v)}" for k, v in sorted(values.items()))
                parts.append(f"{table} = {{ {fields} }}")
            self._flag_src = "return { " + ",\n".join(parts) + " }"
        return self._flag_src

    # -- stack --------------------------------------------------------------------------------

    def push(self, kind: str) -> None:
        """Record an opened Begin/Push (raises past MAX_DEPTH, before ImGui is called)."""
        if len(self._stack) >= MAX_DEPTH:
            raise ModError(f"ImGui: more than {MAX_DEPTH} nested Begin/Push calls in one onDraw")
        self._stack.append(kind)

    def pop(self, kind: str, fname: str) -> None:
        """Check that `fname` closes the innermost entry; raise a clear error if not."""
        if not self._stack or self._stack[-1] != kind:
            top = self._stack[-1] if self._stack else None
            hint = f" (the innermost open call needs ImGui.{_CLOSERS[top]} first)" if top else ""
            raise ModError(f"ImGui.{fname}: nothing to close{hint}")
        self._stack.pop()

    def _close(self, kind: str) -> None:
        if self.backend is None:
            return
        im = self.backend.imgui
        closer = {
            "window": im.end, "child": im.end_child, "tabbar": im.end_tab_bar,
            "tabitem": im.end_tab_item, "tree": im.tree_pop, "table": im.end_table,
            "menubar": im.end_menu_bar, "menu": im.end_menu, "popup": im.end_popup,
            "tooltip": im.end_tooltip, "combo": im.end_combo, "group": im.end_group,
            "color": lambda: im.pop_style_color(1), "var": lambda: im.pop_style_var(1),
            "width": im.pop_item_width, "id": im.pop_id, "disabled": im.end_disabled,
            "listbox": im.end_list_box,
        }[kind]
        closer()


def _text(v, what: str = "text") -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return ("%.14g" % v) if isinstance(v, float) else str(v)
    if not isinstance(v, str):
        raise ModError(f"ImGui: {what} must be a string")
    if len(v) > MAX_TEXT:
        raise ModError(f"ImGui: {what} longer than {MAX_TEXT} bytes")
    return v


def _num(v, default: float = 0.0) -> float:
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ModError("ImGui: a number was expected")
    return v


def _int(v, default: int = 0) -> int:
    return int(_num(v, default))


class _ModImGui:
    """The functions of one mod's `ImGui` table (CET names; see the module docstring)."""

    def __init__(self, layer: ImGuiLayer, mod: "Mod"):
        self._layer = layer
        self._mod = mod

    # -- plumbing -----------------------------------------------------------------------------

    def _im(self, fname: str):
        if not self._layer.drawing:
            raise ModError(f"ImGui.{fname}: ImGui can only be used inside onDraw (as in CET)")
        b = self._layer.backend
        return b.imgui if b is not None else None

    def _vec2(self, x, y):
        from imgui_bundle import imgui
        return imgui.ImVec2(float(_num(x)), float(_num(y)))

    def _list(self, v) -> list:
        data = self._mod.from_lua_plain(v) if v is not None else []
        if isinstance(data, dict) and not data:
            return []
        if not isinstance(data, list):
            raise ModError("ImGui: a list (array table) was expected")
        return data

    # -- windows --------------------------------------------------------------------------------

    def Begin(self, name=None, a=None, b=None):
        """Begin(name [, flags]) -> shouldDraw; Begin(name, open [, flags]) -> open, shouldDraw."""
        im = self._im("Begin")
        name = _text(name, "window name")
        with_open = isinstance(a, bool)
        flags = _int(b if with_open else a)
        self._layer.push("window")
        if im is None:
            return (a, True) if with_open else True
        shown, still_open = im.begin(name, a if with_open else None, flags)
        return (bool(still_open), shown) if with_open else shown

    def End(self):
        """End() closes Begin (always, whatever Begin returned)."""
        im = self._im("End")
        self._layer.pop("window", "End")
        if im is not None:
            im.end()

    def BeginChild(self, name=None, w=None, h=None, border=None, flags=None):
        """BeginChild(name [, sizeX, sizeY, border, flags]) -> bool."""
        im = self._im("BeginChild")
        name = _text(name, "child name")
        self._layer.push("child")
        if im is None:
            return True
        child_flags = im.ChildFlags_.borders.value if border else 0
        return im.begin_child(name, self._vec2(w, h), child_flags, _int(flags))

    def EndChild(self):
        """EndChild() closes BeginChild (always)."""
        im = self._im("EndChild")
        self._layer.pop("child", "EndChild")
        if im is not None:
            im.end_child()

    def SetNextWindowPos(self, x=None, y=None, cond=None):
        """SetNextWindowPos(x, y [, cond])."""
        im = self._im("SetNextWindowPos")
        if im is not None:
            im.set_next_window_pos(self._vec2(x, y), _int(cond))

    def SetNextWindowSize(self, w=None, h=None, cond=None):
        """SetNextWindowSize(w, h [, cond])."""
        im = self._im("SetNextWindowSize")
        if im is not None:
            im.set_next_window_size(self._vec2(w, h), _int(cond))

    def GetWindowSize(self):
        """-> width, height."""
        im = self._im("GetWindowSize")
        if im is None:
            return 0.0, 0.0
        v = im.get_window_size()
        return v.x, v.y

    def GetWindowPos(self):
        """-> x, y."""
        im = self._im("GetWindowPos")
        if im is None:
            return 0.0, 0.0
        v = im.get_window_pos()
        return v.x, v.y

    def GetWindowWidth(self):
        """-> width."""
        im = self._im("GetWindowWidth")
        return 0.0 if im is None else im.get_window_width()

    def GetContentRegionAvail(self):
        """-> x, y."""
        im = self._im("GetContentRegionAvail")
        if im is None:
            return 0.0, 0.0
        v = im.get_content_region_avail()
        return v.x, v.y

    def IsWindowCollapsed(self):
        """-> bool."""
        im = self._im("IsWindowCollapsed")
        return False if im is None else im.is_window_collapsed()

    def IsWindowFocused(self, flags=None):
        """-> bool."""
        im = self._im("IsWindowFocused")
        return False if im is None else im.is_window_focused(_int(flags))

    # -- text -----------------------------------------------------------------------------------

    def Text(self, text=None):
        """Text(text)."""
        im = self._im("Text")
        text = _text(text)
        if im is not None:
            im.text_unformatted(text)

    def TextWrapped(self, text=None):
        """TextWrapped(text)."""
        im = self._im("TextWrapped")
        text = _text(text)
        if im is not None:
            im.text_wrapped(text)

    def TextColored(self, r=None, g=None, b=None, a=None, text=None):
        """TextColored(r, g, b, a, text) (0..1 floats)."""
        im = self._im("TextColored")
        text = _text(text)
        if im is not None:
            im.text_colored(im.ImVec4(_num(r), _num(g), _num(b), _num(a, 1.0)), text)

    def TextDisabled(self, text=None):
        """TextDisabled(text)."""
        im = self._im("TextDisabled")
        text = _text(text)
        if im is not None:
            im.text_disabled(text)

    def BulletText(self, text=None):
        """BulletText(text)."""
        im = self._im("BulletText")
        text = _text(text)
        if im is not None:
            im.bullet_text(text)

    def LabelText(self, label=None, text=None):
        """LabelText(label, text)."""
        im = self._im("LabelText")
        label, text = _text(label, "label"), _text(text)
        if im is not None:
            im.label_text(label, text)

    def CalcTextSize(self, text=None):
        """-> width, height of text."""
        im = self._im("CalcTextSize")
        text = _text(text)
        if im is None:
            return float(7 * len(text)), 13.0
        v = im.calc_text_size(text)
        return v.x, v.y

    def SetWindowFontScale(self, scale=None):
        """SetWindowFontScale(scale): accepted (Dear ImGui 1.92 scales fonts with the style)."""
        self._im("SetWindowFontScale")
        _num(scale, 1.0)

    def GetFontSize(self):
        """-> the current font size."""
        im = self._im("GetFontSize")
        return 13.0 if im is None else im.get_font_size()

    # -- layout ---------------------------------------------------------------------------------

    def SameLine(self, offset=None, spacing=None):
        """SameLine([offset, spacing])."""
        im = self._im("SameLine")
        if im is not None:
            im.same_line(float(_num(offset)), float(_num(spacing, -1.0)))

    def Separator(self):
        """Separator()."""
        im = self._im("Separator")
        if im is not None:
            im.separator()

    def Spacing(self):
        """Spacing()."""
        im = self._im("Spacing")
        if im is not None:
            im.spacing()

    def NewLine(self):
        """NewLine()."""
        im = self._im("NewLine")
        if im is not None:
            im.new_line()

    def Dummy(self, w=None, h=None):
        """Dummy(w, h)."""
        im = self._im("Dummy")
        if im is not None:
            im.dummy(self._vec2(w, h))

    def Indent(self, w=None):
        """Indent([w])."""
        im = self._im("Indent")
        if im is not None:
            im.indent(float(_num(w)))

    def Unindent(self, w=None):
        """Unindent([w])."""
        im = self._im("Unindent")
        if im is not None:
            im.unindent(float(_num(w)))

    def BeginGroup(self):
        """BeginGroup()."""
        im = self._im("BeginGroup")
        self._layer.push("group")
        if im is not None:
            im.begin_group()

    def EndGroup(self):
        """EndGroup()."""
        im = self._im("EndGroup")
        self._layer.pop("group", "EndGroup")
        if im is not None:
            im.end_group()

    def PushItemWidth(self, w=None):
        """PushItemWidth(w)."""
        im = self._im("PushItemWidth")
        self._layer.push("width")
        if im is not None:
            im.push_item_width(float(_num(w)))

    def PopItemWidth(self):
        """PopItemWidth()."""
        im = self._im("PopItemWidth")
        self._layer.pop("width", "PopItemWidth")
        if im is not None:
            im.pop_item_width()

    def SetNextItemWidth(self, w=None):
        """SetNextItemWidth(w)."""
        im = self._im("SetNextItemWidth")
        if im is not None:
            im.set_next_item_width(float(_num(w)))

    def PushID(self, id_=None):
        """PushID(id)."""
        im = self._im("PushID")
        key = _text(id_, "id")
        self._layer.push("id")
        if im is not None:
            im.push_id(key)

    def PopID(self):
        """PopID()."""
        im = self._im("PopID")
        self._layer.pop("id", "PopID")
        if im is not None:
            im.pop_id()

    # -- widgets --------------------------------------------------------------------------------

    def Button(self, label=None, w=None, h=None):
        """Button(label [, sizeX, sizeY]) -> pressed."""
        im = self._im("Button")
        label = _text(label, "label")
        return False if im is None else im.button(label, self._vec2(w, h))

    def SmallButton(self, label=None):
        """SmallButton(label) -> pressed."""
        im = self._im("SmallButton")
        label = _text(label, "label")
        return False if im is None else im.small_button(label)

    def Checkbox(self, label=None, v=None):
        """Checkbox(label, value) -> value, pressed."""
        im = self._im("Checkbox")
        label = _text(label, "label")
        v = bool(v)
        if im is None:
            return v, False
        pressed, v = im.checkbox(label, v)
        return v, pressed

    def RadioButton(self, label=None, a=None, b=None):
        """RadioButton(label, active) -> pressed; RadioButton(label, v, vButton) -> v, pressed."""
        im = self._im("RadioButton")
        label = _text(label, "label")
        if b is None:
            return False if im is None else im.radio_button(label, bool(a))
        v, vb = _int(a), _int(b)
        if im is None:
            return v, False
        pressed = im.radio_button(label, v == vb)
        return (vb if pressed else v), pressed

    def InputText(self, label=None, text=None, max_len=None, flags=None):
        """InputText(label, text, maxLength [, flags]) -> text, changed."""
        im = self._im("InputText")
        label, text = _text(label, "label"), _text(text)
        cap = max(1, min(_int(max_len, MAX_TEXT), MAX_TEXT))
        if im is None:
            return text, False
        changed, new = im.input_text(label, text, _int(flags))
        return new.encode("utf-8")[:cap - 1].decode("utf-8", "ignore") if len(new) >= cap else new, changed

    def InputTextMultiline(self, label=None, text=None, max_len=None, w=None, h=None, flags=None):
        """InputTextMultiline(label, text, maxLength [, sizeX, sizeY, flags]) -> text, changed."""
        im = self._im("InputTextMultiline")
        label, text = _text(label, "label"), _text(text)
        cap = max(1, min(_int(max_len, MAX_TEXT), MAX_TEXT))
        if im is None:
            return text, False
        changed, new = im.input_text_multiline(label, text, self._vec2(w, h), _int(flags))
        return new.encode("utf-8")[:cap - 1].decode("utf-8", "ignore") if len(new) >= cap else new, changed

    def InputInt(self, label=None, v=None, step=None, step_fast=None, flags=None):
        """InputInt(label, value [, step, stepFast, flags]) -> value, used."""
        im = self._im("InputInt")
        label, v = _text(label, "label"), _int(v)
        if im is None:
            return v, False
        used, v = im.input_int(label, v, _int(step, 1), _int(step_fast, 100), _int(flags))
        return v, used

    def InputFloat(self, label=None, v=None, step=None, step_fast=None, fmt=None, flags=None):
        """InputFloat(label, value [, step, stepFast, format, flags]) -> value, used."""
        im = self._im("InputFloat")
        label, v = _text(label, "label"), float(_num(v))
        if im is None:
            return v, False
        used, v = im.input_float(label, v, float(_num(step)), float(_num(step_fast)),
                                 _text(fmt or "%.3f", "format"), _int(flags))
        return v, used

    def SliderInt(self, label=None, v=None, lo=None, hi=None, fmt=None):
        """SliderInt(label, value, min, max [, format]) -> value, used."""
        im = self._im("SliderInt")
        label, v = _text(label, "label"), _int(v)
        if im is None:
            return v, False
        used, v = im.slider_int(label, v, _int(lo), _int(hi), _text(fmt or "%d", "format"))
        return v, used

    def SliderFloat(self, label=None, v=None, lo=None, hi=None, fmt=None):
        """SliderFloat(label, value, min, max [, format]) -> value, used."""
        im = self._im("SliderFloat")
        label, v = _text(label, "label"), float(_num(v))
        if im is None:
            return v, False
        used, v = im.slider_float(label, v, float(_num(lo)), float(_num(hi)),
                                  _text(fmt or "%.3f", "format"))
        return v, used

    def DragInt(self, label=None, v=None, speed=None, lo=None, hi=None):
        """DragInt(label, value [, speed, min, max]) -> value, used."""
        im = self._im("DragInt")
        label, v = _text(label, "label"), _int(v)
        if im is None:
            return v, False
        used, v = im.drag_int(label, v, float(_num(speed, 1.0)), _int(lo), _int(hi))
        return v, used

    def DragFloat(self, label=None, v=None, speed=None, lo=None, hi=None):
        """DragFloat(label, value [, speed, min, max]) -> value, used."""
        im = self._im("DragFloat")
        label, v = _text(label, "label"), float(_num(v))
        if im is None:
            return v, False
        used, v = im.drag_float(label, v, float(_num(speed, 1.0)), float(_num(lo)), float(_num(hi)))
        return v, used

    def Combo(self, label=None, current=None, items=None, count=None, height=None):
        """Combo(label, currentItem, items, itemsCount [, heightInItems]) -> currentItem, clicked (0-based)."""
        im = self._im("Combo")
        label, current = _text(label, "label"), _int(current)
        names = [_text(x, "item") for x in self._list(items)]
        if count is not None:
            names = names[:max(0, _int(count))]
        if im is None:
            return current, False
        clicked, current = im.combo(label, current, names, _int(height, -1))
        return current, clicked

    def ListBox(self, label=None, current=None, items=None, count=None, height=None):
        """ListBox(label, currentItem, items, itemsCount [, heightInItems]) -> currentItem, clicked."""
        im = self._im("ListBox")
        label, current = _text(label, "label"), _int(current)
        names = [_text(x, "item") for x in self._list(items)]
        if count is not None:
            names = names[:max(0, _int(count))]
        if im is None:
            return current, False
        clicked, current = im.list_box(label, current, names, _int(height, -1))
        return current, clicked

    def Selectable(self, label=None, selected=None, flags=None, w=None, h=None):
        """Selectable(label [, selected, flags, sizeX, sizeY]) -> clicked."""
        im = self._im("Selectable")
        label = _text(label, "label")
        if im is None:
            return False
        clicked, _ = im.selectable(label, bool(selected), _int(flags), self._vec2(w, h))
        return clicked

    def ColorEdit3(self, label=None, col=None, flags=None):
        """ColorEdit3(label, {r, g, b} [, flags]) -> col, used."""
        return self._color("ColorEdit3", 3, label, col, flags)

    def ColorEdit4(self, label=None, col=None, flags=None):
        """ColorEdit4(label, {r, g, b, a} [, flags]) -> col, used."""
        return self._color("ColorEdit4", 4, label, col, flags)

    def _color(self, fname, n, label, col, flags):
        im = self._im(fname)
        label = _text(label, "label")
        values = [float(_num(x)) for x in self._list(col)][:n]
        values += [1.0] * (n - len(values))
        if im is None:
            return values, False
        if n == 3:
            used, out = im.color_edit3(label, values, _int(flags))
            return list(out), used
        used, out = im.color_edit4(label, im.ImVec4(*values), _int(flags))
        return [out.x, out.y, out.z, out.w], used

    def ProgressBar(self, fraction=None, w=None, h=None, overlay=None):
        """ProgressBar(fraction [, sizeX, sizeY, overlay])."""
        im = self._im("ProgressBar")
        if im is not None:
            im.progress_bar(float(_num(fraction)), self._vec2(-1.0 if w is None else w, h),
                            None if overlay is None else _text(overlay, "overlay"))

    def CollapsingHeader(self, label=None, flags=None):
        """CollapsingHeader(label [, flags]) -> open."""
        im = self._im("CollapsingHeader")
        label = _text(label, "label")
        return True if im is None else im.collapsing_header(label, _int(flags))

    def TreeNode(self, label=None):
        """TreeNode(label) -> open (TreePop() when true)."""
        im = self._im("TreeNode")
        label = _text(label, "label")
        opened = True if im is None else im.tree_node(label)
        if opened:
            self._layer.push("tree")
        return opened

    def TreePop(self):
        """TreePop() closes an open TreeNode."""
        im = self._im("TreePop")
        self._layer.pop("tree", "TreePop")
        if im is not None:
            im.tree_pop()

    # -- tab bars, menus, popups, tooltips, tables -----------------------------------------

    def _begin_if(self, fname, kind, opened):
        if opened:
            self._layer.push(kind)
        return opened

    def _end(self, fname, kind, fn_name):
        im = self._im(fname)
        self._layer.pop(kind, fname)
        if im is not None:
            getattr(im, fn_name)()

    def BeginTabBar(self, name=None, flags=None):
        """BeginTabBar(id [, flags]) -> open (EndTabBar() when true)."""
        im = self._im("BeginTabBar")
        name = _text(name, "id")
        return self._begin_if("BeginTabBar", "tabbar",
                              True if im is None else im.begin_tab_bar(name, _int(flags)))

    def EndTabBar(self):
        """EndTabBar()."""
        self._end("EndTabBar", "tabbar", "end_tab_bar")

    def BeginTabItem(self, label=None, a=None, b=None):
        """BeginTabItem(label [, flags]) -> selected; BeginTabItem(label, open [, flags]) -> open, selected."""
        im = self._im("BeginTabItem")
        label = _text(label, "label")
        with_open = isinstance(a, bool)
        flags = _int(b if with_open else a)
        if im is None:
            selected, still = True, a
        else:
            selected, still = im.begin_tab_item(label, a if with_open else None, flags)
        self._begin_if("BeginTabItem", "tabitem", selected)
        return (bool(still), selected) if with_open else selected

    def EndTabItem(self):
        """EndTabItem()."""
        self._end("EndTabItem", "tabitem", "end_tab_item")

    def BeginMenuBar(self):
        """BeginMenuBar() -> open."""
        im = self._im("BeginMenuBar")
        return self._begin_if("BeginMenuBar", "menubar", False if im is None else im.begin_menu_bar())

    def EndMenuBar(self):
        """EndMenuBar()."""
        self._end("EndMenuBar", "menubar", "end_menu_bar")

    def BeginMenu(self, label=None, enabled=None):
        """BeginMenu(label [, enabled]) -> open."""
        im = self._im("BeginMenu")
        label = _text(label, "label")
        return self._begin_if("BeginMenu", "menu",
                              False if im is None else im.begin_menu(label, enabled is not False))

    def EndMenu(self):
        """EndMenu()."""
        self._end("EndMenu", "menu", "end_menu")

    def MenuItem(self, label=None, shortcut=None, selected=None, enabled=None):
        """MenuItem(label [, shortcut, selected, enabled]) -> activated (or selected, activated)."""
        im = self._im("MenuItem")
        label = _text(label, "label")
        if im is None:
            return (bool(selected), False) if selected is not None else False
        activated, sel = im.menu_item(label, _text(shortcut or "", "shortcut"), bool(selected),
                                      enabled is not False)
        return (sel, activated) if selected is not None else activated

    def OpenPopup(self, name=None):
        """OpenPopup(id)."""
        im = self._im("OpenPopup")
        name = _text(name, "id")
        if im is not None:
            im.open_popup(name)

    def BeginPopup(self, name=None, flags=None):
        """BeginPopup(id [, flags]) -> open (EndPopup() when true)."""
        im = self._im("BeginPopup")
        name = _text(name, "id")
        return self._begin_if("BeginPopup", "popup",
                              False if im is None else im.begin_popup(name, _int(flags)))

    def EndPopup(self):
        """EndPopup()."""
        self._end("EndPopup", "popup", "end_popup")

    def CloseCurrentPopup(self):
        """CloseCurrentPopup()."""
        im = self._im("CloseCurrentPopup")
        if im is not None:
            im.close_current_popup()

    def BeginTooltip(self):
        """BeginTooltip() ... EndTooltip()."""
        im = self._im("BeginTooltip")
        return self._begin_if("BeginTooltip", "tooltip", True if im is None else im.begin_tooltip())

    def EndTooltip(self):
        """EndTooltip()."""
        self._end("EndTooltip", "tooltip", "end_tooltip")

    def SetTooltip(self, text=None):
        """SetTooltip(text)."""
        im = self._im("SetTooltip")
        text = _text(text)
        if im is not None:
            im.set_tooltip(text)

    def BeginCombo(self, label=None, preview=None, flags=None):
        """BeginCombo(label, previewValue [, flags]) -> open (EndCombo() when true)."""
        im = self._im("BeginCombo")
        label, preview = _text(label, "label"), _text(preview, "preview")
        return self._begin_if("BeginCombo", "combo",
                              False if im is None else im.begin_combo(label, preview, _int(flags)))

    def EndCombo(self):
        """EndCombo()."""
        self._end("EndCombo", "combo", "end_combo")

    def BeginTable(self, name=None, columns=None, flags=None):
        """BeginTable(id, columns [, flags]) -> open (EndTable() when true)."""
        im = self._im("BeginTable")
        name, n = _text(name, "id"), _int(columns)
        if not 1 <= n <= 64:
            raise ModError("ImGui.BeginTable: columns must be 1..64")
        return self._begin_if("BeginTable", "table",
                              True if im is None else im.begin_table(name, n, _int(flags)))

    def EndTable(self):
        """EndTable()."""
        self._end("EndTable", "table", "end_table")

    def TableSetupColumn(self, label=None, flags=None, width=None):
        """TableSetupColumn(label [, flags, width])."""
        im = self._im("TableSetupColumn")
        label = _text(label, "label")
        if im is not None:
            im.table_setup_column(label, _int(flags), float(_num(width)))

    def TableHeadersRow(self):
        """TableHeadersRow()."""
        im = self._im("TableHeadersRow")
        if im is not None:
            im.table_headers_row()

    def TableNextRow(self, flags=None, height=None):
        """TableNextRow([flags, minHeight])."""
        im = self._im("TableNextRow")
        if im is not None:
            im.table_next_row(_int(flags), float(_num(height)))

    def TableNextColumn(self):
        """TableNextColumn() -> visible."""
        im = self._im("TableNextColumn")
        return True if im is None else im.table_next_column()

    def TableSetColumnIndex(self, i=None):
        """TableSetColumnIndex(i) -> visible."""
        im = self._im("TableSetColumnIndex")
        return True if im is None else im.table_set_column_index(_int(i))

    # -- style ----------------------------------------------------------------------------------

    def PushStyleColor(self, idx=None, r=None, g=None, b=None, a=None):
        """PushStyleColor(ImGuiCol.X, r, g, b, a) or (ImGuiCol.X, 0xAABBGGRR)."""
        im = self._im("PushStyleColor")
        idx = _int(idx)
        if g is None:
            col = _int(r) & 0xFFFFFFFF
        else:
            comps = [min(1.0, max(0.0, float(_num(c, 1.0)))) for c in (r, g, b, a)]
            col = sum(int(round(c * 255)) << (8 * i) for i, c in enumerate(comps))
        if im is not None and not 0 <= idx < im.Col_.count.value:
            raise ModError(f"ImGui.PushStyleColor: {idx} is not an ImGuiCol value")
        self._layer.push("color")
        if im is not None:
            im.push_style_color(idx, col)

    def PopStyleColor(self, count=None):
        """PopStyleColor([count])."""
        im = self._im("PopStyleColor")
        for _ in range(max(1, _int(count, 1))):
            self._layer.pop("color", "PopStyleColor")
            if im is not None:
                im.pop_style_color(1)

    def PushStyleVar(self, idx=None, x=None, y=None):
        """PushStyleVar(ImGuiStyleVar.X, value) or (ImGuiStyleVar.X, x, y)."""
        im = self._im("PushStyleVar")
        idx = _int(idx)
        if im is not None and not 0 <= idx < im.StyleVar_.count.value:
            raise ModError(f"ImGui.PushStyleVar: {idx} is not an ImGuiStyleVar value")
        if im is not None:
            # ImGui asserts when the kind (float vs. pair) does not match the variable.
            try:
                if y is None:
                    im.push_style_var(idx, float(_num(x)))
                else:
                    im.push_style_var(idx, self._vec2(x, y))
            except RuntimeError as e:
                raise ModError(f"ImGui.PushStyleVar: wrong value for style variable {idx} ({e})") from None
        self._layer.push("var")

    def PopStyleVar(self, count=None):
        """PopStyleVar([count])."""
        im = self._im("PopStyleVar")
        for _ in range(max(1, _int(count, 1))):
            self._layer.pop("var", "PopStyleVar")
            if im is not None:
                im.pop_style_var(1)

    def BeginDisabled(self, disabled=None):
        """BeginDisabled([disabled])."""
        im = self._im("BeginDisabled")
        self._layer.push("disabled")
        if im is not None:
            im.begin_disabled(disabled is not False)

    def EndDisabled(self):
        """EndDisabled()."""
        self._end("EndDisabled", "disabled", "end_disabled")

    # -- more windows, widgets and queries (CET names) ------------------------------------------

    def _simple(self, fname, call, default=None):
        im = self._im(fname)
        return default if im is None else call(im)

    def SetWindowPos(self, x=None, y=None, cond=None):
        """SetWindowPos(x, y [, cond]) for the current window."""
        self._simple("SetWindowPos", lambda im: im.set_window_pos(self._vec2(x, y), _int(cond)))

    def SetWindowSize(self, w=None, h=None, cond=None):
        """SetWindowSize(w, h [, cond]) for the current window."""
        self._simple("SetWindowSize", lambda im: im.set_window_size(self._vec2(w, h), _int(cond)))

    def SetWindowFocus(self):
        """SetWindowFocus() for the current window."""
        self._simple("SetWindowFocus", lambda im: im.set_window_focus())

    def SetNextWindowBgAlpha(self, alpha=None):
        """SetNextWindowBgAlpha(alpha)."""
        self._simple("SetNextWindowBgAlpha", lambda im: im.set_next_window_bg_alpha(float(_num(alpha, 1.0))))

    def SetNextWindowCollapsed(self, collapsed=None, cond=None):
        """SetNextWindowCollapsed(collapsed [, cond])."""
        self._simple("SetNextWindowCollapsed",
                     lambda im: im.set_next_window_collapsed(bool(collapsed), _int(cond)))

    def SetNextWindowFocus(self):
        """SetNextWindowFocus()."""
        self._simple("SetNextWindowFocus", lambda im: im.set_next_window_focus())

    def GetWindowHeight(self):
        """-> height."""
        return self._simple("GetWindowHeight", lambda im: im.get_window_height(), 0.0)

    def IsWindowHovered(self, flags=None):
        """-> bool."""
        return self._simple("IsWindowHovered", lambda im: im.is_window_hovered(_int(flags)), False)

    def IsAnyItemHovered(self):
        """-> bool."""
        return self._simple("IsAnyItemHovered", lambda im: im.is_any_item_hovered(), False)

    def IsItemEdited(self):
        """-> bool."""
        return self._simple("IsItemEdited", lambda im: im.is_item_edited(), False)

    def IsItemDeactivatedAfterEdit(self):
        """-> bool."""
        return self._simple("IsItemDeactivatedAfterEdit", lambda im: im.is_item_deactivated_after_edit(), False)

    def IsMouseClicked(self, button=None):
        """IsMouseClicked(button) -> bool."""
        return self._simple("IsMouseClicked", lambda im: im.is_mouse_clicked(_int(button)), False)

    def IsMouseDown(self, button=None):
        """IsMouseDown(button) -> bool."""
        return self._simple("IsMouseDown", lambda im: im.is_mouse_down(_int(button)), False)

    def IsMouseDoubleClicked(self, button=None):
        """IsMouseDoubleClicked(button) -> bool."""
        return self._simple("IsMouseDoubleClicked", lambda im: im.is_mouse_double_clicked(_int(button)), False)

    def IsKeyPressed(self, key=None, repeat=None):
        """IsKeyPressed(ImGuiKey.X [, repeat]) -> bool (keys reach ImGui while the overlay is open)."""
        return self._simple("IsKeyPressed", lambda im: im.is_key_pressed(im.Key(_int(key)), repeat is not False),
                            False)

    def IsKeyDown(self, key=None):
        """IsKeyDown(ImGuiKey.X) -> bool."""
        return self._simple("IsKeyDown", lambda im: im.is_key_down(im.Key(_int(key))), False)

    def GetMousePos(self):
        """-> x, y."""
        im = self._im("GetMousePos")
        if im is None:
            return 0.0, 0.0
        v = im.get_mouse_pos()
        return v.x, v.y

    def GetCursorPosX(self):
        """-> x within the window."""
        return self._simple("GetCursorPosX", lambda im: im.get_cursor_pos_x(), 0.0)

    def GetCursorPosY(self):
        """-> y within the window."""
        return self._simple("GetCursorPosY", lambda im: im.get_cursor_pos_y(), 0.0)

    def SetCursorPosX(self, x=None):
        """SetCursorPosX(x)."""
        self._simple("SetCursorPosX", lambda im: im.set_cursor_pos_x(float(_num(x))))

    def SetCursorPosY(self, y=None):
        """SetCursorPosY(y)."""
        self._simple("SetCursorPosY", lambda im: im.set_cursor_pos_y(float(_num(y))))

    def GetScrollY(self):
        """-> scroll y."""
        return self._simple("GetScrollY", lambda im: im.get_scroll_y(), 0.0)

    def GetScrollMaxY(self):
        """-> max scroll y."""
        return self._simple("GetScrollMaxY", lambda im: im.get_scroll_max_y(), 0.0)

    def SetScrollY(self, y=None):
        """SetScrollY(y)."""
        self._simple("SetScrollY", lambda im: im.set_scroll_y(float(_num(y))))

    def SetScrollHereY(self, ratio=None):
        """SetScrollHereY([ratio])."""
        self._simple("SetScrollHereY", lambda im: im.set_scroll_here_y(float(_num(ratio, 0.5))))

    def AlignTextToFramePadding(self):
        """AlignTextToFramePadding()."""
        self._simple("AlignTextToFramePadding", lambda im: im.align_text_to_frame_padding())

    def Bullet(self):
        """Bullet()."""
        self._simple("Bullet", lambda im: im.bullet())

    def SeparatorText(self, label=None):
        """SeparatorText(label)."""
        label = _text(label, "label")
        self._simple("SeparatorText", lambda im: im.separator_text(label))

    def TextUnformatted(self, text=None):
        """TextUnformatted(text)."""
        text = _text(text)
        self._simple("TextUnformatted", lambda im: im.text_unformatted(text))

    def InvisibleButton(self, name=None, w=None, h=None):
        """InvisibleButton(id, w, h) -> pressed."""
        name = _text(name, "id")
        return self._simple("InvisibleButton",
                            lambda im: im.invisible_button(name, self._vec2(max(1.0, _num(w, 1.0)),
                                                                            max(1.0, _num(h, 1.0)))), False)

    def ArrowButton(self, name=None, direction=None):
        """ArrowButton(id, ImGuiDir.X) -> pressed."""
        name = _text(name, "id")
        return self._simple("ArrowButton", lambda im: im.arrow_button(name, im.Dir(_int(direction) % 4)), False)

    def Columns(self, count=None, name=None, border=None):
        """Columns([count, id, border]) (the old column API; tables are preferred)."""
        n = max(1, min(64, _int(count, 1)))
        ident = None if name is None else _text(name, "id")
        self._simple("Columns", lambda im: im.columns(n, ident, border is not False))

    def NextColumn(self):
        """NextColumn()."""
        self._simple("NextColumn", lambda im: im.next_column())

    def IsPopupOpen(self, name=None):
        """IsPopupOpen(id) -> bool."""
        name = _text(name, "id")
        return self._simple("IsPopupOpen", lambda im: im.is_popup_open(name), False)

    def BeginPopupModal(self, name=None, a=None, b=None):
        """BeginPopupModal(name [, open] [, flags]) -> shown (or open, shown); EndPopup() when shown."""
        im = self._im("BeginPopupModal")
        name = _text(name, "name")
        with_open = isinstance(a, bool)
        flags = _int(b if with_open else a)
        if im is None:
            return (a, False) if with_open else False
        shown, still = im.begin_popup_modal(name, a if with_open else None, flags)
        self._begin_if("BeginPopupModal", "popup", shown)
        return (bool(still), shown) if with_open else shown

    def BeginPopupContextItem(self, name=None, flags=None):
        """BeginPopupContextItem([id, flags]) -> open; EndPopup() when open."""
        im = self._im("BeginPopupContextItem")
        ident = None if name is None else _text(name, "id")
        return self._begin_if("BeginPopupContextItem", "popup",
                              False if im is None else im.begin_popup_context_item(ident, _int(flags)))

    def BeginPopupContextWindow(self, name=None, flags=None):
        """BeginPopupContextWindow([id, flags]) -> open; EndPopup() when open."""
        im = self._im("BeginPopupContextWindow")
        ident = None if name is None else _text(name, "id")
        return self._begin_if("BeginPopupContextWindow", "popup",
                              False if im is None else im.begin_popup_context_window(ident, _int(flags)))

    def BeginListBox(self, label=None, w=None, h=None):
        """BeginListBox(label [, w, h]) -> open; EndListBox() when open."""
        im = self._im("BeginListBox")
        label = _text(label, "label")
        return self._begin_if("BeginListBox", "listbox",
                              False if im is None else im.begin_list_box(label, self._vec2(w, h)))

    def EndListBox(self):
        """EndListBox()."""
        self._end("EndListBox", "listbox", "end_list_box")

    def ColorPicker3(self, label=None, col=None, flags=None):
        """ColorPicker3(label, {r, g, b} [, flags]) -> col, used."""
        im = self._im("ColorPicker3")
        label = _text(label, "label")
        values = ([float(_num(x)) for x in self._list(col)] + [1.0, 1.0, 1.0])[:3]
        if im is None:
            return values, False
        used, out = im.color_picker3(label, values, _int(flags))
        return list(out), used

    def SliderAngle(self, label=None, rad=None, lo=None, hi=None):
        """SliderAngle(label, radians [, minDegrees, maxDegrees]) -> radians, used."""
        im = self._im("SliderAngle")
        label, v = _text(label, "label"), float(_num(rad))
        if im is None:
            return v, False
        used, v = im.slider_angle(label, v, float(_num(lo, -360.0)), float(_num(hi, 360.0)))
        return v, used

    def PlotLines(self, label=None, values=None, count=None, offset=None, overlay=None,
                  lo=None, hi=None, w=None, h=None):
        """PlotLines(label, values, count [, offset, overlay, scaleMin, scaleMax, w, h])."""
        self._plot("PlotLines", "plot_lines", label, values, count, offset, overlay, lo, hi, w, h)

    def PlotHistogram(self, label=None, values=None, count=None, offset=None, overlay=None,
                      lo=None, hi=None, w=None, h=None):
        """PlotHistogram(label, values, count [, offset, overlay, scaleMin, scaleMax, w, h])."""
        self._plot("PlotHistogram", "plot_histogram", label, values, count, offset, overlay, lo, hi, w, h)

    def _plot(self, fname, fn, label, values, count, offset, overlay, lo, hi, w, h):
        im = self._im(fname)
        label = _text(label, "label")
        data = [float(_num(x)) for x in self._list(values)]
        if count is not None:
            data = data[:max(0, _int(count))]
        if im is None or not data:
            return
        np = self._layer.backend.np        # imported with the backend, not inside a mod's budget
        big = 3.4028234663852886e38
        getattr(im, fn)(label, np.asarray(data, dtype=np.float32), _int(offset),
                        None if overlay is None else _text(overlay, "overlay"),
                        big if lo is None else float(_num(lo)), big if hi is None else float(_num(hi)),
                        self._vec2(w, h))

    def GetTime(self):
        """-> seconds since the UI started."""
        return self._simple("GetTime", lambda im: im.get_time(), 0.0)

    def GetFrameCount(self):
        """-> frames drawn."""
        return self._simple("GetFrameCount", lambda im: im.get_frame_count(), 0)

    # -- queries --------------------------------------------------------------------------------

    def IsItemHovered(self, flags=None):
        """-> bool."""
        im = self._im("IsItemHovered")
        return False if im is None else im.is_item_hovered(_int(flags))

    def IsItemClicked(self, button=None):
        """-> bool."""
        im = self._im("IsItemClicked")
        return False if im is None else im.is_item_clicked(_int(button))

    def IsItemActive(self):
        """-> bool."""
        im = self._im("IsItemActive")
        return False if im is None else im.is_item_active()

    def GetItemRectMin(self):
        """-> x, y of the last item's top left corner (screen pixels)."""
        im = self._im("GetItemRectMin")
        if im is None:
            return 0.0, 0.0
        v = im.get_item_rect_min()
        return v.x, v.y

    def GetItemRectMax(self):
        """-> x, y of the last item's bottom right corner."""
        im = self._im("GetItemRectMax")
        if im is None:
            return 0.0, 0.0
        v = im.get_item_rect_max()
        return v.x, v.y

    def GetCursorScreenPos(self):
        """-> x, y where the next item goes (screen pixels)."""
        im = self._im("GetCursorScreenPos")
        if im is None:
            return 0.0, 0.0
        v = im.get_cursor_screen_pos()
        return v.x, v.y

    def GetFrameHeight(self):
        """-> height of a framed widget."""
        im = self._im("GetFrameHeight")
        return 19.0 if im is None else im.get_frame_height()

    def GetTextLineHeight(self):
        """-> height of a text line."""
        im = self._im("GetTextLineHeight")
        return 13.0 if im is None else im.get_text_line_height()

    def GetTextLineHeightWithSpacing(self):
        """-> height of a text line plus spacing."""
        im = self._im("GetTextLineHeightWithSpacing")
        return 17.0 if im is None else im.get_text_line_height_with_spacing()

    def SetItemDefaultFocus(self):
        """SetItemDefaultFocus()."""
        im = self._im("SetItemDefaultFocus")
        if im is not None:
            im.set_item_default_focus()

    def SetKeyboardFocusHere(self, offset=None):
        """SetKeyboardFocusHere([offset])."""
        im = self._im("SetKeyboardFocusHere")
        if im is not None:
            im.set_keyboard_focus_here(_int(offset))
