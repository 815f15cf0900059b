"""One loaded mod: its sandboxed runtime, its registrations, its log and db.

`Mod` is also the object providers (the inference worker, the llm/grammar/rag
modules) work with: `install(mod)` gets it before init.lua runs and can use

- `mod.expose(name, value, readonly=True)` to put a value into the mod's
  globals (tables are handed out read-only by default);
- `mod.wrap(pyfn)` to turn a Python function into a Lua function (arguments
  arrive as lupa values, the return value is converted with `to_lua`, an
  exception becomes a Lua error at the mod's call site);
- `mod.table(mapping)`, `mod.to_lua(value)`, `mod.from_lua(value)` to build
  and read Lua data;
- `mod.load_lib(name)` for a module of the shared lua/ library (the same
  instance the mod's `require(name)` returns) or of the host's own Lua
  halves in host/runtime/lua/ (which no mod can require);
- `mod.call(fn, *args)` -> (ok, result_or_None) to call back into the mod
  (an `on_token` callback, say) through the same protected, watchdog-guarded
  path as event callbacks;
- `mod.lua`, the lupa runtime, for anything else on the privileged side.

Lua runs only on the frame thread: every method here must be called there.
And never from inside a Python function the mod itself is calling (a bridge
function): the mod may be running a coroutine, and lupa returns wrong values
when Python calls a Lua function of a runtime in that state.  Such functions
return data (tables are fine, callables are wrapped on the Lua side) and queue
anything else for `pump()`.  `call`, `wrap`, `expose`, `load_lib` and
`table(readonly=True)` raise ModError when misused this way.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from host.errors import BudgetExceeded, ModError, QuotaExceeded, RelicError
from host.runtime import cet
from host.runtime.ccost import rates as c_call_rates
from host.runtime.convert import (LuaError, LuaMemoryError, TransferError, lua_type,
                                  string_cost, to_lua, to_python)
from host.runtime.manifest import Manifest
from host.runtime.moddb import ModDB
from host.runtime.modlog import ModLog
from host.runtime.sandbox import MemoryGate, SourceResolver, build_box, new_runtime
from host.runtime.watchdog import WATCHDOG

if TYPE_CHECKING:
    from host.runtime.host import Host

EVENTS = ("onInit", "onUpdate", "onDraw", "onOverlayOpen", "onOverlayClose", "onShutdown", "onTweak")
KEY_ID_RE = re.compile(r"[A-Za-z0-9_.]+\Z")
COMMAND_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")
BUILTIN_COMMANDS = ("help", "mods", "reload", "quit", "overlay", "hotkey", "input")
_generations = itertools.count(1)


class Mod:
    """A mod folder turned into a running, sandboxed Lua runtime.

    States: "loading" (until init.lua returns), "loaded", "failed" (never
    started: bad manifest, syntax error, failing init, unmet dependency) and
    "quarantined" (stopped while running).  `reason` says why for the last two.
    """

    def __init__(self, host: "Host", manifest: Manifest):
        self.host = host
        self.manifest = manifest
        self.id = manifest.id
        self.folder = manifest.folder
        self.trusted = manifest.trusted
        self.state = "loading"
        self.reason: str | None = None
        self.generation = next(_generations)
        self.budget_s = manifest.budget_ms / 1000.0
        self.lua = None          # lupa.LuaRuntime, None once released
        self.box = None          # privileged control table (sandbox.lua)
        self.env = None          # the mod's globals
        self.public: Any = None  # what init.lua returned
        self.events: dict[str, Any] = {}
        self.hotkeys: dict[str, tuple[str, Any]] = {}
        self.inputs: dict[str, tuple[str, Any]] = {}
        self.commands: dict[str, tuple[str, Any]] = {}
        self.exports: dict[int, Any] = {}    # functions lent to other mods (crossmod.py)
        self._st = None
        self._stats = None
        self._box_call = self._cron_tick = self._async_step = None
        self._gate = None
        self._registering = False
        self._bridge_depth = 0   # host functions of this mod running now
        self._depth = 0
        self._slot = None        # watchdog stop flag (watchdog.py), while the runtime lives
        self._cpu_budget = 0.0     # CPU seconds / wall deadline of the running call
        self._wall_deadline = 0.0
        # The budget is per frame, all callbacks together: CPU seconds used in
        # host frame number _frame (Host.frame) by this mod's outermost calls.
        self._frame = -1
        self._frame_used = 0.0
        self._errors: deque[float] = deque()
        limits = host.limits
        self.log = ModLog(self.id, self.folder / f"{self.id}.log",
                          console=host.console if host.log_to_console else None,
                          max_bytes=limits.log_file_bytes, backups=limits.log_backups,
                          lines_per_frame=limits.log_lines_per_frame,
                          max_line=limits.max_log_line)
        self.db = ModDB(self.folder / "db.sqlite3", limits=limits, deadline=self.deadline)
        self.io = cet.make_io(self)
        self._resolver = SourceResolver(self.id, self.folder, host.lua_dir,
                                        limits.max_source_bytes)
        for w in manifest.warnings:
            self.log.write("warning", w, force=True)

    def __repr__(self) -> str:
        return f"<Mod {self.id} {self.state}>"

    # -- building ---------------------------------------------------------------

    def build(self) -> None:
        """Create the runtime and the sandboxed environment (before init.lua)."""
        limits = self.host.limits
        m = self.manifest
        self.lua = new_runtime(m.memory_mb)
        self._slot = WATCHDOG.slot()
        lua_dir = self.host.lua_dir
        cfg = {
            "mod_id": self.id,
            "sandboxed": not self.trusted,
            "budget_s": self.budget_s,
            "wd_address": self._slot.address,
            "wall_ceiling_factor": limits.wall_ceiling_factor,
            "wall_ceiling_min_s": limits.wall_ceiling_min_ms / 1000.0,
            "memory_mb": m.memory_mb,
            "max_string_bytes": limits.max_string_bytes,
            "max_source_bytes": limits.max_source_bytes,
            "max_log_line": limits.max_log_line,
            "pattern_cost_cap": limits.pattern_cost_cap(m.budget_ms),
            "max_timers": limits.max_timers,
            "max_tasks": limits.max_tasks,
            "c_cost": self.lua.table_from({k: v for k, v in c_call_rates().items()
                                           if k != "measured_in_s"}),
            "folder": str(self.folder),
            "package_path": f"{self.folder}/?.lua;{self.folder}/?/init.lua;"
                            f"{lua_dir}/?.lua;{lua_dir}/?/init.lua",
        }
        cross = self.host.crossmod
        gate = self._gate = MemoryGate(lambda: self.lua, m.memory_mb)
        bridge = {
            "mem_enter": gate.enter,
            "mem_leave": gate.leave,
            "log": self._api(self._log_line),
            "read_source": self._api(self._resolver.resolve),
            "report": self._api(self.report_error),
            "getmod": self._api(lambda target: cross.getmod(self, target)),
            "view_get": self._api(lambda target, path, key: cross.view_get(self, target, path, key)),
            "view_keys": self._api(lambda target, path: cross.view_keys(self, target, path)),
            "clock": time.monotonic,
            "thread_clock": time.thread_time,
        }
        self.box = build_box(self.lua, cfg, bridge)
        self.env = self.box.env
        self._st = self.box.st
        self._stats = self.box.stats
        # Looking a field up in a LuaTable from Python costs microseconds;
        # the per-frame entry points are cached here.
        self._box_call = self.box.call
        self._cron_tick = self.box.cron_tick
        self._async_step = self.box.async_step
        wrap = self.box.wrap_py
        env = self.env
        env.registerForEvent = wrap(self._api(self._register_event))
        env.registerHotkey = wrap(self._api(lambda i, label, fn:
                                            self._register_key("registerHotkey", self.hotkeys,
                                                               self.host.limits.max_hotkeys, i, label, fn)))
        env.registerInput = wrap(self._api(lambda i, label, fn:
                                           self._register_key("registerInput", self.inputs,
                                                              self.host.limits.max_inputs, i, label, fn)))
        env.registerCommand = wrap(self._api(self._register_command))
        cet.install(self)

    def run_init(self) -> bool:
        """Run init.lua with the registration window open; True on success."""
        path = self.folder / "init.lua"
        limit = self.host.limits.max_source_bytes
        try:
            size = path.stat().st_size   # before reading: a 50 MB init.lua is never read
            if size > limit:
                self.fail(f"init.lua is {size} bytes; the limit is {limit} bytes")
                return False
            with open(path, "rb") as f:
                src = f.read(limit + 1)
        except OSError as e:
            self.fail(f"cannot read init.lua: {e}")
            return False
        if len(src) > limit:   # grew while being read
            self.fail(f"init.lua is larger than {limit} bytes")
            return False
        res = self.box.load_chunk(src, f"@mods/{self.id}/init.lua")
        fn, err = res if isinstance(res, tuple) else (res, None)
        if fn is None:
            self.fail(f"init.lua does not compile: {err}")
            return False
        self._registering = True
        try:
            status, payload = self._invoke(fn, (), self.host.limits.init_budget_ms / 1000.0)
        finally:
            self._registering = False
        if self.state != "loading":          # quarantined by repeated errors meanwhile
            return False
        if status != "ok":
            self.fail(f"init.lua failed: {payload}")
            return False
        self.public = payload
        self.state = "loaded"
        return True

    # -- calling into Lua ---------------------------------------------------------

    def frame_budget_left(self) -> float:
        """CPU seconds of this frame's budget the mod has not used yet."""
        if self._frame != self.host.frame:
            self._frame, self._frame_used = self.host.frame, 0.0
        return self.budget_s - self._frame_used

    def cpu_left(self) -> float | None:
        """CPU seconds left to the call into this mod that is running now (None: none runs)."""
        if self._depth == 0 or self._slot is None:
            return None
        start = self._slot.cpu_start
        return self._cpu_budget - (time.thread_time() - start) if start else self._cpu_budget

    def _invoke(self, fn, args: tuple, budget: float | None, cap: float | None = None):
        """One guarded call; returns (status, payload) with status ok/error/fatal/dead.

        Without an explicit `budget` the call gets what is left of the mod's
        budget for this frame (every callback of a frame shares it); `cap`
        (CPU seconds) bounds it further for a cross-mod call, whose caller's
        budget it runs in: stopped there, only the call fails.
        """
        call, st = self._box_call, self._st
        if call is None:
            return "dead", None
        slot = self._slot
        outer = self._depth == 0
        counts = outer and budget is None     # init.lua/onInit have their own allowance
        if outer:
            b = budget or self.budget_s
            if counts:
                left = self.frame_budget_left()
                if cap is not None and cap < left:
                    if cap <= 0:
                        return "error", "the calling mod's budget for this frame is spent"
                    left, call = cap, self.box.call_soft
                if left <= 0:
                    return "fatal", (f"watchdog: mod '{self.id}' ran past its "
                                     f"{round(self.budget_s * 1000)} ms budget for one frame "
                                     "(all its callbacks together) and was stopped")
                b = left
            ceiling = self.host.limits.wall_ceiling(b)
            self._cpu_budget = b
            self._wall_deadline = time.monotonic() + ceiling
            slot.arm(b, ceiling)
            budget = b         # the Lua side formats its stop message from it
        self._depth += 1
        stack = self.host.call_stack
        stack.append(self.id)
        try:
            res = call(budget, fn, *args)
        except LuaMemoryError:
            return "fatal", (f"memory: mod '{self.id}' reached its "
                             f"{self.manifest.memory_mb} MiB memory cap")
        except LuaError as e:
            # Only the watchdog and memory errors escape the guarded call.
            return "fatal", (st["fatal_msg"] or str(e)) if st["fatal"] else f"internal: {e}"
        except (TransferError, RelicError, ValueError, TypeError) as e:
            return "error", str(e)
        finally:
            stack.pop()
            self._depth -= 1
            if outer and self._slot is slot:
                slot.disarm()
                start = slot.cpu_start
                if start and counts:
                    self._frame_used += time.thread_time() - start
        if not isinstance(res, tuple):
            res = (res,)
        if res[0]:
            return "ok", (res[1] if len(res) > 1 else None)
        return "error", (res[1] if len(res) > 1 else "unknown error")

    def call(self, fn, *args, budget: float | None = None, what: str = "callback"):
        """Call a Lua function of this mod, protected and watchdog-guarded.

        Returns (True, first result) or (False, None).  Errors are logged to
        the mod's log with a traceback; a blown budget or the memory cap
        quarantines the mod.  Not from inside a host function the mod is
        calling (raises ModError): deliver callbacks from pump().
        """
        ok, result, _ = self.call_detail(fn, *args, budget=budget, what=what)
        return ok, result

    def call_detail(self, fn, *args, budget: float | None = None, what: str = "callback",
                    blame: str | None = None, cap: float | None = None):
        """Like call() but returns (ok, result, error message or None).

        With `blame` (the id of the mod that made this call, for cross-mod
        calls), an ordinary error is that mod's fault: it is logged here
        without counting towards this mod's quarantine, and the caller gets
        it as its own Lua error.  A fatal error (budget, memory) still stops
        this mod: its runtime is dead either way.
        """
        if self.state not in ("loaded", "loading") or self.box is None:
            return False, None, f"mod '{self.id}' is not running"
        self._not_in_bridge("mod.call")
        for a in args:
            # lupa pushes string arguments with unprotected C-API calls
            if isinstance(a, (str, bytes)) and len(a) > 4096:
                try:
                    self.room(string_cost(a))
                except QuotaExceeded as e:
                    self.report_error(what, str(e))
                    return False, None, str(e)
        status, payload = self._invoke(fn, args, budget, cap)
        if status == "ok":
            return True, payload, None
        if status == "fatal":
            self.quarantine(payload)
        elif status == "error" and blame is not None:
            self.log.write("warning", f"error in {what} (counted against mod '{blame}'): {payload}")
        elif status == "error":
            self.report_error(what, payload)
        return False, None, str(payload)

    def fire(self, event: str, *args) -> bool:
        """Run this mod's callback for an event, if it registered one."""
        cb = self.events.get(event)
        if cb is None or self.state != "loaded":
            return False
        ok, _ = self.call(cb, *args, what=event)
        return ok

    def tick_timers(self, dt: float) -> None:
        """Advance Cron by dt (skipped when the mod has no timers)."""
        if self.state == "loaded" and self._stats["timers"]:
            self.call(self._cron_tick, dt, what="Cron")

    def step_async(self) -> None:
        """Resume async tasks whose awaitable is done."""
        if self.state == "loaded" and self._stats["waiting"]:
            self.call(self._async_step, what="async")

    def memory_used(self) -> int:
        """Bytes the runtime's Lua heap uses now (0 when released)."""
        return self.lua.get_memory_used() if self.lua is not None else 0

    # -- errors and stopping ------------------------------------------------------

    def report_error(self, what: str, message: str) -> None:
        """Log a callback error; quarantine after too many in the window."""
        self.log.write("error", f"error in {what}: {message}", force=True, once=True)
        now = self.host.clock()
        window = self.host.limits.error_window_s
        self._errors.append(now)
        while self._errors and now - self._errors[0] > window:
            self._errors.popleft()
        if len(self._errors) >= self.host.limits.max_errors and self.state in ("loaded", "loading"):
            self.quarantine(f"{len(self._errors)} errors within {window:g} s")

    def quarantine(self, reason: str) -> None:
        """Stop a running mod for good (until reload); the loop goes on."""
        if self.state not in ("loaded", "loading"):
            return
        self.state = "quarantined"
        self.reason = reason
        self.log.write("critical", f"quarantined: {reason}", force=True, once=True)
        self.host.mod_stopped(self)
        self.release()

    def fail(self, reason: str) -> None:
        """Mark a mod that could not start; it is skipped, the others load."""
        if self.state in ("failed", "quarantined"):
            return
        self.state = "failed"
        self.reason = reason
        self.log.write("error", f"not loaded: {reason}", force=True, once=True)
        self.host.mod_stopped(self)
        self.release()

    def release(self) -> None:
        """Drop every reference into the runtime so the lua_State is freed."""
        self.box = self.env = self._st = self._stats = None
        self._box_call = self._cron_tick = self._async_step = None
        self.public = None
        self.events.clear()
        self.hotkeys.clear()
        self.inputs.clear()
        self.commands.clear()
        self.exports.clear()
        self.lua = None
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        self.db.close()
        self.io.close_all()

    def close(self) -> None:
        """Release the runtime and close the log (end of this Mod object)."""
        self.release()
        self.log.close()

    # -- provider API ---------------------------------------------------------------

    def _api(self, fn: Callable) -> Callable:
        """Adapt a Python function to the Lua bridge convention.

        The result is a Python callable returning (True, results...) or
        (False, message); sandbox.lua's wrap_py turns the latter into a Lua
        error.  Results are converted to Lua data (tables are built, nothing
        is called); callables among them are returned raw with the marker 2
        instead of True, and the Lua side wraps them.
        """
        def bridge(*args):
            self._bridge_depth += 1
            try:
                res = fn(*args)
                if res is None:
                    return (True,)
                found: list = []
                vals = res if isinstance(res, tuple) else (res,)
                out = tuple(to_lua(self.lua, v, max_depth=self.host.limits.transfer_depth,
                                   raw_callables=found, room=self._gate.room,
                                   deadline=self.deadline()) for v in vals)
                return ((2 if found else True),) + out
            except UnicodeError as e:
                return False, f"strings passed to host functions must be valid UTF-8 ({e})"
            except (RelicError, TransferError, ValueError, TypeError, LuaError) as e:
                if isinstance(e, BudgetExceeded):
                    # host work on the mod's behalf used up its budget: the
                    # watchdog stops the mod right after this; keep the reason
                    self.log.write("error", str(e), force=True)
                    if self._slot is not None:
                        self._slot.stop()
                return False, str(e)
            except Exception as e:  # a host bug: keep the mod and the loop alive
                self.host.host_log(f"internal error in a host function for mod "
                                    f"'{self.id}': {type(e).__name__}: {e}")
                return False, f"internal host error: {type(e).__name__}: {e}"
            finally:
                self._bridge_depth -= 1
        return bridge

    def bridge_function(self, fn: Callable) -> Callable:
        """`fn` in the bridge calling convention (see _api), for other host modules.

        Returned from a host function the mod is calling, the Lua side wraps
        it into a Lua function; `wrap` does the same outside such calls.
        """
        return self._api(fn)

    def deadline(self) -> float | None:
        """time.monotonic() by which the host call into this mod that is running now must end.

        None when no call is running.  Host work done on the mod's behalf
        inside a bridge function (checking a grammar, converting a result)
        stops at this time with a clear error, so no frame stalls for long
        past the mod's budget.  The budget is CPU time of the frame thread
        (see watchdog.py): what is left of it, from now, capped by the
        call's wall-clock ceiling; 0.0 once the watchdog stopped the call.
        """
        if self._depth == 0 or self._slot is None:
            return None
        slot = self._slot
        if slot.stopped:
            return 0.0
        start = slot.cpu_start
        left = self._cpu_budget - (time.thread_time() - start) if start else self._cpu_budget
        return min(time.monotonic() + left, self._wall_deadline)

    def room(self, nbytes: int) -> None:
        """Raise QuotaExceeded unless this mod's Lua heap can take `nbytes` more of host data."""
        if self._gate is not None:
            self._gate.room(nbytes)

    def _not_in_bridge(self, what: str) -> None:
        # lupa returns wrong values when Python calls a Lua function of a
        # runtime that is inside a coroutine, which is where a host function
        # the mod calls may be running.  So nothing re-enters this runtime
        # from inside one: queue the work and do it in pump().
        if self._bridge_depth:
            raise ModError(f"{what} cannot be used inside a host function that mod "
                           f"'{self.id}' is calling; do it from install() or pump()")
        if self.box is None:
            raise ModError(f"mod '{self.id}' has no runtime")

    def wrap(self, pyfn: Callable) -> Any:
        """A Lua function that calls `pyfn` (see the module docstring)."""
        self._not_in_bridge("mod.wrap")
        return self.box.wrap_py(self._api(pyfn))

    def to_lua(self, value: Any) -> Any:
        """Python data -> Lua value in this runtime (callables are wrapped).

        Callables need mod.wrap, so they are refused inside a host function
        the mod is calling; return them from that function instead (the
        bridge wraps returned callables itself).
        """
        wrap = None if self._bridge_depth else self.wrap
        return to_lua(self.lua, value, wrap=wrap, max_depth=self.host.limits.transfer_depth,
                      room=self._gate.room)

    def from_lua(self, value: Any) -> Any:
        """Lua value -> Python data (functions stay LuaFunction objects)."""
        limits = self.host.limits
        return to_python(value, max_depth=limits.transfer_depth, max_items=limits.transfer_items,
                         deadline=self.deadline())

    def from_lua_plain(self, value: Any) -> Any:
        """Lua value -> Python plain data; functions are refused (game API arguments)."""
        limits = self.host.limits
        return to_python(value, max_depth=limits.transfer_depth, max_items=limits.transfer_items,
                         keep_functions=False)

    def table(self, mapping: dict | None = None, readonly: bool = False) -> Any:
        """A new Lua table from a dict (values converted, callables wrapped)."""
        t = self.to_lua(mapping or {})
        if readonly:
            self._not_in_bridge("mod.table(readonly=True)")
            return self.box.readonly(t, "table")
        return t

    def expose(self, name: str, value: Any, readonly: bool = True) -> None:
        """Put `value` into the mod's globals as `name`.

        Lua values of this runtime and plain data are accepted (dicts and lists
        become tables, callables are wrapped); tables are read-only to the mod
        unless readonly=False.
        """
        self._not_in_bridge("mod.expose")
        self.box.expose(name, self.to_lua(value), readonly)

    def load_lib(self, name: str) -> Any:
        """The value of library module <name>.lua (lua/, then host/runtime/lua/) in this runtime."""
        self._not_in_bridge("mod.load_lib")
        return self.box.require_lib(name)

    # -- the mod API implemented in Python -----------------------------------------

    def _log_line(self, level, text) -> None:
        if not isinstance(text, str):
            text = str(text)
        self.log.write(level if isinstance(level, str) else "info", text)

    def _check_window(self, fname: str) -> None:
        if not self._registering:
            raise ModError(f"{fname}: registration is only allowed while init.lua runs")

    def _register_event(self, name, fn) -> None:
        self._check_window("registerForEvent")
        if not isinstance(name, str):
            raise ModError("registerForEvent: the event name must be a string")
        if lua_type(fn) != "function":
            raise ModError(f"registerForEvent('{name}'): the callback must be a function")
        if name not in EVENTS and name not in self.host.game.events:
            known = ", ".join(EVENTS + tuple(sorted(self.host.game.events)))
            self.log.write("error", f"registerForEvent: unknown event '{name}' ignored "
                                    f"(known: {known})", force=True)
            return
        self.events[name] = fn

    def _register_key(self, fname: str, table: dict, limit: int, key_id, label, fn) -> None:
        self._check_window(fname)
        if not isinstance(key_id, str) or not KEY_ID_RE.match(key_id):
            raise ModError(f"{fname}: id must match [A-Za-z0-9_.]+, got {key_id!r}")
        if not isinstance(label, str) or len(label) > 200:
            raise ModError(f"{fname}('{key_id}'): label must be a string of at most 200 characters")
        if lua_type(fn) != "function":
            raise ModError(f"{fname}('{key_id}'): the callback must be a function")
        if key_id in table:
            raise ModError(f"{fname}: '{key_id}' is already registered by this mod")
        if len(table) >= limit:
            raise QuotaExceeded(f"{fname}: quota exceeded (at most {limit} per mod)")
        table[key_id] = (label, fn)

    def _register_command(self, name, help_text, fn) -> None:
        self._check_window("registerCommand")
        if not isinstance(name, str) or not COMMAND_RE.match(name):
            raise ModError(f"registerCommand: name must match [A-Za-z0-9_.-]+, got {name!r}")
        if not isinstance(help_text, str) or len(help_text) > 500:
            raise ModError(f"registerCommand('{name}'): help must be a string of at most 500 characters")
        if lua_type(fn) != "function":
            raise ModError(f"registerCommand('{name}'): the handler must be a function")
        if name in BUILTIN_COMMANDS:
            raise ModError(f"registerCommand: '{name}' is a built-in command")
        owner = self.host.command_owner(name)
        if owner is not None:
            raise ModError(f"registerCommand: '{name}' is already registered by mod '{owner}'")
        if len(self.commands) >= self.host.limits.max_commands:
            raise QuotaExceeded(f"registerCommand: quota exceeded (at most "
                                f"{self.host.limits.max_commands} per mod)")
        self.commands[name] = (help_text, fn)
