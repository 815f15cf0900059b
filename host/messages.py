"""Messages between the frame thread and the inference worker.

Requests go frame thread -> request queue -> worker; events go worker ->
event queue -> frame thread.  Everything here is frozen except the cancel
flag, a ``threading.Event`` that the frame thread sets and the worker reads
(the only state the two threads share besides the queues).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GenerateRequest:
    """Generate text for a mod: from ``prompt`` or from chat ``messages``."""

    id: int
    mod_id: str
    prompt: str | None = None
    messages: tuple | None = None  # ({"role":, "content":}, ...)
    max_tokens: int = 256
    temperature: float | None = None
    seed: int | None = None
    stop: tuple = ()
    sampler: dict | None = None  # see host.engine.sampling
    template: str | None = None  # named chat template override
    parse_special: bool = True
    grammar: Any = None  # a grammar object (host.engine.grammar), or None
    session: Any = None  # a host.engine.session.Session, or None
    cancel: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


@dataclass(frozen=True)
class CallRequest:
    """Run ``fn(engine)`` on the worker thread (e.g. a RAG query); the result is the return value."""

    id: int
    mod_id: str
    fn: Any
    merge: bool = False  # a dict result is merged into the result dict
    cancel: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


@dataclass(frozen=True)
class TokenEvent:
    """A streamed text delta (always whole UTF-8 characters, never stop text)."""

    request_id: int
    mod_id: str
    text: str


@dataclass(frozen=True)
class DoneEvent:
    """The end of a request, exactly once: ``result`` is a plain dict.

    ``result``: text, finish_reason ("stop"|"length"|"cancelled"|"error"),
    error (message or None), usage {prompt_tokens, cached_tokens,
    completion_tokens}, timings {...}; plus request-specific fields.
    """

    request_id: int
    mod_id: str
    result: dict


def error_result(message: str, *, reason: str = "error", text: str = "") -> dict:
    """A result dict for a request that failed or was cancelled."""
    return {
        "text": text,
        "finish_reason": reason,
        "error": message if reason == "error" else (message or None),
        "usage": {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0},
    }
