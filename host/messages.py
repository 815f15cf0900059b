"""Messages between the frame thread and the inference worker.

Requests go frame thread -> request queue -> worker; events go worker ->
event queue -> frame thread.  Everything here is frozen except the cancel
flag, a ``threading.Event`` that the frame thread sets and the worker reads
(the only state the two threads share besides the queues).

Two kinds of request:

- :class:`GenerateRequest` - a generation (``llm.generate``, ``llm.chat``,
  ``session:say``), run by the scheduler over many steps, streaming tokens;
- the *host calls* below (session create/reset/close/save/load, store
  add/remove/search, forgetting a mod): each is handled once, in order with
  the mod's other requests, by :meth:`host.engine.service.Engine.run`, and
  its result fields become the request's Result (host/results.py).

A request with ``id == 0`` is fire-and-forget: no result is delivered.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _cancel_flag() -> threading.Event:
    return threading.Event()


PRIORITIES = ("player", "normal", "background")  # first to last: see host.engine.admission


def check_priority(value, where: str = "priority") -> str | None:
    """``value`` if it is a priority name (or None: the default), else an OptionError naming the choices."""
    if value is None or (isinstance(value, str) and value in PRIORITIES):
        return value
    from host.errors import OptionError

    raise OptionError(f'{where} must be "player", "normal" or "background", got {value!r}')


@dataclass(frozen=True)
class GenerateRequest:
    """Generate text for a mod: from ``prompt`` or from chat ``messages`` (or a session turn)."""

    id: int
    mod_id: str
    prompt: str | None = None
    messages: tuple | None = None  # ({"role":, "content":}, ...): contents are always plain text
    max_tokens: int = 256
    temperature: float | None = None
    seed: int | None = None
    stop: tuple = ()
    sampler: dict | None = None  # see host.engine.sampling
    template: str | None = None  # named chat template override
    parse_special: bool = False  # a raw prompt's special-token text becomes special tokens (llm.generate only)
    grammar: Any = None  # a grammar object (host.engine.grammar), or None
    session: int | None = None  # the session id of a session:say turn
    stream: bool = True  # post token events (off when nobody listens: the text still comes in the result)
    priority: str | None = None  # "player" | "normal" | "background"; None: the session's default, else "normal"
    created: float = field(default_factory=time.perf_counter, compare=False)  # when it was asked (queue wait)
    cancel: threading.Event = field(default_factory=_cancel_flag, compare=False, repr=False)

    def __post_init__(self):
        check_priority(self.priority)


# --- host calls ---------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class HostCall:
    """Base of the typed host calls; ``Engine.run`` dispatches on the class."""

    id: int
    mod_id: str
    cancel: threading.Event = field(default_factory=_cancel_flag, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class SessionCreateRequest(HostCall):
    """Create session ``session_id`` (settings were validated on the frame thread)."""

    session_id: int
    system: str | None = None
    sampler: dict | None = None
    overflow: str = "drop_oldest"
    template: str | None = None
    memory: Path | None = None  # a store whose hits are put into each user turn
    priority: str | None = None  # the default priority of its turns (None: "normal")

    def __post_init__(self):
        check_priority(self.priority)


@dataclass(frozen=True, kw_only=True)
class SessionResetRequest(HostCall):
    """Forget a session's conversation and cached tokens (the system prompt stays)."""

    session_id: int


@dataclass(frozen=True, kw_only=True)
class SessionCloseRequest(HostCall):
    """Forget a session; a turn still running frees its sequence when it ends."""

    session_id: int


@dataclass(frozen=True, kw_only=True)
class SessionSaveRequest(HostCall):
    """Save a session (conversation and cached state) to ``path``."""

    session_id: int
    path: Path


@dataclass(frozen=True, kw_only=True)
class SessionLoadRequest(HostCall):
    """Load a saved session from ``path`` as ``session_id``."""

    session_id: int
    path: Path
    memory: Path | None = None


@dataclass(frozen=True, kw_only=True)
class SessionInfoRequest(HostCall):
    """A detached copy of a session's state (a SessionState; for tools and tests, not for Lua)."""

    session_id: int


@dataclass(frozen=True, kw_only=True)
class StatsRequest(HostCall):
    """Engine counters: {decode_calls, running, waiting, sessions, n_seq_max, preemptions, focus} (tools, tests, bench)."""


@dataclass(frozen=True, kw_only=True)
class FocusRequest(HostCall):
    """The player now talks to ``mod_id`` (one session of it, or all when ``session_id`` is None).

    Its generations run at priority "player" until the focus moves; ``mod_id=""`` clears it.
    """

    session_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class ModHelloRequest(HostCall):
    """A mod with the llm module is loaded (fair admission keeps a sequence for it)."""


@dataclass(frozen=True, kw_only=True)
class ModForgetRequest(HostCall):
    """Close every session of a mod (its runtime is gone)."""


@dataclass(frozen=True, kw_only=True)
class StoreAddRequest(HostCall):
    """Add or replace one document of the store at ``path``."""

    path: Path
    doc_id: Any
    text: Any
    meta: Any = None


@dataclass(frozen=True, kw_only=True)
class StoreRemoveRequest(HostCall):
    """Remove one document of the store at ``path``."""

    path: Path
    doc_id: Any


@dataclass(frozen=True, kw_only=True)
class StoreSearchRequest(HostCall):
    """Search the store at ``path``; ``options`` holds k, mode, filters, weights."""

    path: Path
    query: Any
    options: tuple = ()  # (name, value) pairs: a frozen request holds no dict


# --- events -------------------------------------------------------------------

@dataclass(frozen=True)
class TokenEvent:
    """A streamed text delta (always whole UTF-8 characters, never stop text)."""

    request_id: int
    mod_id: str
    text: str


@dataclass(frozen=True)
class TokensEvent:
    """The text deltas of one decode step, one per streaming request: ``items`` = ((request_id, text), ...).

    One queue message per step instead of one per sequence.
    """

    items: tuple


@dataclass(frozen=True)
class DoneEvent:
    """The end of a request, exactly once: ``result`` is a :class:`host.results.Result`."""

    request_id: int
    mod_id: str
    result: Any
