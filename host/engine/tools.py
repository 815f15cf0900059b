"""Tools for chat turns: the model either speaks or calls one of the mod's tools.

A turn with tools is a schema'd choice, which even a 135M model follows: each
step of the turn generates one JSON object under a grammar,

    {"say": "<what the character says>"}                      -- the turn ends
    {"tool": "<name>", "arguments": { <the tool's parameters> }}  -- a call

With ``tool_choice = "required"`` the first step must be a call.  After a
call the host runs the tool (a Lua function, on the frame thread),
adds ``{"role": "tool", "content": <its result as JSON>}`` to the
conversation, and the next step goes on from there.  After ``max_calls``
calls the grammar allows only ``say``: the loop cap.

This module is pure (no threads, no Lua): the tool set and its grammars, the
streaming extraction of the ``say`` text, and the decoding of a step's value.
"""

from __future__ import annotations

import json
import re

from host.errors import RelicError
from host.limits import DEFAULT_LIMITS, ToolLimits

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
_EMPTY_PARAMS = {"type": "object", "properties": {}, "additionalProperties": False}


class ToolError(RelicError):
    """A tools= table is malformed (bad name, description or parameters)."""


class ToolSet:
    """Validated tool specs ``{name: {"description": str, "parameters": schema}}`` and their grammars.

    ``grammar_from_schema(schema)`` builds a grammar object (host.engine.grammar);
    it is given by the caller so this module stays free of the llama binding.
    ``limits``: the `tools` group of the host's limits.  ``say_pattern``: a regular expression
    (the subset of host.engine.pattern) the ``say`` text must match, in place of the length cap
    (e.g. whole sentences that begin with the speaker's name); the text stays bounded by max_tokens.
    """

    def __init__(self, specs: dict, grammar_from_schema, *, limits: ToolLimits = DEFAULT_LIMITS.tools,
                 say_pattern: str | None = None):
        if not isinstance(specs, dict) or not specs:
            raise ToolError("tools must be a table { name = { description =, parameters =, run = } }")
        if len(specs) > limits.max_tools:
            raise ToolError(f"at most {limits.max_tools} tools, got {len(specs)}")
        self.tools: dict[str, dict] = {}
        for name in sorted(specs, key=str):
            spec = specs[name]
            if not isinstance(name, str) or not _NAME.match(name) or name == "say":
                raise ToolError(f"tool name {name!r} must match [A-Za-z_][A-Za-z0-9_]{{0,47}} and not be 'say'")
            if not isinstance(spec, dict):
                raise ToolError(f"tool '{name}' must be a table with description, parameters and run")
            desc = spec.get("description", "")
            if not isinstance(desc, str) or len(desc) > limits.max_description_chars:
                raise ToolError(f"tool '{name}': description must be a string of at most "
                                f"{limits.max_description_chars} characters")
            params = spec.get("parameters", _EMPTY_PARAMS)
            if not isinstance(params, dict) or (params.get("type", "object") != "object"):
                raise ToolError(f"tool '{name}': parameters must be a JSON Schema of type object")
            self.tools[name] = {"description": desc, "parameters": params}
        say_text = {"type": "string", "minLength": 1, "maxLength": limits.max_say_chars}
        if say_pattern is not None:
            if not isinstance(say_pattern, str) or not say_pattern or len(say_pattern) > limits.max_say_pattern_chars:
                raise ToolError(f"say_pattern must be a regular expression of 1 to {limits.max_say_pattern_chars} "
                                "characters")
            say_text = {"type": "string", "pattern": say_pattern}
        say = {"type": "object", "properties": {"say": say_text},
               "required": ["say"], "additionalProperties": False}
        calls = [{"type": "object", "properties": {"tool": {"const": n}, "arguments": t["parameters"]},
                  "required": ["tool", "arguments"], "additionalProperties": False}
                 for n, t in self.tools.items()]
        try:
            self.say_grammar = grammar_from_schema(say)
            self.grammar = grammar_from_schema({"anyOf": [say] + calls})
            self.call_grammar = grammar_from_schema(calls[0] if len(calls) == 1 else {"anyOf": calls})
        except RelicError as exc:
            raise ToolError(f"tools: {exc}") from None

    def describe(self) -> str:
        """One line per tool, for a system prompt (the grammar already enforces the format)."""
        lines = ["You may also act, with one of these tools:"]
        for name, t in self.tools.items():
            props = t["parameters"].get("properties") or {}
            args = ", ".join(sorted(map(str, props)))
            lines.append(f"- {name}{f' ({args})' if args else ''}: {t['description']}")
        return "\n".join(lines)


def decode_step(value) -> tuple[str, object]:
    """A step's decoded JSON value -> ("say", text) or ("tool", (name, arguments)) or ("none", None)."""
    if isinstance(value, dict):
        if isinstance(value.get("say"), str):
            return "say", value["say"]
        if isinstance(value.get("tool"), str):
            args = value.get("arguments")
            return "tool", (value["tool"], args if isinstance(args, dict) else {})
    return "none", None


def tool_result_message(name: str, result, max_chars: int = DEFAULT_LIMITS.tools.max_result_chars) -> dict:
    """The conversation message carrying a tool's result (JSON, cut to ``max_chars``)."""
    try:
        text = json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = json.dumps(str(result))
    if len(text) > max_chars:
        text = text[:max_chars] + "...(cut)"
    return {"role": "tool", "content": f'{{"tool": {json.dumps(name)}, "result": {text}}}'}


class SayStream:
    """Streams the text of ``{"say": "..."}`` out of the JSON as it is generated.

    ``push(chunk)`` returns the newly decoded characters of the say string
    (escapes resolved); nothing for a tool call or anything else.
    """

    _HEAD = re.compile(r'\s*\{\s*"say"\s*:\s*"')

    def __init__(self):
        self.buf = ""
        self.state = "head"  # head | text | done
        self.pos = 0

    def push(self, chunk: str) -> str:
        self.buf += chunk
        if self.state == "head":
            m = self._HEAD.match(self.buf)
            if m is None:
                if len(self.buf) > 40 or (self.buf.strip() and not '{"say"'.startswith(
                        re.sub(r"\s", "", self.buf)[:6])):
                    self.state = "done"  # a tool call (or something else): nothing to show
                return ""
            self.state, self.pos = "text", m.end()
        if self.state != "text":
            return ""
        out = []
        i = self.pos
        while i < len(self.buf):
            c = self.buf[i]
            if c == '"':
                self.state = "done"
                i += 1
                break
            if c == "\\":
                if i + 1 >= len(self.buf):
                    break  # wait for the escaped character
                e = self.buf[i + 1]
                if e == "u":
                    if i + 6 > len(self.buf):
                        break
                    try:
                        out.append(chr(int(self.buf[i + 2:i + 6], 16)))
                    except ValueError:
                        pass
                    i += 6
                    continue
                out.append({"n": "\n", "t": "\t", "r": "", "b": "", "f": ""}.get(e, e))
                i += 2
                continue
            out.append(c)
            i += 1
        self.pos = i
        return "".join(out)
