"""Turns with tools for `llm.session{ tools = ... }` and `llm.chat{ tools = ... }` (frame thread).

A :class:`ToolTurn` drives one turn as a loop of worker requests (see
host.engine.tools for the format): each step's JSON either says something
(the turn ends; the ``say`` text streamed to ``on_token`` as it came) or
calls a tool.  A call is run right here, on the frame thread, through the
mod's guarded call path (its time budget applies): the Lua side calls
``on_tool(name, args)`` and then the tool's ``run(args)``; the result goes
back into the conversation as a ``tool`` message and the next step starts.
After ``max_tool_calls`` calls only ``say`` is allowed; ``tool_choice =
"required"`` makes the first step a call; ``say_pattern`` (a regular expression)
constrains what the ``say`` text may be.

The mod sees one handle for the whole turn: its id is the turn's, not any
worker request's, and ``handle:cancel()`` cancels whichever step is running.
"""

from __future__ import annotations

import json

from host.engine.tools import SayStream, ToolError, ToolSet, decode_step, tool_result_message
from host.errors import QuotaExceeded
from host.results import Result, ToolCall


def kept_result(out, max_chars: int):
    """What the turn keeps of a tool's result for ``result.tool_calls``: the value itself when its JSON
    is short, else that JSON cut to ``max_chars`` (the conversation gets no more either)."""
    try:
        text = json.dumps(out, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(out)[:max_chars]
    return out if len(text) <= max_chars else text[:max_chars] + "...(cut)"


class ToolTurns:
    """The tool turns of all mods, for an LLMProvider (which owns the worker and the Lua bridge)."""

    def __init__(self, provider):
        self.provider = provider
        self.turns: dict = {}  # (mod id, turn id) -> ToolTurn while it runs
        self._sets: dict = {}  # mod id -> {spec json: ToolSet}

    def toolset(self, mod, spec, say_pattern=None) -> ToolSet:
        """A validated ToolSet for a Lua tools spec and an optional ``say_pattern`` (cached per mod:
        grammars are built once)."""
        spec = mod.from_lua(spec)
        if not isinstance(spec, dict) or not spec:
            raise ToolError("tools must be a non-empty table { name = { description =, parameters =, run = } }")
        if say_pattern is not None and not isinstance(say_pattern, str):
            raise ToolError("say_pattern must be a string (a regular expression)")
        key = json.dumps([spec, say_pattern], sort_keys=True, default=str)
        sets = self._sets.setdefault(mod.id, {})
        ts = sets.get(key)
        if ts is None:
            if len(sets) >= mod.host.limits.tools.max_toolsets:
                sets.pop(next(iter(sets)))
            grammar_from = self.provider.grammar_from
            if grammar_from is None:
                raise ToolError("tools need the grammar module, which this host does not have")
            ts = sets[key] = ToolSet(spec, lambda schema: grammar_from(mod, None, schema),
                                     limits=mod.host.limits.tools, say_pattern=say_pattern)
        return ts

    def start(self, mod, *, options: dict, toolset: ToolSet, max_calls, choice=None, session_id=None, text=None,
              messages=None) -> int:
        limits = mod.host.limits.tools
        if max_calls is None:
            max_calls = limits.default_calls
        if (isinstance(max_calls, bool) or not isinstance(max_calls, (int, float))
                or not 0 <= max_calls <= limits.max_calls or max_calls != int(max_calls)):
            raise ToolError(f"max_tool_calls must be an integer from 0 to {limits.max_calls}, got {max_calls!r}")
        if choice not in (None, "auto", "required"):
            raise ToolError(f"tool_choice must be \"auto\" or \"required\", got {choice!r}")
        if "grammar" in options:
            raise ToolError("grammar=/schema= cannot be combined with tools= (the tools make the grammar)")
        turn = ToolTurn(self, mod, self.provider.worker.new_session_id(), options, toolset, int(max_calls),
                        session_id, text, messages, required=choice == "required" and max_calls > 0)
        self.turns[(mod.id, turn.id)] = turn
        turn.step()
        return turn.id

    def cancel(self, mod, rid) -> bool:
        turn = self.turns.get((mod.id, rid))
        if turn is None:
            return False
        turn.cancel()
        return True

    def forget_mod(self, mod_id: str) -> None:
        self._sets.pop(mod_id, None)
        for key in [k for k in self.turns if k[0] == mod_id]:
            self.turns.pop(key).cancelled = True


class ToolTurn:
    """One turn with tools (see module docstring); lives on the frame thread."""

    def __init__(self, owner: ToolTurns, mod, turn_id: int, options: dict, toolset: ToolSet, max_calls: int,
                 session_id, text, messages, required: bool = False):
        self.owner, self.mod, self.id = owner, mod, turn_id
        self.options, self.toolset, self.max_calls = options, toolset, max_calls
        self.session_id, self.text = session_id, text
        self.messages = list(messages) if messages is not None else None
        self.pending_tool = None  # the tool message the next session step adds
        self.calls: list = []
        self.required = required  # the first step must be a tool call
        self.handle = None
        self.cancelled = False
        self.stream = SayStream()
        self.said = []  # the say text streamed by the current step

    def step(self) -> None:
        worker = self.owner.provider.worker
        if self.required and not self.calls:
            grammar = self.toolset.call_grammar
        elif len(self.calls) < self.max_calls:
            grammar = self.toolset.grammar
        else:
            grammar = self.toolset.say_grammar
        opts = dict(self.options, grammar=grammar)
        self.stream, self.said = SayStream(), []
        if self.session_id is None:
            self.handle = worker.submit(self.mod.id, messages=tuple(self.messages), on_token=self._token,
                                        on_done=self._done, **opts)
        elif self.pending_tool is None:
            self.handle = worker.say(self.mod.id, self.session_id, self.text, on_token=self._token,
                                     on_done=self._done, **opts)
        else:
            self.handle = worker.submit(self.mod.id, session=self.session_id, messages=(self.pending_tool,),
                                        on_token=self._token, on_done=self._done, **opts)

    def cancel(self) -> None:
        self.cancelled = True
        if self.handle is not None:
            self.owner.provider.worker.cancel(self.mod.id, self.handle.id)

    def _token(self, text: str) -> None:
        piece = self.stream.push(text)
        if piece:
            self.said.append(piece)
            self.owner.provider.forward(self.mod, self.id, "token", piece)

    def _done(self, result: Result) -> None:
        kind, what = decode_step(result.value)
        if kind == "tool" and not self.cancelled and result.finish_reason in ("stop", "length"):
            name, args = what
            ok, out = self.owner.provider.call_tool(self.mod, self.id, name, args)
            if not ok:
                out = {"error": f"the tool {name} failed"}
            cap = self.mod.host.limits.tools.max_result_chars
            msg = tool_result_message(name, out, cap)
            self.calls.append(ToolCall(name=name, arguments=args, result=kept_result(out, cap)))
            problem = self._session_room(msg)
            if problem is not None:
                self._finish(result.with_(finish_reason="error", error=problem, error_type="quota"), kind, what)
                return
            if self.messages is not None:
                self.messages += [{"role": "assistant", "content": result.text}, msg]
            else:
                self.pending_tool = msg
            if self.mod.state == "loaded" and (self.mod.id, self.id) in self.owner.turns:
                self.step()
                return
        self._finish(result, kind, what)

    def _session_room(self, msg: dict) -> str | None:
        """Why the session cannot take one more tool message (its text quota), or None."""
        if self.session_id is None:
            return None
        try:
            self.owner.provider.ledger.check_turn(self.mod.id, self.session_id, len(msg["content"]))
        except QuotaExceeded as exc:
            return str(exc)
        return None

    def _finish(self, result: Result, kind, what) -> None:
        self.owner.turns.pop((self.mod.id, self.id), None)
        final = result.with_(text=what if kind == "say" else "".join(self.said),  # cut by max_tokens: what was said
                             tool_calls=tuple(self.calls), value=None)
        if self.cancelled and final.finish_reason != "error":
            final = final.with_(finish_reason="cancelled", error_type="cancelled")
        self.owner.provider.forward(self.mod, self.id, "done", final)
