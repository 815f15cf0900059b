"""The step builder alone (host.engine.step_builder): decode tokens first, then prompt chunks
within the time budget; higher priorities reading their prompt pause lower ones; a heavy mod reads
nothing while a light one runs, and short chunks while it asks."""

from __future__ import annotations

from host.engine.admission import RANK, Admission
from host.engine.pool import Slot
from host.engine.step_builder import FIRST_CHUNK, MIN_CHUNK, StepBuilder, StepCosts
from host.messages import GenerateRequest


def _req(i, mod):
    return GenerateRequest(id=i, mod_id=mod, prompt="x")


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


def test_a_long_player_prompt_is_read_in_chunks_with_a_step_for_normal_talkers_between():
    b = StepBuilder(Admission(_rank), lanes=4)
    b.costs.observe(0.030, 3, 0)
    b.costs.observe(0.640, 0, 64)  # 10 ms per prompt token
    chunk = b.costs.tokens_within(b.player_read_s)
    assert 4 < chunk < 100
    talkers = [_slot(i, f"t{i}", seq=i, writing=True) for i in range(3)]  # "normal"
    player = _slot(9, "npc", "player", seq=3, prompt_len=2 * chunk + 20, read=0)
    steps = []
    while player.reading:
        plan = b.plan(talkers + [player], capacity=128)
        steps.append((len(plan.decode), [n for _, _, n in plan.chunks]))
        for s, start, n in plan.chunks:
            s.n_prompt_done = start + n
    assert steps == [(0, [chunk]), (3, []), (0, [chunk]), (3, []), (0, [20])], steps
    bg = [_slot(i, f"bg{i}", "background", seq=i, writing=True) for i in range(3)]
    player.n_prompt_done = 0
    plan = b.plan(bg + [player], capacity=128)
    assert plan.decode == [] and plan.chunks == [(player, 0, min(128, 2 * chunk + 20))], \
        "background ones pause throughout"
    alone = _slot(10, "npc", "player", seq=3, prompt_len=120, read=0)
    assert b.plan([alone], capacity=128).chunks == [(alone, 0, 120)], "with nobody waiting: whole batches"


def test_normal_readers_do_not_pause_equal_writers_and_internal_work_waits():
    b = StepBuilder(Admission(_rank), lanes=4)
    w = _slot(1, seq=0, writing=True)
    r = _slot(2, seq=1, prompt_len=50, read=0)
    summary = _slot(-1, seq=2, prompt_len=50, read=0)
    plan = b.plan([w, r, summary], capacity=128, internal={-1})
    assert plan.decode == [w] and [c[0] for c in plan.chunks] == [r]
    plan = b.plan([summary], capacity=128, internal={-1})
    assert [c[0] for c in plan.chunks] == [summary], "alone, the scheduler's own work reads"


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def _heavy_beside_light(clock):
    adm = Admission(_rank, clock=clock)
    adm.ledger.charge("talker", 2000)  # long turns read a moment ago
    adm.ledger.charge("good", 20)
    b = StepBuilder(adm, lanes=4)
    b.costs.observe(0.010, 1, 0)
    b.costs.observe(0.640, 0, 64)  # 10 ms per prompt token
    return adm, b


def test_a_heavy_mod_reads_nothing_while_a_light_mod_runs_and_short_chunks_while_it_asks():
    clock = Clock()
    adm, b = _heavy_beside_light(clock)
    long_turn = _slot(1, "talker", seq=0, prompt_len=1500, read=200)
    asking = _slot(2, "good", seq=1, prompt_len=6, read=0)
    plan = b.plan([long_turn, asking], capacity=128)
    assert plan.chunks == [(asking, 0, 6)], "the light mod's prompt is read alone"
    asking.n_prompt_done, asking.next_token = 6, 5
    plan = b.plan([long_turn, asking], capacity=128)
    assert plan.decode == [asking] and plan.chunks == [], "... and it decodes alone"
    plan = b.plan([long_turn], capacity=128)
    assert plan.chunks == [(long_turn, 200, 128)], "nobody else asked lately: whole batches"
    adm.add(_req(3, "good"))
    adm.remove(adm.waiting[0])
    plan = b.plan([long_turn], capacity=128)
    cap = b.costs.tokens_within(b.fair_step_s)
    assert cap == 10 and plan.chunks == [(long_turn, 200, cap)], "the light mod asked lately: short steps"
    clock.t += 60
    adm.ledger.charge("talker", 2000)  # still heavy
    plan = b.plan([long_turn], capacity=128)
    assert plan.chunks == [(long_turn, 200, 128)], "the light mod stopped asking long ago: whole batches again"


def test_a_player_request_of_a_heavy_mod_is_never_held_back():
    adm, b = _heavy_beside_light(Clock())
    partner = _slot(1, "talker", "player", seq=0, prompt_len=300, read=0)
    good = _slot(2, "good", seq=1, writing=True)
    plan = b.plan([partner, good], capacity=128)
    assert plan.chunks and plan.chunks[0][0] is partner


def test_equal_mods_read_beside_each_other_as_before():
    adm = Admission(_rank, clock=Clock())
    adm.ledger.charge("a", 500)
    adm.ledger.charge("b", 400)
    b = StepBuilder(adm, lanes=4)
    ra = _slot(1, "a", seq=0, prompt_len=300, read=0)
    rb = _slot(2, "b", seq=1, prompt_len=300, read=0)
    plan = b.plan([ra, rb], capacity=128)
    assert [(s.mod_id, n) for s, _, n in plan.chunks] == [("b", 128)], "the less served reads first, a batch"


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
