"""The remote engine: the worker's engine interface (host/engine/service.py) over an inference server.

The worker thread drives it exactly like the embedded engine (busy, submit,
step, run, fail_running, cancel_all, close), so nothing above the worker
knows where the model runs.

Threads: each running generation has a *reader thread* that makes the HTTP
call and puts the decoded stream events on one inbox queue; ``step`` (the
worker thread) waits at most ``POLL_S`` on that inbox, so a slow, hung or
dead server never holds the worker: cancels, deadlines and new requests are
seen within one poll.  A cancel ends the request at once; its reader leaves
at the next event and closes the connection, which is how the server learns
to stop generating.  The frame thread never touches the network.

Sessions live here (their messages, as host.engine.session.SessionState) and
each is pinned to one server slot (llama-server: ``id_slot`` with
``cache_prompt``), so a turn re-reads only the new text.  When the server
says a conversation no longer fits, the oldest turn pair is dropped and the
turn is sent again (overflow "drop_oldest", "shift" and "summarize" all act
so on a server; "error" fails the turn with prompt_too_long).
"""

from __future__ import annotations

import copy
import json
import logging
import queue
import re
import threading
import time
from pathlib import Path
from typing import Callable

from host.engine import sampling
from host.engine.session import OVERFLOW_POLICIES, SAVE_VERSION, SessionState, read_header
from host.errors import (BackendDownError, OptionError, PromptTooLongError, RelicError,
                         SessionError, UnsupportedError, error_type_of)
from host.messages import (DoneEvent, FocusRequest, GenerateRequest, HostCall, ModForgetRequest, ModHelloRequest,
                           SessionCloseRequest, SessionCreateRequest, SessionInfoRequest, SessionLoadRequest,
                           SessionResetRequest, SessionSaveRequest, StatsRequest, TokensEvent)
from host.rag.calls import StoreCalls
from host.remote import llama_server, openai
from host.remote.client import StreamAbort
from host.results import Result, Timings, Usage

log = logging.getLogger("relic.remote")

POLL_S = 0.01  # the longest step() waits for stream events: the worker's reaction time to new requests
_END = object()  # a reader's "the stream ended" marker on the inbox
_PRIORITY = {"player": 0, "normal": 1, "background": 2}

# Text a chat template would read as its own markers (ChatML, Llama, Gemma, Mistral, ...): inside a
# message it is made inert with a word joiner after its first character, so message content stays
# plain text on a server as it does embedded (host.engine.chat_tokens).
GENERIC_SPECIALS = re.compile(r"<\|[^<>|\s]{1,64}\|>|</?s>|\[/?INST\]|\[/?SYSTEM_PROMPT\]|<(?:start|end)_of_turn>"
                              r"|<\|?(?:im_start|im_end|endoftext|eot_id)\|?>")
_JOINER = "\u2060"


def plain_text(content: str, pattern=None) -> str:
    """``content`` with every chat-control marker broken by a word joiner (so it stays message text)."""
    def inert(m):
        s = m.group(0)
        return s[0] + _JOINER + s[1:]

    out = GENERIC_SPECIALS.sub(inert, content)
    return pattern.sub(inert, out) if pattern is not None else out


class _Job:
    """One generation on the server; fields touched by the worker thread only, except ``abandon``."""

    __slots__ = ("req", "session", "messages", "slot", "parts", "finish", "counts", "timings", "thread",
                 "t_start", "t_first", "t_queued", "deadline", "done", "abandon", "abort", "new")

    def __init__(self, req: GenerateRequest, session: SessionState | None, messages, deadline: float):
        self.req = req
        self.session = session
        self.messages = messages  # chat messages sent (None: a raw prompt)
        self.slot = None
        self.parts: list[str] = []
        self.finish: str | None = None
        self.counts = {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}
        self.timings: dict | None = None
        self.thread: threading.Thread | None = None
        self.t_start = 0.0
        self.t_first = 0.0
        self.t_queued = time.monotonic()
        self.deadline = deadline
        self.done = False
        # set by the worker when the request ends early (cancel, deadline): its reader stops and closes
        self.abandon = threading.Event()
        # and its connection is shut at once, even while the server has not answered yet
        self.abort = StreamAbort()
        self.new: list = []  # a session turn's new messages (the user line, or a tool result), kept at the end


class RemoteEngine:
    """Generations and sessions on one server (``client``: host.remote.client.ServerClient).

    ``dialect``: "llama-server" or "openai".  ``info``: what the server said at
    start (host.remote.dialect.ServerInfo), or None when it was down then
    (asked again before the next request).  ``max_streams``: generations
    streamed at once (default: the server's slots, else 8); the rest wait
    here, player priority first.  ``request_timeout_s``: a generation still
    running after this long fails as backend_down.  ``rag_model``: the
    embedding model for stores and session memory (embedded, like the
    local engine's).  ``special_pattern``: a regex of the model's control-token
    texts when a local tokenizer is known (host.engine.chat_tokens).
    """

    def __init__(self, client, dialect: str, *, info=None, model: str | None = None, max_streams: int | None = None,
                 request_timeout_s: float = 300.0, rag_model=None, stop_event: threading.Event | None = None,
                 special_pattern=None, rag_limits=None):
        if dialect not in ("llama-server", "openai"):
            raise OptionError(f"unknown server dialect {dialect!r}: use 'llama-server' or 'openai'")
        self.client = client
        self.dialect = dialect
        self.d = llama_server if dialect == "llama-server" else openai
        self.info = info
        self.model_name = model
        self.max_streams = max_streams or (info.slots if info is not None and info.slots else 8)
        self.request_timeout_s = request_timeout_s
        self.special_pattern = special_pattern
        self._stop = stop_event or threading.Event()
        self._info_lock = threading.Lock()  # reader threads may probe a server that was down at start
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # reader threads -> worker thread
        self.running: list[_Job] = []
        self.waiting: list[_Job] = []
        self.sessions: dict[int, SessionState] = {}
        self._slots: dict[int, int] = {}  # session id -> server slot
        self._next_slot = 0
        self.requests_sent = 0
        self.focus: tuple | None = None  # (mod id, session id or None): the player talks to it
        self.stores = StoreCalls(rag_model, rag_limits)  # stores embed with the embedded model
        self._handlers: dict[type, Callable] = {
            SessionCreateRequest: self._session_create,
            SessionResetRequest: self._session_reset,
            SessionCloseRequest: lambda r, _c: self._session_close(r.session_id, r.mod_id),
            SessionSaveRequest: self._session_save,
            SessionLoadRequest: self._session_load,
            SessionInfoRequest: lambda r, _c: {"value": copy.deepcopy(self._session(r.session_id, r.mod_id))},
            ModHelloRequest: lambda r, _c: None,
            FocusRequest: lambda r, _c: setattr(self, "focus", (r.mod_id, r.session_id) if r.mod_id else None),
            ModForgetRequest: lambda r, _c: self._forget_mod(r.mod_id),
            StatsRequest: lambda r, _c: {"value": {"decode_calls": self.requests_sent, "running": len(self.running),
                                                   "waiting": len(self.waiting), "sessions": len(self.sessions),
                                                   "n_seq_max": self.max_streams, "preemptions": 0,
                                                   "focus": list(self.focus) if self.focus else None}},
            **self.stores.handlers(),
        }

    # --- generations (worker thread) ------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    def submit(self, req: GenerateRequest, emit) -> None:
        """Check what the server cannot do now (raises: the worker fails the request), then queue it."""
        cfg = sampling.resolve(req.sampler, temperature=req.temperature, seed=req.seed)
        if req.template is not None:
            raise UnsupportedError("template= is not supported on a server: it applies its own chat template")
        session = None
        messages = None
        if req.session is not None:
            session = self._session(req.session, req.mod_id)
            cfg = sampling.resolve(session.sampler, temperature=req.temperature, seed=req.seed) \
                if session.sampler and req.sampler is None else cfg
            messages = None  # built when the turn starts (after earlier turns of the session ended)
        elif req.messages is not None:
            messages = [{"role": m["role"], "content": plain_text(m["content"], self.special_pattern)}
                        for m in req.messages]
        elif self.dialect == "openai" and req.parse_special:
            raise UnsupportedError(f"special = true is not supported on {openai.NAME}")
        self._body(req, messages or [{"role": "user", "content": "x"}], cfg, None, check_only=True)
        deadline = time.monotonic() + self.request_timeout_s
        wanted = getattr(req, "deadline", None)  # a request's own monotonic deadline, when requests carry one
        if isinstance(wanted, (int, float)):
            deadline = min(deadline, wanted)
        self.waiting.append(_Job(req, session, messages, deadline))

    def _body(self, req, messages, cfg, slot, *, check_only=False, abort=None):
        """(path, body) of the call; with check_only, only what can fail before sending is done."""
        if self.dialect == "llama-server":
            if req.prompt is not None and req.session is None and req.messages is None:
                if check_only:
                    llama_server.sampling(cfg), llama_server.grammar_fields(req.grammar)
                    return None
                return lambda: llama_server.generate_call(self.client, req, cfg, slot, abort)
            path_body = llama_server.chat_call(req, messages, cfg, slot)
        else:
            model = self.model_name or (self.info.model if self.info is not None and self.info.model != "?" else None)
            if req.prompt is not None and req.session is None and req.messages is None:
                path_body = openai.generate_call(req, cfg, model)
            else:
                path_body = openai.chat_call(req, messages, cfg, model)
        return None if check_only else (lambda: path_body)

    def step(self, emit) -> None:
        """Start what may start, end what was cancelled or is past its deadline, deliver stream events."""
        self._start_waiting()
        now = time.monotonic()
        for job in list(self.running) + list(self.waiting):
            if job.req.cancel.is_set() or self._stop.is_set():
                self._finish(job, "cancelled", emit)
            elif now > job.deadline:
                self._finish(job, "error", emit, BackendDownError(
                    f"the server at {self.client.url} did not finish this request within its time limit"))
        if not self.running:
            if self.waiting:
                time.sleep(POLL_S)  # waiting on a busy session only
            return
        try:
            first = self._inbox.get(timeout=POLL_S)
        except queue.Empty:
            return
        items = [first]
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        tokens: list = []
        for job, item in items:
            if job.done:
                continue
            if item is _END or isinstance(item, BaseException):
                if tokens:
                    emit(TokensEvent(tuple(tokens)))
                    tokens = []
                if item is _END:
                    self._finish(job, job.finish or "stop", emit)
                else:
                    self._failed(job, item, emit)
                continue
            chunk = self.d.parse(item)
            if chunk.text:
                if not job.t_first:
                    job.t_first = time.monotonic()
                job.parts.append(chunk.text)
                if job.req.stream:
                    tokens.append((job.req.id, chunk.text))
            for key in ("prompt_tokens", "cached_tokens", "completion_tokens"):
                value = getattr(chunk, key)
                if value is not None:
                    job.counts[key] = int(value)
            if chunk.timings:
                job.timings = chunk.timings
            if chunk.finish:
                job.finish = chunk.finish
        if tokens:
            emit(TokensEvent(tuple(tokens)))

    def _start_waiting(self) -> None:
        if not self.waiting or len(self.running) >= self.max_streams:
            return
        per_mod: dict[str, int] = {}
        for job in self.running:
            per_mod[job.req.mod_id] = per_mod.get(job.req.mod_id, 0) + 1
        order = sorted(self.waiting, key=lambda j: (_PRIORITY[self._priority(j)], per_mod.get(j.req.mod_id, 0)))
        for job in order:
            if len(self.running) >= self.max_streams:
                break
            if job.session is not None and job.session.busy:
                continue  # one turn of a session at a time, in order
            self.waiting.remove(job)
            self._start(job)
            per_mod[job.req.mod_id] = per_mod.get(job.req.mod_id, 0) + 1

    def _priority(self, job: _Job) -> str:
        """The request's priority, else its session's default, else "normal"; the focus makes it "player"."""
        if self.focus is not None and job.req.mod_id == self.focus[0] and \
                self.focus[1] in (None, job.req.session):
            return "player"
        name = job.req.priority or (job.session.priority if job.session is not None else None) or "normal"
        return name if name in _PRIORITY else "normal"

    def _start(self, job: _Job) -> None:
        req = job.req
        cfg = sampling.resolve((job.session.sampler if job.session is not None and req.sampler is None
                                else req.sampler), temperature=req.temperature, seed=req.seed)
        if job.session is not None:
            se = job.session
            se.busy = True
            job.slot = self._slots.get(se.id)
            # the turn adds the user's line, or the given messages (a tool's result, in a turn with tools)
            job.new = ([dict(m) for m in req.messages] if req.messages is not None
                       else [{"role": "user", "content": req.prompt or ""}])
            shown = [{"role": m["role"], "content": plain_text(m["content"], self.special_pattern)}
                     for m in job.new]
            note = self._memory_note(se, req.prompt or "") if req.messages is None else ""
            if note:  # retrieved memory goes into this turn only, never into the saved conversation
                shown[-1]["content"] = f"{note}\n\n{shown[-1]['content']}"
            system = se.system_text()
            job.messages = ([{"role": "system", "content": plain_text(system, self.special_pattern)}]
                            if system else []) + [
                {"role": m["role"], "content": plain_text(m["content"], self.special_pattern)}
                for m in se.messages] + shown
        call = self._body(req, job.messages, cfg, job.slot, abort=job.abort)
        job.t_start = time.monotonic()
        self.running.append(job)
        self.requests_sent += 1
        job.thread = threading.Thread(target=self._read, args=(job, call), name=f"relic-remote-{req.id}",
                                      daemon=True)
        job.thread.start()

    def _read(self, job: _Job, call) -> None:
        """Reader thread: one HTTP call, its events onto the inbox (never touches engine state)."""
        inbox = self._inbox
        try:
            if self.info is None:
                self._probe()
            path, body = call()
            if job.abandon.is_set():
                return
            with self.client.stream(path, body, job.abort) as events:
                for data in events:
                    if job.abandon.is_set():
                        return  # leaving the block closes the connection: the server stops
                    inbox.put((job, data))
            inbox.put((job, _END))
        except BaseException as exc:  # every failure travels to the worker as the job's result
            if not job.abandon.is_set():
                inbox.put((job, exc))

    def _probe(self) -> None:
        """Ask a server that was down at start what it serves (a reader thread; raises when still down)."""
        with self._info_lock:
            if self.info is None:
                self.info = (llama_server.probe(self.client) if self.dialect == "llama-server"
                             else openai.probe(self.client, self.model_name))
                log.info("%s", self.info.line())

    def _failed(self, job: _Job, exc: BaseException, emit) -> None:
        se = job.session
        if isinstance(exc, PromptTooLongError) and se is not None and se.overflow != "error" \
                and len(se.messages) >= 2 and not job.parts:
            # the conversation outgrew the server's context: drop the oldest exchange (a user line and the
            # replies and tool results after it), send the turn again
            cut = next((i for i, m in enumerate(se.messages) if i > 0 and m.get("role") == "user"),
                       len(se.messages))
            del se.messages[:cut]
            se.dropped += cut
            se.busy = False
            job.abandon.set()
            self.running.remove(job)
            retry = _Job(job.req, se, None, job.deadline)
            self.waiting.insert(0, retry)
            return
        self._finish(job, "error", emit, exc)

    def _finish(self, job: _Job, reason: str, emit, exc: BaseException | None = None) -> None:
        job.done = True
        job.abandon.set()
        if job.thread is not None and job.thread.is_alive():
            job.abort.abort()  # ended here (cancel, deadline, shutdown): the server learns at once
        if job in self.running:
            self.running.remove(job)
        if job in self.waiting:
            self.waiting.remove(job)
        text = "".join(job.parts)
        se = job.session
        if se is not None and job.t_start:
            se.busy = False
            if reason in ("stop", "length"):
                se.messages += job.new + [{"role": "assistant", "content": text}]
        now = time.monotonic()
        t0 = job.t_start or now
        t_first = job.t_first or now
        n_gen = job.counts["completion_tokens"] or (len(job.parts) if job.parts else 0)
        gen_s = max(now - t_first, 1e-9)
        usage = Usage(prompt_tokens=job.counts["prompt_tokens"], cached_tokens=job.counts["cached_tokens"],
                      completion_tokens=n_gen)
        server = job.timings or {}
        timings = Timings(queue_ms=max(0.0, (t0 - job.t_queued) * 1000) if t0 else 0.0,
                          prompt_ms=float(server.get("prompt_ms", 0.0)) or (t_first - t0) * 1000,
                          first_token_ms=(t_first - job.t_queued) * 1000 if job.t_first else 0.0,
                          generation_ms=gen_s * 1000,
                          tokens_per_second=n_gen / gen_s if n_gen > 1 else 0.0)
        if exc is not None:
            message = str(exc) if isinstance(exc, RelicError) else f"{type(exc).__name__}: {exc}"
            error, error_type = message, error_type_of(exc)
        else:
            error, error_type = None, None
        result = Result.generated(text=text, finish_reason=reason, usage=usage, timings=timings, error=error,
                                  error_type=error_type or "error",
                                  session_chars=se.text_size() if se is not None else None)
        grammar = job.req.grammar
        if grammar is not None and getattr(grammar, "returns_value", False) and reason in ("stop", "length"):
            value, problem = grammar.parse_result(text)  # Relic's own check: a server is never trusted blindly
            result = result.with_(value=value)
            if problem:
                result = result.with_(error=problem, error_type="schema")
        emit(DoneEvent(job.req.id, job.req.mod_id, result))

    def fail_running(self, emit, exc: BaseException) -> None:
        """Fail every running generation with ``exc``."""
        for job in list(self.running):
            self._finish(job, "error", emit, exc)

    def cancel_all(self, emit) -> None:
        """Finish everything as cancelled (shutdown)."""
        for job in list(self.waiting) + list(self.running):
            self._finish(job, "cancelled", emit)

    # --- host calls (worker thread) -------------------------------------------------
    def run(self, call: HostCall, cancelled: Callable[[], bool]) -> dict:
        """Handle one host call; the returned dict is merged into its result."""
        handler = self._handlers.get(type(call))
        if handler is None:
            raise OptionError(f"unknown host call {type(call).__name__}")
        out = handler(call, cancelled)
        return out if isinstance(out, dict) else {}

    def job(self, call: HostCall, cancelled: Callable[[], bool]):
        """A store ingest as a generator of bounded steps (host.rag.calls), so streams are read
        between its slices; None for every other call (they run whole, in ``run``)."""
        return self.stores.job(call, cancelled)

    def _session(self, session_id: int, mod_id: str) -> SessionState:
        se = self.sessions.get(session_id)
        if se is None or se.mod_id != mod_id:
            raise SessionError(f"unknown session {session_id}")
        return se

    def _pin(self, session_id: int) -> None:
        """Give a session its own server slot (round robin over the server's slots)."""
        if self.dialect == "llama-server" and self.info is not None and self.info.slots:
            self._slots[session_id] = self._next_slot % self.info.slots
            self._next_slot += 1

    def _session_create(self, r: SessionCreateRequest, _c) -> dict:
        if r.overflow not in OVERFLOW_POLICIES:
            raise SessionError(f"unknown overflow policy {r.overflow!r}; use one of {OVERFLOW_POLICIES}")
        if r.sampler:
            sampling.resolve(r.sampler)
        if r.template is not None:
            raise UnsupportedError("template= is not supported on a server: it applies its own chat template")
        se = SessionState(r.session_id, r.mod_id, r.system, r.sampler, r.overflow, None, memory=r.memory,
                          priority=r.priority)
        self.sessions[r.session_id] = se
        self._pin(r.session_id)
        return {"value": {"id": r.session_id, "session_chars": se.text_size()}}

    def _session_reset(self, r: SessionResetRequest, _c) -> dict:
        se = self._session(r.session_id, r.mod_id)
        if se.busy:
            raise SessionError("cannot reset a session while it is answering; cancel the turn first")
        se.messages, se.dropped, se.summary = [], 0, ""
        return {"value": {"id": r.session_id, "session_chars": se.text_size()}}

    def _session_close(self, session_id: int, mod_id: str) -> None:
        se = self.sessions.get(session_id)
        if se is not None and se.mod_id == mod_id:
            del self.sessions[session_id]
            self._slots.pop(session_id, None)

    def _forget_mod(self, mod_id: str) -> None:
        for sid in [i for i, se in self.sessions.items() if se.mod_id == mod_id]:
            self._session_close(sid, mod_id)

    def _session_save(self, r: SessionSaveRequest, _c) -> dict:
        """The embedded engine's file format without cached state (so either backend can load it)."""
        se = self._session(r.session_id, r.mod_id)
        if se.busy:
            raise SessionError("cannot save a session while it is answering")
        header = {"version": SAVE_VERSION, "model": f"server {self.client.url}", "system": se.system,
                  "sampler": se.sampler, "overflow": se.overflow, "template": None, "messages": se.messages,
                  "dropped": se.dropped, "summary": se.summary, "kv_tokens": []}
        data = json.dumps(header).encode() + b"\n"
        path = Path(r.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            raise SessionError(f"cannot write {path}: {exc.strerror}") from None
        return {"value": {"bytes": len(data), "messages": len(se.messages)}}

    def _session_load(self, r: SessionLoadRequest, _c) -> dict:
        header, _state = read_header(r.path)  # a file the embedded engine saved loads too (its text)
        overflow = header.get("overflow", "drop_oldest")
        se = SessionState(r.session_id, r.mod_id, header.get("system"), header.get("sampler"),
                          overflow if overflow in OVERFLOW_POLICIES else "drop_oldest", None,
                          [m for m in header["messages"] if isinstance(m, dict)], memory=r.memory)
        se.summary = str(header.get("summary") or "")
        self.sessions[r.session_id] = se
        self._pin(r.session_id)
        return {"value": {"id": r.session_id, "system": se.system, "messages": len(se.messages),
                          "cached_tokens": 0, "session_chars": se.text_size()}}

    def _memory_note(self, se: SessionState, text: str) -> str:
        if se.memory is None:
            return ""
        try:
            # no local tokenizer for the server's model: a token is counted as 4 characters
            return self.stores.note(Path(se.memory), text, lambda s: len(s) // 4 + 1)
        except RelicError as exc:
            log.warning("memory note skipped: %s", exc)
            return ""

    def close(self) -> None:
        """Stop every reader (their connections close) and the stores."""
        self._stop.set()
        for job in self.running:
            job.abandon.set()
            job.abort.abort()
        try:
            self.stores.close()
        finally:
            self.client.close()

