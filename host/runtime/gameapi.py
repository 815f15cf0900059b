"""The embedding game's API for mods: what CET's game side is to Cyberpunk mods.

A game publishes to every mod, on the frame thread, before or after
`host.load()`:

    host.expose("Market", market)                  # an object: its public methods and data
    host.expose("Prices", {"apple": 3})            # plain data (read-only to mods)
    host.expose_per_mod("me", lambda mod_id: npcs[mod_id].api())   # each mod its own value
    host.declare_event("onQuestDone")              # before load: mods registerForEvent it
    host.emit("onQuestDone", {"quest": "q1"})      # -> every mod's callback
    host.emit_to("bram", "onHear", "Oona", "hi")   # -> one mod's callback; returns what it returned
    market.buy = host.hookable("Market", "Buy", market.buy)

`hookable` returns a function the game calls instead of the original; mods
hook it with CET's names:

    Observe("Market", "Buy", function(self, item, qty) ... end)        -- = ObserveBefore
    ObserveAfter("Market", "Buy", function(self, item, qty) ... end)
    Override("Market", "Buy", function(self, item, qty, wrapped) return wrapped(item, qty) end)

`self` is the object's public data (absent for a plain function).  Every
callback runs through `Mod.call`, under that mod's budget, with errors in its
log; an override that fails falls back to the next override or the original,
so a broken mod never breaks the game's function.  Only plain data crosses
(numbers, strings, booleans, lists, dicts, dataclasses and objects as their
public fields); game functions reached through exposed values are wrapped.

Names the game did not publish but CET mods use (`Game`, `TweakDB`,
`NewObject`, `GetSingleton`, ...) exist in every mod as stubs that fail with
one line naming what this game publishes (host/runtime/lua/relic_game.lua).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, Callable

from host.errors import GameAPIError, ModError, QuotaExceeded
from host.runtime.convert import lua_type, to_python

if TYPE_CHECKING:
    from host.runtime.host import Host
    from host.runtime.mod import Mod

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Globals a game cannot replace: the mod API itself.
RESERVED = {
    "print", "spdlog", "json", "db", "sqlite3", "io", "dir", "Cron", "async", "await", "GetMod",
    "GetMods", "GetVersion", "GetDisplayResolution", "registerForEvent", "registerHotkey",
    "registerInput", "registerCommand", "Observe", "ObserveBefore", "ObserveAfter", "Override",
    "llm", "grammar", "rag", "llama", "ImGui", "require", "dofile", "loadfile", "load",
    "loadstring", "pcall", "xpcall", "error", "assert", "string", "table", "math", "os", "bit",
    "bit32", "coroutine", "pairs", "ipairs", "next", "type", "tostring", "tonumber", "select",
    "rawget", "rawset", "rawequal", "rawlen", "setmetatable", "getmetatable", "unpack",
    "collectgarbage", "_G", "_VERSION",
}
# What CET mods reach for that belongs to Cyberpunk 2077 (stubs unless published).
CYBERPUNK_TABLES = ("Game", "TweakDB", "GameOptions", "Vector3", "Vector4", "EulerAngles",
                    "Quaternion", "ItemID", "TweakDBID", "CName", "Enum", "GameDump",
                    "StrongReference", "WeakReference", "Descriptor", "LocKey", "CRUID")
CYBERPUNK_FUNCTIONS = ("NewObject", "GetSingleton", "Dump", "DumpType", "DumpAllTypeNames",
                       "DumpVtables", "DumpReflection", "IsDefined", "EnumInt", "ToVector3",
                       "ToVector4", "ToEulerAngles", "ToQuaternion", "ToCName", "ToTweakDBID",
                       "ToItemID", "FromVariant", "ToVariant", "ModArchiveExists", "IsBound",
                       "GetBind")
HOOK_KINDS = ("before", "after", "override")


def plain(value: Any, depth: int = 0, wrap: Callable[[Callable], Any] | None = None) -> Any:
    """Game data -> plain data for a mod: dataclasses and objects become their public fields.

    Callables are passed to `wrap` (which must make them safe to call from
    Lua with Lua arguments); without `wrap` they are dropped from objects and
    refused elsewhere.
    """
    if depth > 32:
        raise GameAPIError("game data nested deeper than 32 levels (or a cycle)")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if lua_type(value) is not None:
        return value
    if isinstance(value, dict):
        return {k: plain(v, depth + 1, wrap) for k, v in value.items()
                if not (callable(v) and wrap is None)}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v, depth + 1, wrap) for v in value]
    if callable(value) and not isinstance(value, type):
        if wrap is None:
            raise GameAPIError(f"a function ({getattr(value, '__name__', value)!r}) cannot cross "
                               "here; expose it instead")
        return wrap(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {k: plain(v, depth + 1) for k, v in fields.items() if not k.startswith("_")}
    out = {}
    for name in dir(type(value)) + list(getattr(value, "__dict__", {})):
        if name.startswith("_") or name in out:
            continue
        try:
            attr = getattr(value, name)
        except Exception:
            continue
        if callable(attr):
            if wrap is not None and not isinstance(attr, type):
                out[name] = wrap(attr)
        elif isinstance(attr, (type(None), bool, int, float, str, bytes, list, tuple, dict)) \
                or dataclasses.is_dataclass(attr):
            out[name] = plain(attr, depth + 1)
    return out


class Hook:
    """A game function that mods can Observe/Override (made by GameAPI.hookable).

    Call it on the frame thread only (its callbacks run Lua).  A mod that is
    running when the hook fires (it called the game function itself) is
    skipped: a runtime is never re-entered.
    """

    def __init__(self, api: "GameAPI", cls: str, method: str, fn: Callable):
        self.api = api
        self.cls = cls
        self.method = method
        self.fn = fn
        self.owner = getattr(fn, "__self__", None)
        # kind -> [(mod id, generation, Lua function)] in registration order
        self.entries: dict[str, list[tuple[str, int, Any]]] = {k: [] for k in HOOK_KINDS}
        self.__name__ = getattr(fn, "__name__", method)
        self.__doc__ = getattr(fn, "__doc__", None)

    @property
    def name(self) -> str:
        """'Class.Method'."""
        return f"{self.cls}.{self.method}"

    def _live(self, kind: str) -> list[tuple["Mod", Any]]:
        out, keep = [], []
        for mid, gen, fn in self.entries[kind]:
            m = self.api.host.mods.get(mid)
            if m is None or getattr(m, "generation", None) != gen or m.state not in ("loaded", "loading"):
                continue            # the mod was reloaded, quarantined or removed
            keep.append((mid, gen, fn))
            out.append((m, fn))
        self.entries[kind] = keep
        return out

    def _args_for(self, mod: "Mod", args: tuple) -> list:
        vals = list(args)
        if self.owner is not None:
            vals.insert(0, plain(self.owner))
        return [mod.to_lua(plain(v)) for v in vals]

    def __call__(self, *args):
        """Run the observers and overrides around the game's function."""
        try:
            return self._call(args)
        finally:
            if not self.api.host.call_stack:    # the game called it (not a mod): write the logs
                self.api.host.flush_logs()

    def _call(self, args: tuple):
        running = set(self.api.host.call_stack)
        for mod, fn in self._live("before"):
            if mod.id not in running:
                mod.call(fn, *self._args_for(mod, args), what=f"Observe {self.name}")
        result = self._run_overrides([(m, f) for m, f in self._live("override")
                                      if m.id not in running], args)
        for mod, fn in self._live("after"):
            if mod.id not in running:
                mod.call(fn, *self._args_for(mod, args), what=f"ObserveAfter {self.name}")
        return result

    def _run_overrides(self, chain: list, args: tuple):
        if not chain:
            return self.fn(*args)
        mod, fn = chain[-1]
        rest = chain[:-1]

        def wrapped(*lua_args):
            # Called from the override's Lua code: arguments are Lua values.
            py = [mod.from_lua_plain(a) for a in lua_args]
            return plain(self._run_overrides(rest, tuple(py)))

        lua_args = self._args_for(mod, args)
        ok, result, err = mod.call_detail(fn, *lua_args, mod.wrap(wrapped),
                                          what=f"Override {self.name}")
        if not ok:
            self.api.host.console(f"[relic] Override {self.name} of mod '{mod.id}' failed; "
                                  "the game used the original")
            return self._run_overrides(rest, args)
        try:
            return mod.from_lua_plain(result)
        except ModError as e:
            mod.report_error(f"Override {self.name}", f"bad return value: {e}")
            return self._run_overrides(rest, args)


class GameAPI:
    """What the embedding game publishes (see the module docstring); one per Host."""

    def __init__(self, host: "Host"):
        self.host = host
        self.published: dict[str, Any] = {}
        self.per_mod: dict[str, Callable[[str], Any]] = {}
        self.events: set[str] = set()
        self.hooks: dict[tuple[str, str], Hook] = {}
        self.display_resolution: tuple[float, float] = (1920.0, 1080.0)
        self.version = _relic_version()

    # -- the game's side -----------------------------------------------------------

    def expose(self, name: str, value: Any) -> None:
        """Publish `value` to every mod as the global `name` (replaces an earlier one)."""
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise GameAPIError(f"expose: {name!r} is not a valid Lua name")
        if name in RESERVED:
            raise GameAPIError(f"expose: '{name}' is part of the mod API and cannot be replaced")
        self.per_mod.pop(name, None)
        self.published[name] = value
        for mod in self.host.running_mods():
            self._install_value(mod, name, value)

    def expose_per_mod(self, name: str, make: Callable[[str], Any]) -> None:
        """Publish the global `name` with a value of its own for each mod: ``make(mod_id)``.

        ``make`` runs once per mod as it is built (and now, for mods already
        running); a None result leaves that mod without the global.  For game
        functions bound to one mod's character, say, so no mod can act for another.
        """
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise GameAPIError(f"expose_per_mod: {name!r} is not a valid Lua name")
        if name in RESERVED:
            raise GameAPIError(f"expose_per_mod: '{name}' is part of the mod API and cannot be replaced")
        if not callable(make):
            raise GameAPIError("expose_per_mod: make must be a function of the mod id")
        self.published.pop(name, None)
        self.per_mod[name] = make
        for mod in self.host.running_mods():
            self._install_own(mod, name, make)

    def declare_event(self, *names: str) -> None:
        """Make event names known, so mods can registerForEvent them (call before load)."""
        for name in names:
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise GameAPIError(f"declare_event: {name!r} is not a valid event name")
            self.events.add(name)

    def emit(self, name: str, *args) -> int:
        """Fire a game event: every running mod's callback for it; returns how many ran."""
        if name not in self.events:
            raise GameAPIError(f"emit: '{name}' was not declared (host.declare_event('{name}') "
                               "before loading mods)")
        n = 0
        data = [plain(a) for a in args]
        running = set(self.host.call_stack)     # a mod inside a call cannot be re-entered
        for mod in self.host.running_mods():
            cb = mod.events.get(name)
            if cb is None or mod.id in running:
                continue
            mod.call(cb, *[mod.to_lua(d) for d in data], what=name)
            n += 1
        return n

    def emit_to(self, mod_id: str, name: str, *args) -> Any:
        """Fire a declared game event in one mod; returns what its callback returned (plain data).

        None when the mod is not running, has no callback for the event, is
        the one running now (it cannot be re-entered), or the callback failed
        (the error is in the mod's log).
        """
        if name not in self.events:
            raise GameAPIError(f"emit_to: '{name}' was not declared (host.declare_event('{name}') "
                               "before loading mods)")
        mod = self.host.mods.get(mod_id)
        cb = mod.events.get(name) if mod is not None and mod.state == "loaded" else None
        if cb is None or mod_id in self.host.call_stack:
            return None
        ok, result = mod.call(cb, *[mod.to_lua(plain(a)) for a in args], what=name)
        if not ok:
            return None
        try:
            return mod.from_lua_plain(result)
        except ModError as e:
            mod.report_error(name, f"bad return value: {e}")
            return None

    def hookable(self, cls: str, method: str, fn: Callable | None = None):
        """Declare Class.Method hookable; returns the function the game must call from now on.

        Usable as a decorator: `@host.hookable("Market", "Buy")`.
        """
        for part in (cls, method):
            if not isinstance(part, str) or not NAME_RE.match(part):
                raise GameAPIError(f"hookable: {part!r} is not a valid name")
        if fn is None:
            return lambda f: self.hookable(cls, method, f)
        if not callable(fn):
            raise GameAPIError("hookable: the function must be callable")
        if isinstance(fn, Hook):
            fn = fn.fn          # declared again with the hooked function: wrap the original once
        old = self.hooks.get((cls, method))
        hook = Hook(self, cls, method, fn)
        if old is not None:
            hook.entries = old.entries          # re-declared: mods keep their hooks
        self.hooks[(cls, method)] = hook
        return hook

    # -- what mods see ---------------------------------------------------------------

    def describe(self) -> str:
        """'this game publishes: ...' (for the stubs' error lines)."""
        names = sorted(set(self.published) | set(self.per_mod))
        hooks = sorted(h.name for h in self.hooks.values())
        if not names and not hooks:
            return "this game publishes nothing for mods (no host.expose / host.hookable)"
        text = "this game publishes: " + (", ".join(names) if names else "(no globals)")
        if hooks:
            text += "; hookable: " + ", ".join(hooks)
        return text

    def _install_value(self, mod: "Mod", name: str, value: Any) -> None:
        data = plain(value, wrap=lambda f: self._game_function(mod, f))
        mod.expose(name, data, readonly=True)

    def _install_own(self, mod: "Mod", name: str, make: Callable[[str], Any]) -> None:
        value = make(mod.id)
        if value is not None:
            self._install_value(mod, name, value)

    def _game_function(self, mod: "Mod", fn: Callable) -> Callable:
        def call(*lua_args):
            return plain(fn(*[mod.from_lua_plain(a) for a in lua_args]))
        call.__name__ = getattr(fn, "__name__", "game function")
        return call

    def install(self, mod: "Mod") -> None:
        """Put the game API into a mod being built (called by host/runtime/cet.py)."""
        for name, value in self.published.items():
            self._install_value(mod, name, value)
        for name, make in self.per_mod.items():
            self._install_own(mod, name, make)
        for kind, fname in (("before", "Observe"), ("before", "ObserveBefore"),
                            ("after", "ObserveAfter"), ("override", "Override")):
            mod.env[fname] = mod.wrap(self._register(mod, kind, fname))

    def _register(self, mod: "Mod", kind: str, fname: str) -> Callable:
        def register(cls=None, method=None, fn=None):
            if not isinstance(cls, str) or not isinstance(method, str):
                raise ModError(f"{fname}(className, functionName, callback): names must be strings")
            if lua_type(fn) != "function":
                raise ModError(f"{fname}('{cls}', '{method}'): the callback must be a function")
            hook = self.hooks.get((cls, method))
            if hook is None:
                known = sorted(h.name for h in self.hooks.values())
                hint = ("`" + cls + "` is a Cyberpunk 2077 class; " if cls in _CET_CLASS_HINTS
                        else f"'{cls}.{method}' is not a hookable function of this game; ")
                raise ModError(f"{fname}('{cls}', '{method}'): {hint}"
                               + ("hookable here: " + ", ".join(known) if known
                                  else "this game declares no hookable functions"))
            total = sum(1 for h in self.hooks.values() for k in HOOK_KINDS
                        for e in h.entries[k] if e[0] == mod.id and e[1] == mod.generation)
            if total >= self.host.limits.max_hooks:
                raise QuotaExceeded(f"{fname}: quota exceeded (at most {self.host.limits.max_hooks} hooks per mod)")
            entries = hook.entries[kind]
            if kind == "override":   # one override per mod and function: the latest wins
                entries[:] = [e for e in entries if not (e[0] == mod.id and e[1] == mod.generation)]
            entries.append((mod.id, mod.generation, fn))
        return register


# Class names CET mods hook most; Observe on them gets the "Cyberpunk" hint.
_CET_CLASS_HINTS = {
    "PlayerPuppet", "GameInstance", "QuestsSystem", "PlayerSystem", "ScriptableSystem",
    "VehicleComponent", "gameuiInGameMenuGameController", "SingleplayerMenuGameController",
    "PreventionSystem", "NPCPuppet", "ScriptedPuppet", "EquipmentSystem", "StatsSystem",
    "inkGameController", "gameObject", "WeaponObject", "DamageSystem",
}


def _relic_version() -> str:
    try:
        from importlib.metadata import version
        return "v" + version("relic")
    except Exception:
        return "v0.1.0"
