"""The inference worker: one thread that owns the llama context and does all inference.

Frame thread                         worker thread
  submit()/call() ── request queue ──►  Engine.submit / step / run (host/engine/service.py)
  pump()          ◄── event queue ────  TokenEvent / DoneEvent

- The frame thread never blocks on the worker: ``submit``/``call`` enqueue
  and return a :class:`Handle`; ``pump`` delivers queued events within a time
  budget.  Requests are typed (host/messages.py); each ends with one
  :class:`host.results.Result`, whose ``error_type`` names the class of a failure (host/errors.py).
- The worker never touches Lua; it only posts events.
- Cancellation is a per-request ``threading.Event``; ``_stopping`` is the
  worker-wide one.  The engine checks both between decode steps, inside
  prompt chunks (llama.cpp's abort callback) and inside long host calls
  (store ingest, session rendering), so every job stops within one step.
- A store ingest runs in bounded slices between decode steps
  (host/worker_jobs.py), so other mods' generations go on meanwhile; the
  ingesting mod's later requests wait behind it, in order.
- Oversized input is refused by its byte size here, on the frame thread,
  before anything is tokenized (``max_prompt_bytes``: no text longer than
  that can fit the prompt limit, whatever its tokens).
- ``shutdown`` cancels everything, waits ``shutdown_wait_s`` for the thread,
  and if it is still inside llama.cpp, leaks the native objects instead of
  freeing them under it (host.llama.hold_frees) and says so in the log.
- A worker thread that dies (a bug) is noticed by ``pump``: every pending and
  later request fails at once with error_type "worker_dead", and
  ``on_dead(message)`` is called once (the host prints it on the console).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass

from host.errors import (PromptTooLongError, QueueFullError, QuotaExceeded, ShutdownError, TemplateError,
                         WorkerDeadError)
from host.limits import DEFAULT_LIMITS, Limits
from host.llama import aborts as _aborts
from host.messages import (DoneEvent, GenerateRequest, HostCall, SessionCloseRequest, SessionCreateRequest,
                           TokenEvent, TokensEvent)
from host.results import Result
from host.worker_jobs import IDLE_SLICE_S, SLICE_S, HostJobs

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
    # the per-mod request quotas: host.limits (llm.max_pending, llm.max_pending_bytes), set from the config
    max_pending_per_mod: int = DEFAULT_LIMITS.llm.max_pending
    max_pending_bytes_per_mod: int = DEFAULT_LIMITS.llm.max_pending_bytes
    max_prompt_tokens: int | None = None  # default: the context size
    kv_type: str = "q8_0"  # KV cache element type ("f16", "q8_0", ...: host.llama.context.KV_TYPES)
    max_prompt_bytes: int | None = None  # default: max_prompt_tokens * the longest token's bytes
    shutdown_wait_s: float = 1.5  # then the thread is given up on (and native objects leaked)
    embed_model: object = None  # stores' embedding model: a GGUF path from set-up (None: no stores)
    limits: Limits = DEFAULT_LIMITS  # the host's limits tree (host.limits): the stores' `rag` group


def max_piece_bytes(model) -> int:
    """The longest text one token of the model's vocabulary stands for, in bytes (at least 1).

    N tokens never cover more than N times this many bytes, so a longer text
    cannot fit N tokens: the bound lets a prompt be refused before tokenizing.
    """
    C, ffi = model.lib.C, model.lib.ffi
    vptr = model.vocab.ptr
    buf = ffi.new("char[]", 256)
    longest = 1
    for t in range(model.vocab.n_tokens):
        for special in (False, True):
            n = C.llama_token_to_piece(vptr, t, buf, 256, 0, special)
            longest = max(longest, abs(n))
    return longest


class Handle:
    """The frame-thread side of one request: result, callbacks, cancel().

    ``on_token(text)`` and ``on_done(result)`` run on the frame thread inside
    ``Worker.pump``; ``on_done`` runs exactly once.
    """

    __slots__ = ("id", "mod_id", "request", "on_token", "on_done", "result", "size")

    def __init__(self, request, on_token=None, on_done=None, size: int = 0):
        self.id = request.id
        self.mod_id = request.mod_id
        self.request = request
        self.on_token = on_token
        self.on_done = on_done
        self.result = None
        self.size = size  # bytes of input this request holds (counted against the mod's pending bytes)

    def done(self) -> bool:
        return self.result is not None

    def cancel(self) -> None:
        """Ask the worker to stop this request; its on_done reports "cancelled"."""
        self.request.cancel.set()


def pump_until_done(pump, handle: Handle, timeout: float) -> Result:
    """Call ``pump(budget_s)`` until ``handle`` is done; TimeoutError after ``timeout`` seconds.

    For scripts and tests (a frame loop pumps once per frame instead)."""
    deadline = time.monotonic() + timeout
    while not handle.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"request {handle.id} not done after {timeout} s")
        if not pump(0.05):
            time.sleep(0.002)
    return handle.result


def _text_bytes(options: dict) -> int:
    """UTF-8 bytes of a generation's input text (prompt or message contents)."""
    n = 0
    if isinstance(options.get("prompt"), str):
        n += len(options["prompt"].encode("utf-8", "surrogatepass"))
    for m in options.get("messages") or ():
        n += len(str(m.get("content", "")).encode("utf-8", "surrogatepass")) + len(str(m.get("role", "")))
    return n


class Worker:
    """Owns the engine on its own thread; see the module docstring.

    Frame thread only: every public method except the ones the worker thread
    runs itself (``_run`` and what it calls).
    """

    def __init__(self, model, config: WorkerConfig | None = None, engine_factory=None, on_dead=None):
        self.model = model
        self.config = config or WorkerConfig()
        self._engine_factory = engine_factory or self._default_engine
        self.on_dead = on_dead  # on_dead(message), once, on the frame thread
        self._requests: queue.SimpleQueue = queue.SimpleQueue()  # frame -> worker
        self._events: queue.SimpleQueue = queue.SimpleQueue()  # worker -> frame
        self._handles: dict[int, Handle] = {}  # frame thread only
        self._pending: dict[str, int] = {}  # frame thread only: undelivered requests per mod
        self._pending_bytes: dict[str, int] = {}  # frame thread only: input bytes of those requests
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        # Set once by shutdown(); read by the worker and the engine between steps, inside
        # prompt chunks and inside long host calls (so every job stops within one step).
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self.dead: str | None = None  # why the worker thread died (frame thread; set by pump)
        self.leaked = False  # shutdown gave up on a live thread and leaked the native objects
        self.stats = {"submitted": 0, "delivered_events": 0}
        self._stalled_failed = False  # pending requests were failed after an RPC server was lost
        self.max_prompt_bytes = self.config.max_prompt_bytes  # set by the worker thread at start when None

    # --- lifecycle ---------------------------------------------------------
    def _default_engine(self):
        from host.engine.scheduler import Scheduler
        from host.engine.service import Engine
        from host.llama.context import default_threads

        c = self.config
        # prompts too leave a core to the frame thread by default: ggml's spinning
        # thread pool slows down several-fold when it has more threads than free cores
        sched = Scheduler(self.model, n_ctx=c.n_ctx, n_batch=c.n_batch, n_seq_max=c.n_seq_max,
                          n_threads=c.n_threads or default_threads(),
                          n_threads_batch=c.n_threads_batch or c.n_threads or default_threads(),
                          max_prompt_tokens=c.max_prompt_tokens, kv_type=c.kv_type,
                          stop_event=self._stopping)
        return Engine(sched, rag_model=c.embed_model, rag_limits=c.limits.rag)

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
        # Registered after host.llama's finalizers, so it runs before them at exit (atexit
        # is last-in first-out): a program that never called shutdown() still stops the
        # worker first, or holds the frees if it does not stop.
        atexit.register(self._at_exit)
        return self

    def _at_exit(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._stopping.set()
        self._requests.put(_SHUTDOWN)
        thread.join(self.config.shutdown_wait_s)
        if thread.is_alive():
            from host.llama import hold_frees

            hold_frees("the inference worker thread was still running at interpreter exit")

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel everything, stop the thread and wait for it; idempotent.

        Waits ``timeout`` (default ``config.shutdown_wait_s``).  A thread still
        running then is left behind with every native object it may use: they
        are leaked, never freed (``self.leaked``; logged).
        """
        if self._thread is None:
            return
        wait = self.config.shutdown_wait_s if timeout is None else timeout
        self._stopping.set()
        for h in self._handles.values():
            h.request.cancel.set()
        self._requests.put(_SHUTDOWN)
        self._thread.join(0.5 if _aborts.stalled() is not None else wait)  # blocked for good then
        if self._thread.is_alive() and _aborts.stalled() is not None:
            log.warning("inference worker left blocked after the RPC server loss (see host.llama.aborts)")
        elif self._thread.is_alive():
            from host.llama import hold_frees

            hold_frees("the inference worker thread was still running at shutdown")
            self.leaked = True
            log.error("the inference worker did not stop within %.1f s; its model and contexts are left "
                      "allocated (not freed under a running thread)", wait)
        self._thread = None
        atexit.unregister(self._at_exit)
        _aborts.worker_running(False)

    # --- frame thread API --------------------------------------------------
    def submit(self, mod_id: str, *, on_token=None, on_done=None, stream: bool = True, **options) -> Handle:
        """Queue a generation for ``mod_id``; returns a Handle at once.

        Over the mod's queue limit, with input larger than ``max_prompt_bytes``,
        after shutdown or once the worker died, the handle is already done with
        an error result whose ``error_type`` says which (nothing is raised into the mod).
        ``stream=False``: no token events at all (nobody will set ``handle.on_token``).
        """
        req = GenerateRequest(id=next(self._ids), mod_id=mod_id, stream=stream, **options)
        size = _text_bytes(options)
        if size > self.max_prompt_bytes:
            tokens = self.config.max_prompt_tokens or self.config.n_ctx
            return self._refuse(req, on_done, PromptTooLongError(
                f"the prompt is {size} bytes: too long for any prompt within the limit (the limit is {tokens} "
                f"tokens, so at most {self.max_prompt_bytes} bytes); shorten it"), on_token)
        return self._enqueue(req, on_token, on_done, size)

    def call(self, request_type: type, mod_id: str, *, on_done=None, size: int = 0, **fields) -> Handle:
        """Queue a host call (a ``HostCall`` subclass from host.messages) for ``mod_id``.

        Its result is ``{"finish_reason": "stop", "error": None, ...fields the
        engine returned}`` or an error result; ``size`` counts input bytes
        against the mod's pending bytes.
        """
        req = request_type(id=next(self._ids), mod_id=mod_id, **fields)
        return self._enqueue(req, None, on_done, size)

    def post(self, request_type: type, mod_id: str, **fields) -> None:
        """A fire-and-forget host call (no result), ordered with the mod's other requests."""
        if self._thread is not None and not self._stopping.is_set() and self.dead is None:
            self._requests.put(request_type(id=0, mod_id=mod_id, **fields))

    # --- sessions (the engine owns them; the frame thread holds ids) ---------
    def create_session(self, mod_id: str, *, system: str | None = None, sampler: dict | None = None,
                       overflow: str = "drop_oldest", template: str | None = None, memory=None,
                       priority: str | None = None) -> int:
        """Create a chat session; returns its id.  Bad settings raise here, on the caller's thread.

        ``priority``: the default of its turns ("player" | "normal" | "background").
        """
        from host.engine import sampling
        from host.engine.session import OVERFLOW_POLICIES
        from host.errors import SessionError
        from host.messages import check_priority

        check_priority(priority)
        if overflow not in OVERFLOW_POLICIES:
            raise SessionError(f"unknown overflow policy {overflow!r}; use one of {list(OVERFLOW_POLICIES)}")
        if sampler:
            sampling.resolve(sampler)
        if system is not None and not isinstance(system, str):
            raise SessionError("system must be a string")
        self.check_template(template)
        if template is not None:  # llama_chat_apply_template is a pure function: safe here
            self.model.apply_chat_template([{"role": "user", "content": "x"}], template=template)
        sid = next(self._ids)
        self.post(SessionCreateRequest, mod_id, session_id=sid, system=system, sampler=sampler,
                  overflow=overflow, template=template, memory=memory, priority=priority)
        return sid

    def check_template(self, template: str | None = None, mod_id: str | None = None) -> None:
        """Raise TemplateError (one line naming the fix) when chats cannot work: the model has no chat
        template and none was named (here, nor for the whole host).  ``mod_id``: whose chat it is
        (a router of several workers, host.remote.routing, asks that mod's)."""
        if template is None and self.model.template_override is None and self.model.chat_template() is None:
            raise TemplateError(f"{self.model.path.name} has no chat template (a base model?): start with "
                                "--template NAME (e.g. chatml), or pass template= to llm.session / llm.chat")

    def say(self, mod_id: str, session_id: int, text: str, *, on_token=None, on_done=None, **options) -> Handle:
        """One user turn in a session; the reply streams like any generation."""
        return self.submit(mod_id, session=session_id, prompt=text, on_token=on_token, on_done=on_done, **options)

    def new_session_id(self) -> int:
        return next(self._ids)

    def share_ids(self, other: "Worker") -> None:
        """Draw request and session ids from ``other``'s counter from now on (several workers behind one
        router, host.remote.routing: ids never collide)."""
        floor = next(self._ids)
        while next(other._ids) < floor:
            pass
        self._ids = other._ids

    def close_session(self, mod_id: str, session_id: int) -> None:
        self.post(SessionCloseRequest, mod_id, session_id=session_id)

    def _enqueue(self, req, on_token, on_done, size: int = 0) -> Handle:
        self.stats["submitted"] += 1
        if self.dead is not None:
            return self._refuse(req, on_done, WorkerDeadError(self.dead), on_token)
        if self._thread is None or self._stopping.is_set():
            return self._refuse(req, on_done, ShutdownError("the inference worker is shut down"), on_token)
        if _aborts.stalled() is not None:
            return self._refuse(req, on_done, WorkerDeadError(self._stalled_message()), on_token)
        if self._pending.get(req.mod_id, 0) >= self.config.max_pending_per_mod:
            return self._refuse(req, on_done, QueueFullError(
                f"mod {req.mod_id!r} already has {self.config.max_pending_per_mod} requests in flight; wait "
                f"for some to finish"), on_token)
        cap = self.config.max_pending_bytes_per_mod
        if size and self._pending_bytes.get(req.mod_id, 0) + size > cap:
            return self._refuse(req, on_done, QuotaExceeded(
                f"mod {req.mod_id!r} has {self._pending_bytes.get(req.mod_id, 0)} bytes of input in flight; "
                f"{size} more would pass its quota of {cap} bytes: wait for some requests to finish"), on_token)
        handle = Handle(req, on_token, on_done, size)
        self._track(handle)
        self._requests.put(req)
        return handle

    def _stalled_message(self) -> str:
        return f"inference stopped: an RPC server was lost mid-generation ({_aborts.stalled()}); restart to resume"

    def _fail_stalled(self) -> None:
        """The worker thread is blocked for good (host.llama.aborts): finish every pending request now."""
        self._stalled_failed = True
        for h in list(self._handles.values()):
            self._events.put(DoneEvent(h.id, h.mod_id, Result.of_exception(WorkerDeadError(self._stalled_message()))))

    def fail(self, mod_id: str, exc: BaseException, *, on_token=None, on_done=None) -> Handle:
        """A handle that is already done with ``exc`` as its error (delivered at the next pump)."""
        return self._refuse(GenerateRequest(id=next(self._ids), mod_id=mod_id), on_done, exc, on_token)

    def _refuse(self, req, on_done, exc, on_token=None) -> Handle:
        # delivered through the event queue so on_done still runs on the next pump, like any other result
        handle = Handle(req, on_token, on_done)
        self._track(handle)
        self._events.put(DoneEvent(handle.id, handle.mod_id, Result.of_exception(exc)))
        return handle

    def _track(self, handle: Handle) -> None:
        self._handles[handle.id] = handle
        self._pending[handle.mod_id] = self._pending.get(handle.mod_id, 0) + 1
        if handle.size:
            self._pending_bytes[handle.mod_id] = self._pending_bytes.get(handle.mod_id, 0) + handle.size

    def cancel(self, mod_id: str, request_id) -> bool:
        """Cancel one request, only if it belongs to ``mod_id``; False when unknown or done."""
        h = self._handles.get(request_id)
        if h is None or h.mod_id != mod_id:  # a mod cancels only its own requests
            return False
        h.cancel()
        return True

    def cancel_mod(self, mod_id: str) -> int:
        """Cancel every request of a mod (reload, quarantine); returns how many.

        A queued session save still runs; store calls and generations stop.
        """
        n = 0
        for h in self._handles.values():
            if h.mod_id == mod_id and not h.request.cancel.is_set() and not _runs_anyway(h.request):
                h.request.cancel.set()
                n += 1
        return n

    def focus(self, mod_id: str | None, session_id: int | None = None) -> None:
        """The player now talks to ``mod_id`` (one of its sessions, or all of it): its generations run at
        priority "player" until the focus moves.  ``None`` clears it (nobody is addressed)."""
        from host.messages import FocusRequest

        if mod_id is not None and not isinstance(mod_id, str):
            raise TypeError("focus(mod_id): a mod id string or None")
        self.post(FocusRequest, mod_id or "", session_id=session_id)

    def hello(self, mod_id: str) -> None:
        """Optional: count ``mod_id`` as present for fair admission until forget_mod (a game whose mods
        all talk can call it at load so even a mod's first request finds a sequence; the default is
        the FAIR_WINDOW_S window of recent requests, which costs a lone busy mod nothing)."""
        from host.messages import ModHelloRequest

        self.post(ModHelloRequest, mod_id)

    def forget_mod(self, mod_id: str) -> None:
        """Cancel a mod's requests, close its sessions, drop its callbacks (its runtime is gone)."""
        from host.messages import ModForgetRequest

        self.cancel_mod(mod_id)
        self.post(ModForgetRequest, mod_id)
        for h in self._handles.values():
            if h.mod_id == mod_id:
                h.on_token = h.on_done = None

    def pending(self, mod_id: str | None = None) -> int:
        """Requests not yet delivered as done (of one mod, or all)."""
        if mod_id is None:
            return len(self._handles)
        return self._pending.get(mod_id, 0)

    def pending_bytes(self, mod_id: str) -> int:
        """Input bytes held by a mod's requests not yet done."""
        return self._pending_bytes.get(mod_id, 0)

    def pump(self, budget_s: float = 0.004, on_error=None) -> int:
        """Deliver queued events for up to ``budget_s`` seconds; returns how many.

        Callback exceptions go to ``on_error(handle, exc)`` (or the log); they
        never stop delivery to others.  Also notices a dead worker thread.
        """
        deadline = time.perf_counter() + budget_s
        n = 0
        if not self._stalled_failed and _aborts.stalled() is not None:
            self._fail_stalled()
        while True:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                if self.dead is None and self._thread is not None and not self._thread.is_alive() \
                        and not self._stopping.is_set():
                    self._died(on_error)
                break
            n += 1
            if type(ev) is TokensEvent:
                for rid, text in ev.items:
                    handle = self._handles.get(rid)
                    if handle is not None and handle.on_token is not None:
                        self._call(handle, handle.on_token, text, on_error)
            else:
                handle = self._handles.get(ev.request_id)
                if handle is not None:
                    self._deliver(handle, ev, on_error)
            if time.perf_counter() >= deadline:
                break
        self.stats["delivered_events"] += n
        return n

    def _died(self, on_error) -> None:
        """The worker thread is gone (a bug): fail everything pending, refuse what comes."""
        self.dead = ("the inference worker thread died (see the host log); requests fail until the host "
                     "restarts")
        log.critical("%s", self.dead)
        for handle in list(self._handles.values()):
            self._deliver(handle, DoneEvent(handle.id, handle.mod_id, Result.of_exception(WorkerDeadError(self.dead))),
                          on_error)
        if self.on_dead is not None:
            try:
                self.on_dead(self.dead)
            except Exception:  # pragma: no cover - a console that fails
                log.exception("on_dead failed")

    def _deliver(self, handle: Handle, ev, on_error) -> None:
        if isinstance(ev, TokenEvent):
            fn, arg = handle.on_token, ev.text
        else:
            result = ev.result
            if isinstance(handle.request, GenerateRequest) and result.device is None:  # say where it ran
                result = result.with_(device=getattr(self.model, "placement", "CPU"))
            handle.result = result
            del self._handles[handle.id]
            left = self._pending.get(handle.mod_id, 1) - 1
            if left:
                self._pending[handle.mod_id] = left
            else:
                self._pending.pop(handle.mod_id, None)
            if handle.size:
                left = self._pending_bytes.get(handle.mod_id, 0) - handle.size
                if left > 0:
                    self._pending_bytes[handle.mod_id] = left
                else:
                    self._pending_bytes.pop(handle.mod_id, None)
            fn, arg = handle.on_done, result
        if fn is not None:
            self._call(handle, fn, arg, on_error)

    @staticmethod
    def _call(handle: Handle, fn, arg, on_error) -> None:
        try:
            fn(arg)
        except Exception as exc:  # a callback's failure is the caller's, not the worker's
            if on_error is not None:
                on_error(handle, exc)
            else:
                log.exception("callback of request %d (mod %s) failed", handle.id, handle.mod_id)

    def wait(self, handle: Handle, timeout: float = 60.0) -> Result:
        """Pump until ``handle`` is done (for scripts and tests, not for a frame loop)."""
        return pump_until_done(self.pump, handle, timeout)

    # --- worker thread -----------------------------------------------------
    def _run(self) -> None:
        try:
            if self.config.nice:
                try:  # per-thread on Linux; threads llama/OpenMP create inherit it
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.config.nice)
                except (OSError, AttributeError):
                    pass
            engine = self._engine_factory()
            if self.max_prompt_bytes is None:  # read by the frame thread only after start() returns
                tokens = self.config.max_prompt_tokens or self.config.n_ctx
                self.max_prompt_bytes = tokens * max_piece_bytes(self.model)
        except BaseException as exc:  # reported by start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        emit = self._events.put
        jobs = HostJobs()  # long host calls (a store ingest), advanced a slice before each decode step
        try:
            requests = self._requests
            waiting = lambda: not requests.empty()  # noqa: E731
            while True:
                # one consumer (this thread): a non-empty queue cannot become empty before get
                if not engine.busy and not jobs.busy:
                    msg = requests.get()
                else:
                    msg = requests.get_nowait() if not requests.empty() else None
                while msg is not None:
                    if msg is _SHUTDOWN:
                        engine.cancel_all(emit)
                        self._drain_at_shutdown(engine, emit, jobs.cancel_all(emit))
                        return
                    self._accept(engine, msg, emit, jobs)
                    msg = requests.get_nowait() if not requests.empty() else None
                if jobs.due(engine.busy):
                    for msg in jobs.advance(emit, SLICE_S if engine.busy else IDLE_SLICE_S, waiting):
                        self._accept(engine, msg, emit, jobs)
                if engine.busy:
                    try:
                        t_step = time.perf_counter()
                        engine.step(emit)
                        jobs.stepped(time.perf_counter() - t_step)
                    except Exception as exc:  # keep serving: fail what was running, not the worker
                        log.exception("inference step failed")
                        engine.fail_running(emit, exc)
        except BaseException:
            log.critical("the inference worker thread died", exc_info=True)
            raise
        finally:
            engine.close()  # this thread created every native object the engine holds

    def _cancelled_fn(self, msg):
        return lambda: msg.cancel.is_set() or self._stopping.is_set()

    def _accept(self, engine, msg, emit, jobs=None) -> None:
        if jobs is not None and jobs.holds(msg):  # behind its mod's running job: accepted when it ends
            return
        if isinstance(msg, HostCall):
            if msg.cancel.is_set() and not self._stopping.is_set():
                if msg.id:
                    emit(DoneEvent(msg.id, msg.mod_id, Result.cancelled()))
                return
            steps = None
            if jobs is not None:
                steps = engine.job(msg, self._cancelled_fn(msg))
            if steps is not None:
                jobs.start(msg, steps, self._cancelled_fn(msg))
                return
            try:
                result = Result.of_call(engine.run(msg, self._cancelled_fn(msg)))
            except Exception as exc:
                if not msg.id:
                    log.warning("host call %s on the worker failed: %s", type(msg).__name__, exc)
                result = Result.of_exception(exc)
            if msg.id:  # id 0: fire-and-forget host calls
                emit(DoneEvent(msg.id, msg.mod_id, result))
            return
        if self._stopping.is_set():  # shutting down: generations are cancelled, not started
            emit(DoneEvent(msg.id, msg.mod_id, Result.cancelled()))
            return
        try:
            engine.submit(msg, emit)
        except Exception as exc:
            log.exception("request %d could not be accepted", msg.id)
            emit(DoneEvent(msg.id, msg.mod_id, Result.of_exception(exc)))

    def _drain_at_shutdown(self, engine, emit, held=()) -> None:
        """Generations still queued (or ``held`` behind a job) are cancelled; host calls (a session
        save) still run.

        Long host calls see the stop flag and end early as cancelled.
        """
        for msg in held:
            if isinstance(msg, HostCall):
                self._accept(engine, msg, emit)
            else:
                emit(DoneEvent(msg.id, msg.mod_id, Result.cancelled()))
        while True:
            try:
                msg = self._requests.get_nowait()
            except queue.Empty:
                return
            if isinstance(msg, HostCall):
                self._accept(engine, msg, emit)
            elif msg is not _SHUTDOWN:
                emit(DoneEvent(msg.id, msg.mod_id, Result.cancelled()))


def _runs_anyway(request) -> bool:
    """Requests a mod's reload does not cancel: saving and closing its sessions."""
    from host.messages import SessionCloseRequest, SessionSaveRequest

    return isinstance(request, (SessionSaveRequest, SessionCloseRequest))
