"""The host half of the mod-facing `llm` module (the Lua half is lua/llm.lua).

A provider for :class:`host.runtime.host.Host`: for every mod it builds an
``llm`` table bound to that mod, and for trusted mods also ``llama`` (the raw
binding through LuaJIT's FFI).  Requests go to the :class:`host.worker.Worker`;
results come back in :meth:`pump`, on the frame thread, and are handed to the
mod's Lua side through its guarded call path (so a slow or failing callback
is the mod's problem, never the loop's).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from host.errors import RelicError
from host.llama.luajit import address, luajit_cdef

_COMMON = {"max_tokens", "temperature", "seed", "stop", "sampler", "grammar", "schema", "on_token", "on_done",
           "template", "special"}
_KINDS = {"generate": _COMMON | {"prompt"}, "chat": _COMMON | {"messages"}, "say": _COMMON}
MAX_STOP_STRINGS = 16


class OptionError(RelicError):
    """A mod passed a bad option to an llm call."""


def _int(opts, key, lo, hi, default):
    v = opts.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() or not lo <= v <= hi:
        raise OptionError(f"{key} must be an integer from {lo} to {hi}, got {v!r}")
    return int(v)


def _list(value, what):
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and not value:
        return []
    raise OptionError(f"{what} must be an array")


def parse_options(kind: str, opts: dict, *, max_tokens_cap: int, grammar_from=None) -> dict:
    """Validate a Lua options table (as Python data) into Worker.submit keywords."""
    if not isinstance(opts, dict):
        raise OptionError(f"llm.{kind} takes one table argument")
    unknown = sorted(str(k) for k in opts if k not in _KINDS[kind])
    if unknown:
        raise OptionError(f"unknown option(s) {unknown} for llm.{kind}; known: {sorted(_KINDS[kind])}")
    out: dict[str, Any] = {"max_tokens": _int(opts, "max_tokens", 1, max_tokens_cap, min(256, max_tokens_cap))}
    if kind == "generate":
        prompt = opts.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise OptionError("llm.generate needs prompt = a non-empty string")
        out["prompt"] = prompt
    elif kind == "chat":
        msgs = _list(opts.get("messages"), "messages")
        if not msgs:
            raise OptionError("llm.chat needs messages = { {role=, content=}, ... }")
        clean = []
        for i, m in enumerate(msgs, 1):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise OptionError(f"messages[{i}] must be a table with string role and content")
            clean.append({"role": m["role"], "content": m["content"]})
        out["messages"] = tuple(clean)
    if "temperature" in opts:
        t = opts["temperature"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or math.isnan(t) or not 0 <= t <= 100:
            raise OptionError(f"temperature must be a number from 0 to 100, got {t!r}")
        out["temperature"] = float(t)
    if "seed" in opts:
        out["seed"] = _int(opts, "seed", 0, 2**32 - 1, 0)
    if "stop" in opts:
        stop = opts["stop"]
        stop = [stop] if isinstance(stop, str) else _list(stop, "stop")
        if len(stop) > MAX_STOP_STRINGS or not all(isinstance(s, str) and 0 < len(s) <= 256 for s in stop):
            raise OptionError(f"stop must be at most {MAX_STOP_STRINGS} non-empty strings of up to 256 characters")
        out["stop"] = tuple(stop)
    if "sampler" in opts:
        if not isinstance(opts["sampler"], dict):
            raise OptionError("sampler must be a table")
        from host.engine import sampling

        sampling.resolve(opts["sampler"])  # a bad sampler is the caller's error, raised now
        out["sampler"] = opts["sampler"]
    if "template" in opts:
        if not isinstance(opts["template"], str):
            raise OptionError("template must be a string (a llama.cpp template name)")
        out["template"] = opts["template"]
    if "special" in opts:
        out["parse_special"] = bool(opts["special"])
    if "grammar" in opts or "schema" in opts:
        if grammar_from is None:
            raise OptionError("grammar= and schema= are not available in this host")
        out["grammar"] = grammar_from(opts.get("grammar"), opts.get("schema"))
        if out["grammar"] is None:
            del out["grammar"]
    return out


_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def session_file(mod, name) -> Path:
    """The file of a saved session: mods/<id>/sessions/<name>.session (names cannot leave the folder)."""
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith("."):
        raise OptionError(f"session name {name!r} must match [A-Za-z0-9_.-]{{1,64}} and not start with '.'")
    return Path(mod.folder) / "sessions" / f"{name}.session"


class LLMProvider:
    """Installs `llm` (and `llama` for trusted mods) into every mod; pumps worker events."""

    def __init__(self, worker, *, grammar_from=None, memory_for=None, max_tokens_cap: int = 4096,
                 owns_worker: bool = True):
        self.worker = worker
        self.memory_for = memory_for
        self.owns_worker = owns_worker
        self.model = worker.model
        self.grammar_from = grammar_from
        self.max_tokens_cap = max_tokens_cap
        self._mods: dict[str, tuple] = {}  # mod id -> (mod, deliver)
        from host.api.tools import ToolTurns

        self.tools = ToolTurns(self)  # turns with tools= (host/api/tools.py)

    # --- provider protocol (frame thread) -----------------------------------
    def install(self, mod) -> None:
        factory = mod.load_lib("llm")
        bridge = mod.table({
            "submit": lambda kind, opts: self._submit(mod, kind, opts),
            "cancel": lambda rid: self._cancel(mod, rid),
            "tokenize": lambda text: self.model.vocab.tokenize(text, add_special=False),
            "count": lambda text: self.model.vocab.count(text, add_special=False),
            "say": lambda sid, text, opts: self._say(mod, sid, text, opts),
            "session_create": lambda opts, tools=None: self._session_create(mod, opts, tools),
            "say_tools": lambda sid, text, opts, tools, extra: self._tool_turn(mod, opts, tools, extra, "say",
                                                                              session_id=sid, text=text),
            "chat_tools": lambda opts, tools, extra: self._tool_turn(mod, opts, tools, extra, "chat"),
            "session_call": lambda sid, what, *args: self._session_call(mod, sid, what, *args),
            "session_close": lambda sid: self.worker.close_session(mod.id, sid),
            "session_load": lambda name, opts: self._session_load(mod, name, opts),
        })
        llm, deliver, new_handle = factory(bridge)
        self._mods[mod.id] = (mod, deliver, new_handle)
        mod.expose("llm", llm)
        if mod.trusted:
            mod.expose("llama", self._raw_binding(mod), readonly=False)

    def new_handle_fn(self, mod):
        """The mod's Lua `new_handle(id)`: other modules' requests deliver like llm's."""
        return self._mods[mod.id][2]

    def uninstall(self, mod) -> None:
        if self._mods.get(mod.id, (None,))[0] is mod:
            del self._mods[mod.id]
        self.tools.forget_mod(mod.id)
        self.worker.forget_mod(mod.id)

    def pump(self, budget_s: float) -> None:
        self.worker.pump(budget_s)

    def shutdown(self) -> None:
        if self.owns_worker:
            self.worker.shutdown()

    # --- bridge functions (called from Lua, on the frame thread) -------------
    def _submit(self, mod, kind, opts) -> int:
        if kind not in ("generate", "chat"):
            raise OptionError(f"unknown request kind {kind!r}")
        options = parse_options(kind, mod.from_lua(opts), max_tokens_cap=self.max_tokens_cap,
                                grammar_from=self._grammar_for(mod))
        return self.track(mod, lambda on_token, on_done: self.worker.submit(
            mod.id, on_token=on_token, on_done=on_done, **options))

    def _grammar_for(self, mod):
        if self.grammar_from is None:
            return None
        return lambda grammar, schema: self.grammar_from(mod, grammar, schema)

    def track(self, mod, submit) -> int:
        """Submit through ``submit(on_token, on_done)``; events go to the mod's Lua side."""
        box = {}  # the request id, known once submit returns (callbacks run later, in pump)
        handle = submit(lambda text: self._forward(mod, box["id"], "token", text),
                        lambda result: self._forward(mod, box["id"], "done", result))
        box["id"] = handle.id
        return handle.id

    # --- sessions ----------------------------------------------------------------
    def _session_create(self, mod, opts, tools=None) -> int:
        opts = mod.from_lua(opts)
        if not isinstance(opts, dict):
            raise OptionError("llm.session takes one table argument")
        known = {"system", "sampler", "overflow", "template", "memory"}
        unknown = sorted(str(k) for k in opts if k not in known)
        if unknown:
            raise OptionError(f"unknown option(s) {unknown} for llm.session; known: {sorted(known)}")
        memory = self._memory(mod, opts)
        if tools is not None:  # the model learns what each tool does from the system prompt
            described = self.tools.toolset(mod, tools).describe()
            system = opts.get("system")
            opts["system"] = f"{system}\n\n{described}" if isinstance(system, str) and system else described
        sid = self.worker.create_session(mod.id, system=opts.get("system"), sampler=opts.get("sampler"),
                                         overflow=opts.get("overflow", "drop_oldest"), template=opts.get("template"))
        self._attach_memory(sid, memory)
        return sid

    def _memory(self, mod, opts: dict):
        """The augment callable for a memory= option, or None."""
        if "memory" not in opts:
            return None
        if self.memory_for is None:
            raise OptionError("memory= needs the rag module, which this host does not have")
        return self.memory_for(mod, opts["memory"])

    def _attach_memory(self, sid: int, memory) -> None:
        if memory is not None:
            self.worker.post(lambda e: e.set_session_memory(sid, memory))

    def _say(self, mod, sid, text, opts) -> int:
        options = parse_options("say", mod.from_lua(opts), max_tokens_cap=self.max_tokens_cap,
                                grammar_from=self._grammar_for(mod))
        return self.track(mod, lambda on_token, on_done: self.worker.say(
            mod.id, sid, text, on_token=on_token, on_done=on_done, **options))

    def _session_call(self, mod, sid, what, *args) -> int:
        if what == "reset":
            method, extra = "reset_session", ()
        elif what == "save":
            method, extra = "save_session", (session_file(mod, args[0] if args else None),)
        else:
            raise OptionError(f"unknown session call {what!r}")
        return self.track(mod, lambda _t, on_done: self.worker.session_call(mod.id, sid, method, *extra,
                                                                             on_done=on_done))

    def _session_load(self, mod, name, opts):
        path = session_file(mod, name)
        if not path.is_file():
            raise OptionError(f"no saved session named {name!r} in mod '{mod.id}'")
        opts = mod.from_lua(opts) or {}
        unknown = sorted(str(k) for k in opts if k != "memory") if isinstance(opts, dict) else ["?"]
        if unknown:
            raise OptionError(f"unknown option(s) {unknown} for llm.load_session; known: ['memory']")
        memory = self._memory(mod, opts)
        sid = self.worker.new_session_id()
        load_id = self.track(mod, lambda _t, on_done: self.worker.session_call(mod.id, sid, "load_session", path,
                                                                                on_done=on_done))
        self._attach_memory(sid, memory)
        return sid, load_id

    def _tool_turn(self, mod, opts, tools, extra, kind, *, session_id=None, text=None) -> int:
        """A say or chat turn with tools= (host/api/tools.py); returns the turn's handle id."""
        toolset = self.tools.toolset(mod, tools)
        extra = mod.from_lua(extra) or {}
        options = parse_options(kind, mod.from_lua(opts), max_tokens_cap=self.max_tokens_cap,
                                grammar_from=self._grammar_for(mod))
        messages = options.pop("messages", None)
        if kind == "chat":
            messages = list(messages)
            if messages and messages[0]["role"] == "system":
                messages[0] = {"role": "system", "content": f"{messages[0]['content']}\n\n{toolset.describe()}"}
            else:
                messages.insert(0, {"role": "system", "content": toolset.describe()})
        return self.tools.start(mod, options=options, toolset=toolset, max_calls=extra.get("max_tool_calls"),
                                choice=extra.get("tool_choice"), session_id=session_id, text=text,
                                messages=messages)

    def call_tool(self, mod, rid: int, name: str, args) -> tuple:
        """Run a tool of request ``rid`` in the mod (on_tool, then run), guarded: (ok, Python result)."""
        entry = self._mods.get(mod.id)
        if entry is None or entry[0] is not mod or mod.state != "loaded":
            return False, None
        ok, out = mod.call(entry[1], rid, "tool", mod.to_lua({"name": name, "arguments": args}),
                           what=f"tool {name}")
        return ok, (mod.from_lua(out) if ok else None)

    def forward(self, mod, rid: int, kind: str, payload) -> None:
        """Hand an event ("token" text or "done" result) to the mod's Lua side for handle ``rid``."""
        self._forward(mod, rid, kind, payload)

    def _forward(self, mod, rid: int, kind: str, payload) -> None:
        """Hand an event to the mod's Lua side, guarded like any callback."""
        entry = self._mods.get(mod.id)
        if entry is None or entry[0] is not mod or mod.state != "loaded":
            return  # the mod was reloaded or stopped: its runtime is gone
        if kind == "done":
            payload = mod.to_lua(payload)
        mod.call(entry[1], rid, kind, payload, what=f"llm on_{kind}")

    def _cancel(self, mod, rid) -> None:
        if self.tools.cancel(mod, rid):
            return
        self.worker.cancel(mod.id, rid)

    # --- trusted mods: the raw binding through LuaJIT's FFI ----------------------
    def _raw_binding(self, mod):
        lib = self.model.lib
        make = mod.load_lib("llama_ffi")
        ffi = mod.lua.globals().require("ffi")  # the trusted runtime's own FFI; never given to sandboxed mods
        return make(ffi, luajit_cdef(lib), str(lib.paths.lib_path), address(lib, self.model.ptr))
