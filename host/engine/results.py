"""What a finished generation reports: its text, usage and timings, as a host.results.Result.

``timings`` (host.results.Timings; milliseconds unless named otherwise; see docs/MODDING.md):

==================  =============================================================
``queue_ms``        asked -> it got a sequence (waiting behind others)
``retrieval_ms``    the session's memory note: embedding the turn and searching
``prompt_ms``       it got a sequence -> its prompt was read, less retrieval_ms (cached
                    tokens are skipped)
``first_token_ms``  asked -> its first token was sampled (the whole wait)
``generation_ms``   first token -> the end
``tokens_per_second``  generated tokens over generation_ms
``paused_steps``    steps it sat out (higher priorities, other mods' share)
``swaps``           times its sequence was taken by another and given back
``priority``        the priority it ran at: "player" | "normal" | "background" (the game's focus
                    and the one-player-request-per-mod rule applied, as of when it got a sequence)
==================  =============================================================

Token texts of one step go out as one TokensEvent (:class:`StepTokens`).
"""

from __future__ import annotations

import time

from host.messages import TokenEvent, TokensEvent
from host.results import Result, Timings, Usage


class StepTokens:
    """The (request id, text) pairs of one step, posted as one TokensEvent."""

    def __init__(self):
        self.items: list = []

    def add(self, request_id: int, text: str) -> None:
        self.items.append((request_id, text))

    def flush(self, emit) -> None:
        """Post this step's texts (before any DoneEvent, so every request's text comes first)."""
        if self.items:
            emit(TokensEvent(tuple(self.items)))
            self.items.clear()


def finish_text(slot, reason: str, emit) -> None:
    """Flush what the UTF-8 and stop-string buffers still hold into the slot's text (and stream it)."""
    if reason in ("stop", "length") and not slot.stop.stopped:
        tail = slot.stop.push(slot.stream.flush())
        tail += "" if slot.stop.stopped else slot.stop.flush()
        if tail:
            slot.text.append(tail)
            if slot.req.stream:
                emit(TokenEvent(slot.req.id, slot.req.mod_id, tail))


def timings(slot, now: float | None = None) -> Timings:
    """The ``timings`` of a slot's result (see module docstring)."""
    now = time.perf_counter() if now is None else now
    created = slot.req.created
    t_prompt = slot.t_prompt or now
    t_first = slot.t_first or now
    gen_s = max(now - t_first, 1e-9)
    return Timings(
        queue_ms=max(0.0, slot.t_admitted - created) * 1000,
        retrieval_ms=slot.retrieval_s * 1000,
        prompt_ms=max(0.0, t_prompt - slot.t_admitted - slot.retrieval_s) * 1000,
        first_token_ms=max(0.0, t_first - created) * 1000,
        generation_ms=gen_s * 1000,
        tokens_per_second=(slot.n_gen - 1) / gen_s if slot.n_gen > 1 else 0.0,
        paused_steps=slot.steps_paused_total,
        swaps=slot.swaps,
        priority=slot.priority,
    )


def generation_result(slot, reason: str, error: str | None = None, error_type: str = "error",
                      session_chars: int | None = None) -> Result:
    """The Result of a finished slot: text, finish_reason, error, usage, timings (+ value for grammars)."""
    result = Result.generated(
        text="".join(slot.text), finish_reason=reason, error=error, error_type=error_type,
        usage=Usage(prompt_tokens=slot.n_prompt, cached_tokens=slot.cached, completion_tokens=slot.n_gen),
        timings=timings(slot), session_chars=session_chars)
    grammar = slot.req.grammar
    if grammar is not None and getattr(grammar, "returns_value", False) and reason in ("stop", "length"):
        # the decoded value next to the raw text; a parse/validation failure is an error message only
        value, problem = grammar.parse_result(result.text)
        result = result.with_(value=value)
        if problem and not error:
            result = result.with_(error=problem, error_type="schema")
    return result
