"""Many generations in one context, advanced together: one llama_decode per step.

The scheduler puts four parts together, each with one job and its own tests:

- host.engine.pool — the context, its sequences, growing it, swapping a
  sequence's state out to host memory and back (:class:`SequencePool`), and
  the running requests (:class:`Slot`);
- host.engine.admission — priorities, fair service per mod (counted in
  tokens, not requests), each mod's share of a step, and who is preempted;
- host.engine.step_builder — one step's batch: decode tokens first, then
  prompt chunks within a time budget learned from measured step costs;
- host.engine.results — the result dict with its timings, the step's tokens.

Sessions (host.engine.session) and running summaries (host.engine.summary)
stay in their modules; the scheduler plans a session's turn when it is
admitted and keeps its sequence between turns.

Owned by the worker thread: it creates the context, batch and samplers and is
the only thread that touches them.  A step: finish cancelled requests, admit
(preempting if a higher priority or a starved mod waits), plan and fill the
batch, decode once, sample every slot that has logits.  Cancellation is seen
between steps, and inside a prompt-only step (llama.cpp's abort callback).

What a fixed seed promises: the text of a request depends only on its own
prompt, sampler and seed, not on what else runs, how its prompt was chunked,
or whether it was paused or swapped out (each sequence has its own KV stream,
flash attention, per-row kernels).  tests/test_sessions.py and
tests/test_scheduler_*.py check it greedily on the CPU build.  It is a
property of the pinned llama.cpp CPU kernels, not a guarantee of ggml: a GPU
backend or another build may pick kernels by batch size and differ in the
last bits.

Each sequence has its own n_ctx tokens of KV cache; a request whose prompt +
max_tokens does not fit fails at once with a clear error.  Sessions keep their
sequence between turns; when every sequence is taken, the least recently used
idle session gives its up.

Chat prompts and session turns are tokenized with message contents as plain
text (host.engine.chat_tokens); a raw prompt parses special-token text only
when its request asks (``parse_special``).  Long preparation (rendering a long
session) and prompt reading check the request's cancel flag and the worker's
stop flag, so shutdown is never stuck behind them.
"""

from __future__ import annotations

import logging
import time

from host.engine import sampling
from host.engine import session as sessions
from host.engine import summary
from host.engine.admission import INTERNAL_RANK, RANK, Admission, ServiceLedger
from host.engine.chat_tokens import chat_tokens
from host.engine.pool import SequencePool, Slot
from host.engine.results import StepTokens, finish_text, generation_result
from host.engine.step_builder import GAP_FACTOR, StepBuilder, StepCosts
from host.errors import DecodeError, PromptTooLongError
from host.llama import Batch
from host.llama import log as llama_log
from host.messages import PRIORITIES, DoneEvent, GenerateRequest
from host.results import Result

log = logging.getLogger("relic.engine")


class Scheduler:
    """Runs GenerateRequests over one shared context (see module docstring)."""

    def __init__(self, model, *, n_ctx: int = 2048, n_batch: int = 256, n_seq_max: int = 4,
                 n_threads: int | None = None, n_threads_batch: int | None = None,
                 max_prompt_tokens: int | None = None, kv_type: str = "q8_0",
                 n_seq_start: int = 1, stop_event=None, gap_factor: float = GAP_FACTOR):
        """``n_ctx`` is per sequence: each request or session gets that many tokens.

        ``kv_type``: the KV cache element type (host.llama.context.KV_TYPES; "q8_0" takes
        about half the memory of "f16").  ``n_seq_start``: sequences the context has room
        for at first (it grows to ``n_seq_max`` on demand).  ``gap_factor``: how much
        longer than a decode-only step a step that also reads a prompt may take
        (host.engine.step_builder).

        ``stop_event`` (a threading.Event, set by the worker's shutdown) aborts
        prompt reading and long preparation like a cancel of every request.
        """
        self.model = model
        self.stop_event = stop_event
        self.memory_note = None  # memory_note(store_path, text) -> str for sessions with memory (set by the Engine)
        self.lib = model.lib
        self.vocab = model.vocab
        self.kv_type = kv_type
        self.pool = SequencePool(model, n_ctx=n_ctx, n_batch=n_batch, n_seq_max=n_seq_max, n_threads=n_threads,
                                 n_threads_batch=n_threads_batch, kv_type=kv_type, n_seq_start=n_seq_start)
        self.n_seq_limit = n_seq_max
        self.n_ctx_seq = self.pool.n_ctx_seq
        self.batch = Batch(self.lib, self.ctx.n_batch, 1)
        self.max_prompt_tokens = min(max_prompt_tokens or self.n_ctx_seq, self.n_ctx_seq)
        self.ledger = ServiceLedger()
        self.admission = Admission(self.rank_of, self.ledger)
        self.builder = StepBuilder(self.admission, StepCosts(), lanes=n_seq_max, gap_factor=gap_factor)
        self.slots: list[Slot] = []
        self.decode_calls = 0
        self.preemptions = 0
        self.sessions: dict[int, sessions.SessionState] = {}
        self._clock = 0  # orders sessions by last use, for eviction
        self._order = 0  # orders slots by admission
        self.focus: tuple[str, int | None] | None = None  # (mod, session or None): the player's partner
        self._player: dict[str, int] = {}  # mod -> the id of its one request that runs as "player"
        # saved sessions carry KV state only for the same model and KV cache type
        self.model_id = f"{model.path.name}:{model.size_bytes}" + ("" if kv_type == "f16" else f":{kv_type}")
        self._internal: dict = {}  # request id -> callback(result): the scheduler's own requests (summaries)
        self._internal_ids = 0  # they count down from -1, apart from the worker's ids
        # Cancel inside a prompt chunk: ggml asks this between graph nodes (thread 0
        # only).  Installed for prompt-only steps, so generation pays nothing.
        self._reading = None  # the requests whose prompt chunks are being decoded
        self._abort_cb = self.lib.ffi.callback("ggml_abort_callback", self._should_abort)
        self._tokens = StepTokens()

    @property
    def ctx(self):
        """The shared context (owned by the pool; replaced when it grows)."""
        return self.pool.ctx

    @property
    def n_seq_max(self) -> int:
        """Sequences the context has room for now (grows up to ``n_seq_limit``)."""
        return self.pool.n_seq_max

    @property
    def waiting(self):
        """The waiting requests (host.engine.admission.Waiting items)."""
        return self.admission.waiting

    @property
    def costs(self) -> StepCosts:
        return self.builder.costs

    @property
    def busy(self) -> bool:
        return bool(self.slots or self.admission.waiting)

    def close(self) -> None:
        """Free the samplers, the batch and the context (on the thread that owns them)."""
        for slot in self.slots:
            slot.sampler.close()
        self.slots.clear()
        self.batch.close()
        self.pool.close()

    # --- priorities -----------------------------------------------------------
    def priority_of(self, req) -> str:
        """A request's priority name: its own, else its session's default, else "normal"; the focused
        mod or session (set_focus) runs as "player", and while a focus is set no other mod does."""
        if req.id in self._internal:
            return "internal"
        prio = req.priority
        se = self.sessions.get(req.session) if req.session is not None else None
        if prio is None and se is not None:
            prio = se.priority
        if self.focus is not None:
            if self.focus[0] == req.mod_id and self.focus[1] in (None, req.session):
                prio = "player"
            elif prio == "player":
                prio = "normal"  # once the game names the player's partner, nobody else is "player"
        return prio or "normal"

    def rank_of(self, req) -> int:
        """0 = player ... INTERNAL_RANK; a mod has one "player" request at a time (others rank as normal)."""
        prio = self.priority_of(req)
        if prio == "internal":
            return INTERNAL_RANK
        if prio == "player":
            holder = self._player.get(req.mod_id)
            if holder is not None and holder != req.id:
                return RANK["normal"]
        return RANK[prio]

    def set_focus(self, mod_id: str | None, session_id: int | None = None) -> None:
        """The player now talks to ``mod_id`` (or to one of its sessions); None or "" clears it."""
        self.focus = (mod_id, session_id) if mod_id else None

    def _should_abort(self, _data) -> bool:
        reading = self._reading
        return bool(reading) and (self._stopping() or all(r.cancel.is_set() for r in reading))

    def _stopping(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def _cancelled_fn(self, req):
        """cancelled() for one request: its own flag or the worker's stop flag."""
        return lambda: req.cancel.is_set() or self._stopping()

    # --- admission ---------------------------------------------------------
    def submit(self, req, emit) -> None:
        """Validate and tokenize; the request waits for a sequence and KV room."""
        if req.cancel.is_set():
            emit(DoneEvent(req.id, req.mod_id, Result.cancelled()))
            return
        if req.session is not None:
            self.admission.add(req)  # planned at admission: it depends on the previous turn
            return
        try:
            prompt = self._prompt_tokens(req)
        except Exception as exc:  # a bad template or prompt fails this request only
            emit(DoneEvent(req.id, req.mod_id, Result.of_exception(exc)))
            return
        self.admission.add(req, prompt)

    def _prompt_tokens(self, req) -> list[int]:
        if req.messages is not None:
            tokens = chat_tokens(self.model, list(req.messages), template=req.template,
                                 cancelled=self._cancelled_fn(req))
        elif isinstance(req.prompt, str):
            tokens = self.vocab.tokenize(req.prompt, add_special=True, parse_special=req.parse_special)
        else:
            raise PromptTooLongError("a request needs prompt= (a string) or messages=")
        if not tokens:
            raise PromptTooLongError("the prompt is empty")
        if len(tokens) > self.max_prompt_tokens:
            raise PromptTooLongError(f"prompt is {len(tokens)} tokens; the limit is {self.max_prompt_tokens}")
        if len(tokens) + req.max_tokens > self.n_ctx_seq:
            raise PromptTooLongError(f"prompt ({len(tokens)} tokens) + max_tokens ({req.max_tokens}) exceeds the "
                                     f"context size {self.n_ctx_seq}; shorten the prompt or lower max_tokens")
        return tokens

    def _evict_one(self, keep=None) -> bool:
        """Free the sequence of the least recently used idle session; False if none."""
        idle = [se for se in self.sessions.values() if se.seq is not None and not se.busy and se is not keep]
        if not idle:
            return False
        victim = min(idle, key=lambda se: se.last_used)
        self.pool.release(victim.seq)
        victim.seq, victim.kv_tokens = None, []
        return True

    def _startable(self, item) -> bool:
        if item.slot is None and item.req.session is not None:
            se = self.sessions.get(item.req.session)
            if se is not None and se.busy:
                return False  # one turn at a time per session; later turns keep their order
        return True

    def _needs_seq(self, item) -> bool:
        if item.slot is not None:
            return True
        se = self.sessions.get(item.req.session) if item.req.session is not None else None
        return se is None or se.seq is None

    def _running_by_mod(self) -> dict:
        running: dict[str, int] = {}
        for slot in self.slots:
            running[slot.mod_id] = running.get(slot.mod_id, 0) + 1
        return running

    def _admit(self, emit) -> None:
        """Start waiting requests while there is a sequence, fairly; preempt for those that must not wait."""
        adm = self.admission
        if not adm.waiting:
            return
        for item in adm.next_cancelled():
            if item.slot is not None:  # a swapped-out slot, cancelled while it waited
                self.slots.append(item.slot)
                self._finish(item.slot, "cancelled", emit)
            else:
                emit(DoneEvent(item.req.id, item.req.mod_id, Result.cancelled()))
        blocked: set[str] = set()  # mods whose next request cannot start now
        while True:
            room = self.pool.room() + sum(1 for se in self.sessions.values() if se.seq is not None and not se.busy)
            item = adm.pick(blocked, self._running_by_mod(), room, self._startable, self._needs_seq)
            if item is None:
                break
            try:
                started = self._start(item)
            except Exception as exc:  # a bad sampler, grammar or prompt fails this request only
                adm.remove(item)
                emit(DoneEvent(item.req.id, item.req.mod_id, Result.of_exception(exc)))
                continue
            if not started:
                break  # no sequence free now
            adm.started(item)
        self._preempt()

    def _preempt(self) -> None:
        """Swap out running slots for waiting requests that outrank them (see host.engine.admission)."""
        adm = self.admission
        for item in adm.candidates(self._startable):
            if not self._needs_seq(item) or self.pool.free:
                continue
            victim = adm.victim(item, self.slots, self.n_seq_limit)
            if victim is None:
                continue
            self._swap_out(victim)
            self.preemptions += 1
            try:
                started = self._start(item)
            except Exception:
                started = False  # it fails at the next admission, where errors are reported
            if started:
                adm.started(item)

    def _swap_out(self, slot: Slot) -> None:
        self.pool.swap_out(slot)
        slot.out_index = -1
        if slot.session is not None:
            slot.session.seq = None
        self.slots.remove(slot)
        self.admission.requeue(slot)

    def _resume(self, slot: Slot) -> bool:
        if not self.pool.free and not self.pool.grow() and not self._evict_one(keep=slot.session):
            return False
        if not self.pool.swap_in(slot):
            return False
        if slot.session is not None:
            slot.session.seq = slot.seq
        slot.t_run = time.perf_counter()
        self.slots.append(slot)
        return True

    def _start(self, item) -> bool:
        """Give ``item`` a sequence and a slot; False when none is free (it keeps waiting)."""
        if item.slot is not None:
            return self._resume(item.slot)
        req, prompt = item.req, item.prompt
        t_start = time.perf_counter()  # its wait ends here (what follows is its own work)
        session = None
        if req.session is not None:
            session = self.sessions.get(req.session)
            if session is not None and session.mod_id != req.mod_id:
                session = None  # a mod can only talk through its own sessions
            if session is None:
                raise sessions.SessionError(f"unknown session {req.session} (closed or never created)")
        need_seq = session is None or session.seq is None
        while need_seq and not self.pool.free:  # before planning: planning may change the session
            if not self.pool.grow() and (req.id in self._internal or not self._evict_one(keep=session)):
                return False  # (a summary never evicts a session: it waits for a free sequence)
        plan = None
        retrieval_s = 0.0
        if session is not None:
            note = None
            if session.memory is not None and req.messages is None and self.memory_note is not None:
                t0 = time.perf_counter()
                note = self.memory_note(session.memory, req.prompt or "")  # this turn only: never saved
                retrieval_s = time.perf_counter() - t0
            plan = sessions.plan_turn(self.model, session, req.prompt, req.max_tokens, self.n_ctx_seq,
                                      extra=req.messages, note=note, cancelled=self._cancelled_fn(req))
            prompt = plan.tokens
        cfg = dict(session.sampler or {}) if session is not None else {}
        cfg.update(req.sampler or {})
        resolved = sampling.resolve(cfg or None, temperature=req.temperature, seed=req.seed)  # may raise: before
        sampler = sampling.build(self.lib, self.vocab, resolved, grammar=self._grammar(req))  # any allocation
        if session is not None:
            sessions.prime_sampler(self.vocab, session, sampler)  # penalties see her earlier replies
        if need_seq:
            seq = self.pool.take()
            if session is not None:
                session.seq, session.kv_tokens = seq, []
        else:
            seq = session.seq
        n_cached = 0
        if session is not None:
            sessions.apply_shift(self.ctx, session, plan)
            for _ in range(sessions.MAX_SPLICES):  # e.g. a new summary, dropped turns, last turn's note
                if not sessions.splice(self.ctx, session, prompt, lambda toks, pos: self._decode_at(seq, toks, pos)):
                    break
            n_cached = sessions.common_prefix(session.kv_tokens, prompt)
            n_cached = min(n_cached, len(prompt) - 1)  # decode at least one token to get logits
            if not self.ctx.memory_seq_rm(seq, n_cached, -1):
                self.ctx.memory_seq_rm(seq)
                n_cached = 0
            session.kv_tokens = prompt[:n_cached]
            session.busy = True
        rank = self.rank_of(req)
        slot = Slot(req, seq, prompt, sampler, session, plan.new_messages if plan else None, n_cached,
                    priority=PRIORITIES[rank] if rank < INTERNAL_RANK else "internal")
        slot.retrieval_s = retrieval_s
        slot.t_admitted = slot.t_run = t_start
        self._order += 1
        slot.order = self._order
        if rank == RANK["player"] and req.mod_id not in self._player:
            self._player[req.mod_id] = req.id
        self.slots.append(slot)
        return True

    def _decode_at(self, seq: int, tokens: list, start: int) -> None:
        """Decode ``tokens`` into ``seq`` at positions from ``start`` (a splice's insertion; no logits)."""
        cap = self.batch.capacity
        for i in range(0, len(tokens), cap):
            self.batch.clear()
            for k, tok in enumerate(tokens[i:i + cap]):
                self.batch.add(tok, start + i + k, (seq,), False)
            self.ctx.decode(self.batch)

    def _summarize(self, session, emit) -> None:
        """Queue the running-summary request of a summarize session (after its turn, off the critical path)."""
        if session.summarizing in self._internal:
            return  # one at a time: what was dropped meanwhile goes into the next one
        msgs = summary.request_messages(session)
        session.to_summarize = []
        self._internal_ids -= 1
        req = GenerateRequest(id=self._internal_ids, mod_id=session.mod_id, messages=tuple(msgs),
                              max_tokens=summary.SUMMARY_MAX_TOKENS, temperature=0.0, stop=("\n\n",), stream=False)
        self._internal[req.id] = lambda result: summary.apply(session, result)
        session.summarizing = req.id
        self.submit(req, emit)

    def _grammar(self, req):
        if req.grammar is None:
            return None
        return req.grammar.sampler(self.lib, self.vocab)

    # --- one step ----------------------------------------------------------
    def step(self, emit) -> None:
        """Admit, plan one batch (host.engine.step_builder), decode once, sample every slot with logits."""
        for slot in [s for s in self.slots if s.req.cancel.is_set()]:
            self._finish(slot, "cancelled", emit)
        self._admit(emit)
        if self.pool.lost:
            self._take_lost(emit)
        if not self.slots:
            return
        plan = self.builder.plan(self.slots, self.batch.capacity, set(self._internal))
        if not plan.decode and not plan.chunks:
            return
        self.builder.fill(self.batch, plan)
        if not plan.decode:
            # cancel inside a prompt-only step (mixed steps are short: cancel waits for the step)
            self._reading = [s.req for s, _, _ in plan.chunks]
            self.lib.C.llama_set_abort_callback(self.ctx.ptr, self._abort_cb, self.lib.ffi.NULL)
        t0 = time.perf_counter()
        logged = ()
        try:
            if self._reading is None:
                self.ctx.decode(self.batch)
            else:  # an abort on cancel is expected: keep llama.cpp's complaint unless it was something else
                with llama_log.quiet() as logged:
                    self.ctx.decode(self.batch)
        except DecodeError as exc:
            aborted = exc.code == 2 and self._reading is not None
            if not aborted:
                llama_log.replay(logged)
                for slot in list(self.slots):  # none of the batch's sequences can go on safely
                    self._finish(slot, "error", emit, error=str(exc), error_type=exc.error_type)
                return
            for slot, start, _ in plan.chunks:  # the chunks are undone; cancelled readers end
                slot.n_prompt_done = start
                self.ctx.memory_seq_rm(slot.seq, start, -1)
                if slot.req.cancel.is_set() or self._stopping():
                    self._finish(slot, "cancelled", emit)
            return
        finally:
            if self._reading is not None:
                self._reading = None
                self.lib.C.llama_set_abort_callback(self.ctx.ptr, self.lib.ffi.NULL, self.lib.ffi.NULL)
        self.decode_calls += 1
        now = time.perf_counter()
        self.costs.observe(now - t0, len(plan.decode), plan.n_prompt)
        self.ledger.charge_step(plan.tokens_by_mod())
        for slot in plan.decode:
            slot.decoded.append(slot.next_token)
            slot.pos += 1
        for slot in list(self.slots):
            if slot.out_index < 0:
                continue
            if slot.t_prompt is None and slot.next_token is None:
                slot.t_prompt = now
            self._sample(slot, emit)
        self._tokens.flush(emit)

    def _take_lost(self, emit) -> None:
        """Fail the slots, and clear the caches of idle sessions, whose KV state a grow could not keep."""
        lost, self.pool.lost = self.pool.lost, set()
        for slot in [s for s in self.slots if s.seq in lost]:
            self._finish(slot, "error", emit, error="the KV cache could not be kept while the context grew")
        for se in self.sessions.values():
            if se.seq in lost and not se.busy:
                se.kv_tokens = []

    def _sample(self, slot: Slot, emit) -> None:
        token = slot.sampler.sample(self.ctx, slot.out_index)
        slot.out_index = -1
        slot.n_gen += 1
        if slot.t_first is None:
            slot.t_first = time.perf_counter()
        if self.vocab.is_eog(token):
            slot.next_token = None
            self._finish(slot, "stop", emit)
            return
        piece = self.vocab.piece(token, False)
        text = slot.stop.push(slot.stream.push(piece))
        if text:
            slot.text.append(text)
            if slot.req.stream:
                self._tokens.add(slot.req.id, text)
        if slot.stop.stopped:
            self._finish(slot, "stop", emit)
        elif slot.n_gen >= slot.req.max_tokens:
            self._finish(slot, "length", emit)
        else:
            slot.next_token = token

    def _finish(self, slot: Slot, reason: str, emit, error: str | None = None, error_type: str = "error") -> None:
        self._tokens.flush(emit)
        finish_text(slot, reason, emit)
        self.slots.remove(slot)
        slot.sampler.close()
        if self._player.get(slot.mod_id) == slot.req.id:
            del self._player[slot.mod_id]
        if slot.seq is None:  # swapped out: only its saved state to let go
            self.pool.forget_swapped(slot)
        session = slot.session
        if session is None:
            if slot.seq is not None:
                self.pool.release(slot.seq)
        else:
            self._clock += 1
            session.busy, session.last_used = False, self._clock
            if slot.seq is None:
                session.seq, session.kv_tokens = None, []
            elif reason == "error":
                self.ctx.memory_seq_rm(slot.seq)
                session.kv_tokens = []
            else:
                session.kv_tokens = slot.prompt[:slot.n_prompt_done] + slot.decoded
            if session.to_summarize and session.overflow == "summarize" and reason in ("stop", "length"):
                self._summarize(session, emit)
            if reason in ("stop", "length"):
                session.messages += slot.user_message + [{"role": "assistant", "content": "".join(slot.text)}]
            if self.sessions.get(session.id) is not session and session.seq is not None:  # closed while answering
                self.pool.release(session.seq)
                session.seq = None
        result = generation_result(slot, reason, error, error_type,
                                   session_chars=session.text_size() if session is not None else None)
        internal = self._internal.pop(slot.req.id, None)
        if internal is not None:  # the scheduler's own request (a summary): nobody waits for an event
            internal(result)
            return
        emit(DoneEvent(slot.req.id, slot.req.mod_id, result))

    def fail_running(self, emit, exc: BaseException) -> None:
        """Fail every running generation with ``exc`` (after a step failed unexpectedly)."""
        message = f"{type(exc).__name__}: {exc}"
        for slot in list(self.slots):
            self._finish(slot, "error", emit, error=message, error_type=getattr(exc, "error_type", "internal"))

    def mod_present(self, mod_id: str, present: bool) -> None:
        """A mod with the llm module was loaded (True) or unloaded (False): see fair admission."""
        self.admission.mod_present(mod_id, present)
        if not present and self.focus is not None and self.focus[0] == mod_id:
            self.focus = None

    # --- sessions (host calls from host.engine.service.Engine) ----------------
    def create_session(self, session_id: int, mod_id: str, *, system=None, sampler=None,
                       overflow="drop_oldest", template=None, memory=None, priority=None) -> dict:
        """A new session; ``memory`` is a store path whose hits go into each user turn; ``priority`` is
        its turns' default."""
        if overflow not in sessions.OVERFLOW_POLICIES:
            raise sessions.SessionError(f"unknown overflow policy {overflow!r}; use one of {sessions.OVERFLOW_POLICIES}")
        if sampler:
            sampling.resolve(sampler)  # validate now, not at the first turn
        if template is not None or system is not None:
            self.model.apply_chat_template([{"role": "user", "content": "x"}], template=template)
        se = sessions.SessionState(session_id, mod_id, system, sampler, overflow, template, memory=memory)
        se.priority = priority
        self.sessions[session_id] = se
        return {"id": session_id, "session_chars": se.text_size()}

    def _session(self, session_id: int, mod_id: str) -> sessions.SessionState:
        se = self.sessions.get(session_id)
        if se is None or se.mod_id != mod_id:
            raise sessions.SessionError(f"unknown session {session_id}")
        return se

    def reset_session(self, session_id: int, mod_id: str) -> dict:
        """Forget the conversation and its cached tokens (the system prompt stays)."""
        se = self._session(session_id, mod_id)
        if se.busy:
            raise sessions.SessionError("cannot reset a session while it is answering; cancel the turn first")
        if se.seq is not None:
            self.ctx.memory_seq_rm(se.seq)
        se.messages, se.kv_tokens, se.dropped = [], [], 0
        return {"id": session_id, "session_chars": se.text_size()}

    def session_info(self, session_id: int, mod_id: str) -> sessions.SessionState:
        """A detached copy of a session's state (tools, tests): nothing in it is the worker's own."""
        import copy

        return copy.deepcopy(self._session(session_id, mod_id))

    def close_session(self, session_id: int, mod_id: str | None = None) -> None:
        """Forget a session; a turn still running frees its sequence when it ends."""
        se = self.sessions.get(session_id)
        if se is None or (mod_id is not None and se.mod_id != mod_id):
            return
        del self.sessions[session_id]
        if se.seq is not None and not se.busy:
            self.pool.release(se.seq)

    def close_mod_sessions(self, mod_id: str) -> None:
        """Close every session of a mod."""
        for sid in [i for i, se in self.sessions.items() if se.mod_id == mod_id]:
            self.close_session(sid)

    def save_session(self, session_id: int, mod_id: str, path) -> dict:
        """Write the session to ``path``: {bytes, messages}."""
        se = self._session(session_id, mod_id)
        if se.busy:
            raise sessions.SessionError("cannot save a session while it is answering")
        size = sessions.save(self.ctx, se, path, self.model_id)
        return {"bytes": size, "messages": len(se.messages)}

    def load_session(self, session_id: int, mod_id: str, path, *, memory=None) -> dict:
        """Load a saved session as ``session_id`` (its cached state too when the model matches)."""
        header, state = sessions.read_header(path)
        se = sessions.SessionState(session_id, mod_id, header.get("system"), header.get("sampler"),
                                   header.get("overflow", "drop_oldest"), header.get("template"),
                                   list(header["messages"]), dropped=int(header.get("dropped", 0)),
                                   memory=memory)
        se.summary = str(header.get("summary") or "")
        if state and header.get("model") == self.model_id:
            while not self.pool.free and (self.pool.grow() or self._evict_one()):
                pass
            if self.pool.free:
                se.seq = self.pool.take()
                sessions.restore_state(self.ctx, se, header, state, self.model_id)
                if not se.kv_tokens:
                    self.pool.release(se.seq)
                    se.seq = None
        self.sessions[session_id] = se
        # what the next turn must read again when the cache did not come back (another model): said at load
        conversation = len(chat_tokens(self.model, se.all_messages(), template=se.template)) if se.messages else 0
        return {"id": session_id, "system": se.system, "messages": len(se.messages),
                "cached_tokens": len(se.kv_tokens), "conversation_tokens": conversation,
                "session_chars": se.text_size()}

    def cancel_all(self, emit) -> None:
        """Finish everything as cancelled (shutdown)."""
        for item in self.admission.clear():
            if item.slot is not None:
                self.slots.append(item.slot)
            else:
                emit(DoneEvent(item.req.id, item.req.mod_id, Result.cancelled()))
        for slot in list(self.slots):
            self._finish(slot, "cancelled", emit)
