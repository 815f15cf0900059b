"""The step builder alone (host.engine.step_builder): decode tokens first, then prompt chunks
within the time budget; higher priorities reading their prompt pause lower ones."""

from __future__ import annotations

from host.engine.admission import RANK, Admission
from host.engine.pool import Slot
from host.engine.step_builder import FIRST_CHUNK, MIN_CHUNK, StepBuilder, StepCosts
from host.messages import GenerateRequest


def _rank(req):
    return RANK[req.priority or "normal"]


def _slot(i, mod="m", priority=None, *, seq, prompt_len=3, read=None, writing=False):
    s = Slot(GenerateRequest(id=i, mod_id=mod, prompt="x", priority=priority), seq, list(range(10, 10 + prompt_len)),
             None, priority=priority or "normal")
    s.n_prompt_done = prompt_len if read is None else read
    s.next_token = 7 if writing else None
    s.order = i
    return s


def test_costs_give_a_chunk_that_keeps_a_mixed_step_within_the_gap_factor():
    costs = StepCosts()
    assert costs.chunk_tokens(3) == FIRST_CHUNK  # nothing measured yet
    costs.observe(0.030, 3, 0)  # a decode-only step of three tokens: 30 ms
    costs.observe(0.064, 0, 64)  # a prompt-only chunk: 1 ms per token
    assert costs.chunk_tokens(3, gap_factor=2.0) == 30  # (2 - 1) * 30 ms / 1 ms
    assert costs.chunk_tokens(3, gap_factor=1.0) == MIN_CHUNK
    costs.observe(0.030 + 0.010 * 2, 3, 10)  # a mixed step: the chunk added 2 ms per token
    assert 1e-3 < costs.prompt_tok_s < 2e-3


def test_decode_tokens_come_first_then_a_chunk_within_the_budget():
    b = StepBuilder(Admission(_rank), lanes=4)
    b.costs.observe(0.030, 2, 0)
    b.costs.observe(0.064, 0, 64)
    writers = [_slot(1, seq=0, writing=True), _slot(2, seq=1, writing=True)]
    reader = _slot(3, seq=2, prompt_len=200, read=0)
    plan = b.plan(writers + [reader], capacity=128)
    assert plan.decode == writers
    assert plan.chunks == [(reader, 0, 30)]
    alone = b.plan([reader], capacity=128)
    assert alone.chunks == [(reader, 0, 128)], "with nobody decoding, a whole batch"


def test_a_player_reading_its_prompt_pauses_lower_priorities():
    b = StepBuilder(Admission(_rank), lanes=4)
    bg = [_slot(i, f"bg{i}", "background", seq=i, writing=True) for i in range(3)]
    player = _slot(9, "npc", "player", seq=3, prompt_len=150, read=0)
    plan = b.plan(bg + [player], capacity=128)
    assert plan.decode == [] and set(plan.paused) == set(bg)
    assert plan.chunks == [(player, 0, 128)]
    assert all(s.steps_paused == 1 for s in bg)
    player.n_prompt_done = 150
    player.next_token = 5
    seen = set()
    for _ in range(3):
        plan = b.plan(bg + [player], capacity=128)
        assert player in plan.decode and len(plan.decode) == 2, "read: one other token beside it per step"
        seen |= set(plan.decode) - {player}
    assert seen == set(bg), "the others take turns"
    late = _slot(5, "bg5", "background", seq=5, prompt_len=40, read=0)
    plan = b.plan(bg + [player, late], capacity=128)
    assert plan.chunks == [], "no lower prompt is read while the player's partner runs"


def test_normal_readers_do_not_pause_equal_writers_and_internal_work_waits():
    b = StepBuilder(Admission(_rank), lanes=4)
    w = _slot(1, seq=0, writing=True)
    r = _slot(2, seq=1, prompt_len=50, read=0)
    summary = _slot(-1, seq=2, prompt_len=50, read=0)
    plan = b.plan([w, r, summary], capacity=128, internal={-1})
    assert plan.decode == [w] and [c[0] for c in plan.chunks] == [r]
    plan = b.plan([summary], capacity=128, internal={-1})
    assert [c[0] for c in plan.chunks] == [summary], "alone, the scheduler's own work reads"


def test_fill_orders_by_sequence_and_asks_logits_only_where_a_token_is_sampled(lib):
    from host.llama import Batch

    batch = Batch(lib, 64, 1)
    try:
        b = StepBuilder(Admission(_rank), lanes=4)
        w = _slot(1, seq=2, writing=True)
        w.pos = 3
        r = _slot(2, seq=0, prompt_len=5, read=2)
        rereading = _slot(3, seq=1, prompt_len=4, read=0, writing=True)  # a dropped cache: token kept
        plan = b.plan([w, r, rereading], capacity=64)
        b.fill(batch, plan)
        st = batch.struct
        seqs = [st.seq_id[i][0] for i in range(batch.n_tokens)]
        assert seqs == sorted(seqs) and batch.n_tokens == 3 + 4 + 1
        assert r.out_index == 2 and st.logits[2] and r.n_prompt_done == 5 and r.pos == 5
        assert rereading.out_index == -1 and rereading.pos == 4 and rereading.writing
        assert w.out_index == 7 and st.token[7] == 7 and st.pos[7] == 3
    finally:
        batch.close()
