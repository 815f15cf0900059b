"""Admission and fairness alone (host.engine.admission): priorities, service counted in tokens,
each mod's share of a step, and who gives a sequence up.  No model needed: the rules work on
requests and slots."""

from __future__ import annotations

import pytest

from host.engine.admission import INTERNAL_RANK, RANK, Admission, ServiceLedger
from host.engine.pool import Slot
from host.errors import OptionError
from host.messages import GenerateRequest


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _req(i, mod, priority=None):
    return GenerateRequest(id=i, mod_id=mod, prompt="x", priority=priority)


def _rank(req):
    return RANK[req.priority or "normal"]


def _slot(i, mod, priority=None, *, seq=0, writing=True, order=None):
    s = Slot(_req(i, mod, priority), seq, [1, 2, 3], None, priority=priority or "normal")
    s.n_prompt_done = 3
    s.next_token = 5 if writing else None
    s.order = order if order is not None else i
    s.t_run = -1e9
    return s


def test_bad_priority_is_refused_with_the_choices():
    with pytest.raises(OptionError, match='"player", "normal" or "background", got \'urgent\''):
        GenerateRequest(id=1, mod_id="m", prompt="x", priority="urgent")
    assert RANK["player"] < RANK["normal"] < RANK["background"] < INTERNAL_RANK


def test_service_is_counted_in_tokens_and_decays():
    clock = Clock()
    ledger = ServiceLedger(half_life_s=4.0, clock=clock)
    ledger.charge_step({"long": 90, "short": 10})  # prompt and decoded tokens alike
    assert ledger.usage("long") == pytest.approx(90) and ledger.usage("short") == pytest.approx(10)
    clock.t += 4.0
    assert ledger.usage("long") == pytest.approx(45)
    assert ledger.usage("nobody") == 0.0


def test_heavy_is_relative_to_the_other_mod_and_wears_off():
    clock = Clock()
    adm = Admission(_rank, clock=clock)
    adm.ledger.charge("talker", 1000)
    adm.ledger.charge("good", 40)
    assert adm.heavier("talker", "good") and not adm.heavier("good", "talker")
    assert not adm.heavier("talker", "talker")
    adm.ledger.charge("good", 500)
    assert not adm.heavier("talker", "good"), "within HEAVY times of each other"
    clock.t += 40.0  # ten half-lives: both under the floor
    assert not adm.heavier("talker", "nobody")


def test_waiting_requests_start_by_priority_then_least_recent_service():
    clock = Clock()
    adm = Admission(_rank, clock=clock)
    adm.ledger.charge("reader", 500)  # long prompts read a moment ago
    adm.add(_req(1, "reader"))
    adm.add(_req(2, "quiet"))
    adm.add(_req(3, "bg", "background"))
    pick = lambda: adm.pick(set(), {}, 4, lambda it: True, lambda it: True)  # noqa: E731
    assert pick().req.id == 2, "the mod with the least recent service goes first"
    adm.started(pick())
    assert pick().req.id == 1
    adm.add(_req(4, "bg2", "player"))
    assert pick().req.id == 4, "a player request goes before any normal one"
    adm.started(pick())
    adm.started(pick())
    assert pick().req.id == 3, "background comes last"


def test_within_a_mod_its_player_request_goes_before_its_older_ones():
    adm = Admission(_rank, clock=Clock())
    adm.add(_req(1, "npc", "background"))
    adm.add(_req(2, "npc", "player"))
    assert adm.pick(set(), {}, 4, lambda it: True, lambda it: True).req.id == 2


def test_a_mod_with_many_chats_decodes_no_more_than_its_share_of_a_step():
    adm = Admission(_rank, clock=Clock())
    hog = [_slot(i, "hog", seq=i) for i in range(3)]
    good = [_slot(9, "good", seq=3)]
    seen = {s.req.id: 0 for s in hog}
    for _ in range(6):
        run, pause = adm.step_share(hog + good, 4)
        assert sum(1 for s in run if s.mod_id == "hog") == 1 and good[0] in run, "one token each"
        for s in run:
            seen.setdefault(s.req.id, 0)
            if s.mod_id == "hog":
                seen[s.req.id] += 1
            s.steps_paused = 0
        for s in pause:
            s.steps_paused += 1
    assert min(seen[s.req.id] for s in hog) >= 2, f"every chat of the hog moves on in turn: {seen}"
    two = [_slot(20, "pair", seq=5), _slot(21, "pair", seq=6)]
    run, _ = adm.step_share(hog + two, 4)
    assert sum(1 for s in run if s.mod_id == "hog") == 2 and set(two) <= set(run), "as many as the smallest"
    alone, none = adm.step_share(hog, 4)
    assert alone == hog and none == [], "a mod alone uses every lane"


def test_a_light_mods_chats_are_not_paused_for_a_heavy_reader():
    adm = Admission(_rank, clock=Clock())
    adm.ledger.charge("talker", 2000)  # long turns read a moment ago
    adm.ledger.charge("good", 30)
    reader = _slot(1, "talker", seq=0, writing=False)
    reader.n_prompt_done = 1
    good = [_slot(8, "good", seq=1), _slot(9, "good", seq=2)]
    run, pause = adm.step_share(good, 4, [reader])
    assert run == good and pause == [], "both of the light mod's chats decode"
    adm.ledger.charge("good", 2000)
    run, pause = adm.step_share(good, 4, [reader])
    assert len(run) == 1, "between equals, a mod only reading counts as one"


def test_a_mod_with_far_more_service_decodes_every_other_step_beside_a_light_one():
    adm = Admission(_rank, clock=Clock())
    hog = [_slot(i, "hog", seq=i) for i in range(3)]
    good = _slot(9, "good", seq=3)
    adm.ledger.charge("hog", 500)
    adm.ledger.charge("good", 40)
    hog_tokens = []
    for _ in range(6):
        run, _ = adm.step_share(hog + [good], 4)
        assert good in run, "the light mod decodes every step"
        hog_tokens.append(sum(1 for s in run if s.mod_id == "hog"))
    assert hog_tokens == [1, 0, 1, 0, 1, 0], hog_tokens
    partner = _slot(30, "hog", "player", seq=7)
    assert all(partner in adm.step_share(hog + [good, partner], 4)[0] for _ in range(3)), \
        "a player request of a heavy mod decodes every step"
    adm.ledger.charge("good", 400)
    assert all(sum(1 for s in adm.step_share(hog + [good], 4)[0] if s.mod_id == "hog") == 1 for _ in range(3)), \
        "within HEAVY times of each other, one token each every step"


def test_a_lower_priority_yields_its_sequence_and_equal_ones_only_past_their_share():
    adm = Admission(_rank, clock=Clock())
    running = [_slot(1, "bg", "background", seq=0), _slot(2, "hog", seq=1), _slot(3, "hog", seq=2),
               _slot(4, "hog", seq=3)]
    adm.add(_req(10, "npc", "player"))
    item = adm.waiting[0]
    assert adm.victim(item, running, 4) is running[0], "background gives way to the player"
    adm.remove(item)
    adm.add(_req(11, "good"))
    item = adm.waiting[0]
    assert adm.victim(item, running, 4) is running[0], "background gives way to normal too"
    hogged = [_slot(1, "other", seq=0)] + running[1:]
    v = adm.victim(item, hogged, 4)
    assert v is not None and v.mod_id == "hog" and v.req.id == 4, "the newest of the mod over its share"
    even = [_slot(1, "a", seq=0), _slot(2, "a", seq=1), _slot(3, "b", seq=2), _slot(4, "b", seq=3)]
    adm.remove(item)
    adm.add(_req(12, "a"))
    assert adm.victim(adm.waiting[0], even, 4) is None, "a mod at its share takes nothing from an equal"


def test_a_resumed_request_is_not_preempted_again_at_once():
    clock = Clock()
    adm = Admission(_rank, clock=clock)
    running = [_slot(i, "hog", seq=i) for i in range(4)]
    for s in running:
        s.t_run = clock.t
    adm.add(_req(11, "good"))
    assert adm.victim(adm.waiting[0], running, 4) is None
    clock.t += 1.0
    assert adm.victim(adm.waiting[0], running, 4) is not None
