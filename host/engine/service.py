"""The engine interface: the one object the worker thread drives.

The worker (host/worker.py) knows nothing of schedulers, sessions or stores;
it only calls these methods, all on its own thread:

==========================  ====================================================
``busy``                    True while generations run or wait (step again)
``submit(req, emit)``       accept a :class:`GenerateRequest` (it runs in steps)
``step(emit)``              one decode step of every running generation
``run(call, cancelled)``    one host call (session/store requests in
                            host/messages.py); returns the Result fields it sets
                            (value, hits, session_chars), or raises a RelicError
``fail_running(emit, exc)`` fail every running generation after a failed step
                            (requests carry ``priority``; a ``FocusRequest`` host
                            call marks the player's partner: a backend that
                            cannot order work may accept both and ignore them)
``job(call, cancelled)``    a long host call as a generator of bounded steps
                            (its return value is ``run``'s dict), or None
                            when the call runs whole (host/worker_jobs.py
                            advances it between decode steps)
``cancel_all(emit)``        finish everything as cancelled (shutdown)
``close()``                 free everything (the worker thread's last act)
==========================  ====================================================

``emit(event)`` puts a TokenEvent/DoneEvent on the event queue.
``cancelled()`` is True once the call's cancel flag or the worker's shutdown
flag is set: long calls (a store ingest, rendering a long session) check it
at fine grain and raise CancelledError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from host.errors import OptionError
from host.messages import (FocusRequest, GenerateRequest, HostCall, ModForgetRequest, ModHelloRequest, SessionCloseRequest,
                           SessionCreateRequest, SessionInfoRequest, SessionLoadRequest, SessionResetRequest, SessionSaveRequest,
                           StatsRequest)
from host.rag.calls import StoreCalls


class Engine:
    """Generations through a Scheduler; host calls dispatched by request type (see module docstring).

    ``rag_model``: the embedding model for stores (a GGUF path or a callable
    returning one), loaded at the first store call; None: no stores.
    ``rag_limits``: the `rag` group of the host's limits (host.limits).
    """

    def __init__(self, scheduler, *, rag_model=None, rag_limits=None):
        self.scheduler = scheduler
        self.stores = StoreCalls(rag_model, rag_limits)
        scheduler.memory_note = self._memory_note
        self._handlers: dict[type, Callable] = {
            SessionCreateRequest: self._session_create,
            SessionResetRequest: lambda r, _c: {"value": scheduler.reset_session(r.session_id, r.mod_id)},
            SessionCloseRequest: lambda r, _c: scheduler.close_session(r.session_id, r.mod_id),
            SessionSaveRequest: lambda r, _c: {"value": scheduler.save_session(r.session_id, r.mod_id, r.path)},
            SessionLoadRequest: lambda r, _c: {"value": scheduler.load_session(r.session_id, r.mod_id, r.path,
                                                                               memory=r.memory)},
            SessionInfoRequest: lambda r, _c: {"value": scheduler.session_info(r.session_id, r.mod_id)},
            ModHelloRequest: lambda r, _c: scheduler.mod_present(r.mod_id, True),
            FocusRequest: lambda r, _c: scheduler.set_focus(r.mod_id, r.session_id),
            ModForgetRequest: lambda r, _c: (scheduler.close_mod_sessions(r.mod_id),
                                             scheduler.mod_present(r.mod_id, False)) and None,
            StatsRequest: lambda r, _c: {"value": {"decode_calls": scheduler.decode_calls,
                                                   "running": len(scheduler.slots),
                                                   "waiting": len(scheduler.waiting),
                                                   "sessions": len(scheduler.sessions),
                                                   "n_seq_max": scheduler.n_seq_max,
                                                   "preemptions": scheduler.preemptions,
                                                   "focus": list(scheduler.focus) if scheduler.focus else None}},
            **self.stores.handlers(),
        }

    # --- generations -----------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.scheduler.busy

    def submit(self, req: GenerateRequest, emit) -> None:
        self.scheduler.submit(req, emit)

    def step(self, emit) -> None:
        self.scheduler.step(emit)

    def fail_running(self, emit, exc: BaseException) -> None:
        self.scheduler.fail_running(emit, exc)

    def cancel_all(self, emit) -> None:
        self.scheduler.cancel_all(emit)

    # --- host calls ------------------------------------------------------------
    def run(self, call: HostCall, cancelled: Callable[[], bool]) -> dict:
        """Handle one host call; the returned dict holds the fields of its Result (host.results)."""
        handler = self._handlers.get(type(call))
        if handler is None:
            raise OptionError(f"unknown host call {type(call).__name__}")
        out = handler(call, cancelled)
        return out if isinstance(out, dict) else {}

    def job(self, call: HostCall, cancelled: Callable[[], bool]):
        """A store ingest as a generator of bounded steps (host.rag.calls); None for every other call
        (they run whole, in ``run``)."""
        return self.stores.job(call, cancelled)

    def _session_create(self, r: SessionCreateRequest, _cancelled) -> dict:
        return {"value": self.scheduler.create_session(r.session_id, r.mod_id, system=r.system, sampler=r.sampler,
                                             overflow=r.overflow, template=r.template, memory=r.memory,
                                                       priority=r.priority)}

    def _memory_note(self, path: Path, text: str) -> str:
        return self.stores.note(path, text, self.scheduler.vocab.count)

    def close(self) -> None:
        """Close the stores and embedder, then the scheduler's context, batch and samplers."""
        try:
            self.stores.close()
        finally:
            self.scheduler.close()
