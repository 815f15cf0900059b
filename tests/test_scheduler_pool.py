"""The sequence pool with the real model: a paused or swapped-out sequence goes on exactly
where it was (greedy text identical to an undisturbed run), whether its state was kept in host
memory or dropped and recomputed."""

from __future__ import annotations

import pytest

from host.engine.scheduler import Scheduler
from scheduler_util import Events, no_eog, req, run_until, slot_of

QUESTIONS = ("Name a fish.", "Name a bird.", "Name a tree.")


def _alone(model, i, text, n):
    sched = Scheduler(model, n_ctx=512, n_batch=64, n_seq_max=1, n_threads=1)
    try:
        ev = Events()
        sched.submit(req(i, text, max_tokens=n, sampler=no_eog(model)), ev)
        run_until(sched, ev, lambda: False)
        return ev.done[i]["text"]
    finally:
        sched.close()


@pytest.mark.parametrize("budget", [256 << 20, 0], ids=["swapped-to-host", "dropped-recomputed"])
def test_a_sequence_swapped_out_mid_answer_resumes_with_the_same_text(model, budget):
    n = 24
    want = _alone(model, 1, QUESTIONS[0], n)
    sched = Scheduler(model, n_ctx=512, n_batch=64, n_seq_max=2, n_seq_start=2, n_threads=1)
    sched.pool.swap_budget_bytes = budget
    try:
        ev = Events()
        sched.submit(req(1, QUESTIONS[0], max_tokens=n, sampler=no_eog(model)), ev)
        run_until(sched, ev, lambda: (slot_of(sched, 1) is not None and slot_of(sched, 1).n_gen >= 8))
        slot = slot_of(sched, 1)
        seq = slot.seq
        sched.pool.swap_out(slot)
        assert slot.seq is None and seq in sched.pool.free
        assert (slot.swapped is not None) == (budget > 0)
        assert sched.ctx.memory_seq_pos_max(seq) < 0, "its sequence is empty and free for another"
        assert sched.pool.swap_in(slot) and slot.seq is not None
        run_until(sched, ev, lambda: False)
        assert ev.done[1]["text"] == want
        assert sched.pool.swapped_bytes == 0
    finally:
        sched.close()


def test_the_context_grows_and_swap_state_fits_any_sequence(model):
    sched = Scheduler(model, n_ctx=512, n_batch=64, n_seq_max=2, n_seq_start=1, n_threads=1)
    try:
        ev = Events()
        sched.submit(req(1, QUESTIONS[1], max_tokens=16, sampler=no_eog(model)), ev)
        run_until(sched, ev, lambda: slot_of(sched, 1) is not None and slot_of(sched, 1).n_gen >= 4)
        slot = slot_of(sched, 1)
        sched.pool.swap_out(slot)
        taken = sched.pool.take()  # someone else takes its old sequence meanwhile
        assert sched.pool.swap_in(slot), "the pool grows for it"
        assert slot.seq != taken and sched.n_seq_max == 2
        sched.pool.release(taken)
        run_until(sched, ev, lambda: False)
        assert ev.done[1]["text"] == _alone(model, 1, QUESTIONS[1], 16)
    finally:
        sched.close()
