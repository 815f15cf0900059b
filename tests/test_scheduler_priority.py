"""Priorities, fairness and preemption through the whole scheduler, with the real model.

- a player request's first token comes before the background talkers' next tokens once it is
  admitted, and the paused talkers then go on with the same text as if never paused;
- a player request that finds every sequence taken swaps a background one out, which resumes
  with the same text afterwards;
- a mod with many chats decodes no more than its share of a step beside a mod with one;
- a mod reading a long turn reads nothing while a light mod's short request runs, and in short
  chunks while the light mod keeps asking; it is slowed, not stopped;
- the focused mod (the player's partner) runs as "player"; sessions carry a default priority;
- each result has its timings.
"""

from __future__ import annotations

from host.engine.scheduler import Scheduler
from host.messages import GenerateRequest
from scheduler_util import LONG_SYSTEM, Events, no_eog, req, run_until, slot_of

QUESTIONS = ("Name a fish.", "Name a bird.", "Name a tree.", "Name a river.")


def _texts_alone(model, questions, n):
    sched = Scheduler(model, n_ctx=512, n_batch=64, n_seq_max=4, n_seq_start=4, n_threads=1)
    try:
        ev = Events()
        for i, q in enumerate(questions):
            sched.submit(req(i, q, max_tokens=n, sampler=no_eog(model)), ev)
        run_until(sched, ev, lambda: False)
        return [ev.done[i]["text"] for i in range(len(questions))]
    finally:
        sched.close()


def test_player_first_token_comes_before_background_tokens_and_they_resume_unchanged(model):
    n = 40
    want = _texts_alone(model, QUESTIONS[:3], n)
    sched = Scheduler(model, n_ctx=512, n_batch=64, n_seq_max=4, n_seq_start=4, n_threads=1)
    try:
        ev = Events()
        for i, q in enumerate(QUESTIONS[:3]):
            sched.submit(req(i, q, mod=f"bg{i}", max_tokens=n, sampler=no_eog(model), priority="background"), ev)
        run_until(sched, ev, lambda: all(s.n_gen >= 4 for s in sched.slots) and len(sched.slots) == 3)
        player = req(9, "Tell me about the cove.", mod="npc", system=LONG_SYSTEM, max_tokens=4, priority="player")
        sched.submit(player, ev)
        sched.step(ev)  # admitted here
        assert slot_of(sched, 9) is not None
        before = {s.req.id: s.n_gen for s in sched.slots if s.req.id != 9}
        steps = run_until(sched, ev, lambda: slot_of(sched, 9) is None or slot_of(sched, 9).n_gen > 0)
        assert steps >= 2, "the long prompt took more than one step"
        after = {s.req.id: s.n_gen for s in sched.slots if s.req.id != 9}
        assert after == before, "no background token until the player's first one"
        assert all(s.steps_paused_total >= steps for s in sched.slots if s.req.id != 9)
        run_until(sched, ev, lambda: False)
        assert [ev.done[i]["text"] for i in range(3)] == want, "paused talkers say exactly what they would have"
        assert ev.done[9]["error"] is None
    finally:
        sched.close()


def test_a_player_request_swaps_out_a_background_one_which_resumes_unchanged(model):
    n = 32
    want = _texts_alone(model, QUESTIONS, n)
    sched = Scheduler(model, n_ctx=512, n_batch=64, n_seq_max=4, n_seq_start=4, n_threads=1)
    try:
        ev = Events()
        for i, q in enumerate(QUESTIONS):
            sched.submit(req(i, q, mod="crowd", max_tokens=n, sampler=no_eog(model), priority="background"), ev)
        run_until(sched, ev, lambda: len(sched.slots) == 4 and all(s.n_gen >= 6 for s in sched.slots))
        sched.submit(req(9, "Hello!", mod="npc", max_tokens=6, priority="player"), ev)
        run_until(sched, ev, lambda: 9 in ev.done)
        assert sched.preemptions == 1
        assert ev.done[9]["error"] is None and ev.done[9]["timings"]["swaps"] == 0
        run_until(sched, ev, lambda: False)
        assert [ev.done[i]["text"] for i in range(4)] == want
        assert sum(ev.done[i]["timings"]["swaps"] for i in range(4)) == 1
        assert sched.pool.swapped_bytes == 0
    finally:
        sched.close()


def test_a_hog_with_sixteen_chats_decodes_no_more_than_its_share_per_step(model):
    sched = Scheduler(model, n_ctx=256, n_batch=64, n_seq_max=4, n_seq_start=4, n_threads=1)
    try:
        ev = Events()
        for i in range(16):
            sched.submit(req(i, "Write a long story about the sea.", mod="hog", max_tokens=64, sampler=no_eog(model)),
                         ev)
        run_until(sched, ev, lambda: len(sched.slots) == 4 and all(s.writing for s in sched.slots))
        sched.submit(req(100, "Name a fish.", mod="good", max_tokens=12, sampler=no_eog(model)), ev)
        hog_per_step, good_steps = [], 0
        for _ in range(200):
            if 100 in ev.done:
                break
            before = {s.req.id: s.n_gen for s in sched.slots}
            sched.step(ev)
            gained = {s.req.id: s.n_gen - before.get(s.req.id, 0) for s in sched.slots if s.req.id in before}
            good = slot_of(sched, 100)
            if good is not None and good.writing and 100 in before and gained.get(100):
                good_steps += 1
                hog_per_step.append(sum(v for k, v in gained.items() if k != 100))
        assert ev.done[100]["error"] is None
        assert good_steps >= 5 and max(hog_per_step) <= 2, hog_per_step
    finally:
        sched.cancel_all(lambda e: None)
        sched.close()


def test_focus_makes_a_mod_the_player_and_one_player_request_per_mod(model):
    sched = Scheduler(model, n_ctx=256, n_batch=64, n_seq_max=2, n_threads=1)
    try:
        a = GenerateRequest(id=1, mod_id="oona", prompt="x")
        b = GenerateRequest(id=2, mod_id="oona", prompt="y", priority="player", max_tokens=4)
        assert sched.priority_of(a) == "normal" and sched.rank_of(b) == 0
        sched.set_focus("oona")
        assert sched.priority_of(a) == "player"
        sched.set_focus("lise")
        assert sched.priority_of(a) == "normal"
        assert sched.priority_of(b) == "normal", "with a focus set, a mod cannot make itself the player"
        sched.set_focus(None)
        sched.create_session(5, "lise", system="You are Lise.", priority="background")
        turn = GenerateRequest(id=3, mod_id="lise", prompt="hi", session=5)
        assert sched.priority_of(turn) == "background"
        sched.set_focus("lise", 5)
        assert sched.priority_of(turn) == "player"
        sched.set_focus("lise", 6)
        assert sched.priority_of(turn) == "background"
        sched.set_focus(None)
        ev = Events()
        sched.submit(b, ev)
        sched.submit(GenerateRequest(id=4, mod_id="oona", prompt="Once upon", priority="player", max_tokens=4), ev)
        sched.step(ev)
        ranks = {s.req.id: sched.rank_of(s.req) for s in sched.slots}
        assert sorted(ranks.values()) == [0, 1], "a mod's second player request runs as normal"
        run_until(sched, ev, lambda: False)
    finally:
        sched.close()


def test_results_carry_their_timings(model):
    sched = Scheduler(model, n_ctx=256, n_batch=64, n_seq_max=1, n_threads=1)
    try:
        ev = Events()
        sched.submit(req(1, "Name a fish.", max_tokens=6, sampler=no_eog(model)), ev)
        sched.submit(req(2, "Name a bird.", max_tokens=6, sampler=no_eog(model)), ev)
        run_until(sched, ev, lambda: False)
        t1, t2 = ev.done[1]["timings"], ev.done[2]["timings"]
        for t in (t1, t2):
            assert set(t) >= {"queue_ms", "retrieval_ms", "prompt_ms", "first_token_ms", "generation_ms",
                              "tokens_per_second", "paused_steps", "swaps"}
            assert t["first_token_ms"] >= t["queue_ms"] + t["prompt_ms"] - 1 and t["tokens_per_second"] > 0
        assert t2["queue_ms"] > t1["queue_ms"], "the second waited for the only sequence"
    finally:
        sched.close()


def test_a_mod_with_long_turns_does_not_starve_one_with_short_ones(model):
    """Service counts prompt tokens, not requests: a mod whose four long prompts hold every sequence
    gives one up (swapped out) to a mod asking for little, whose answer then comes first."""
    sched = Scheduler(model, n_ctx=512, n_batch=32, n_seq_max=4, n_seq_start=4, n_threads=1)
    try:
        ev = Events()
        for i in range(4):
            sched.submit(req(i, f"Question {i}: tell me everything.", mod="long", system=LONG_SYSTEM, max_tokens=8),
                         ev)
        sched.step(ev)
        assert len(sched.slots) == 4 and all(s.reading for s in sched.slots)
        sched.submit(req(100, "Hi.", mod="short", max_tokens=4), ev)
        for s in sched.slots:
            s.t_run -= 10  # they have run long enough to be preempted (see admission.MIN_RUN_S)
        run_until(sched, ev, lambda: bool(ev.done))
        assert list(ev.done) == [100], "the short request ends first"
        assert sched.preemptions == 1 and sum(1 for s in sched.slots if s.mod_id == "long") == 3
        run_until(sched, ev, lambda: False)
        assert all(ev.done[i]["error"] is None for i in range(4))
    finally:
        sched.close()


def test_a_long_turn_reads_nothing_while_a_light_mods_request_runs(model):
    """Fair service counts prompt tokens: a mod that has read a lot lately is heavy beside one that
    asks for little, so the light mod's request runs with no prompt chunk of the heavy mod in its
    steps (its steps cost what they would alone), and the long turn goes on after it."""
    sched = Scheduler(model, n_ctx=1024, n_batch=32, n_seq_max=4, n_seq_start=4, n_threads=1)
    plans = []
    plan = sched.builder.plan

    def recording(*a, **k):
        cap = sched.builder.costs.tokens_within(sched.builder.fair_step_s)  # as the step sees it
        p = plan(*a, **k)
        plans.append(([s.mod_id for s in p.decode], [(s.mod_id, n) for s, _, n in p.chunks], cap))
        return p

    sched.builder.plan = recording
    try:
        ev = Events()
        sched.submit(req(1, "Tell me everything.", mod="long", system=LONG_SYSTEM * 3, max_tokens=4), ev)
        run_until(sched, ev, lambda: slot_of(sched, 1) is not None and slot_of(sched, 1).n_prompt_done >= 96)
        sched.submit(req(100, "Name a fish.", mod="short", max_tokens=6, sampler=no_eog(model)), ev)
        start = len(plans)
        run_until(sched, ev, lambda: 100 in ev.done)
        assert ev.done[100]["error"] is None and 1 not in ev.done
        during = plans[start:]
        assert all(m != "long" for _, chunks, _ in during for m, _ in chunks), during
        reads = -(-ev.done[100]["usage"]["prompt_tokens"] // 32)
        assert len(during) == reads + 5, f"its prompt chunks and five decode steps, as alone: {during}"
        long_slot = slot_of(sched, 1)
        assert long_slot.reading, "the long turn is still reading"
        start = len(plans)
        run_until(sched, ev, lambda: 1 in ev.done)
        after = [(n, cap) for _, chunks, cap in plans[start:] for m, n in chunks if m == "long"]
        assert after and all(n <= cap for n, cap in after), after  # the short mod asked lately: short steps
        assert ev.done[1]["error"] is None and ev.done[1]["usage"]["completion_tokens"] >= 1
    finally:
        sched.cancel_all(lambda e: None)
        sched.close()
