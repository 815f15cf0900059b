"""The functions of a mod's `ImGui` table, generated from the binding table.

`ModImGui.call(name, *args)` is the one entry point the Lua side calls (see
lua/relic_imgui.lua).  For a plain row of host/ui/imgui_names.py it checks the
arguments (imgui_args.py), keeps the Begin/Push stack (push/pushif/pop tags),
calls the imgui-bundle function of the same name in snake_case (or the `call=`
tag, or the draw list's method for `ImDrawList*` rows), and converts the result
to CET's convention.  Rows tagged `fn=` go to a `_fn_<name>` handler below:
CET's overloads by argument type (`Begin(name, open)` vs `Begin(name, flags)`),
functions Dear ImGui 1.92 dropped (emulated as its changelog says), and the
ones with host state (draw list handles, textures, the clipboard).

Without Dear ImGui (headless) the same checks run and nothing is drawn:
results are the `headless=` tag or false / 0 / "" / the value passed in.
"""

from __future__ import annotations

import colorsys
import dataclasses
import re
from typing import TYPE_CHECKING, Any

from host.errors import ModError
from host.ui import imgui_args as A
from host.ui.imgui_names import BINDINGS, Binding

if TYPE_CHECKING:
    from host.runtime.mod import Mod
    from host.ui.imgui_api import ImGuiLayer

_SNAKE1 = re.compile(r"(?<=[a-z0-9])([A-Z])")
_SNAKE2 = re.compile(r"(?<=[A-Z])([A-Z][a-z])")


def snake(name: str) -> str:
    """CET's CamelCase name -> imgui-bundle's snake_case name."""
    return _SNAKE1.sub(r"_\1", _SNAKE2.sub(r"_\1", name)).lower()


# the imgui-bundle function (or ImDrawList method) each plain row calls
_CALL_NAMES = {n: (snake(n[len("ImDrawList"):]) if n.startswith("ImDrawList") else b.tag("call") or snake(n))
               for n, b in BINDINGS.items()}

_HEADLESS_KIND = {"b": False, "f": 0.0, "i": 0, "s": "", "u": 0, "xy": (0.0, 0.0),
                  "xyzw": (0.0, 0.0, 0.0, 0.0), "t": []}

# CET's ImGuiStyle fields with Dear ImGui's defaults (what GetStyle() returns headless)
STYLE_DEFAULTS = {
    "Alpha": 1.0, "DisabledAlpha": 0.6, "WindowPadding": (8.0, 8.0), "WindowRounding": 0.0,
    "WindowBorderSize": 1.0, "WindowMinSize": (32.0, 32.0), "WindowTitleAlign": (0.0, 0.5),
    "WindowMenuButtonPosition": 0, "ChildRounding": 0.0, "ChildBorderSize": 1.0, "PopupRounding": 0.0,
    "PopupBorderSize": 1.0, "FramePadding": (4.0, 3.0), "FrameRounding": 0.0, "FrameBorderSize": 0.0,
    "ItemSpacing": (8.0, 4.0), "ItemInnerSpacing": (4.0, 4.0), "CellPadding": (4.0, 2.0),
    "TouchExtraPadding": (0.0, 0.0), "IndentSpacing": 21.0, "ColumnsMinSpacing": 6.0,
    "ScrollbarSize": 14.0, "ScrollbarRounding": 9.0, "GrabMinSize": 12.0, "GrabRounding": 0.0,
    "LogSliderDeadzone": 4.0, "TabRounding": 5.0, "TabBorderSize": 0.0,
    "TabMinWidthForCloseButton": 0.0, "ColorButtonPosition": 1, "ButtonTextAlign": (0.5, 0.5),
    "SelectableTextAlign": (0.0, 0.0), "DisplayWindowPadding": (19.0, 19.0),
    "DisplaySafeAreaPadding": (3.0, 3.0), "MouseCursorScale": 1.0, "AntiAliasedLines": True,
    "AntiAliasedLinesUseTex": True, "AntiAliasedFill": True, "CurveTessellationTol": 1.25,
    "CircleTessellationMaxError": 0.3,
}
# fields Dear ImGui 1.92 renamed
_STYLE_ALIASES = {"TabMinWidthForCloseButton": "tab_close_button_min_width_unselected"}
MIN_FONT, MAX_FONT = 4.0, 256.0       # ImDrawListAddText sizes (each new size rasterizes glyphs)


def _signed(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - 2 ** 32 if v >= 2 ** 31 else v


def _pack(rgba) -> int:
    out = 0
    for i, c in enumerate(rgba):
        out |= int(min(1.0, max(0.0, c)) * 255.0 + 0.5) << (8 * i)
    return out


def _is_text(v) -> bool:
    return isinstance(v, (str, bytes))


class ModImGui:
    """One mod's `ImGui` functions (see the module docstring)."""

    def __init__(self, layer: "ImGuiLayer", mod: "Mod"):
        self.layer = layer
        self.mod = mod
        self._reader: A.ArgReader | None = None

    # -- dispatch ------------------------------------------------------------------------------

    def call(self, name, *args):
        """Run ImGui.<name>(...) for the mod (raises ModError with a message for the mod)."""
        b = BINDINGS.get(name) if isinstance(name, str) else None
        if b is None:
            raise ModError(f"ImGui.{name} does not exist")
        if not (b.tag("anywhere") or b.tag("pure")) and not self.layer.drawing:
            raise ModError(f"ImGui.{name}: ImGui can only be used inside onDraw (as in CET)")
        inside = b.tag("in")
        if inside and not self.layer.inside(inside):
            raise ModError(f"ImGui.{name}: only between BeginTable and EndTable" if inside == "table"
                           else f"ImGui.{name}: only inside {inside}")
        im = self.layer.imgui
        try:
            fn = b.tag("fn")
            if fn:
                return getattr(self, "_fn_" + fn)(b, im, args)
            return self._generic(b, im, self._read(b, im, args))
        except RuntimeError as e:        # Dear ImGui's IM_ASSERT, raised by imgui-bundle
            raise ModError(f"ImGui.{name}: Dear ImGui refused the call ({e})") from None
        except (TypeError, OverflowError) as e:     # a checked value imgui-bundle still refuses: a table bug
            raise ModError(f"ImGui.{name}: host binding error ({str(e).splitlines()[0]})") from None

    def _read(self, b: Binding, im, args, start: int = 0) -> list:
        reader = self._reader
        if reader is None or reader.im is not im:
            reader = self._reader = A.ArgReader(self.mod, im, self.layer.draw_list)
        return reader.read(b, args, start)

    def _one(self, b: Binding, args, i: int, conv, *extra):
        """Argument i (0-based) through a converter of imgui_args, with CET-style error text."""
        v = args[i] if i < len(args) else None
        try:
            return conv(v, *extra)
        except ModError as e:
            raise ModError(f"ImGui.{b.name}: bad argument #{i + 1}: {e}") from None

    # -- the generic binding ----------------------------------------------------------------

    def _generic(self, b: Binding, im, vals: list):
        layer = self.layer
        real = im is not None
        pop = b.tag("pop")
        if pop:
            real = layer.pop(pop, b.name) and real
        push = b.tag("push") or b.tag("pushif")
        if push:
            layer.check_room()
        if real:
            result = self._convert(b, self._invoke(b, im, vals))
        else:
            result = self._headless(b, vals)
        if b.tag("push") or (b.tag("pushif") and result):
            layer.push(push, real)
        return result

    def _invoke(self, b: Binding, im, vals: list):
        py = [self._py(a.type, v, im) for a, v in zip(b.args, vals)]
        fname = _CALL_NAMES[b.name]
        if b.args and b.args[0].type == "dl":
            target = py.pop(0)
        else:
            target = im
        while py and py[-1] is None:
            py.pop()
        return getattr(target, fname)(*py)

    @staticmethod
    def _py(t: str, v, im):
        if v is None:
            return None
        if t == "xy":
            return im.ImVec2(*v)
        if t == "rgba":
            return im.ImVec4(*v)
        if t == "key":
            return im.Key(v)
        if t == "dir":
            return im.Dir(v)
        return v

    @staticmethod
    def _value(v):
        if isinstance(v, (list, tuple)):
            return [float(x) if isinstance(x, float) else x for x in v]
        if hasattr(v, "w"):
            return [v.x, v.y, v.z, v.w]
        return v

    def _convert(self, b: Binding, r):
        if b.tag("swap"):
            changed, value = r
            return self._value(value), bool(changed)
        if not b.results:
            return None
        return self._kind(b.results[0][1], r)

    @staticmethod
    def _kind(kind: str, r):
        if kind == "b":
            return bool(r)
        if kind == "f":
            return float(r)
        if kind == "i":
            return int(r)
        if kind == "s":
            return "" if r is None else str(r)
        if kind == "u":
            return int(r) & 0xFFFFFFFF
        if kind == "xy":
            return float(r.x), float(r.y)
        if kind == "xyzw":
            return float(r.x), float(r.y), float(r.z), float(r.w)
        if kind == "t":
            return list(r)
        return r

    def _headless(self, b: Binding, vals: list):
        if b.tag("swap"):
            name = b.results[0][0]
            value = next(v for a, v in zip(b.args, vals) if a.name == name)
            return value, False
        if not b.results:
            return None
        h = b.tag("headless")
        if h is not None:
            return True if h == "true" else False if h == "false" else float(h)
        return _HEADLESS_KIND[b.results[0][1]]

    # -- windows ------------------------------------------------------------------------------

    def _fn_begin(self, b, im, args):
        name = self._one(b, args, 0, A.text)
        with_open = isinstance(args[1], bool) if len(args) > 1 else False
        if len(args) > (3 if with_open else 2) and any(x is not None for x in args[3 if with_open else 2:]):
            raise ModError(f"ImGui.Begin: too many arguments ({b.signature()})")
        fl = args[2] if with_open and len(args) > 2 else (args[1] if not with_open and len(args) > 1 else None)
        flags = 0 if fl is None else self._one(b, (fl,), 0, A.flags)
        self.layer.check_room()
        if with_open and not args[1]:
            self.layer.push("window", False)       # CET skips Begin; End() stays legal
            return False, False
        if im is None:
            self.layer.push("window", False)
            return (True, True) if with_open else True
        shown, still_open = im.begin(name, True if with_open else None, flags)
        self.layer.push("window", True)
        if with_open:
            return bool(still_open), bool(still_open) and bool(shown)
        return bool(shown)

    def _fn_begin_child(self, b, im, args):
        name = self._one(b, args, 0, A.text)
        size = (self._one(b, args, 1, A.number) if len(args) > 1 and args[1] is not None else 0.0,
                self._one(b, args, 2, A.number) if len(args) > 2 and args[2] is not None else 0.0)
        third = args[3] if len(args) > 3 else None
        if isinstance(third, bool):                 # CET's deprecated (name, w, h, border [, flags])
            child_flags = 1 if third else 0         # ImGuiChildFlags_Borders
        else:
            child_flags = 0 if third is None else self._one(b, args, 3, A.flags)
        wflags = self._one(b, args, 4, A.flags) if len(args) > 4 and args[4] is not None else 0
        self.layer.check_room()
        if im is None:
            self.layer.push("child", False)
            return True
        shown = im.begin_child(name, im.ImVec2(*size), child_flags, wflags)
        self.layer.push("child", True)
        return bool(shown)

    def _fn_begin_child_frame(self, b, im, args):
        ident, size, fl = self._read(b, im, args)
        self.layer.check_room()
        if im is None:
            self.layer.push("child", False)
            return True
        shown = im.begin_child(ident & 0xFFFFFFFF, im.ImVec2(*size), im.ChildFlags_.frame_style.value, fl)
        self.layer.push("child", True)
        return bool(shown)

    def _fn_window_named(self, b, im, args):
        named = bool(args) and _is_text(args[0])
        sub = b if named else dataclasses.replace(b, args=b.args[1:])
        vals = self._read(sub, im, args)
        if im is None:
            return None
        py = [self._py(a.type, v, im) for a, v in zip(sub.args, vals)]
        fn = getattr(im, snake(b.name))
        if b.name == "SetWindowFocus":
            return fn(py[0]) if named else fn()
        return fn(*py)

    def _fn_nothing(self, b, im, args):
        self._read(b, im, args)

    def _region_max(self, im):
        avail, cur, pos = im.get_content_region_avail(), im.get_cursor_screen_pos(), im.get_window_pos()
        return avail.x + cur.x - pos.x, avail.y + cur.y - pos.y

    def _fn_content_region_max(self, b, im, args):
        self._read(b, im, args)
        return (0.0, 0.0) if im is None else self._region_max(im)

    _fn_window_content_region_max = _fn_content_region_max

    def _fn_window_content_region_min(self, b, im, args):
        self._read(b, im, args)
        if im is None:
            return 0.0, 0.0
        v = im.get_cursor_start_pos()
        return float(v.x), float(v.y)

    def _fn_window_content_region_width(self, b, im, args):
        self._read(b, im, args)
        if im is None:
            return 0.0
        return float(self._region_max(im)[0] - im.get_cursor_start_pos().x)

    def _fn_draw_list(self, b, im, args):
        self._read(b, im, args)
        obj = None if im is None else getattr(im, snake(b.name))()
        return self.layer.new_draw_list(obj)

    # -- style --------------------------------------------------------------------------------

    def _fn_push_style_color(self, b, im, args):
        idx = self._one(b, args, 0, A.enum, im, "Col_", 0, "count")
        if len(args) >= 3:
            comps = [self._one(b, args, i, A.number) for i in (1, 2, 3)]
            comps.append(self._one(b, args, 4, A.number) if len(args) > 4 and args[4] is not None else 1.0)
            col = _pack(comps)
        else:
            col = self._one(b, args, 1, A.color)
        self.layer.check_room()
        if im is not None:
            im.push_style_color(idx, col)
        self.layer.push("color", im is not None)

    def _fn_push_style_var(self, b, im, args):
        idx = self._one(b, args, 0, A.enum, im, "StyleVar_", 0, "count")
        x = self._one(b, args, 1, A.number)
        y = self._one(b, args, 2, A.number) if len(args) > 2 and args[2] is not None else None
        self.layer.check_room()
        if im is not None:
            try:
                im.push_style_var(idx, x if y is None else im.ImVec2(x, y))
            except RuntimeError as e:        # a float for a pair variable, or the reverse
                raise ModError(f"ImGui.PushStyleVar: wrong value for style variable {idx} ({e})") from None
        self.layer.push("var", im is not None)

    def _fn_pop_count(self, b, im, args):
        count = 1 if not args or args[0] is None else self._one(b, args, 0, A.integer, 1, 64)
        kind = b.tag("pop")
        for _ in range(count):
            real = self.layer.pop(kind, b.name)
            if im is not None and real:
                (im.pop_style_color if kind == "color" else im.pop_style_var)(1)

    def _fn_get_color_u32(self, b, im, args):
        n = len([x for x in args if x is not None])
        if n == 1:                                  # CET: one integer is a packed colour
            col = self._one(b, args, 0, A.color)
            return _signed(col if im is None else im.get_color_u32(col))
        if n == 2:
            idx = self._one(b, args, 0, A.enum, im, "Col_", 0, "count")
            mul = self._one(b, args, 1, A.number)
            return 0 if im is None else _signed(im.get_color_u32(idx, mul))
        if n == 4:
            rgba = [self._one(b, args, i, A.number) for i in range(4)]
            return _signed(_pack(rgba) if im is None else im.get_color_u32(im.ImVec4(*rgba)))
        raise ModError(f"ImGui.GetColorU32: 1, 2 or 4 arguments expected ({b.signature()})")

    def _fn_get_style(self, b, im, args):
        self._read(b, im, args)
        out: dict[str, Any] = {}
        style = None if im is None else im.get_style()
        for key, default in STYLE_DEFAULTS.items():
            v = default
            if style is not None:
                v = getattr(style, _STYLE_ALIASES.get(key, snake(key)), default)
            if hasattr(v, "x"):
                v = {"x": float(v.x), "y": float(v.y)}
            elif isinstance(v, tuple):
                v = {"x": v[0], "y": v[1]}
            elif not isinstance(v, bool):
                v = int(v) if isinstance(default, int) and not isinstance(default, bool) else float(v)
            out[key] = v
        return out

    def _fn_push_tab_stop(self, b, im, args):
        (allow,) = self._read(b, im, args)
        self.layer.check_room()
        if im is not None:
            im.push_item_flag(im.ItemFlags_.no_tab_stop.value, not allow)
        self.layer.push("itemflag", im is not None)

    def _fn_push_button_repeat(self, b, im, args):
        (repeat,) = self._read(b, im, args)
        self.layer.check_room()
        if im is not None:
            im.push_item_flag(im.ItemFlags_.button_repeat.value, repeat)
        self.layer.push("itemflag", im is not None)

    def _fn_push_id(self, b, im, args):
        v = args[0] if args else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            key: Any = self._one(b, args, 0, A.integer, -(2 ** 31), 2 ** 31 - 1)
        else:
            key = self._one(b, args, 0, A.text)
        if len(args) > 1 and any(x is not None for x in args[1:]):
            raise ModError(f"ImGui.PushID: too many arguments ({b.signature()})")
        self.layer.check_room()
        if im is not None:
            im.push_id(key)
        self.layer.push("id", im is not None)

    def _fn_get_id(self, b, im, args):
        (key,) = self._read(b, im, args)
        return 0 if im is None else _signed(im.get_id(key))

    # -- widgets ------------------------------------------------------------------------------

    def _fn_value(self, b, im, args):
        prefix = self._one(b, args, 0, A.text)
        v = args[1] if len(args) > 1 else None
        fmt = self._one(b, args, 2, A.fmt, "f") if len(args) > 2 and args[2] is not None else None
        if isinstance(v, bool):
            value: Any = v
        else:
            value = self._one(b, args, 1, A.number)
            if fmt is None and float(value).is_integer() and abs(value) < 2 ** 31:
                value = int(value)
        if im is None:
            return None
        if fmt is not None:
            im.value(prefix, float(value), fmt)
        else:
            im.value(prefix, value)

    def _fn_radio_button(self, b, im, args):
        label = self._one(b, args, 0, A.text)
        if len(args) > 2 and args[2] is not None:
            v = self._one(b, args, 1, A.integer, -(2 ** 31), 2 ** 31 - 1)
            vb = self._one(b, args, 2, A.integer, -(2 ** 31), 2 ** 31 - 1)
            if im is None:
                return v, False
            pressed = im.radio_button(label, v == vb)
            return (vb if pressed else v), bool(pressed)
        active = self._one(b, args, 1, A.boolean)
        return False if im is None else bool(im.radio_button(label, active))

    def _fn_combo(self, b, im, args):
        label = self._one(b, args, 0, A.text)
        cur = self._one(b, args, 1, A.integer, -(2 ** 31), 2 ** 31 - 1)
        items_v = args[2] if len(args) > 2 else None
        if _is_text(items_v):                           # "a\0b\0" [, popupMaxHeightInItems]
            text = self._one(b, args, 2, A.text)
            names = [x for x in text.split("\0")]
            while names and names[-1] == "":
                names.pop()
            names = names[:A.MAX_ITEMS]
            height = self._one(b, args, 3, A.integer, -1, A.MAX_ITEMS) if len(args) > 3 and args[3] is not None else -1
        else:
            try:
                names = A.strings(self.mod, items_v, args[3] if len(args) > 3 else None)
            except ModError as e:
                raise ModError(f"ImGui.{b.name}: bad argument #3 (items): {e}") from None
            height = self._one(b, args, 4, A.integer, -1, A.MAX_ITEMS) if len(args) > 4 and args[4] is not None else -1
        if im is None:
            return cur, False
        clicked, cur = getattr(im, snake(b.name))(label, cur, names, height)
        return int(cur), bool(clicked)

    _fn_list_box = _fn_combo

    def _fn_selectable(self, b, im, args):
        if len([x for x in args if x is not None]) <= 1 and not (len(args) > 1 and isinstance(args[1], bool)):
            label = self._one(b, args, 0, A.text)
            if im is None:
                return False
            clicked, _ = im.selectable(label, False)
            return bool(clicked)
        label, selected, fl, size = self._read(b, im, args)
        if im is None:
            return bool(selected)
        _, selected = im.selectable(label, bool(selected), fl, im.ImVec2(*size))
        return bool(selected)

    def _fn_input_text(self, b, im, args):
        vals = self._read(b, im, args)
        if b.name == "InputTextWithHint":
            label, hint, text, cap, fl = vals
        elif b.name == "InputTextMultiline":
            label, text, cap, size, fl = vals
        else:
            label, text, cap, fl = vals
        cap = max(1, min(cap, A.MAX_TEXT))
        text = _clip(text, cap)
        if im is None:
            return text, False
        if b.name == "InputTextWithHint":
            changed, new = im.input_text_with_hint(label, hint, text, fl)
        elif b.name == "InputTextMultiline":
            changed, new = im.input_text_multiline(label, text, im.ImVec2(*size), fl)
        else:
            changed, new = im.input_text(label, text, fl)
        return _clip(new, cap), bool(changed)

    def _fn_color_button(self, b, im, args):
        desc, col, fl, size = self._read(b, im, args)
        return False if im is None else bool(im.color_button(desc, im.ImVec4(*col), fl, im.ImVec2(*size)))

    def _fn_tree_node(self, b, im, args):
        vals = self._read(b, im, args)
        if b.name == "TreeNode":
            label, text = vals
            fl = 0
        else:
            label, fl, text = vals
        self.layer.check_room()
        if im is None:
            opened = True
        elif b.name == "TreeNode":
            opened = im.tree_node(label) if text is None else im.tree_node(label, text)
        else:
            opened = im.tree_node_ex(label, fl) if text is None else im.tree_node_ex(label, fl, text)
        no_push = 1 << 3                     # ImGuiTreeNodeFlags_NoTreePushOnOpen
        if opened and not fl & no_push:
            self.layer.push("tree", im is not None)
        return bool(opened)

    def _fn_collapsing_header(self, b, im, args):
        label = self._one(b, args, 0, A.text)
        second = args[1] if len(args) > 1 else None
        if isinstance(second, bool):
            fl = self._one(b, args, 2, A.flags) if len(args) > 2 and args[2] is not None else 0
            if im is None:
                return second, second
            opened, visible = im.collapsing_header(label, second, fl)
            return bool(visible), bool(opened)
        fl = 0 if second is None else self._one(b, args, 1, A.flags)
        if len(args) > 2 and any(x is not None for x in args[2:]):
            raise ModError(f"ImGui.CollapsingHeader: too many arguments ({b.signature()})")
        return True if im is None else bool(im.collapsing_header(label, fl))

    def _fn_menu_item(self, b, im, args):
        label, shortcut, selected, enabled = self._read(b, im, args)
        with_selected = len(args) > 2 and args[2] is not None
        if im is None:
            return (bool(selected), False) if with_selected else False
        activated, sel = im.menu_item(label, shortcut or "", bool(selected), enabled)
        return (bool(sel), bool(activated)) if with_selected else bool(activated)

    def _fn_begin_popup_modal(self, b, im, args):
        name = self._one(b, args, 0, A.text)
        with_open = len(args) > 1 and isinstance(args[1], bool)
        i = 2 if with_open else 1
        fl = self._one(b, args, i, A.flags) if len(args) > i and args[i] is not None else 0
        self.layer.check_room()
        if im is None:
            return False
        shown, _ = im.begin_popup_modal(name, args[1] if with_open else None, fl)
        if shown:
            self.layer.push("popup", True)
        return bool(shown)

    def _fn_begin_tab_item(self, b, im, args):
        label = self._one(b, args, 0, A.text)
        with_open = len(args) > 1 and isinstance(args[1], bool)
        i = 2 if with_open else 1
        fl = self._one(b, args, i, A.flags) if len(args) > i and args[i] is not None else 0
        self.layer.check_room()
        if im is None:
            selected, still = True, args[1] if with_open else None
        else:
            selected, still = im.begin_tab_item(label, args[1] if with_open else None, fl)
        if selected:
            self.layer.push("tabitem", im is not None)
        return (bool(still), bool(selected)) if with_open else bool(selected)

    def _fn_table_sort_specs(self, b, im, args):
        self._read(b, im, args)
        specs = None if im is None else im.table_get_sort_specs()
        if specs is None:
            return (None,)                    # one nil, as CET returns a null pointer
        out = []
        for i in range(min(int(specs.specs_count), 64)):
            s = specs.get_specs(i)
            out.append({"ColumnIndex": int(s.column_index), "ColumnUserID": int(s.column_user_id),
                        "SortOrder": int(s.sort_order), "SortDirection": int(s.sort_direction)})
        return {"SpecsCount": len(out), "SpecsDirty": bool(specs.specs_dirty), "Specs": out}

    def _fn_table_set_bg_color(self, b, im, args):
        target = self._one(b, args, 0, A.integer, 0, 3)
        n = len(args)
        while n and args[n - 1] is None:
            n -= 1
        if n >= 5:
            col = _pack([self._one(b, args, i, A.number) for i in (1, 2, 3, 4)])
            column = self._one(b, args, 5, A.integer, -1, 63) if n > 5 else -1
        else:
            col = self._one(b, args, 1, A.color)
            column = self._one(b, args, 2, A.integer, -1, 63) if n > 2 else -1
        if im is not None:
            im.table_set_bg_color(target, col, column)

    def _fn_is_rect_visible(self, b, im, args):
        size, other = self._read(b, im, args)
        if im is None:
            return True
        if other is None:
            return bool(im.is_rect_visible(im.ImVec2(*size)))
        return bool(im.is_rect_visible(im.ImVec2(*size), im.ImVec2(*other)))

    def _fn_calc_text_size(self, b, im, args):
        text, hide, wrap = self._read(b, im, args)
        if im is None:
            return float(7 * len(text)), 13.0
        v = im.calc_text_size(text, hide, wrap)
        return float(v.x), float(v.y)

    def _fn_plot(self, b, im, args):
        label, values, count, offset, overlay, lo, hi, size = self._read(b, im, args)
        try:
            raw = A.plain(self.mod, values, "table of numbers")
            raw = raw if isinstance(raw, list) else []
            data = [A.number(x) for x in raw[:A.MAX_ITEMS]]
        except ModError as e:
            raise ModError(f"ImGui.{b.name}: bad argument #2 (values): {e}") from None
        if count is not None:
            data = data[:max(0, count)]
        if im is None or not data:
            return None
        np = self.layer.backend.np        # imported with the backend, not inside a mod's budget
        getattr(im, snake(b.name))(label, np.asarray(data, dtype=np.float32), min(max(0, offset), len(data) - 1),
                                   overlay, A.FLT_MAX if lo is None else lo, A.FLT_MAX if hi is None else hi,
                                   im.ImVec2(*size))
        return None

    # -- pure colour helpers (the same with or without Dear ImGui) --------------------------

    def _fn_u32_to_float4(self, b, im, args):
        (col,) = self._read(b, im, args)
        return [((col >> (8 * i)) & 0xFF) / 255.0 for i in range(4)]

    def _fn_float4_to_u32(self, b, im, args):
        (rgba,) = self._read(b, im, args)
        return _pack(rgba)

    def _fn_rgb_to_hsv(self, b, im, args):
        r, g, bl = self._read(b, im, args)
        return colorsys.rgb_to_hsv(r, g, bl)

    def _fn_hsv_to_rgb(self, b, im, args):
        h, s, v = self._read(b, im, args)
        return colorsys.hsv_to_rgb(h % 1.0 if h != 1.0 else h, s, v)

    def _fn_key_index(self, b, im, args):
        (key,) = self._read(b, im, args)
        return key

    # -- clipboard -----------------------------------------------------------------------------

    def _fn_get_clipboard(self, b, im, args):
        self._read(b, im, args)
        if im is None:
            return self.layer.clipboard
        return _clip(im.get_clipboard_text() or "", A.MAX_TEXT + 1)

    def _fn_set_clipboard(self, b, im, args):
        (text,) = self._read(b, im, args)
        self.layer.clipboard = text
        if im is not None:
            im.set_clipboard_text(text)

    # -- draw lists ------------------------------------------------------------------------------

    def _fn_add_rect(self, b, im, args):
        dl, pmin, pmax, col, rounding, fl, thickness = self._read(b, im, args)
        if dl is not None:
            dl.add_rect(im.ImVec2(*pmin), im.ImVec2(*pmax), col, rounding, thickness, fl)

    def _fn_add_text(self, b, im, args):
        if len(args) > 5 and args[5] is not None:        # (dl, fontSize, x, y, col, text [, wrap])
            dl = self._one(b, args, 0, self.layer.draw_list)
            size = min(MAX_FONT, max(MIN_FONT, self._one(b, args, 1, A.number)))
            pos = (self._one(b, args, 2, A.number), self._one(b, args, 3, A.number))
            col = self._one(b, args, 4, A.color)
            text = self._one(b, args, 5, A.text)
            wrap = self._one(b, args, 6, A.number) if len(args) > 6 and args[6] is not None else 0.0
            if dl is not None:
                dl.add_text(im.get_font(), size, im.ImVec2(*pos), col, text, wrap)
            return None
        dl, pos, col, text = self._read(b, im, args)
        if dl is not None:
            dl.add_text(im.ImVec2(*pos), col, text)
        return None

    # -- toasts ------------------------------------------------------------------------------

    def _fn_show_toast(self, b, im, args):
        kind, title, content, dismiss = self._read(b, im, args)
        self.layer.show_toast(self.mod, kind, title or "", content or "", dismiss)

    # -- textures --------------------------------------------------------------------------------

    def _fn_image(self, b, im, args):
        handle, size, uv0, uv1, tint, _border = self._read(b, im, args)
        tex = self.layer.texture(self.mod, handle)
        if tex is None:
            raise ModError("ImGui.Image: not a texture of this mod (use the value ImGui.LoadTexture returned, "
                           "before texture:Release())")
        if size == (0.0, 0.0):
            size = (float(tex.width), float(tex.height))
        if im is not None:
            im.image_with_bg(im.ImTextureRef(tex.tex_id), im.ImVec2(*size), im.ImVec2(*uv0), im.ImVec2(*uv1),
                             im.ImVec4(0.0, 0.0, 0.0, 0.0), im.ImVec4(*tint))

    def _fn_load_texture(self, b, im, args):
        (path,) = self._read(b, im, args)
        return self.layer.load_texture(self.mod, path)


def _clip(text: str, cap: int) -> str:
    """At most cap - 1 bytes of UTF-8 (a C buffer of cap bytes), never half a character."""
    if len(text) < cap // 4:
        return text
    raw = text.encode("utf-8", "replace")
    if len(raw) < cap:
        return text
    return raw[:cap - 1].decode("utf-8", "ignore")
