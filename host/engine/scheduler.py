"""Many generations in one context, advanced together: one llama_decode per step.

Owned by the worker thread (it creates the context, batch and samplers and is
the only thread that touches them).  Each running request is a *slot* with
its own sequence id and sampler chain.  A step builds one batch holding the
next token of every generating slot plus prompt chunks of slots still reading
their prompt (round robin, bounded by n_batch), decodes once, then samples
each slot that has logits.  A new request joins the running batch at the next
step; cancellation is seen between steps, so it takes effect within one decode.

Admission reserves prompt + max_tokens positions per slot so the shared KV
cache never overflows mid-generation; a request that cannot fit even alone
fails at once with a clear error.
"""

from __future__ import annotations

import collections
import time

from host.engine import sampling
from host.engine.stop import StopMatcher
from host.errors import DecodeError, PromptTooLongError, RelicError
from host.llama import Batch, Context, Utf8Stream
from host.messages import DoneEvent, TokenEvent, error_result


class _Slot:
    __slots__ = ("req", "seq", "prompt", "n_prompt_done", "pos", "sampler", "stream", "stop", "text",
                 "n_gen", "next_token", "out_index", "t_start", "t_prompt", "reserve", "cached")

    def __init__(self, req, seq, prompt, sampler, reserve):
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
        self.reserve = reserve
        self.cached = 0


class Scheduler:
    """Runs GenerateRequests over one shared context (see module docstring)."""

    def __init__(self, model, *, n_ctx: int = 4096, n_batch: int = 256, n_seq_max: int = 8,
                 n_threads: int | None = None, n_threads_batch: int | None = None,
                 max_prompt_tokens: int | None = None):
        self.model = model
        self.lib = model.lib
        self.vocab = model.vocab
        # owned by this scheduler (the worker thread): freed in close()
        self.ctx = Context(model, n_ctx=n_ctx, n_batch=n_batch, n_seq_max=n_seq_max,
                           n_threads=n_threads, n_threads_batch=n_threads_batch)
        self.batch = Batch(self.lib, self.ctx.n_batch, 1)
        self.max_prompt_tokens = max_prompt_tokens or self.ctx.n_ctx
        self.free_seqs = collections.deque(range(self.ctx.n_seq_max))
        self.waiting: collections.deque = collections.deque()  # admitted later, in order
        self.slots: list[_Slot] = []
        self._rr = 0  # round-robin start for prompt chunks
        self.decode_calls = 0

    @property
    def busy(self) -> bool:
        return bool(self.slots or self.waiting)

    def close(self) -> None:
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
        try:
            prompt = self._prompt_tokens(req)
        except RelicError as exc:
            emit(DoneEvent(req.id, req.mod_id, error_result(str(exc))))
            return
        self.waiting.append((req, prompt))

    def _prompt_tokens(self, req) -> list[int]:
        if req.messages is not None:
            text = self.model.apply_chat_template(list(req.messages), template=req.template)
        elif isinstance(req.prompt, str):
            text = req.prompt
        else:
            raise PromptTooLongError("a request needs prompt= (a string) or messages=")
        tokens = self.vocab.tokenize(text, add_special=True, parse_special=req.parse_special)
        if not tokens:
            raise PromptTooLongError("the prompt is empty")
        if len(tokens) > self.max_prompt_tokens:
            raise PromptTooLongError(f"prompt is {len(tokens)} tokens; the limit is {self.max_prompt_tokens}")
        if len(tokens) + req.max_tokens > self.ctx.n_ctx:
            raise PromptTooLongError(f"prompt ({len(tokens)} tokens) + max_tokens ({req.max_tokens}) exceeds the "
                                     f"context size {self.ctx.n_ctx}; shorten the prompt or lower max_tokens")
        return tokens

    def _admit(self, emit) -> None:
        used = sum(s.reserve for s in self.slots)
        while self.waiting and self.free_seqs:
            req, prompt = self.waiting[0]
            reserve = len(prompt) + req.max_tokens
            if self.slots and used + reserve > self.ctx.n_ctx:
                break  # wait until running slots finish
            self.waiting.popleft()
            if req.cancel.is_set():
                emit(DoneEvent(req.id, req.mod_id, error_result("", reason="cancelled")))
                continue
            try:
                sampler = sampling.chain_for(self.lib, self.vocab, req.sampler, temperature=req.temperature,
                                             seed=req.seed, grammar=self._grammar(req))
            except Exception as exc:  # a bad sampler or grammar fails this request only
                msg = str(exc) if isinstance(exc, RelicError) else f"{type(exc).__name__}: {exc}"
                emit(DoneEvent(req.id, req.mod_id, error_result(msg)))
                continue
            seq = self.free_seqs.popleft()
            self.ctx.memory_seq_rm(seq)
            self.slots.append(_Slot(req, seq, prompt, sampler, reserve))
            used += reserve

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
        if not self.slots:
            return
        batch = self.batch
        batch.clear()
        cap = batch.capacity
        for slot in self.slots:
            slot.out_index = -1
            if slot.next_token is not None:
                slot.out_index = batch.n_tokens
                batch.add(slot.next_token, slot.pos, (slot.seq,), True)
        # prompt chunks, round robin so a long prompt cannot starve a short one
        readers = [s for s in self.slots if s.n_prompt_done < len(s.prompt)]
        if readers:
            self._rr %= len(readers)
            order = readers[self._rr:] + readers[:self._rr]
            self._rr += 1
            for slot in order:
                room = cap - batch.n_tokens
                if room <= 0:
                    break
                start = slot.n_prompt_done
                chunk = slot.prompt[start:start + room]
                for k, tok in enumerate(chunk):
                    batch.add(tok, start + k, (slot.seq,), False)
                slot.n_prompt_done += len(chunk)
                if slot.n_prompt_done == len(slot.prompt):
                    batch.struct.logits[batch.n_tokens - 1] = True
                    slot.out_index = batch.n_tokens - 1
                    slot.pos = len(slot.prompt)
        try:
            self.ctx.decode(batch)
        except DecodeError as exc:
            for slot in list(self.slots):  # the batch mixed them all; none can go on safely
                self._finish(slot, "error", emit, error=str(exc))
            return
        self.decode_calls += 1
        now = time.perf_counter()
        for slot in list(self.slots):
            if slot.out_index < 0:
                continue
            if slot.next_token is not None:
                slot.pos += 1
            elif slot.t_prompt is None:
                slot.t_prompt = now
            self._sample(slot, emit)

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
            emit(TokenEvent(slot.req.id, slot.req.mod_id, text))
        if slot.stop.stopped:
            self._finish(slot, "stop", emit)
        elif slot.n_gen >= slot.req.max_tokens:
            self._finish(slot, "length", emit)
        else:
            slot.next_token = token

    def _finish(self, slot: _Slot, reason: str, emit, error: str | None = None) -> None:
        if reason in ("stop", "length") and not slot.stop.stopped:
            tail = slot.stop.push(slot.stream.flush())
            tail += "" if slot.stop.stopped else slot.stop.flush()
            if tail:
                slot.text.append(tail)
                emit(TokenEvent(slot.req.id, slot.req.mod_id, tail))
        self.slots.remove(slot)
        slot.sampler.close()
        self.ctx.memory_seq_rm(slot.seq)
        self.free_seqs.append(slot.seq)
        now = time.perf_counter()
        t_prompt = slot.t_prompt or now
        gen_s = max(now - t_prompt, 1e-9)
        result = {
            "text": "".join(slot.text),
            "finish_reason": reason,
            "error": error,
            "usage": {"prompt_tokens": len(slot.prompt), "cached_tokens": slot.cached,
                      "completion_tokens": slot.n_gen},
            "timings": {"prompt_ms": (t_prompt - slot.t_start) * 1000, "generation_ms": gen_s * 1000,
                        "tokens_per_second": slot.n_gen / gen_s if slot.n_gen else 0.0},
        }
        emit(DoneEvent(slot.req.id, slot.req.mod_id, result))

    def cancel_all(self, emit) -> None:
        """Finish everything as cancelled (shutdown)."""
        for req, _ in self.waiting:
            emit(DoneEvent(req.id, req.mod_id, error_result("", reason="cancelled")))
        self.waiting.clear()
        for slot in list(self.slots):
            self._finish(slot, "cancelled", emit)
