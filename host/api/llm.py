"""The host half of the mod-facing `llm` module (the Lua half is host/runtime/lua/llm.lua).

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

from host.api.persona import install_persona
from host.api.quotas import gc_proxy
from host.runtime.convert import TransferError, to_python
from host.errors import OptionError, QuotaExceeded, RelicError
from host.limits import LlmLimits
from host.messages import SessionLoadRequest, SessionResetRequest, SessionSaveRequest, check_priority
from host.results import Result
from host.llama.luajit import address, luajit_cdef

_COMMON = {"max_tokens", "temperature", "seed", "stop", "sampler", "grammar", "schema", "on_token", "on_done",
           "template", "special", "priority"}
_KINDS = {"generate": _COMMON | {"prompt"}, "chat": _COMMON | {"messages"}, "say": _COMMON}

TOOL_RESULT_ITEMS = 4096  # values of one tool result the host copies (its JSON is cut short anyway)


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


def parse_options(kind: str, opts: dict, *, limits: LlmLimits, grammar_from=None) -> dict:
    """Validate a Lua options table (as Python data) into Worker.submit keywords.

    ``limits``: the `llm` group of the host's limits (``max_tokens``, ``max_stop_strings``).
    """
    max_tokens_cap = limits.max_tokens
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
        if len(stop) > limits.max_stop_strings or not all(isinstance(s, str) and 0 < len(s) <= 256 for s in stop):
            raise OptionError(f"stop must be at most {limits.max_stop_strings} non-empty strings of up to "
                              "256 characters")
        out["stop"] = tuple(stop)
    if "sampler" in opts:
        if not isinstance(opts["sampler"], dict):
            raise OptionError("sampler must be a table")
        from host.engine import sampling

        sampling.resolve(opts["sampler"])  # a bad sampler is the caller's error, raised now
        out["sampler"] = opts["sampler"]
    if "priority" in opts:
        out["priority"] = check_priority(opts["priority"], f"llm.{kind}: priority")
    if "template" in opts:
        if not isinstance(opts["template"], str):
            raise OptionError("template must be a string (a llama.cpp template name)")
        out["template"] = opts["template"]
    if "special" in opts:
        if kind != "generate":
            raise OptionError(f"special= applies to llm.generate only; llm.{kind} message content is always "
                              "plain text")
        if not isinstance(opts["special"], bool):
            raise OptionError(f"special must be true or false, got {opts['special']!r}")
        out["parse_special"] = opts["special"]
    if "grammar" in opts or "schema" in opts:
        if grammar_from is None:
            raise OptionError("grammar= and schema= are not available in this host")
        out["grammar"] = grammar_from(opts.get("grammar"), opts.get("schema"))
        if out["grammar"] is None:
            del out["grammar"]
    return out


_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _streams(opts) -> bool:
    """Does the Lua side want token events (an on_token callback)?"""
    return isinstance(opts, dict) and opts.get("on_token") is not None


def session_file(mod, name) -> Path:
    """The file of a saved session: mods/<id>/sessions/<name>.session (names cannot leave the folder)."""
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith("."):
        raise OptionError(f"session name {name!r} must match [A-Za-z0-9_.-]{{1,64}} and not start with '.'")
    return Path(mod.folder) / "sessions" / f"{name}.session"


class LLMProvider:
    """Installs `llm` (and `llama` for trusted mods) into every mod; pumps worker events.

    ``ledger`` (host.api.quotas.QuotaLedger, shared with the grammar and rag
    providers) counts each mod's sessions; one with the default limits is made when
    not given (host.app passes one over the host's limits).
    """

    def __init__(self, worker, *, grammar_from=None, memory_for=None,
                 owns_worker: bool = True, ledger=None):
        from host.api.quotas import QuotaLedger

        self.worker = worker
        self.memory_for = memory_for
        self.owns_worker = owns_worker
        self.model = worker.model
        self.grammar_from = grammar_from
        self.ledger = ledger or QuotaLedger()
        self._mods: dict[str, tuple] = {}  # mod id -> (mod, deliver, new_handle)
        from host.api.tools import ToolTurns

        self.tools = ToolTurns(self)  # turns with tools= (host/api/tools.py)

    # --- provider protocol (frame thread) -----------------------------------
    def install(self, mod) -> None:
        factory = mod.load_lib("llm")
        bridge = mod.table({
            "submit": lambda kind, opts: self._submit(mod, kind, opts),
            "cancel": lambda rid: self._cancel(mod, rid),
            "tokenize": lambda text: self._tokens(mod, text, "tokenize"),
            "count": lambda text: self._tokens(mod, text, "count"),
            "max_tokenize_bytes": mod.host.limits.llm.max_tokenize_bytes,
            "say": lambda sid, text, opts: self._say(mod, sid, text, opts),
            "session_create": lambda opts, tools=None, dead=None: self._session_create(mod, opts, tools, dead),
            "say_tools": lambda sid, text, opts, tools, extra: self._tool_turn(mod, opts, tools, extra, "say",
                                                                              session_id=sid, text=text),
            "chat_tools": lambda opts, tools, extra: self._tool_turn(mod, opts, tools, extra, "chat"),
            "session_call": lambda sid, what, *args: self._session_call(mod, sid, what, *args),
            "session_close": lambda sid: self._session_close(mod, sid),
            "session_load": lambda name, opts, dead=None: self._session_load(mod, name, opts, dead),
        })
        # gc_proxy lets the Lua side notice collected sessions (host.api.quotas)
        llm, deliver, new_handle = factory(bridge, gc_proxy(mod))
        self._mods[mod.id] = (mod, deliver, new_handle)
        install_persona(mod, llm)  # llm.persona{...} (host/api/persona.py, host/runtime/lua/persona.lua)
        mod.expose("llm", llm)
        if mod.trusted and getattr(self.model, "lib", None) is not None:  # a server has no raw binding
            mod.expose("llama", self._raw_binding(mod), readonly=False)

    def new_handle_fn(self, mod):
        """The mod's Lua `new_handle(id)`: other modules' requests deliver like llm's."""
        return self._mods[mod.id][2]

    def uninstall(self, mod) -> None:
        if self._mods.get(mod.id, (None,))[0] is mod:
            del self._mods[mod.id]
        self.tools.forget_mod(mod.id)
        self.worker.forget_mod(mod.id)
        self.ledger.forget(mod.id)

    def pump(self, budget_s: float) -> None:
        self.worker.pump(budget_s)

    def llm_focus(self, mod_id: str | None, session: int | None = None) -> None:
        """The player now talks to mod ``mod_id`` (or to its session with id ``session``): its
        generations run at priority "player" until the focus moves; None clears it."""
        self.worker.focus(mod_id, session)

    def shutdown(self) -> None:
        if self.owns_worker:
            self.worker.shutdown()

    # --- bridge functions (called from Lua, on the frame thread) -------------
    def _tokens(self, mod, text, what: str):
        """llm.tokenize / llm.count: capped by size before anything is tokenized."""
        cap = mod.host.limits.llm.max_tokenize_bytes
        if not isinstance(text, (str, bytes)):
            raise OptionError(f"llm.{what} expects a string")
        if len(text) > cap or (isinstance(text, str) and len(text.encode("utf-8", "surrogatepass")) > cap):
            raise OptionError(f"llm.{what}: the text is longer than {cap} bytes (the limit for this synchronous "
                              f"call); split it, or send it with llm.generate, which checks its length on the worker")
        # the tokenizer of the mod's backend (host.remote.routing); on a server without a local copy
        # of its tokenizer this raises UnsupportedError: no network call on the frame thread
        model_for = getattr(self.worker, "model_for", None)
        model = model_for(mod.id) if model_for is not None else self.model
        if what == "count":
            return model.vocab.count(text, add_special=False)
        return model.vocab.tokenize(text, add_special=False)

    def _submit(self, mod, kind, opts) -> int:
        if kind not in ("generate", "chat"):
            raise OptionError(f"unknown request kind {kind!r}")
        raw = mod.from_lua(opts)
        options = parse_options(kind, raw, limits=mod.host.limits.llm, grammar_from=self._grammar_for(mod))
        if kind == "chat":
            self.worker.check_template(options.get("template"), mod_id=mod.id)
        stream = _streams(raw)
        return self.track(mod, lambda on_token, on_done: self.worker.submit(
            mod.id, on_token=on_token, on_done=on_done, stream=stream, **options), stream=stream)

    def _grammar_for(self, mod):
        if self.grammar_from is None:
            return None
        return lambda grammar, schema: self.grammar_from(mod, grammar, schema)

    def track(self, mod, submit, on_result=None, stream: bool = True) -> int:
        """Submit through ``submit(on_token, on_done)``; events go to the mod's Lua side.

        ``on_result(result)`` runs first when the result arrives, even if the mod is gone;
        a Result it returns replaces the one the mod receives.
        ``stream=False`` (no on_token in Lua): on_token is None, so no token event is posted.
        """
        box = {}  # the request id, known once submit returns (callbacks run later, in pump)

        def done(result):
            if on_result is not None:
                result = on_result(result) or result
            self._forward(mod, box["id"], "done", result)

        on_token = (lambda text: self._forward(mod, box["id"], "token", text)) if stream else None
        handle = submit(on_token, done)
        box["id"] = handle.id
        return handle.id

    # --- sessions ----------------------------------------------------------------
    def _collected(self, mod, dead) -> None:
        """Close the sessions the mod's GC collected (ids reported by the Lua side)."""
        for sid in (mod.from_lua(dead) or []) if dead is not None else []:
            if isinstance(sid, int) and self.ledger.drop_session(mod.id, sid):
                self.worker.close_session(mod.id, sid)

    def _session_create(self, mod, opts, tools=None, dead=None):
        """A new session's id, or (None, message): the Lua side raises the message at the mod's line."""
        self._collected(mod, dead)
        try:
            return self._new_session(mod, mod.from_lua(opts), tools)
        except RelicError as exc:
            return None, str(exc)

    def _new_session(self, mod, opts, tools):
        self.worker.check_template(opts.get("template") if isinstance(opts, dict) else None, mod_id=mod.id)
        if not isinstance(opts, dict):
            raise OptionError("llm.session takes one table argument")
        known = {"system", "sampler", "overflow", "template", "memory", "priority"}
        unknown = sorted(str(k) for k in opts if k not in known)
        if unknown:
            raise OptionError(f"unknown option(s) {unknown} for llm.session; known: {sorted(known)}")
        system = opts.get("system")
        priority = check_priority(opts.get("priority"), "llm.session: priority")
        chars = len(system) if isinstance(system, str) else 0
        problem = self.ledger.check_session(mod.id, chars)
        if problem:
            return None, problem  # the Lua side collects garbage once and retries, then raises
        memory = self._memory(mod, opts)
        if tools is not None:  # the model learns what each tool does from the system prompt
            described = self.tools.toolset(mod, tools).describe()
            system = f"{system}\n\n{described}" if isinstance(system, str) and system else described
        sid = self.worker.create_session(mod.id, system=system, sampler=opts.get("sampler"),
                                         overflow=opts.get("overflow", "drop_oldest"), template=opts.get("template"),
                                         memory=memory, priority=priority)
        self.ledger.add_session(mod.id, sid, chars)
        return sid

    def _session_close(self, mod, sid) -> None:
        if self.ledger.drop_session(mod.id, sid):
            self.worker.close_session(mod.id, sid)

    def _memory(self, mod, opts: dict):
        """The store path for a memory= option, or None."""
        if "memory" not in opts:
            return None
        if self.memory_for is None:
            raise OptionError("memory= needs the rag module, which this host does not have")
        return self.memory_for(mod, opts["memory"])

    def _sized(self, mod, sid):
        """on_result for session requests: keep the ledger's size of the session current."""
        def update(result):
            size = result.session_chars
            if size is None and isinstance(result.value, dict):
                size = result.value.get("session_chars")
            if isinstance(size, int):
                self.ledger.session_size(mod.id, sid, size)
        return update

    def _say(self, mod, sid, text, opts) -> int:
        raw = mod.from_lua(opts)
        options = parse_options("say", raw, limits=mod.host.limits.llm, grammar_from=self._grammar_for(mod))
        try:
            self.ledger.check_turn(mod.id, sid, len(text) if isinstance(text, (str, bytes)) else 0)
        except QuotaExceeded as exc:
            return self.track(mod, lambda on_token, on_done: self.worker.fail(mod.id, exc, on_done=on_done))
        stream = _streams(raw)
        return self.track(mod, lambda on_token, on_done: self.worker.say(
            mod.id, sid, text, on_token=on_token, on_done=on_done, stream=stream, **options), self._sized(mod, sid),
            stream=stream)

    def _session_call(self, mod, sid, what, *args) -> int:
        if what == "reset":
            req, fields = SessionResetRequest, {}
        elif what == "save":
            req, fields = SessionSaveRequest, {"path": session_file(mod, args[0] if args else None)}
        else:
            raise OptionError(f"unknown session call {what!r}")
        return self.track(mod, lambda _t, on_done: self.worker.call(req, mod.id, on_done=on_done, session_id=sid,
                                                                    **fields), self._sized(mod, sid))

    def _session_load(self, mod, name, opts, dead=None):
        self._collected(mod, dead)
        path = session_file(mod, name)
        if not path.is_file():
            raise OptionError(f"no saved session named {name!r} in mod '{mod.id}'")
        opts = mod.from_lua(opts) or {}
        unknown = sorted(str(k) for k in opts if k != "memory") if isinstance(opts, dict) else ["?"]
        if unknown:
            raise OptionError(f"unknown option(s) {unknown} for llm.load_session; known: ['memory']")
        problem = self.ledger.check_session(mod.id, 0)
        if problem:
            return None, problem
        memory = self._memory(mod, opts)
        sid = self.worker.new_session_id()
        self.ledger.add_session(mod.id, sid, 0)
        sized = self._sized(mod, sid)

        def loaded(result):
            if result.error_type:
                self.ledger.drop_session(mod.id, sid)
                return None
            sized(result)
            try:
                self.ledger.check_turn(mod.id, sid, 0)
            except QuotaExceeded as exc:  # a saved session bigger than the quota: not kept
                self._session_close(mod, sid)
                return Result.of_exception(exc)
            return None

        load_id = self.track(mod, lambda _t, on_done: self.worker.call(
            SessionLoadRequest, mod.id, on_done=on_done, session_id=sid, path=path, memory=memory), loaded)
        return sid, load_id

    def _tool_turn(self, mod, opts, tools, extra, kind, *, session_id=None, text=None) -> int:
        """A say or chat turn with tools= (host/api/tools.py); returns the turn's handle id."""
        extra = mod.from_lua(extra) or {}
        toolset = self.tools.toolset(mod, tools, extra.get("say_pattern"))
        if session_id is not None:       # the same per-turn session text check as say
            try:
                self.ledger.check_turn(mod.id, session_id, len(text) if isinstance(text, (str, bytes)) else 0)
            except QuotaExceeded as exc:
                return self.track(mod, lambda on_token, on_done: self.worker.fail(mod.id, exc, on_done=on_done))
        options = parse_options(kind, mod.from_lua(opts), limits=mod.host.limits.llm,
                                grammar_from=self._grammar_for(mod))
        messages = options.pop("messages", None)
        if kind == "chat":
            self.worker.check_template(options.get("template"), mod_id=mod.id)
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
        if not ok:
            return False, None
        # The host keeps at most a small copy of a result (its JSON is cut to
        # limits.tools.max_result_chars anyway): a bigger one is refused before it is copied whole.
        try:
            value = to_python(out, max_depth=mod.host.limits.transfer_depth, max_items=TOOL_RESULT_ITEMS)
        except TransferError as exc:
            mod.log.write("warning", f"tool {name}: its result is too big for the host ({exc})")
            return True, {"error": f"the result of {name} was too big (at most {TOOL_RESULT_ITEMS} values)"}
        return True, value

    def forward(self, mod, rid: int, kind: str, payload) -> None:
        """Hand an event ("token" text or "done" result) to the mod's Lua side for handle ``rid``."""
        self._forward(mod, rid, kind, payload)

    def _forward(self, mod, rid: int, kind: str, payload) -> None:
        """Hand an event to the mod's Lua side, guarded like any callback."""
        entry = self._mods.get(mod.id)
        if entry is None or entry[0] is not mod or mod.state != "loaded":
            return  # the mod was reloaded or stopped: its runtime is gone
        if kind == "done":  # the one place a Result becomes Lua data
            payload = mod.to_lua(payload.to_plain())
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
