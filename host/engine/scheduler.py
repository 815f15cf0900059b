"""Many generations in one context, advanced together: one llama_decode per step.

Owned by the worker thread (it creates the context, batch and samplers and is
the only thread that touches them).  Each running request is a *slot* with
its own sequence id and sampler chain.  A step builds one batch holding the
next token of every generating slot plus one prompt chunk of a slot still
reading its prompt (round robin), decodes once, then samples each slot that
has logits.  While others generate, the chunk is small (about ``prompt_share``
generation steps' worth of prompt time, from running estimates), so a
newcomer's long prompt never freezes those already talking; with nobody
generating, a chunk is a whole batch (n_batch).  A new request joins at the
next step; cancellation is seen between steps, and inside a prompt-only chunk.

What a fixed seed promises: the text of a request depends only on its own
prompt, sampler and seed, not on what else runs or how its prompt was chunked
(each sequence has its own KV stream, flash attention, per-row kernels).
tests/test_sessions.py and test_scheduler_batching.py check concurrent ==
sequential and grown == preallocated contexts, greedily, on the CPU build.  It
is a property of the pinned llama.cpp CPU kernels, not a guarantee of ggml: a
GPU backend or another build may pick kernels by batch size and differ in the
last bits (then texts can diverge after a near tie).

Each sequence has its own n_ctx tokens of KV cache; a request whose prompt +
max_tokens does not fit fails at once with a clear error, so nothing
overflows mid-generation.  The context holds KV room for as many sequences as
are in use (it starts with one and doubles up to n_seq_max, copying the
sequences' state over).  Sessions keep their sequence between turns; when
every sequence is taken, the least recently used idle session gives its up.

Admission is fair across mods: when a sequence frees up, the next request
comes from the mod with the fewest running requests (ties: the one served
longest ago), first-come within a mod; and while another mod has asked for
something within ``FAIR_WINDOW_S`` (or was declared present: Worker.hello) and
has nothing running, no mod that already runs something takes the last free
sequence, so a mod that keeps every slot busy cannot starve one that asks now
and then (that mod's first request still waits for a sequence to free up).

Chat prompts and session turns are tokenized with message contents as plain
text (host.engine.chat_tokens); a raw prompt parses special-token text only
when its request asks (``parse_special``).  Long preparation (rendering a long
session) and prompt reading check the request's cancel flag and the worker's
stop flag, so shutdown is never stuck behind them.
"""

from __future__ import annotations

import collections
import logging
import time

from host.engine import sampling
from host.engine import session as sessions
from host.engine import summary
from host.engine.chat_tokens import chat_tokens
from host.engine.stop import StopMatcher
from host.errors import DecodeError, PromptTooLongError, RelicError
from host.llama import Batch, Context, Utf8Stream
from host.llama.context import check_kv_type
from host.llama import log as llama_log
from host.messages import DoneEvent, GenerateRequest, TokenEvent, TokensEvent, error_result, exception_result

FAIR_WINDOW_S = 10.0  # a mod that asked within this many seconds is "active" for admission

log = logging.getLogger("relic.engine")


class _Slot:
    __slots__ = ("req", "seq", "prompt", "n_prompt_done", "pos", "sampler", "stream", "stop", "text",
                 "n_gen", "next_token", "out_index", "t_start", "t_prompt", "cached", "session",
                 "user_message", "decoded")

    def __init__(self, req, seq, prompt, sampler, session=None, user_message=None, n_cached=0):
        self.req = req
        self.seq = seq
        self.prompt = prompt
        self.n_prompt_done = 0
        self.pos = 0
        self.sampler = sampler
        self.stream = Utf8Stream()
        self.stop = StopMatcher(req.stop)
        self.text = []
        self.n_gen = 0
        self.next_token = None  # sampled, not yet decoded
        self.out_index = -1  # where this slot's logits are in the current batch
        self.t_start = time.perf_counter()
        self.t_prompt = None
        self.cached = n_cached
        self.n_prompt_done = n_cached
        self.pos = n_cached
        self.session = session
        self.user_message = user_message
        self.decoded = []  # generated tokens now in the KV cache


class Scheduler:
    """Runs GenerateRequests over one shared context (see module docstring)."""

    def __init__(self, model, *, n_ctx: int = 2048, n_batch: int = 256, n_seq_max: int = 4,
                 n_threads: int | None = None, n_threads_batch: int | None = None,
                 max_prompt_tokens: int | None = None, prompt_share: float = 2.0, kv_type: str = "q8_0",
                 n_seq_start: int = 1, stop_event=None):
        """``n_ctx`` is per sequence: each request or session gets that many tokens.

        ``kv_type``: the KV cache element type (host.llama.context.KV_TYPES; "q8_0" takes
        about half the memory of "f16").  ``n_seq_start``: sequences the context has room
        for at first (it grows to ``n_seq_max`` on demand).

        ``prompt_share``: while some sequences generate, a step also reads about this many
        generation steps' worth of another's prompt (see plan_chunk).

        ``stop_event`` (a threading.Event, set by the worker's shutdown) aborts
        prompt reading and long preparation like a cancel of every request.
        """
        self.model = model
        self.stop_event = stop_event
        self.memory_note = None  # memory_note(store_path, text) -> str for sessions with memory (set by the Engine)
        self._mod_seen: dict[str, float] = {}  # mod -> when it last submitted (fair admission)
        self._mod_served: dict[str, float] = {}  # mod -> when a request of it last started
        self._mods_present: set[str] = set()  # mods loaded with the llm module (ModHelloRequest)
        self.lib = model.lib
        self.vocab = model.vocab
        # Owned by this scheduler (the worker thread), freed in close() or replaced by a
        # bigger one in _grow().  One KV stream per sequence (kv_unified off) and flash
        # attention make a sequence's logits independent of the others sharing the
        # context: concurrent == sequential.  The context starts with room for
        # n_seq_start sequences and doubles, up to n_seq_max, when more are needed at
        # once, so the KV cache is what the sessions in use need, not the maximum.
        check_kv_type(kv_type)
        self.kv_type = kv_type
        self.n_seq_limit = n_seq_max
        self._ctx_args = dict(n_batch=n_batch, n_threads=n_threads, n_threads_batch=n_threads_batch,
                              flash_attn=True, kv_unified=False, kv_type=kv_type)
        self._n_ctx_arg = -(-n_ctx // 256) * 256 if n_ctx > 0 else n_ctx  # llama.cpp pads to 256: same per-sequence size at every n_seq
        self.ctx = self._new_context(max(1, min(n_seq_start, n_seq_max)))
        self.n_ctx_seq = self.lib.C.llama_n_ctx_seq(self.ctx.ptr)
        self.batch = Batch(self.lib, self.ctx.n_batch, 1)
        self.max_prompt_tokens = min(max_prompt_tokens or self.n_ctx_seq, self.n_ctx_seq)
        self.free_seqs = collections.deque(range(self.ctx.n_seq_max))
        self._lost: set[int] = set()  # sequences whose state a failed _grow dropped
        self.waiting: collections.deque = collections.deque()  # admitted later, in order
        self.slots: list[_Slot] = []
        self._rr = 0  # round-robin start for prompt chunks
        # while others generate, a prompt chunk takes about prompt_share generation steps
        self.prompt_share = prompt_share
        self._gen_step_s = None  # running estimates of a generation step's and a prompt token's time
        self._prompt_tok_s = None
        self.decode_calls = 0
        self.sessions: dict[int, sessions.SessionState] = {}
        self._clock = 0  # orders sessions by last use, for eviction
        # saved sessions carry KV state only for the same model and KV cache type
        self.model_id = f"{model.path.name}:{model.size_bytes}" + ("" if kv_type == "f16" else f":{kv_type}")
        self._internal: dict = {}  # request id -> callback(result): the scheduler's own requests (summaries)
        self._internal_ids = 0  # they count down from -1, apart from the worker's ids
        # Cancel inside a prompt chunk: ggml asks this between graph nodes (thread 0
        # only).  Installed for prompt steps only, so generation pays nothing.
        self._reading = None  # the request whose prompt chunk is being decoded
        self._abort_cb = self.lib.ffi.callback("ggml_abort_callback", self._should_abort)
        self._step_tokens: list = []  # (request id, text) of this step, posted as one TokensEvent

    def _new_context(self, n_seq: int) -> Context:
        return Context(self.model, n_ctx=self._n_ctx_arg * n_seq, n_seq_max=n_seq, **self._ctx_args)

    @property
    def n_seq_max(self) -> int:
        """Sequences the context has room for now (grows up to ``n_seq_limit``)."""
        return self.ctx.n_seq_max

    def _grow(self) -> bool:
        """Make room for more sequences (double, up to n_seq_limit); False if at the limit.

        The KV state of every sequence in use is copied out, the context replaced by a
        bigger one, and the state copied back: the sequences go on exactly where they
        were (only between steps, on the worker thread).  If the bigger context cannot
        be made (memory), the old size is kept and False returned.
        """
        old = self.ctx
        k = old.n_seq_max
        if k >= self.n_seq_limit:
            return False
        saved = {seq: old.seq_state(seq) for seq in sorted(set(range(k)) - set(self.free_seqs))}
        old.close()  # first: the two never need memory at once
        grown = True
        try:
            self.ctx = self._new_context(min(self.n_seq_limit, 2 * k))
        except RelicError as exc:
            log.warning("cannot grow the context to %d sequences (%s); keeping %d", 2 * k, exc, k)
            self.ctx, grown = self._new_context(k), False
        for seq, state in saved.items():
            if not self.ctx.set_seq_state(seq, state):
                self.ctx.memory_seq_rm(seq)
                self._lost.add(seq)  # its holder is failed (slot) or recomputes (idle session)
        self.free_seqs.extend(range(k, self.ctx.n_seq_max))
        return grown

    def _take_lost(self, emit) -> None:
        """Fail the slots, and clear the caches of idle sessions, whose KV state _grow could not keep."""
        lost, self._lost = self._lost, set()
        for slot in [s for s in self.slots if s.seq in lost]:
            self._finish(slot, "error", emit, error="the KV cache could not be kept while the context grew")
        for se in self.sessions.values():
            if se.seq in lost and not se.busy:
                se.kv_tokens = []

    def _should_abort(self, _data) -> bool:
        req = self._reading
        return req is not None and (req.cancel.is_set() or self._stopping())

    def _stopping(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def _cancelled_fn(self, req):
        """cancelled() for one request: its own flag or the worker's stop flag."""
        return lambda: req.cancel.is_set() or self._stopping()

    @property
    def busy(self) -> bool:
        return bool(self.slots or self.waiting)

    def close(self) -> None:
        """Free the samplers, the batch and the context (on the thread that owns them)."""
        for slot in self.slots:
            slot.sampler.close()
        self.slots.clear()
        self.batch.close()
        self.ctx.close()

    # --- admission ---------------------------------------------------------
    def submit(self, req, emit) -> None:
        """Validate and tokenize; the request waits for a sequence and KV room."""
        if req.cancel.is_set():
            emit(DoneEvent(req.id, req.mod_id, error_result("", reason="cancelled")))
            return
        self._mod_seen[req.mod_id] = time.monotonic()
        if req.session is not None:
            self.waiting.append((req, None))  # planned at admission: it depends on the previous turn
            return
        try:
            prompt = self._prompt_tokens(req)
        except Exception as exc:  # a bad template or prompt fails this request only
            emit(DoneEvent(req.id, req.mod_id, exception_result(exc)))
            return
        self.waiting.append((req, prompt))

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
        self.ctx.memory_seq_rm(victim.seq)
        self.free_seqs.append(victim.seq)
        victim.seq, victim.kv_tokens = None, []
        return True

    def _admit(self, emit) -> None:
        """Start waiting requests while there is a sequence and KV room, fairly across mods."""
        if not self.waiting:
            return
        for item in [it for it in self.waiting if it[0].cancel.is_set()]:
            self.waiting.remove(item)
            emit(DoneEvent(item[0].id, item[0].mod_id, error_result("", reason="cancelled")))
        blocked: set[str] = set()  # mods whose next request cannot start now
        while True:
            item = self._next_fair(blocked)
            if item is None:
                return
            req, prompt = item
            session = None
            if req.session is not None:
                session = self.sessions.get(req.session)
                if session is not None and session.mod_id != req.mod_id:
                    session = None  # a mod can only talk through its own sessions
            try:
                started = self._start(req, prompt, session)
            except Exception as exc:  # a bad sampler, grammar or prompt fails this request only
                self.waiting.remove(item)
                emit(DoneEvent(req.id, req.mod_id, exception_result(exc)))
                continue
            if not started:
                return  # no sequence free now
            self.waiting.remove(item)
            self._mod_served[req.mod_id] = time.monotonic()

    def _next_fair(self, blocked: set):
        """The waiting request to start next (see the module docstring), or None."""
        firsts: dict[str, tuple] = {}  # mod -> its oldest startable waiting request
        for item in self.waiting:
            req = item[0]
            if req.mod_id in firsts or req.mod_id in blocked:
                continue
            if req.session is not None:
                se = self.sessions.get(req.session)
                if se is not None and se.busy:
                    continue  # one turn at a time per session; later turns keep their order
            firsts[req.mod_id] = item
        if not firsts:
            return None
        running: dict[str, int] = {}
        for slot in self.slots:
            running[slot.req.mod_id] = running.get(slot.req.mod_id, 0) + 1
        now = time.monotonic()
        active = self._mods_present | {m for m, t in self._mod_seen.items() if now - t < FAIR_WINDOW_S}
        idle_active = {m for m in active if not running.get(m)}
        room = (len(self.free_seqs) + (self.n_seq_limit - self.ctx.n_seq_max)  # free, growable, evictable
                + sum(1 for se in self.sessions.values() if se.seq is not None and not se.busy))
        order = sorted(firsts, key=lambda m: (running.get(m, 0), self._mod_served.get(m, 0.0)))
        for mod in order:
            item = firsts[mod]
            # the last free sequence stays for an active mod that has nothing running
            if room <= 1 and (idle_active - {mod}) and running.get(mod) and self._needs_seq(item[0]):
                blocked.add(mod)
                continue
            return item
        return None

    def mod_present(self, mod_id: str, present: bool) -> None:
        """A mod with the llm module was loaded (True) or unloaded (False): see fair admission."""
        if present:
            self._mods_present.add(mod_id)
        else:
            self._mods_present.discard(mod_id)
            self._mod_seen.pop(mod_id, None)

    def _needs_seq(self, req) -> bool:
        se = self.sessions.get(req.session) if req.session is not None else None
        return se is None or se.seq is None

    def _start(self, req, prompt, session) -> bool:
        if req.session is not None and session is None:
            raise sessions.SessionError(f"unknown session {req.session} (closed or never created)")
        need_seq = session is None or session.seq is None
        while need_seq and not self.free_seqs:  # before planning: planning may change the session
            if not self._grow() and (req.id in self._internal or not self._evict_one(keep=session)):
                return False  # (a summary never evicts a session: it waits for a free sequence)
        plan = None
        if session is not None:
            note = None
            if session.memory is not None and req.messages is None and self.memory_note is not None:
                note = self.memory_note(session.memory, req.prompt or "")  # this turn only: never saved
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
            seq = self.free_seqs.popleft()
            self.ctx.memory_seq_rm(seq)
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
        self.slots.append(_Slot(req, seq, prompt, sampler, session,
                                plan.new_messages if plan else None, n_cached))
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
        """Admit, build one batch, decode once, sample every slot with logits."""
        for slot in [s for s in self.slots if s.req.cancel.is_set()]:
            self._finish(slot, "cancelled", emit)
        self._admit(emit)
        if self._lost:
            self._take_lost(emit)
        if not self.slots:
            return
        batch = self.batch
        batch.clear()
        for slot in self.slots:
            slot.out_index = -1
        # A step holds every generating slot's next token and, when some slot is still
        # reading its prompt, one chunk of that prompt (round robin): a newcomer's prompt
        # is read alongside the tokens of those already talking.  While others generate
        # the chunk is kept small (plan_chunk: about prompt_share generation steps' worth
        # of prompt time), so their next token is never held up by a whole prompt.
        readers = [s for s in self.slots if s.n_prompt_done < len(s.prompt)]
        writers = [s for s in self.slots if s.next_token is not None]
        if self._internal and any(s.req.id not in self._internal for s in self.slots):
            # the scheduler's own work (a running summary) reads its prompt only when no mod's
            # request runs, and generates only while no mod's request reads its prompt
            readers = [s for s in readers if s.req.id not in self._internal]
            if readers:
                writers = [s for s in writers if s.req.id not in self._internal]
        reader, start, chunk = None, 0, ()
        room = batch.capacity - len(writers)
        if readers and room > 0:
            self._rr %= len(readers)
            reader = readers[self._rr]
            self._rr += 1
            start = reader.n_prompt_done
            limit = min(self.plan_chunk(), room) if writers else room
            chunk = reader.prompt[start:start + limit]
        # by sequence id: llama.cpp splits a batch over per-sequence KV streams into runs
        # of consecutive sequence ids, so an ordered batch takes the fewest graph runs
        parts = sorted([(w.seq, w) for w in writers] + ([(reader.seq, reader)] if reader else []),
                       key=lambda p: p[0])
        for _, slot in parts:
            if slot is reader:
                for k, tok in enumerate(chunk):
                    batch.add(tok, start + k, (slot.seq,), False)
                reader.n_prompt_done += len(chunk)
                if reader.n_prompt_done == len(reader.prompt):
                    batch.struct.logits[batch.n_tokens - 1] = True
                    reader.out_index = batch.n_tokens - 1
                    reader.pos = len(reader.prompt)
            else:
                slot.out_index = batch.n_tokens
                batch.add(slot.next_token, slot.pos, (slot.seq,), True)
        if reader is not None and not writers:
            # cancel inside a prompt-only chunk (mixed steps are short: cancel waits for the step)
            self._reading = reader.req
            self.lib.C.llama_set_abort_callback(self.ctx.ptr, self._abort_cb, self.lib.ffi.NULL)
        t0 = time.perf_counter()
        logged = ()
        try:
            if self._reading is None:
                self.ctx.decode(batch)
            else:  # an abort on cancel is expected: keep llama.cpp's complaint unless it was something else
                with llama_log.quiet() as logged:
                    self.ctx.decode(batch)
        except DecodeError as exc:
            if not (exc.code == 2 and self._reading is not None):
                llama_log.replay(logged)
            if exc.code == 2 and self._reading is not None:  # a prompt chunk aborted by its cancel
                slot = next(sl for sl in self.slots if sl.req is self._reading)
                slot.n_prompt_done = start
                self.ctx.memory_seq_rm(slot.seq, start, -1)
                self._finish(slot, "cancelled", emit)
            else:
                for slot in list(self.slots):  # none of the batch's sequences can go on safely
                    self._finish(slot, "error", emit, error=str(exc), error_type=exc.error_type)
            return
        finally:
            if self._reading is not None:
                self._reading = None
                self.lib.C.llama_set_abort_callback(self.ctx.ptr, self.lib.ffi.NULL, self.lib.ffi.NULL)
        self.decode_calls += 1
        now = time.perf_counter()
        self._observe(now - t0, len(writers), len(chunk))
        for slot in list(self.slots):
            if slot.out_index < 0:
                continue
            if slot.next_token is not None:
                slot.decoded.append(slot.next_token)
                slot.pos += 1
            elif slot.t_prompt is None:
                slot.t_prompt = now
            self._sample(slot, emit)
        self._flush_tokens(emit)

    def _flush_tokens(self, emit) -> None:
        """Post this step's token texts (before any DoneEvent, so every request's text comes first)."""
        if self._step_tokens:
            emit(TokensEvent(tuple(self._step_tokens)))
            self._step_tokens.clear()

    MIN_CHUNK = 4  # prompt tokens per mixed step, at least: a newcomer always moves on

    def plan_chunk(self) -> int:
        """Prompt tokens to read in a step that also carries generating sequences' tokens.

        About ``prompt_share`` generation steps' worth of prompt time, from running
        estimates of both, so those already talking see their gap between two tokens
        grow to about 1 + prompt_share steps while a newcomer's prompt is read; the
        newcomer gets about prompt_share / (1 + prompt_share) of the time.  Before
        any estimate exists, 16 tokens.
        """
        if self._gen_step_s is None or self._prompt_tok_s is None:
            return 16
        return max(self.MIN_CHUNK, int(self.prompt_share * self._gen_step_s / self._prompt_tok_s))

    def _observe(self, seconds: float, n_gen: int, n_prompt: int) -> None:
        """Update the running time estimates from one decode."""
        def ema(old, new):
            return new if old is None else 0.8 * old + 0.2 * new
        if n_prompt == 0:
            self._gen_step_s = ema(self._gen_step_s, seconds)
        elif n_gen == 0:
            if n_prompt >= self.MIN_CHUNK:  # a tiny chunk's fixed cost would overstate the cost per token
                self._prompt_tok_s = ema(self._prompt_tok_s, seconds / n_prompt)
        elif self._gen_step_s is not None:  # mixed: what the chunk added to a generation step
            self._prompt_tok_s = ema(self._prompt_tok_s, max(seconds - self._gen_step_s, 1e-6) / n_prompt)

    def _sample(self, slot: _Slot, emit) -> None:
        token = slot.sampler.sample(self.ctx, slot.out_index)
        slot.n_gen += 1
        if self.vocab.is_eog(token):
            slot.next_token = None
            self._finish(slot, "stop", emit)
            return
        piece = self.vocab.piece(token, False)
        text = slot.stop.push(slot.stream.push(piece))
        if text:
            slot.text.append(text)
            if slot.req.stream:
                self._step_tokens.append((slot.req.id, text))
        if slot.stop.stopped:
            self._finish(slot, "stop", emit)
        elif slot.n_gen >= slot.req.max_tokens:
            self._finish(slot, "length", emit)
        else:
            slot.next_token = token

    def _finish(self, slot: _Slot, reason: str, emit, error: str | None = None, error_type: str = "error") -> None:
        self._flush_tokens(emit)
        if reason in ("stop", "length") and not slot.stop.stopped:
            tail = slot.stop.push(slot.stream.flush())
            tail += "" if slot.stop.stopped else slot.stop.flush()
            if tail:
                slot.text.append(tail)
                if slot.req.stream:
                    emit(TokenEvent(slot.req.id, slot.req.mod_id, tail))
        self.slots.remove(slot)
        slot.sampler.close()
        session = slot.session
        if session is None:
            self.ctx.memory_seq_rm(slot.seq)
            self.free_seqs.append(slot.seq)
        else:
            self._clock += 1
            session.busy, session.last_used = False, self._clock
            if reason == "error":
                self.ctx.memory_seq_rm(slot.seq)
                session.kv_tokens = []
            else:
                session.kv_tokens = slot.prompt[:slot.n_prompt_done] + slot.decoded
            if session.to_summarize and session.overflow == "summarize" and reason in ("stop", "length"):
                self._summarize(session, emit)
            if reason in ("stop", "length"):
                session.messages += slot.user_message + [{"role": "assistant", "content": "".join(slot.text)}]
            if self.sessions.get(session.id) is not session:  # closed while it was answering
                self.ctx.memory_seq_rm(slot.seq)
                self.free_seqs.append(slot.seq)
                session.seq = None
        now = time.perf_counter()
        t_prompt = slot.t_prompt or now
        gen_s = max(now - t_prompt, 1e-9)
        result = {
            "text": "".join(slot.text),
            "finish_reason": reason,
            "error": error,
            "error_type": ("cancelled" if reason == "cancelled" else error_type if reason == "error" else None),
            "usage": {"prompt_tokens": len(slot.prompt), "cached_tokens": slot.cached,
                      "completion_tokens": slot.n_gen},
            "timings": {"prompt_ms": (t_prompt - slot.t_start) * 1000, "generation_ms": gen_s * 1000,
                        "tokens_per_second": slot.n_gen / gen_s if slot.n_gen else 0.0},
        }
        if session is not None:
            result["session_bytes"] = session.text_size()
        grammar = slot.req.grammar
        if grammar is not None and getattr(grammar, "returns_value", False):
            # the decoded value next to the raw text; a parse/validation failure is an error message only
            result["value"] = None
            if reason in ("stop", "length"):
                result["value"], problem = grammar.parse_result(result["text"])
                if problem and not error:
                    result["error"] = problem
                    result["error_type"] = "schema"
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

    # --- sessions (host calls from host.engine.service.Engine) ----------------
    def create_session(self, session_id: int, mod_id: str, *, system=None, sampler=None,
                       overflow="drop_oldest", template=None, memory=None) -> dict:
        """A new session; ``memory`` is a store path whose hits go into each user turn."""
        if overflow not in sessions.OVERFLOW_POLICIES:
            raise sessions.SessionError(f"unknown overflow policy {overflow!r}; use one of {sessions.OVERFLOW_POLICIES}")
        if sampler:
            sampling.resolve(sampler)  # validate now, not at the first turn
        if template is not None or system is not None:
            self.model.apply_chat_template([{"role": "user", "content": "x"}], template=template)
        se = sessions.SessionState(session_id, mod_id, system, sampler, overflow, template, memory=memory)
        self.sessions[session_id] = se
        return {"id": session_id, "session_bytes": se.text_size()}

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
        return {"id": session_id, "session_bytes": se.text_size()}

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
            self.ctx.memory_seq_rm(se.seq)
            self.free_seqs.append(se.seq)

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
            while not self.free_seqs and (self._grow() or self._evict_one()):
                pass
            if self.free_seqs:
                se.seq = self.free_seqs.popleft()
                sessions.restore_state(self.ctx, se, header, state, self.model_id)
                if not se.kv_tokens:
                    self.free_seqs.append(se.seq)
                    se.seq = None
        self.sessions[session_id] = se
        # what the next turn must read again when the cache did not come back (another model): said at load
        conversation = len(chat_tokens(self.model, se.all_messages(), template=se.template)) if se.messages else 0
        return {"id": session_id, "system": se.system, "messages": len(se.messages),
                "cached_tokens": len(se.kv_tokens), "conversation_tokens": conversation,
                "session_bytes": se.text_size()}

    def cancel_all(self, emit) -> None:
        """Finish everything as cancelled (shutdown)."""
        for req, _ in self.waiting:
            emit(DoneEvent(req.id, req.mod_id, error_result("", reason="cancelled")))
        self.waiting.clear()
        for slot in list(self.slots):
            self._finish(slot, "cancelled", emit)
