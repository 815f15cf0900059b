"""What a mod receives when one of its requests ends: one typed :class:`Result`.

Every `llm`, session and `rag` request ends with exactly one Result, handed to
the mod's ``on_done(result)`` and returned by ``handle:result()`` and
``await(handle)``.  It is built here and nowhere else:

- :meth:`Result.generated` for a generation that ran (the scheduler);
- :meth:`Result.failed` / :meth:`Result.cancelled` / :meth:`Result.of_exception`
  for a request that failed or was cancelled, wherever that is noticed;
- :meth:`Result.of_call` for a host call (session reset/save/load, store
  add/remove/search) that succeeded;

and it becomes Lua data in one place, :meth:`Result.to_plain` (the `llm`
provider converts that to a Lua table).  Each field is documented in
docs/MODDING.md ("What a result holds").

A Result is frozen; ``Result.with_(...)`` makes a changed copy.  For Python
callers (scripts, tests, the bench) it also reads as a mapping of its fields,
so ``result["text"]`` and ``result["error"] is None`` work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FINISH_REASONS = ("stop", "length", "cancelled", "error")


class _Fields(Mapping):
    """Read-only mapping over a dataclass's fields (for Python callers: ``r["text"]``, ``r.get("value")``)."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    @classmethod
    def _names(cls) -> tuple:
        return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True, eq=True)
class Usage(_Fields):
    """Token counts of one generation."""

    prompt_tokens: int = 0      # tokens of the prompt (for a session turn: the whole conversation)
    cached_tokens: int = 0      # of those, reused from the sequence's cache (not decoded again)
    completion_tokens: int = 0  # tokens generated


@dataclass(frozen=True, eq=True)
class Timings(_Fields):
    """Where the time of one generation went (host/engine/results.py measures it on the worker)."""

    queue_ms: float = 0.0           # asked -> it got a sequence (waiting behind others)
    retrieval_ms: float = 0.0       # the session's memory note: embedding the turn and searching
    prompt_ms: float = 0.0          # reading its prompt, retrieval not included (cached tokens skip)
    first_token_ms: float = 0.0     # asked -> its first token was sampled (the whole wait)
    generation_ms: float = 0.0      # first token -> the end
    tokens_per_second: float = 0.0  # generated tokens over generation_ms (0 with fewer than two)
    paused_steps: int = 0           # decode steps it sat out (higher priorities, other mods' share)
    swaps: int = 0                  # times its sequence was taken by another and given back
    priority: str | None = None     # the priority it ran at, the game's focus included (None: a server backend)


@dataclass(frozen=True, eq=True)
class ToolCall(_Fields):
    """One tool a turn with ``tools=`` ran: its name, the model's arguments and what ``run`` returned."""

    name: str
    arguments: Any = None
    result: Any = None


@dataclass(frozen=True, eq=True)
class Result(_Fields):
    """The end of one request (see the module docstring and docs/MODDING.md)."""

    text: str = ""                  # the generated text ("" for host calls)
    finish_reason: str = "stop"     # "stop" | "length" | "cancelled" | "error"
    error: str | None = None        # the message when finish_reason is "error" (or a schema problem)
    error_type: str | None = None   # the kind of failure (host.errors; "schema"); None on success
    usage: Usage | None = None      # token counts: every generation request (zeros when it never ran)
    timings: Timings | None = None  # a generation that ran
    device: str | None = None       # where the model ran ("CPU", "CUDA0 (31/31 layers)", ...): generations
    session_chars: int | None = None  # characters of text the session now holds (what its quota counts)
    value: Any = None               # schema= output decoded; or a host call's value (see MODDING.md)
    hits: list | None = None        # store:search: [{id, text, score, meta}, ...], best first
    tool_calls: tuple | None = None  # a turn with tools=: the ToolCalls it ran, in order

    def __post_init__(self):
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {FINISH_REASONS}, got {self.finish_reason!r}")

    # --- the ways a result is made ---------------------------------------------------
    @classmethod
    def generated(cls, *, text: str, finish_reason: str, usage: Usage, timings: Timings,
                  error: str | None = None, error_type: str | None = None,
                  session_chars: int | None = None) -> "Result":
        """A generation that ran (it may still have ended in an error or a cancel)."""
        if finish_reason == "cancelled":
            error_type = "cancelled"
        elif finish_reason != "error":
            error, error_type = None, None
        else:
            error_type = error_type or "error"
        return cls(text=text, finish_reason=finish_reason, error=error, error_type=error_type, usage=usage,
                   timings=timings, session_chars=session_chars)

    @classmethod
    def failed(cls, message: str, *, error_type: str = "error", text: str = "") -> "Result":
        """A request that failed: ``error_type`` names the kind (host.errors)."""
        if error_type == "cancelled":
            return cls.cancelled(message, text=text)
        return cls(text=text, finish_reason="error", error=message, error_type=error_type, usage=Usage())

    @classmethod
    def cancelled(cls, message: str = "", *, text: str = "") -> "Result":
        """A request cancelled (handle:cancel(), a reload, shutdown) before or while it ran."""
        return cls(text=text, finish_reason="cancelled", error=message or None, error_type="cancelled",
                   usage=Usage())

    @classmethod
    def of_exception(cls, exc: BaseException) -> "Result":
        """The failure result for an exception: its message and its error_type ("internal" for a host bug)."""
        from host.errors import RelicError, error_type_of

        message = str(exc) if isinstance(exc, RelicError) else f"{type(exc).__name__}: {exc}"
        return cls.failed(message, error_type=error_type_of(exc))

    @classmethod
    def of_call(cls, fields: dict | None) -> "Result":
        """A host call that succeeded: ``fields`` are what the engine returned (value, hits, session_chars)."""
        return cls(**(fields or {}))

    def with_(self, **changes) -> "Result":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # --- the one conversion for Lua ------------------------------------------------
    def to_plain(self) -> dict:
        """Plain data for the mod (dicts, lists, scalars); None fields are left out (nil in Lua)."""
        return _plain(self)


def _plain(value: Any) -> Any:
    if isinstance(value, _Fields):
        return {name: _plain(v) for name, v in value.items() if v is not None}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
