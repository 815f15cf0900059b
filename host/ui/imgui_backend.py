"""One Dear ImGui context through imgui-bundle (the `ui` extra), with no window of its own.

The game feeds it input (`mouse_pos`, `mouse_button`, `key`, `text`) and a
display size; `new_frame(dt)` / `render()` bracket the draw phase; the draw
data then goes to a renderer (host/ui/imgui_overlay.py draws it into a
pygame surface).  Without a renderer the frames still run, so widgets keep
real state (a headless game can drive them through the inputs).

Frame thread only: Dear ImGui has one global context per process here.
"""

from __future__ import annotations

import re

import numpy
from imgui_bundle import imgui

from host.ui.imgui_names import FLAG_TABLES



def _camel(name: str) -> str:
    if name == "count":
        return "COUNT"
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def flag_tables() -> dict[str, dict[str, int]]:
    """{ "ImGuiWindowFlags": { "NoTitleBar": 1, ... }, ... } with Dear ImGui's values."""
    out = {}
    for lua_name, cls_name in FLAG_TABLES.items():
        cls = getattr(imgui, cls_name, None)
        if cls is None:
            continue
        table = {}
        for member in getattr(cls, "__members__", {}).values():
            name = member.name
            if re.fullmatch(r"[a-z0-9_]+", name):
                table[_camel(name.rstrip("_"))] = int(member.value)
        out[lua_name] = table
    return out


class ImGuiBackend:
    """A Dear ImGui context sized to the game's display (see the module docstring)."""

    def __init__(self, width: int, height: int):
        self.context = imgui.create_context()
        imgui.set_current_context(self.context)
        io = imgui.get_io()
        io.set_ini_filename("")                      # never write imgui.ini into the cwd
        io.backend_flags |= imgui.BackendFlags_.renderer_has_textures.value
        io.display_size = imgui.ImVec2(float(width), float(height))
        # Mods' mistakes Dear ImGui can recover from (a missing End, a Pop too
        # many) are recovered at the end of the frame instead of asserting (and
        # shown as a tooltip); imgui_api.py already closes what a mod leaves open.
        io.config_error_recovery = True
        io.config_error_recovery_enable_assert = False
        io.config_error_recovery_enable_debug_log = False
        io.config_error_recovery_enable_tooltip = True   # Dear ImGui needs one way to report
        style = imgui.get_style()
        # The software renderer draws flat triangles: no anti-aliased fringes.
        style.anti_aliased_lines = False
        style.anti_aliased_line_ends = False
        style.anti_aliased_fill = False
        self.in_frame = False
        self.imgui = imgui
        self.np = numpy
        self._warm_up()

    def _warm_up(self) -> None:
        # Dear ImGui 1.92 rasterizes glyphs on first use, which would land in the
        # first mod's onDraw (and its time budget): draw the printable ASCII once here.
        imgui.new_frame()
        imgui.set_next_window_pos(imgui.ImVec2(-10000.0, -10000.0))
        imgui.begin("##relic-warm-up")
        imgui.text_unformatted("".join(chr(c) for c in range(32, 127)))
        imgui.checkbox("##c", True)
        imgui.end()
        imgui.render()

    def resize(self, width: int, height: int) -> None:
        """The game's display size changed."""
        imgui.get_io().display_size = imgui.ImVec2(float(width), float(height))

    def new_frame(self, dt: float) -> None:
        """Start an ImGui frame (the game's draw phase)."""
        imgui.set_current_context(self.context)
        imgui.get_io().delta_time = max(float(dt), 1e-4)
        imgui.new_frame()
        self.in_frame = True

    def render(self):
        """End the frame; returns the draw data (ImDrawData)."""
        self.in_frame = False
        imgui.render()
        return imgui.get_draw_data()

    # -- input (from the game's event loop) ---------------------------------------------

    def mouse_pos(self, x: float, y: float) -> None:
        """The pointer moved."""
        imgui.get_io().add_mouse_pos_event(float(x), float(y))

    def mouse_button(self, button: int, down: bool) -> None:
        """A mouse button (0 left, 1 right, 2 middle) went down or up."""
        imgui.get_io().add_mouse_button_event(int(button), bool(down))

    def mouse_wheel(self, dx: float, dy: float) -> None:
        """The wheel turned."""
        imgui.get_io().add_mouse_wheel_event(float(dx), float(dy))

    def key(self, key_name: str, down: bool) -> None:
        """A named key (imgui.Key member: "enter", "backspace", "tab", "left_arrow", ...)."""
        k = getattr(imgui.Key, key_name, None)
        if k is not None:
            imgui.get_io().add_key_event(k, bool(down))

    def text(self, chars: str) -> None:
        """Typed text."""
        imgui.get_io().add_input_characters_utf8(chars)

    def wants_input(self) -> tuple[bool, bool]:
        """(ImGui wants the mouse, ImGui wants the keyboard) this frame."""
        io = imgui.get_io()
        return io.want_capture_mouse, io.want_capture_keyboard
