"""The sequence pool: the shared context, its sequences, and the requests running in them.

Owned by the worker thread (it creates the context and is the only thread that
touches it).  One KV stream per sequence (kv_unified off) and flash attention
make a sequence's logits independent of the others sharing the context, so a
request's text depends only on its own prompt, sampler and seed.

- **Sequences.**  Each running request (a :class:`Slot`) or resident session
  holds one sequence id.  The context starts with room for ``n_seq_start``
  sequences and doubles, up to ``n_seq_limit``, when more are needed at once
  (:meth:`SequencePool.grow`: the sequences in use are copied out and back,
  and go on exactly where they were).
- **Pause.**  A slot left out of a step is paused: its KV stays in its
  sequence, and it goes on at the next step that includes it (nothing to do
  here: the step builder decides who is in a step).
- **Swap out / in.**  When a sequence is needed by a request of higher
  priority or of a starved mod, a running slot gives its sequence up:
  :meth:`SequencePool.swap_out` copies its KV state to host memory
  (llama_state_seq_get_data) and frees the sequence; :meth:`swap_in` puts it
  back into whichever sequence is free then.  Swapped state is bounded
  (``swap_budget_bytes`` over all slots): past it, the state is dropped and the
  slot recomputes its tokens as a prompt when it resumes (same text: the cache
  is rebuilt from the same tokens).  Swapping is the default because it is
  far cheaper here: a 400-token sequence's q8_0 state (about 5 MiB) goes out
  and back in tens of milliseconds, while reading those tokens again takes
  seconds on a small CPU (``bench/player_first.py --only swap`` measures both).
"""

from __future__ import annotations

import collections
import logging
import time

from host.errors import RelicError
from host.llama import Context, Utf8Stream
from host.llama.context import check_kv_type
from host.engine.stop import StopMatcher

log = logging.getLogger("relic.engine")

SWAP_BUDGET_BYTES = 256 << 20  # host memory for swapped-out sequences, all together


class Slot:
    """A running request: its sequence, prompt progress, sampler and output so far.

    ``prompt[:n_prompt_done]`` and ``decoded`` are what its sequence holds;
    ``next_token`` is sampled but not yet decoded.  ``seq`` is None while the
    slot is swapped out (``swapped`` then holds its state, or None when the
    state was dropped and the slot recomputes).  Times are time.perf_counter().
    """

    __slots__ = ("req", "seq", "prompt", "n_prompt_done", "pos", "sampler", "stream", "stop", "text",
                 "n_gen", "next_token", "out_index", "cached", "session", "user_message", "decoded",
                 "priority", "swapped", "t_admitted", "t_prompt", "t_first", "retrieval_s", "steps_paused",
                 "swaps", "order", "n_prompt", "steps_paused_total", "t_run")

    def __init__(self, req, seq, prompt, sampler, session=None, user_message=None, n_cached=0,
                 priority: str = "normal"):
        self.req = req
        self.seq = seq
        self.prompt = prompt
        self.sampler = sampler
        self.stream = Utf8Stream()
        self.stop = StopMatcher(req.stop)
        self.text = []
        self.n_gen = 0
        self.next_token = None  # sampled, not yet decoded
        self.out_index = -1  # where this slot's logits are in the current batch
        self.cached = n_cached
        self.n_prompt_done = n_cached
        self.pos = n_cached
        self.session = session
        self.user_message = user_message
        self.decoded = []  # generated tokens now in the KV cache
        self.priority = priority  # what it runs at ("player" | "normal" | "background"; the focus applied)
        self.swapped = None  # KV state bytes while swapped out
        self.t_admitted = time.perf_counter()
        self.t_run = self.t_admitted  # when it last got a sequence (admitted or resumed)
        self.t_prompt = None  # prompt read (its logits came)
        self.t_first = None  # first token sampled
        self.retrieval_s = 0.0  # memory note (embedding + search) while it was planned
        self.steps_paused = 0  # steps sat out in a row
        self.steps_paused_total = 0
        self.swaps = 0
        self.order = 0  # admission order (the newest is swapped out first)
        self.n_prompt = len(prompt)  # the prompt's size as asked (usage), whatever is recomputed later

    @property
    def reading(self) -> bool:
        """Still reading its prompt (or re-reading what a dropped swap lost)."""
        return self.n_prompt_done < len(self.prompt)

    @property
    def writing(self) -> bool:
        """Has a sampled token to decode next (and nothing left to read)."""
        return self.next_token is not None and self.n_prompt_done >= len(self.prompt)

    @property
    def mod_id(self) -> str:
        return self.req.mod_id


class SequencePool:
    """The context and its sequence ids (see module docstring)."""

    def __init__(self, model, *, n_ctx: int, n_batch: int, n_seq_max: int, n_threads=None, n_threads_batch=None,
                 kv_type: str = "q8_0", n_seq_start: int = 1, swap_budget_bytes: int = SWAP_BUDGET_BYTES):
        check_kv_type(kv_type)
        self.model = model
        self.kv_type = kv_type
        self.n_seq_limit = n_seq_max
        self.swap_budget_bytes = swap_budget_bytes
        self.swapped_bytes = 0  # state bytes held by swapped-out slots
        self._ctx_args = dict(n_batch=n_batch, n_threads=n_threads, n_threads_batch=n_threads_batch,
                              flash_attn=True, kv_unified=False, kv_type=kv_type)
        # llama.cpp pads to 256: the same per-sequence size at every n_seq
        self._n_ctx_arg = -(-n_ctx // 256) * 256 if n_ctx > 0 else n_ctx
        # Owned by this pool (the worker thread); replaced by a bigger one in grow(), freed in close().
        self.ctx = self._new_context(max(1, min(n_seq_start, n_seq_max)))
        self.n_ctx_seq = model.lib.C.llama_n_ctx_seq(self.ctx.ptr)
        self.free = collections.deque(range(self.ctx.n_seq_max))
        self.lost: set[int] = set()  # sequences whose state a failed grow() dropped

    def _new_context(self, n_seq: int) -> Context:
        return Context(self.model, n_ctx=self._n_ctx_arg * n_seq, n_seq_max=n_seq, **self._ctx_args)

    @property
    def n_seq_max(self) -> int:
        """Sequences the context has room for now (grows up to ``n_seq_limit``)."""
        return self.ctx.n_seq_max

    def grow(self) -> bool:
        """Make room for more sequences (double, up to n_seq_limit); False if at the limit.

        The KV state of every sequence in use is copied out, the context replaced by a
        bigger one, and the state copied back (only between steps).  If the bigger
        context cannot be made (memory), the old size is kept and False returned.
        """
        old = self.ctx
        k = old.n_seq_max
        if k >= self.n_seq_limit:
            return False
        saved = {seq: old.seq_state(seq) for seq in sorted(set(range(k)) - set(self.free))}
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
                self.lost.add(seq)  # its holder is failed (slot) or recomputes (idle session)
        self.free.extend(range(k, self.ctx.n_seq_max))
        return grown

    def take(self) -> int:
        """A free sequence id, emptied (the caller checked ``free`` or grew first)."""
        seq = self.free.popleft()
        self.ctx.memory_seq_rm(seq)
        return seq

    def release(self, seq: int) -> None:
        """Empty ``seq`` and make it free."""
        self.ctx.memory_seq_rm(seq)
        self.free.append(seq)

    def room(self) -> int:
        """Sequences free now or by growing."""
        return len(self.free) + (self.n_seq_limit - self.ctx.n_seq_max)

    def ensure_free(self) -> bool:
        """A free sequence exists (growing the context if it must)."""
        while not self.free:
            if not self.grow():
                return False
        return True

    # --- swap ------------------------------------------------------------------
    def swap_out(self, slot: Slot) -> None:
        """Free ``slot``'s sequence, keeping its KV state in host memory (or dropping it past the budget).

        A slot whose state is dropped goes back to reading: what its sequence held
        (prompt read so far and decoded tokens) becomes its prompt again.
        """
        state = self.ctx.seq_state(slot.seq)
        if self.swapped_bytes + len(state) <= self.swap_budget_bytes:
            slot.swapped = state
            self.swapped_bytes += len(state)
        else:
            slot.swapped = None
            recompute(slot)
        self.release(slot.seq)
        slot.seq = None
        slot.swaps += 1

    def swap_in(self, slot: Slot) -> bool:
        """Give a swapped-out slot a free sequence and its state back; False if none is free.

        A state that does not load (it should) is dropped: the slot recomputes.
        """
        if not self.ensure_free():
            return False
        slot.seq = self.take()
        state, slot.swapped = slot.swapped, None
        if state is not None:
            self.swapped_bytes -= len(state)
            if not self.ctx.set_seq_state(slot.seq, state):
                self.ctx.memory_seq_rm(slot.seq)
                recompute(slot)
        return True

    def forget_swapped(self, slot: Slot) -> None:
        """A swapped-out slot ends: its saved state is released."""
        if slot.swapped is not None:
            self.swapped_bytes -= len(slot.swapped)
            slot.swapped = None

    def close(self) -> None:
        """Free the context (on the thread that owns it)."""
        self.ctx.close()


def recompute(slot: Slot) -> None:
    """Make ``slot`` read again everything its sequence held (its cache was dropped)."""
    held = slot.prompt[:slot.n_prompt_done] + slot.decoded
    rest = slot.prompt[slot.n_prompt_done:]
    slot.prompt = held + rest
    slot.decoded = []
    slot.n_prompt_done = 0
    slot.pos = 0
    # a slot that was generating keeps its sampled next_token: once `held` is read again it
    # decodes that token (the step builder asks for no logits at the end of such a re-read)
