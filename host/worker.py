"""The inference worker: one thread that owns the llama context and does all inference.

Frame thread                         worker thread
  submit() ── request queue ──────►  Scheduler.submit / step (decode, sample)
  pump()   ◄── event queue ────────  TokenEvent / DoneEvent

- The frame thread never blocks on the worker: ``submit`` enqueues and returns
  a :class:`Handle`; ``pump`` delivers queued events within a time budget.
- The worker never touches Lua; it only posts events.
- Cancellation is a per-request ``threading.Event`` the worker checks between
  decode steps.
- ``shutdown`` cancels what is pending, joins the thread (which frees the
  context, batch and samplers it created) and returns promptly.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass

from host.errors import QueueFullError, RelicError, ShutdownError
from host.messages import CallRequest, DoneEvent, GenerateRequest, TokenEvent, error_result
from host.llama import aborts as _aborts

log = logging.getLogger("relic.worker")

_SHUTDOWN = object()  # sentinel on the request queue


@dataclass
class WorkerConfig:
    """Tunables; the defaults suit a 2-core machine running a game loop."""

    n_ctx: int = 2048  # per sequence: each request or session gets this many tokens
    n_batch: int = 128  # prompt chunk: also the cancel granularity during prompt reading
    n_seq_max: int = 4  # requests/sessions decoded together (KV memory = n_ctx * n_seq_max)
    n_threads: int | None = None  # generation threads (default: cores - 1, at least 1)
    n_threads_batch: int | None = None  # prompt threads (default: like n_threads)
    nice: int = 5  # worker thread niceness: the frame thread wins ties for a core
    max_pending_per_mod: int = 16  # requests not yet done, per mod
    max_prompt_tokens: int | None = None  # default: the context size
    kv_type: str = "q8_0"  # KV cache element type ("f16", "q8_0", ...: host.llama.context.KV_TYPES)
    prompt_share: float = 2.0  # while others generate, a step reads this many generation steps' worth of prompt

    @classmethod
    def from_env(cls) -> "WorkerConfig":
        """Defaults overridden by RELIC_N_THREADS, RELIC_N_THREADS_BATCH, RELIC_WORKER_NICE, RELIC_N_CTX,
        RELIC_KV_TYPE."""
        cfg = cls()
        for env, attr in (("RELIC_N_THREADS", "n_threads"), ("RELIC_N_THREADS_BATCH", "n_threads_batch"),
                          ("RELIC_WORKER_NICE", "nice"), ("RELIC_N_CTX", "n_ctx")):
            if os.environ.get(env):
                setattr(cfg, attr, int(os.environ[env]))
        if os.environ.get("RELIC_KV_TYPE"):
            cfg.kv_type = os.environ["RELIC_KV_TYPE"]
        return cfg


class Handle:
    """The frame-thread side of one request: result, callbacks, cancel().

    ``on_token(text)`` and ``on_done(result)`` run on the frame thread inside
    ``Worker.pump``; ``on_done`` runs exactly once.
    """

    __slots__ = ("id", "mod_id", "request", "on_token", "on_done", "result", "_worker")

    def __init__(self, worker, request, on_token=None, on_done=None):
        self.id = request.id
        self.mod_id = request.mod_id
        self.request = request
        self.on_token = on_token
        self.on_done = on_done
        self.result = None
        self._worker = worker

    def done(self) -> bool:
        return self.result is not None

    def cancel(self) -> None:
        """Ask the worker to stop this request; its on_done reports "cancelled"."""
        self.request.cancel.set()


class Worker:
    """Owns the scheduler on its own thread; see the module docstring."""

    def __init__(self, model, config: WorkerConfig | None = None, engine_factory=None):
        self.model = model
        self.config = config or WorkerConfig()
        self._engine_factory = engine_factory or self._default_engine
        self._requests: queue.SimpleQueue = queue.SimpleQueue()  # frame -> worker
        self._events: queue.SimpleQueue = queue.SimpleQueue()  # worker -> frame
        self._handles: dict[int, Handle] = {}  # frame thread only
        self._pending: dict[str, int] = {}  # frame thread only: undelivered requests per mod
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # set once by shutdown(); read by the worker between steps
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.stats = {"submitted": 0, "delivered_events": 0}
        self._stalled_failed = False  # pending requests were failed after an RPC server was lost

    # --- lifecycle ---------------------------------------------------------
    def _default_engine(self):
        from host.engine.scheduler import Scheduler

        from host.llama.context import default_threads

        c = self.config
        # prompts too leave a core to the frame thread by default: ggml's spinning
        # thread pool slows down several-fold when it has more threads than free cores
        return Scheduler(self.model, n_ctx=c.n_ctx, n_batch=c.n_batch, n_seq_max=c.n_seq_max,
                         n_threads=c.n_threads or default_threads(),
                         n_threads_batch=c.n_threads_batch or c.n_threads or default_threads(),
                         max_prompt_tokens=c.max_prompt_tokens, kv_type=c.kv_type, prompt_share=c.prompt_share)

    def start(self, timeout: float = 60.0) -> "Worker":
        """Start the thread and wait until its context exists (errors surface here)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="relic-worker", daemon=True)
        _aborts.worker_running(True)  # an RPC loss now stops inference, not the process
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ShutdownError("the inference worker did not start in time")
        if self._start_error is not None:
            self._thread.join(timeout)
            _aborts.worker_running(False)
            raise self._start_error
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel everything, stop and join the thread; idempotent."""
        if self._thread is None:
            return
        self._stopping.set()
        for h in self._handles.values():
            h.request.cancel.set()
        self._requests.put(_SHUTDOWN)
        self._thread.join(0.5 if _aborts.stalled() is not None else timeout)  # blocked for good then
        if self._thread.is_alive() and _aborts.stalled() is not None:
            log.warning("inference worker left blocked after the RPC server loss (see host.llama.aborts)")
        elif self._thread.is_alive():  # pragma: no cover - a native call that never returns
            log.error("inference worker did not stop within %.1f s", timeout)
        self._thread = None
        _aborts.worker_running(False)

    # --- frame thread API --------------------------------------------------
    def submit(self, mod_id: str, *, on_token=None, on_done=None, **options) -> Handle:
        """Queue a generation for ``mod_id``; returns a Handle at once.

        Over the mod's queue limit, or after shutdown, the handle is already
        done with an error result (nothing is raised into the mod).
        """
        req = GenerateRequest(id=next(self._ids), mod_id=mod_id, **options)
        return self._enqueue(req, on_token, on_done)

    def call(self, mod_id: str, fn, *, on_done=None, merge: bool = False) -> Handle:
        """Run ``fn(engine)`` on the worker; the result dict is ``{"value": ...}`` or an error.

        ``merge``: a dict returned by fn is merged into the result instead.
        """
        req = CallRequest(id=next(self._ids), mod_id=mod_id, fn=fn, merge=merge)
        return self._enqueue(req, None, on_done)

    # --- sessions (the worker's scheduler owns them; the frame thread holds ids) ---
    def create_session(self, mod_id: str, *, system: str | None = None, sampler: dict | None = None,
                       overflow: str = "drop_oldest", template: str | None = None) -> int:
        """Create a chat session; bad settings raise here, on the caller's thread."""
        from host.engine import sampling
        from host.engine.session import OVERFLOW_POLICIES, SessionError

        if overflow not in OVERFLOW_POLICIES:
            raise SessionError(f"unknown overflow policy {overflow!r}; use one of {list(OVERFLOW_POLICIES)}")
        if sampler:
            sampling.resolve(sampler)
        if system is not None and not isinstance(system, str):
            raise SessionError("system must be a string")
        if template is not None:  # llama_chat_apply_template is a pure function: safe here
            self.model.apply_chat_template([{"role": "user", "content": "x"}], template=template)
        sid = next(self._ids)
        self.post(lambda e: e.create_session(sid, mod_id, system=system, sampler=sampler, overflow=overflow,
                                              template=template))
        return sid

    def say(self, mod_id: str, session_id: int, text: str, *, on_token=None, on_done=None, **options) -> Handle:
        """One user turn in a session; the reply streams like any generation."""
        return self.submit(mod_id, session=session_id, prompt=text, on_token=on_token, on_done=on_done, **options)

    def session_call(self, mod_id: str, session_id: int, method: str, *args, on_done=None) -> Handle:
        """reset/save/load a session on the worker (``method`` names a Scheduler method)."""
        if method not in ("reset_session", "save_session", "load_session"):
            raise ValueError(method)
        return self.call(mod_id, lambda e: getattr(e, method)(session_id, mod_id, *args), on_done=on_done)

    def new_session_id(self) -> int:
        return next(self._ids)

    def close_session(self, mod_id: str, session_id: int) -> None:
        self.post(lambda e: e.close_session(session_id, mod_id))

    def post(self, fn) -> None:
        """Run fn(engine) on the worker with no result (ordered with the mod's requests)."""
        if self._thread is not None and not self._stopping.is_set():
            self._requests.put(CallRequest(id=0, mod_id="", fn=fn))

    def _enqueue(self, req, on_token, on_done) -> Handle:
        handle = Handle(self, req, on_token, on_done)
        self.stats["submitted"] += 1
        if self._thread is None or self._stopping.is_set():
            self._complete_now(handle, "the inference worker is shut down")
        elif _aborts.stalled() is not None:
            self._complete_now(handle, self._stalled_message())
        elif self._pending.get(req.mod_id, 0) >= self.config.max_pending_per_mod:
            self._complete_now(handle, f"{QueueFullError.__name__}: mod {req.mod_id!r} already has "
                                       f"{self.config.max_pending_per_mod} requests in flight; wait for some "
                                       f"to finish")
        else:
            self._handles[req.id] = handle
            self._pending[req.mod_id] = self._pending.get(req.mod_id, 0) + 1
            self._requests.put(req)
        return handle

    def _stalled_message(self) -> str:
        return f"inference stopped: an RPC server was lost mid-generation ({_aborts.stalled()}); restart to resume"

    def _fail_stalled(self) -> None:
        """The worker thread is blocked for good (host.llama.aborts): finish every pending request now."""
        self._stalled_failed = True
        for h in list(self._handles.values()):
            self._events.put(DoneEvent(h.id, h.mod_id, error_result(self._stalled_message())))

    def _complete_now(self, handle: Handle, message: str) -> None:
        # delivered through the event queue so on_done still runs on the next pump, like any other result
        self._handles[handle.id] = handle
        self._pending[handle.mod_id] = self._pending.get(handle.mod_id, 0) + 1
        self._events.put(DoneEvent(handle.id, handle.mod_id, error_result(message)))

    def cancel(self, mod_id: str, request_id) -> bool:
        """Cancel one request, only if it belongs to ``mod_id``; False when unknown or done."""
        h = self._handles.get(request_id)
        if h is None or h.mod_id != mod_id:  # a mod cancels only its own requests
            return False
        h.cancel()
        return True

    def cancel_mod(self, mod_id: str) -> int:
        """Cancel every request of a mod (reload, quarantine); returns how many."""
        n = 0
        for h in self._handles.values():  # generations only: a queued session save still runs
            if h.mod_id == mod_id and isinstance(h.request, GenerateRequest) and not h.request.cancel.is_set():
                h.request.cancel.set()
                n += 1
        return n

    def forget_mod(self, mod_id: str) -> None:
        """Cancel a mod's requests, close its sessions, drop its callbacks (its runtime is gone)."""
        self.cancel_mod(mod_id)
        self.post(lambda e: e.close_mod_sessions(mod_id))
        for h in self._handles.values():
            if h.mod_id == mod_id:
                h.on_token = h.on_done = None

    def pending(self, mod_id: str | None = None) -> int:
        if mod_id is None:
            return len(self._handles)
        return self._pending.get(mod_id, 0)

    def pump(self, budget_s: float = 0.004, on_error=None) -> int:
        """Deliver queued events for up to ``budget_s`` seconds; returns how many.

        Callback exceptions go to ``on_error(handle, exc)`` (or the log); they
        never stop delivery to others.
        """
        deadline = time.perf_counter() + budget_s
        n = 0
        if not self._stalled_failed and _aborts.stalled() is not None:
            self._fail_stalled()
        while True:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                break
            n += 1
            handle = self._handles.get(ev.request_id)
            if handle is not None:
                self._deliver(handle, ev, on_error)
            if time.perf_counter() >= deadline:
                break
        self.stats["delivered_events"] += n
        return n

    def _deliver(self, handle: Handle, ev, on_error) -> None:
        if isinstance(ev, TokenEvent):
            fn, arg = handle.on_token, ev.text
        else:
            if isinstance(ev.result, dict) and "usage" in ev.result:  # a generation: say where it ran
                ev.result.setdefault("device", getattr(self.model, "placement", "CPU"))
            handle.result = ev.result
            del self._handles[handle.id]
            left = self._pending.get(handle.mod_id, 1) - 1
            if left:
                self._pending[handle.mod_id] = left
            else:
                self._pending.pop(handle.mod_id, None)
            fn, arg = handle.on_done, ev.result
        if fn is None:
            return
        try:
            fn(arg)
        except Exception as exc:  # a callback's failure is the caller's, not the worker's
            if on_error is not None:
                on_error(handle, exc)
            else:
                log.exception("callback of request %d (mod %s) failed", handle.id, handle.mod_id)

    def wait(self, handle: Handle, timeout: float = 60.0) -> dict:
        """Pump until ``handle`` is done (for scripts and tests, not for a frame loop)."""
        deadline = time.monotonic() + timeout
        while not handle.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"request {handle.id} not done after {timeout} s")
            if not self.pump(0.05):
                time.sleep(0.002)
        return handle.result

    # --- worker thread -----------------------------------------------------
    def _run(self) -> None:
        try:
            if self.config.nice:
                try:  # per-thread on Linux; threads llama/OpenMP create inherit it
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.config.nice)
                except (OSError, AttributeError):
                    pass
            engine = self._engine_factory()
        except BaseException as exc:  # reported by start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        emit = self._events.put
        try:
            while True:
                try:
                    msg = self._requests.get(block=not engine.busy)
                except queue.Empty:
                    msg = None
                while msg is not None:
                    if msg is _SHUTDOWN:
                        engine.cancel_all(emit)
                        self._drain_at_shutdown(engine, emit)
                        return
                    self._accept(engine, msg, emit)
                    try:
                        msg = self._requests.get_nowait()
                    except queue.Empty:
                        msg = None
                if engine.busy:
                    try:
                        engine.step(emit)
                    except Exception as exc:  # keep serving: fail what was running, not the worker
                        log.exception("inference step failed")
                        self._fail_running(engine, emit, exc)
        finally:
            engine.close()

    def _accept(self, engine, msg, emit) -> None:
        if isinstance(msg, CallRequest):
            if msg.cancel.is_set() and not self._stopping.is_set():
                emit(DoneEvent(msg.id, msg.mod_id, error_result("", reason="cancelled")))
                return
            try:
                value = msg.fn(engine)
                result = {"finish_reason": "stop", "error": None}
                if msg.merge and isinstance(value, dict):
                    result.update(value)
                else:
                    result["value"] = value
            except Exception as exc:
                if not msg.id:
                    log.warning("host call on the worker failed: %s", exc)
                result = error_result(str(exc) if isinstance(exc, RelicError) else f"{type(exc).__name__}: {exc}")
            if msg.id:  # id 0: fire-and-forget host calls
                emit(DoneEvent(msg.id, msg.mod_id, result))
            return
        if self._stopping.is_set():  # shutting down: generations are cancelled, not started
            emit(DoneEvent(msg.id, msg.mod_id, error_result("", reason="cancelled")))
            return
        try:
            engine.submit(msg, emit)
        except Exception as exc:
            log.exception("request %d could not be accepted", msg.id)
            emit(DoneEvent(msg.id, msg.mod_id, error_result(f"{type(exc).__name__}: {exc}")))

    def _fail_running(self, engine, emit, exc) -> None:
        for slot in list(getattr(engine, "slots", ())):
            try:
                engine._finish(slot, "error", emit, error=f"{type(exc).__name__}: {exc}")
            except Exception:  # pragma: no cover - last resort
                emit(DoneEvent(slot.req.id, slot.req.mod_id, error_result(str(exc))))
                engine.slots.remove(slot)

    def _drain_at_shutdown(self, engine, emit) -> None:
        """Generations still queued are cancelled; host calls (a session save) still run."""
        while True:
            try:
                msg = self._requests.get_nowait()
            except queue.Empty:
                return
            if isinstance(msg, CallRequest):
                self._accept(engine, msg, emit)
            elif msg is not _SHUTDOWN:
                emit(DoneEvent(msg.id, msg.mod_id, error_result("", reason="cancelled")))
