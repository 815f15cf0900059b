"""Helpers for the scheduler tests: requests, stepping a Scheduler by hand, its events."""

from __future__ import annotations

from host.messages import DoneEvent, GenerateRequest, TokensEvent

SYSTEM = "You are Mara, a ferry pilot. Answer in one short sentence."
LONG_SYSTEM = ("You are the keeper of the lighthouse on the north cape. You have kept the light for thirty years, "
               "you know every ship that passes and every rock under the water, and you tell travelers about the "
               "storms, the wrecks and the smugglers who still land at night in the cove below the cliffs. ") * 2


def no_eog(model) -> dict:
    """A sampler that never ends a generation early (end-of-generation tokens banned)."""
    return {"logit_bias": {t: float("-inf") for t in range(model.vocab.n_tokens) if model.vocab.is_eog(t)}}


def req(i, text, *, mod="m", system=SYSTEM, max_tokens=24, **kw) -> GenerateRequest:
    msgs = ({"role": "system", "content": system}, {"role": "user", "content": text})
    return GenerateRequest(id=i, mod_id=mod, messages=msgs, max_tokens=max_tokens, temperature=0.0, **kw)


class Events:
    """The scheduler's events, by request: texts streamed and results."""

    def __init__(self):
        self.all = []
        self.done: dict[int, dict] = {}

    def __call__(self, ev) -> None:
        self.all.append(ev)
        if isinstance(ev, DoneEvent):
            self.done[ev.request_id] = ev.result

    def text(self, rid) -> str:
        return "".join(t for ev in self.all if isinstance(ev, TokensEvent) for r, t in ev.items if r == rid)


def slot_of(sched, rid):
    return next((s for s in sched.slots if s.req.id == rid), None)


def run_until(sched, emit, cond, limit: int = 2000) -> int:
    """Step until cond() (or the scheduler is idle); returns the steps taken."""
    for n in range(limit):
        if cond() or not sched.busy:
            return n
        sched.step(emit)
    raise AssertionError(f"not reached in {limit} steps")
