"""The embeddable mod host: load mod folders, drive their events from a frame loop.

A game (or `relic run`) owns the loop and calls, on its one frame thread:

    host = Host("mods")
    host.load()
    while running:
        host.update(dt)      # reload point, Cron, onUpdate, providers, async
        host.draw()          # onDraw
    host.shutdown()

Providers plug extra APIs into every mod (the inference worker and the
llm/grammar/rag modules attach this way):

    install(mod)      after the sandbox is built, before init.lua runs
    uninstall(mod)    when the mod is unloaded, reloaded, quarantined or fails
    pump(budget_s)    once per update(), after onUpdate, before async resumption
    shutdown()        at host shutdown

All four are optional.  A provider delivers results into Lua with
`mod.call(fn, ...)`; an awaitable handle (a Lua table with done()/result())
resumes `await`ing tasks in the async step that follows `pump` in the same
frame.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from host.runtime.crossmod import CrossMod
from host.runtime.gameapi import GameAPI
from host.limits import DEFAULT_LIMITS, Limits
from host.runtime.manifest import Manifest, Skipped, discover, inspect_folder, load_order
from host.runtime.mod import BUILTIN_COMMANDS, Mod
from host.runtime.modlog import default_console
from host.runtime.sandbox import default_lua_dir
from host.ui.imgui_api import ImGuiLayer

logger = logging.getLogger("relic.runtime")

ALL = "all"


@dataclass
class SkippedMod:
    """A folder in mods/ that never became a runtime (state is always "failed")."""

    id: str
    folder: Path
    reason: str
    state: str = "failed"
    trusted: bool = False

    def close(self) -> None:
        """Nothing to release."""


class Host:
    """Loads the mods of one folder and runs them from the caller's frame loop."""

    def __init__(self, mods_dir, *, lua_dir=None, console: Callable[[str], None] | None = None,
                 log_to_console: bool = True, clock: Callable[[], float] = time.perf_counter,
                 limits: Limits | None = None, pump_budget_s: float = 0.004, grants=None,
                 ui: ImGuiLayer | None = None, model: Any = None):
        self.mods_dir = Path(mods_dir)
        self.lua_dir = Path(lua_dir) if lua_dir is not None else default_lua_dir()
        self.console = console or default_console
        self.log_to_console = log_to_console
        self.clock = clock
        self.limits = limits or DEFAULT_LIMITS
        # mod id -> Grant (host.runtime.grants): trust, budget and memory come only
        # from here (the player or the game), never from a file the mod can write
        self.grants = dict(grants or {})
        self.pump_budget_s = pump_budget_s
        self.model = model                     # the chat model behind `llm` (host.llama.Model), or None
        self.mods: dict[str, Mod | SkippedMod] = {}
        self.order: list[str] = []             # ids in load order
        self.providers: list[Any] = []
        self.call_stack: list[str] = []        # ids of mods running now (innermost last)
        self.crossmod = CrossMod(self)
        self.game = GameAPI(self)              # what the embedding game publishes
        # Mods' ImGui: headless (calls accepted, nothing drawn) unless the game
        # gives a layer over Dear ImGui (host/ui/imgui_overlay.py: imgui_layer(size)).
        self.ui = ui if ui is not None else ImGuiLayer()
        if self.ui.size is not None:
            self.game.display_resolution = (float(self.ui.size[0]), float(self.ui.size[1]))
        self._last_draw: float | None = None
        self.quit_requested = False
        self.overlay_open = False
        self.frame = 0
        self._pending_reload: str | set[str] | None = None
        self._installed: set[int] = set()      # generations that providers installed into
        self._shut = False
        self.loaded = False                    # load() has run

    # -- console and host log -------------------------------------------------------

    def host_log(self, text: str) -> None:
        """Print a line of the host's own (to the console and the 'relic.runtime' logger)."""
        logger.info(text)
        self.console(f"[relic] {text}")

    def flush_logs(self) -> None:
        """Write the mods' buffered log lines to their files (end of each host entry point)."""
        for m in self.mods.values():
            log = getattr(m, "log", None)
            if log is not None:
                log.flush()

    # -- loading ----------------------------------------------------------------------

    def load(self) -> None:
        """Discover and load every mod: all init.lua files, then onInit for all."""
        found, skipped = discover(self.mods_dir, self.limits, self.grants)
        ordered, unordered = load_order(found)
        for s in skipped + unordered:
            self._record_skipped(s)
        started = []
        for m in ordered:
            mod = self._start(m)
            if mod is not None:
                started.append(mod)
        for mod in started:
            self._fire_init(mod)
        self.loaded = True
        self.flush_logs()
        loaded = sum(1 for m in self.mods.values() if m.state == "loaded")
        self.host_log(f"{loaded} mod(s) loaded from {self.mods_dir}")

    def _record_skipped(self, s: Skipped) -> None:
        self.mods[s.id] = SkippedMod(s.id, s.folder, s.reason)
        self.host_log(f"skipped mod '{s.id}': {s.reason}")

    def _start(self, manifest: Manifest) -> Mod | None:
        """Build a mod and run its init.lua; None if it did not load."""
        for dep in manifest.dependencies:
            d = self.mods.get(dep)
            if d is None or d.state != "loaded":
                why = d.reason if d is not None and d.reason else "not loaded"
                self._record_skipped(Skipped(manifest.id, manifest.folder,
                                             f"dependency '{dep}' did not load ({why})"))
                return None
        mod = Mod(self, manifest)
        self.mods[mod.id] = mod
        if mod.id not in self.order:
            self.order.append(mod.id)
        try:
            mod.build()
        except Exception as e:   # lupa/Lua failures while building the sandbox
            mod.fail(f"could not create the runtime: {type(e).__name__}: {e}")
            return None
        for p in self.providers:
            self._provider_install(p, mod)
        self._installed.add(mod.generation)
        if not mod.run_init():
            return None
        return mod

    def _fire_init(self, mod: Mod) -> None:
        # CET fires onTweak (game data ready) just before onInit.
        for event in ("onTweak", "onInit"):
            cb = mod.events.get(event)
            if cb is not None and mod.state == "loaded":
                mod.call(cb, budget=self.limits.init_budget_ms / 1000.0, what=event)

    # -- the game's API (host/runtime/gameapi.py) ---------------------------------------

    def expose(self, name: str, value: Any) -> None:
        """Publish a game table, object or function to every mod as the global `name`."""
        self.game.expose(name, value)

    def expose_per_mod(self, name: str, make: Callable[[str], Any]) -> None:
        """Publish the global `name` with each mod's own value, ``make(mod_id)`` (None: not for that mod)."""
        self.game.expose_per_mod(name, make)

    def declare_event(self, *names: str) -> None:
        """Declare game events mods can registerForEvent (before load())."""
        self.game.declare_event(*names)

    def emit(self, name: str, *args) -> int:
        """Fire a declared game event in every running mod; returns how many callbacks ran."""
        try:
            return self.game.emit(name, *args)
        finally:
            self.flush_logs()

    def emit_to(self, mod_id: str, name: str, *args) -> Any:
        """Fire a declared game event in one mod; returns its callback's return value (None if none ran)."""
        try:
            return self.game.emit_to(mod_id, name, *args)
        finally:
            self.flush_logs()

    def hookable(self, cls: str, method: str, fn: Callable | None = None):
        """Declare Class.Method hookable by Observe/Override; returns the function to call."""
        return self.game.hookable(cls, method, fn)

    # -- the player's partner ------------------------------------------------------------

    def llm_focus(self, mod_id: str | None, session: int | None = None) -> None:
        """Mark the NPC the player talks to: mod ``mod_id`` (or only its session with id ``session``).

        Its generations then run at priority "player" (they go first; background work
        pauses while its prompt is read) until the focus moves; ``None`` clears it.
        A host without the llm module ignores it.
        """
        if mod_id is not None and not isinstance(mod_id, str):
            raise TypeError("llm_focus(mod_id): a mod id string or None")
        for p in self.providers:
            fn = getattr(p, "llm_focus", None)
            if fn is not None:
                fn(mod_id, session)

    # -- providers --------------------------------------------------------------------

    def add_provider(self, provider: Any) -> None:
        """Attach a provider; it is installed into mods already running, too."""
        self.providers.append(provider)
        for mod in self._running():
            self._provider_install(provider, mod)

    def _provider_install(self, p: Any, mod: Mod) -> None:
        fn = getattr(p, "install", None)
        if fn is None:
            return
        try:
            fn(mod)
        except Exception as e:
            self.host_log(f"provider {type(p).__name__} failed to install into mod "
                           f"'{mod.id}': {type(e).__name__}: {e}")

    def _provider_uninstall(self, mod: Mod) -> None:
        if mod.generation not in self._installed:
            return
        self._installed.discard(mod.generation)
        for p in self.providers:
            fn = getattr(p, "uninstall", None)
            if fn is None:
                continue
            try:
                fn(mod)
            except Exception as e:
                self.host_log(f"provider {type(p).__name__} failed to uninstall from mod "
                               f"'{mod.id}': {type(e).__name__}: {e}")

    def _pump(self) -> None:
        start = self.clock()
        for p in self.providers:
            fn = getattr(p, "pump", None)
            if fn is None:
                continue
            left = max(0.0, self.pump_budget_s - (self.clock() - start))
            try:
                fn(left)
            except Exception as e:
                self.host_log(f"provider {type(p).__name__} pump failed: {type(e).__name__}: {e}")

    # -- mods stopping (called by Mod) -------------------------------------------------

    def mod_stopped(self, mod: Mod) -> None:
        """Called by a Mod that failed or was quarantined: say so, uninstall providers."""
        mod.log.flush()
        what = "quarantined" if mod.state == "quarantined" else "not loaded"
        if mod.log.console is not None:   # the mod's own log line said it on the console already
            logger.info("mod '%s' %s: %s", mod.id, what, mod.reason)
        else:
            self.host_log(f"mod '{mod.id}' {what}: {mod.reason}")
        self._provider_uninstall(mod)

    def _unload(self, mod: Mod | SkippedMod) -> None:
        if isinstance(mod, Mod):
            self._provider_uninstall(mod)
        mod.close()

    # -- the frame ----------------------------------------------------------------------

    def running_mods(self) -> list[Mod]:
        """Loaded mods in load order."""
        return self._running()

    def _running(self) -> list[Mod]:
        out = []
        for mid in self.order:
            m = self.mods.get(mid)
            if isinstance(m, Mod) and m.state == "loaded":
                out.append(m)
        return out

    def update(self, dt: float) -> None:
        """One frame: pending reloads, Cron, onUpdate(dt), provider pumps, async."""
        if self._shut:
            return
        if self._pending_reload:
            self._apply_reload()
        self.frame += 1
        mods = self._running()
        for m in mods:
            m.log.new_frame()
        for m in mods:
            m.tick_timers(dt)
        for m in mods:
            m.fire("onUpdate", dt)
        self._pump()
        for m in mods:
            m.step_async()
        self.flush_logs()

    def draw(self) -> None:
        """The draw phase: onDraw for every running mod, inside one ImGui frame."""
        if self._shut:
            return
        now = self.clock()
        dt = (now - self._last_draw) if self._last_draw is not None else 1 / 60
        self._last_draw = now
        ui = self.ui
        ui.begin_frame(dt)
        try:
            for m in self._running():
                if "onDraw" not in m.events:
                    continue
                ui.enter_mod()
                try:
                    m.fire("onDraw")
                finally:
                    ui.leave_mod()      # closes what the mod left open (an error, a missing End)
        finally:
            ui.end_frame()
            self.flush_logs()

    def open_overlay(self) -> None:
        """Console/overlay opened: onOverlayOpen (once per change)."""
        if not self.overlay_open and not self._shut:
            self.overlay_open = True
            for m in self._running():
                m.fire("onOverlayOpen")

    def close_overlay(self) -> None:
        """Console/overlay closed: onOverlayClose (once per change)."""
        if self.overlay_open and not self._shut:
            self.overlay_open = False
            for m in self._running():
                m.fire("onOverlayClose")

    def press_hotkey(self, hotkey_id: str, mod_id: str | None = None) -> int:
        """A hotkey was pressed and released; returns how many handlers ran."""
        n = 0
        for m in self._running():
            if mod_id is not None and m.id != mod_id:
                continue
            entry = m.hotkeys.get(hotkey_id)
            if entry is not None:
                m.call(entry[1], what=f"hotkey '{hotkey_id}'")
                n += 1
        return n

    def input(self, input_id: str, is_down: bool, mod_id: str | None = None) -> int:
        """An input changed state; calls registerInput handlers with isDown."""
        n = 0
        for m in self._running():
            if mod_id is not None and m.id != mod_id:
                continue
            entry = m.inputs.get(input_id)
            if entry is not None:
                m.call(entry[1], bool(is_down), what=f"input '{input_id}'")
                n += 1
        return n

    # -- console commands ----------------------------------------------------------------

    def command_owner(self, name: str) -> str | None:
        """Id of the running mod that registered console command `name`."""
        for m in self.mods.values():
            if isinstance(m, Mod) and m.state in ("loaded", "loading") and name in m.commands:
                return m.id
        return None

    def run_command(self, line: str) -> None:
        """Run one console line: a built-in (help, mods, reload [id], quit, overlay, hotkey,
        input) or a mod command."""
        try:
            self._run_command(line)
        finally:
            self.flush_logs()

    def _run_command(self, line: str) -> None:
        parts = line.strip().split(None, 1)
        if not parts:
            return
        name = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        if name == "help":
            self.console("built-in commands: " + ", ".join(BUILTIN_COMMANDS) + " (reload takes an optional mod id)")
            self.console("  overlay [open|close|toggle]: the overlay (onOverlayOpen/onOverlayClose)")
            self.console("  hotkey <id> [mod]: press and release a registerHotkey key")
            self.console("  input <id> down|up [mod]: a registerInput key goes down or up")
            keys = sorted({f"{k} ({m.id}, hotkey)" for m in self._running() for k in m.hotkeys}
                          | {f"{k} ({m.id}, input)" for m in self._running() for k in m.inputs})
            if keys:
                self.console("  keys: " + ", ".join(keys))
            for m in self._running():
                for cname, (help_text, _) in sorted(m.commands.items()):
                    self.console(f"  {cname} ({m.id}): {help_text}")
        elif name == "mods":
            for mid in sorted(self.mods):
                m = self.mods[mid]
                extra = f" - {m.reason}" if m.reason else ""
                tag = " [trusted]" if m.trusted else ""
                self.console(f"  {mid}: {m.state}{tag}{extra}")
        elif name == "reload":
            self.request_reload(rest.strip() or None)
            self.console(f"[relic] reload of {rest.strip() or 'all mods'} at the next frame")
        elif name == "quit":
            self.quit_requested = True
        elif name in ("overlay", "hotkey", "input"):
            self._input_command(name, rest.split())
        else:
            owner = self.command_owner(name)
            if owner is None:
                self.console(f"[relic] unknown command '{name}' (try help)")
                return
            mod = self.mods[owner]
            mod.call(mod.commands[name][1], rest, what=f"command '{name}'")

    def _input_command(self, name: str, args: list[str]) -> None:
        """overlay/hotkey/input from the console (CET's bindings, for a headless host)."""
        if name == "overlay":
            what = args[0] if args else "toggle"
            if what not in ("open", "close", "toggle"):
                self.console("[relic] usage: overlay [open|close|toggle]")
                return
            if what == "open" or (what == "toggle" and not self.overlay_open):
                self.open_overlay()
            else:
                self.close_overlay()
            self.console(f"[relic] overlay {'open' if self.overlay_open else 'closed'}")
        elif name == "hotkey":
            if not 1 <= len(args) <= 2:
                self.console("[relic] usage: hotkey <id> [mod]")
                return
            n = self.press_hotkey(args[0], args[1] if len(args) > 1 else None)
            if n == 0:
                self.console(f"[relic] no mod registered hotkey '{args[0]}' (try help)")
        else:
            if not 2 <= len(args) <= 3 or args[1] not in ("down", "up"):
                self.console("[relic] usage: input <id> down|up [mod]")
                return
            n = self.input(args[0], args[1] == "down", args[2] if len(args) > 2 else None)
            if n == 0:
                self.console(f"[relic] no mod registered input '{args[0]}' (try help)")

    def commands(self) -> dict[str, tuple[str, str]]:
        """All mod commands: name -> (mod id, help)."""
        out = {}
        for m in self._running():
            for cname, (help_text, _) in m.commands.items():
                out[cname] = (m.id, help_text)
        return out

    # -- reload -----------------------------------------------------------------------------

    def request_reload(self, mod_id: str | None = None) -> None:
        """Reload one mod (or all) at the next frame boundary."""
        if mod_id is None:
            self._pending_reload = ALL
        elif self._pending_reload != ALL:
            if not isinstance(self._pending_reload, set):
                self._pending_reload = set()
            self._pending_reload.add(mod_id)

    def _apply_reload(self) -> None:
        pending, self._pending_reload = self._pending_reload, None
        if pending == ALL:
            self._reload_all()
        else:
            for mid in sorted(pending):
                self._reload_one(mid)

    def _stop_all(self) -> None:
        for mid in reversed(self.order):
            m = self.mods.get(mid)
            if isinstance(m, Mod) and m.state == "loaded":
                m.fire("onShutdown")
        for m in list(self.mods.values()):
            self._unload(m)

    def _reload_all(self) -> None:
        self.host_log("reloading all mods")
        self._stop_all()
        self.mods.clear()
        self.order.clear()
        self.load()

    def _reload_one(self, mod_id: str) -> None:
        old = self.mods.pop(mod_id, None)
        if old is not None:
            if isinstance(old, Mod) and old.state == "loaded":
                old.fire("onShutdown")
            self._unload(old)
        folder = self.mods_dir / mod_id
        if not folder.is_dir():
            if mod_id in self.order:
                self.order.remove(mod_id)
            self.host_log(f"mod '{mod_id}' is gone (no folder {folder})")
            return
        r = inspect_folder(folder, self.limits, self.grants)
        if isinstance(r, Skipped):
            self._record_skipped(r)
            return
        self.host_log(f"reloading mod '{mod_id}'")
        mod = self._start(r)
        if mod is not None:
            self._fire_init(mod)

    # -- shutdown ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """onShutdown for every running mod, then release runtimes, dbs and providers."""
        if self._shut:
            return
        self._stop_all()
        self._shut = True
        for p in self.providers:
            fn = getattr(p, "shutdown", None)
            if fn is None:
                continue
            try:
                fn()
            except Exception as e:
                self.host_log(f"provider {type(p).__name__} shutdown failed: {type(e).__name__}: {e}")

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
