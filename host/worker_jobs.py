"""Long host calls on the inference worker, advanced in bounded slices between decode steps.

A host call that can run long (a store ingest: splitting a 1 MiB document and
embedding its thousands of chunks) would hold the worker thread for the whole
call, and every other mod's generation with it.  The engine hands such a call
over as a generator of bounded steps (``Engine.job``: one token count, one text
tokenized, one embedding batch); :class:`HostJobs` keeps it and the worker
advances it by one *slice* (steps until ``slice_s`` has passed, at least one)
between decode steps, so generations keep going while it runs.  While
generations run, jobs get at most ``JOB_SHARE`` of the worker's time (a slice
is due once the decode steps since the last one have taken their share); when
nothing else runs, a job runs slice after slice.

Order per mod is kept: while a mod has a job running, its later requests (a
search right after an add, a generation whose memory is that store, a session
save) are held here and handed back to the worker, in order, once the job
ends; other mods' requests are not held.  A job's cancel flag (or the
worker's stop flag) is checked before every slice and inside its steps, so a
cancelled job ends within one slice with the same "cancelled" result as
before, and the store is unchanged (it writes only in its last step).

Worker thread only.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from host.errors import CancelledError
from host.messages import DoneEvent
from host.results import Result

log = logging.getLogger("relic.worker")

SLICE_S = 0.05  # one slice while generations run (an embedding batch longer than this is one slice alone)
IDLE_SLICE_S = 0.25  # one slice while nothing else runs (new requests still end it early)
JOB_SHARE = 0.25  # of the worker's time, at most, for jobs while generations run


class _Job:
    __slots__ = ("msg", "steps", "cancelled")

    def __init__(self, msg, steps, cancelled):
        self.msg, self.steps, self.cancelled = msg, steps, cancelled


class HostJobs:
    """The running stepwise host calls, one per mod at most, and the requests held behind them."""

    def __init__(self):
        self._running: dict[str, _Job] = {}  # mod id -> its job; dict order is the round-robin order
        self._held: dict[str, deque] = {}  # mod id -> its requests that came after its job, in order
        self._debt = 0.0  # seconds of job time not yet matched by decode steps (JOB_SHARE)

    @property
    def busy(self) -> bool:
        """True while a job runs (the worker must not block waiting for requests)."""
        return bool(self._running)

    def due(self, generating: bool) -> bool:
        """Is a slice due now?  Always when no generation runs or a job was cancelled (it ends in its
        next slice); else once decode steps have had their share of the time since the last slice."""
        if not self._running:
            return False
        return not generating or self._debt <= 0.0 or any(j.cancelled() for j in self._running.values())

    def stepped(self, seconds: float) -> None:
        """A decode step took ``seconds``: it pays off the jobs' time debt."""
        if self._debt > 0.0:
            self._debt = max(0.0, self._debt - seconds * JOB_SHARE / (1.0 - JOB_SHARE))

    def holds(self, msg) -> bool:
        """Keep ``msg`` behind its mod's running job (True), or False when that mod has none."""
        if msg.mod_id not in self._running:
            return False
        self._held.setdefault(msg.mod_id, deque()).append(msg)
        return True

    def start(self, msg, steps, cancelled) -> None:
        """Run host call ``msg`` as the generator ``steps`` (its return value: the Result's fields)."""
        self._running[msg.mod_id] = _Job(msg, steps, cancelled)

    def advance(self, emit, slice_s: float = SLICE_S, interrupt=None) -> list:
        """Advance the next job (round robin) for one slice; returns the requests released when it ended.

        The slice ends after ``slice_s`` seconds (at least one step), when the
        job ends, or early when ``interrupt()`` is true (a request is waiting).
        The released requests go back through the worker's accept, in order.
        """
        if not self._running:
            return []
        mod_id, job = next(((m, j) for m, j in self._running.items() if j.cancelled()),
                           next(iter(self._running.items())))  # a cancelled job first: it ends now
        del self._running[mod_id]  # re-inserted at the end below: round robin between mods
        t0 = time.perf_counter()
        deadline = t0 + slice_s
        try:
            while True:
                if job.cancelled():
                    raise CancelledError("cancelled")
                next(job.steps)
                if time.perf_counter() >= deadline or (interrupt is not None and interrupt()):
                    break
        except StopIteration as done:
            return self._end(job, Result.of_call(done.value), emit, t0)
        except Exception as exc:  # a job's failure is its caller's result, never the worker's
            job.steps.close()
            return self._end(job, Result.of_exception(exc), emit, t0)
        self._debt += time.perf_counter() - t0
        self._running[mod_id] = job
        return []

    def _end(self, job: _Job, result: Result, emit, t0: float) -> list:
        self._debt = 0.0 if not self._running else self._debt + time.perf_counter() - t0
        if job.msg.id:  # id 0: fire-and-forget
            emit(DoneEvent(job.msg.id, job.msg.mod_id, result))
        elif result.error:
            log.warning("host call %s on the worker failed: %s", type(job.msg).__name__, result.error)
        return list(self._held.pop(job.msg.mod_id, ()))

    def cancel_all(self, emit) -> list:
        """Shutdown: end every job as cancelled; returns every held request (the worker drains them)."""
        for job in self._running.values():
            job.steps.close()
            if job.msg.id:
                emit(DoneEvent(job.msg.id, job.msg.mod_id, Result.of_exception(CancelledError("cancelled"))))
        self._running.clear()
        held = [m for q in self._held.values() for m in q]
        self._held.clear()
        return held
