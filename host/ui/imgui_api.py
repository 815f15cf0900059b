"""CET's `ImGui` table for mods, over Dear ImGui or over nothing (headless).

Every mod gets `ImGui` with CET's (sol_ImGui's) functions, names, argument
orders and return values — `ImGui.Begin(name [, open] [, flags])`,
`ImGui.Checkbox(label, v) -> v, pressed`, `ImGui.InputText(label, text,
maxLength) -> text, changed`, draw lists, textures, ... — generated from one
table (host/ui/imgui_names.py; the calls themselves: host/ui/imgui_calls.py),
plus the flag tables (`ImGuiWindowFlags`, `ImGuiCol`, `ImGuiCond`, ...) and
`ImVec2`/`ImVec4`.

As in CET the calls work only while the mod's `onDraw` runs (anywhere else
they raise a Lua error; `LoadTexture` and the colour conversions work
anywhere).  The host opens one ImGui frame around all onDraw callbacks
(`ImGuiLayer.begin_frame/end_frame`, called by `Host.draw`).

- With an `ImGuiBackend` (host/ui/imgui_backend.py, the `ui` extra) the calls
  go to Dear ImGui; a renderer (host/ui/imgui_overlay.py) draws the result.
- Without one (a headless host, or no imgui-bundle installed) the calls are
  checked the same way and draw nothing: `Begin` returns true, buttons are not
  pressed, values come back unchanged, and every flag reads as 0.

Safety: Dear ImGui asserts (and would leave its state broken) on unbalanced
Begin/End and Push/Pop pairs.  Each mod's onDraw has its own stack here: an
End without its Begin is a clear Lua error before ImGui sees it, and whatever
the mod left open (it errored, was stopped, forgot an End) is closed in order
after its onDraw.  Every argument is checked (imgui_args.py); strings,
nesting, draw-list handles per frame and textures are capped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from host.errors import ModError
from host.ui.imgui_args import MAX_TEXT  # noqa: F401  (re-exported: the cap a mod's strings meet)
from host.ui.imgui_calls import ModImGui
from host.ui.imgui_names import BINDINGS, FLAG_TABLES
from host.ui.imgui_textures import TextureStore

if TYPE_CHECKING:
    from host.runtime.mod import Mod

# Bounds of the binding itself, per call or per frame (not policy: the policy limits,
# textures and toasts, are the `ui` group of host.limits)
MAX_DEPTH = 64               # open Begin/Push entries per mod per frame
_TOAST_COLORS = {1: (0.3, 0.9, 0.4, 1.0), 2: (1.0, 0.8, 0.2, 1.0), 3: (1.0, 0.35, 0.3, 1.0), 4: (0.4, 0.7, 1.0, 1.0)}
_TOAST_NAMES = {1: "Success", 2: "Warning", 3: "Error", 4: "Info"}
MAX_DRAW_LISTS = 1024        # draw list handles handed out in one frame (a bound of the binding, as above)

# Ends that close each kind of stack entry (what the mod must call, in order),
# and the imgui-bundle function that closes it for the mod when it did not.
CLOSERS = {
    "window": ("End", "end"), "child": ("EndChild", "end_child"), "tabbar": ("EndTabBar", "end_tab_bar"),
    "tabitem": ("EndTabItem", "end_tab_item"), "tree": ("TreePop", "tree_pop"),
    "table": ("EndTable", "end_table"), "menubar": ("EndMenuBar", "end_menu_bar"),
    "mainmenubar": ("EndMainMenuBar", "end_main_menu_bar"), "menu": ("EndMenu", "end_menu"),
    "popup": ("EndPopup", "end_popup"), "tooltip": ("EndTooltip", "end_tooltip"),
    "combo": ("EndCombo", "end_combo"), "group": ("EndGroup", "end_group"),
    "color": ("PopStyleColor", "pop_style_color"), "var": ("PopStyleVar", "pop_style_var"),
    "width": ("PopItemWidth", "pop_item_width"), "id": ("PopID", "pop_id"),
    "disabled": ("EndDisabled", "end_disabled"), "listbox": ("EndListBox", "end_list_box"),
    "itemflag": ("PopItemFlag", "pop_item_flag"), "wrap": ("PopTextWrapPos", "pop_text_wrap_pos"),
    "clip": ("PopClipRect", "pop_clip_rect"),
}


# entries that open a window of their own (a table outside them is not current inside them)
_WINDOWS = frozenset({"window", "child", "popup", "tooltip", "menu", "combo", "listbox"})


class ImGuiLayer:
    """The ImGui of a Host: one frame per draw phase, one stack per mod's onDraw."""

    def __init__(self, backend=None, size: tuple[int, int] | None = None):
        self.backend = backend          # ImGuiBackend or None (headless: draw nothing)
        self.size = size                # the game window's size in pixels (GetDisplayResolution), if known
        self.errors = 0                 # frames Dear ImGui could not finish
        self.last_error: str | None = None
        self.drawing = False            # inside the draw phase (onDraw allowed to call ImGui)
        self.draw_data = None           # the last frame's draw data (for a renderer)
        self.textures = TextureStore()  # LoadTexture's textures, every mod's
        self.clipboard = ""             # SetClipboardText without Dear ImGui
        self.toasts: list[dict] = []    # ShowToast's notifications still on screen, oldest first
        self._next_toast = 1
        self._stack: list[tuple[str, bool]] = []     # (kind, Dear ImGui has it open)
        self._draw_lists: dict[int, Any] = {}        # handle -> ImDrawList, this frame only
        self._next_draw_list = 1
        self._flags: dict[str, dict[str, int]] | None = None
        self._flag_src: str | None = None

    @property
    def headless(self) -> bool:
        """True when the calls draw nothing."""
        return self.backend is None

    @property
    def imgui(self):
        """imgui-bundle's `imgui` module, or None headless."""
        return None if self.backend is None else self.backend.imgui

    # -- the draw phase (Host.draw) ----------------------------------------------------------

    def begin_frame(self, dt: float = 1 / 60) -> None:
        """Open the frame in which every mod's onDraw runs."""
        self._draw_lists.clear()
        if self.backend is not None:
            self.backend.new_frame(dt)
        self.drawing = True

    def end_frame(self) -> None:
        """Close the frame; with a backend, keep its draw data for the renderer.

        A frame Dear ImGui cannot finish (its state broken by a refused call)
        is dropped, never raised into the game's loop.
        """
        self.drawing = False
        self._draw_lists.clear()        # handles die with the frame (the lists are rebuilt)
        if self.backend is not None:
            try:
                self._draw_toasts()
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
            kind, real = self._stack.pop()
            if real and self.backend is not None:
                fn = getattr(self.backend.imgui, CLOSERS[kind][1])
                fn(1) if kind in ("color", "var") else fn()

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
        """Expose `ImGui`, `ImVec2`/`ImVec4`, `ImGuiListClipper` and the flag tables in a mod being built."""
        api = ModImGui(self, mod)
        self.textures.drop_stale(mod.id, mod.generation)

        def release(handle):
            if isinstance(handle, int):
                self.textures.release(mod, handle)

        lib = mod.load_lib("relic_imgui")
        table = lib.functions(mod.wrap(api.call), mod.table(list(BINDINGS)), mod.wrap(release), mod.box.readonly)
        mod.expose("ImGui", table)
        values = None
        if self.flag_tables():
            res = mod.box.load_chunk(self._flag_source(), "=relic_imgui_flags")
            values = (res[0] if isinstance(res, tuple) else res)()
        lib.expose_flags(mod.env, values, mod.table(list(FLAG_TABLES)), mod.box.readonly)
        lib.expose_types(mod.env, table)

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

    def check_room(self) -> None:
        """Raise before a Begin/Push that would go past MAX_DEPTH (before ImGui is called)."""
        if len(self._stack) >= MAX_DEPTH:
            raise ModError(f"ImGui: more than {MAX_DEPTH} nested Begin/Push calls in one onDraw")

    def push(self, kind: str, real: bool = True) -> None:
        """Record an opened Begin/Push (`real`: Dear ImGui has it open and must close it)."""
        self.check_room()
        self._stack.append((kind, real))

    def inside(self, kind: str) -> bool:
        """Whether the innermost open scope (up to the nearest window) is a `kind` entry."""
        for k, _ in reversed(self._stack):
            if k == kind:
                return True
            if k in _WINDOWS:
                return False
        return False

    def pop(self, kind: str, fname: str) -> bool:
        """Check that `fname` closes the innermost entry (a clear error if not); returns its `real`."""
        if not self._stack or self._stack[-1][0] != kind:
            top = self._stack[-1][0] if self._stack else None
            hint = f" (the innermost open call needs ImGui.{CLOSERS[top][0]} first)" if top else ""
            raise ModError(f"ImGui.{fname}: nothing to close{hint}")
        return self._stack.pop()[1]

    # -- toasts ---------------------------------------------------------------------------------

    def show_toast(self, mod: "Mod", kind: int, title: str, content: str, dismiss_ms: int) -> None:
        """ImGui.ShowToast: a notification in the corner for dismiss_ms (headless: kept, not drawn)."""
        now = time.monotonic()
        self.toasts = [t for t in self.toasts if t["until"] > now]
        mine = [t for t in self.toasts if t["mod"] == mod.id]
        limits = mod.host.limits.ui
        if len(mine) >= limits.max_toasts:
            self.toasts.remove(mine[0])
        text = limits.toast_chars
        self.toasts.append({"id": self._next_toast, "mod": mod.id, "kind": kind,
                            "title": title[:text], "content": content[:text],
                            "until": now + max(0, min(dismiss_ms, limits.toast_ms)) / 1000.0})
        self._next_toast += 1

    def _draw_toasts(self) -> None:
        # Drawn by the host after every mod's onDraw, in the same frame, bottom right upwards.
        now = time.monotonic()
        self.toasts = [t for t in self.toasts if t["until"] > now]
        if not self.toasts:
            return
        im = self.backend.imgui
        size = im.get_io().display_size
        y = size.y - 10.0
        flags = (im.WindowFlags_.no_decoration.value | im.WindowFlags_.no_inputs.value
                 | im.WindowFlags_.always_auto_resize.value | im.WindowFlags_.no_focus_on_appearing.value
                 | im.WindowFlags_.no_nav.value | im.WindowFlags_.no_saved_settings.value)
        for t in reversed(self.toasts):
            im.set_next_window_pos(im.ImVec2(size.x - 10.0, y), 0, im.ImVec2(1.0, 1.0))
            im.set_next_window_size_constraints(im.ImVec2(120.0, 0.0), im.ImVec2(max(120.0, size.x / 3), size.y / 2))
            im.begin(f"##relic-toast-{t['id']}", None, flags)
            title = t["title"] or _TOAST_NAMES.get(t["kind"], "")
            if title:
                im.text_colored(im.ImVec4(*_TOAST_COLORS.get(t["kind"], (1.0, 1.0, 1.0, 1.0))), title)
            if t["content"]:
                im.push_text_wrap_pos(max(120.0, size.x / 3) - 16.0)
                im.text_unformatted(t["content"])
                im.pop_text_wrap_pos()
            y -= im.get_window_height() + 6.0
            im.end()

    # -- draw lists and textures -----------------------------------------------------------------

    def new_draw_list(self, obj) -> int:
        """A handle for a draw list, valid until the frame ends (obj is None headless)."""
        if len(self._draw_lists) >= MAX_DRAW_LISTS:
            raise ModError(f"ImGui: more than {MAX_DRAW_LISTS} draw list handles in one frame")
        handle = self._next_draw_list
        self._next_draw_list += 1
        self._draw_lists[handle] = obj
        return handle

    def draw_list(self, handle):
        """The draw list of a handle from this frame (raises ModError for anything else)."""
        if isinstance(handle, float) and handle.is_integer():
            handle = int(handle)
        if isinstance(handle, bool) or not isinstance(handle, int) or handle not in self._draw_lists:
            raise ModError("not a draw list of this frame (use the value of ImGui.GetWindowDrawList() "
                           "in the same onDraw)")
        return self._draw_lists[handle]

    def texture(self, mod: "Mod", handle: int):
        """The mod's texture `handle`, or None."""
        return self.textures.get(mod, handle)

    def load_texture(self, mod: "Mod", path: str):
        """LoadTexture: ({handle, width, height}, nil) or (nil, message), as CET returns."""
        try:
            tex = self.textures.load(mod, path)
        except ModError as e:
            return None, f"Failed to load '{path}': {e}"
        return {"handle": tex.handle, "width": tex.width, "height": tex.height}, None
