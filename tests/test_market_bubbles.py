"""The market game's speech-bubble layout (examples/market/layout.py): no bubble covers another, all
stay on the screen.  A pure function over rectangles: no window, no model."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "market"))

from layout import GAP, layout_bubbles  # noqa: E402

AREA = (4, 4, 952, 498)


def overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def inside(r, area=AREA) -> bool:
    return r[0] >= area[0] and r[1] >= area[1] and r[0] + r[2] <= area[0] + area[2] and r[1] + r[3] <= area[1] + area[3]


def test_two_bubbles_at_the_same_spot_are_stacked():
    wanted = [(400, 200, 180, 62), (410, 210, 150, 44)]
    placed = layout_bubbles(wanted, AREA)
    assert None not in placed and not overlap(*placed)
    # only the vertical place changes (x stays, it is inside the screen); one bubble kept its place
    assert [p[0] for p in placed] == [400, 410] and [p[2:] for p in placed] == [(180, 62), (150, 44)]
    assert placed[0] == wanted[0] or placed[1] == wanted[1]
    assert abs(placed[0][1] - placed[1][1]) >= 44 + GAP


def test_bubbles_apart_keep_their_places():
    wanted = [(10, 100, 100, 40), (300, 120, 100, 40), (600, 90, 100, 80)]
    assert layout_bubbles(wanted, AREA) == wanted


def test_bubbles_off_the_screen_are_brought_in():
    wanted = [(-50, -30, 120, 60), (900, 480, 120, 60)]
    placed = layout_bubbles(wanted, AREA)
    assert all(p is not None and inside(p) for p in placed) and not overlap(*placed)


def test_a_crowd_never_overlaps_and_stays_on_screen():
    rng = random.Random(3)
    for _ in range(300):
        wanted = []
        for _ in range(rng.randint(2, 6)):  # the game has four NPCs; a few more for margin
            w, h = rng.randint(40, 236), 8 + 18 * rng.randint(1, 5)
            x, y = rng.uniform(100, 860) - w / 2, rng.uniform(330, 500) - 70 - h
            wanted.append((int(x), int(y), w, h))
        placed = layout_bubbles(wanted, AREA)
        assert None not in placed, wanted  # six bubbles of at most 98 px always fit in 498 px
        for i, a in enumerate(placed):
            assert inside(a) and a[2:] == wanted[i][2:]
            for b in placed[i + 1:]:
                assert not overlap(a, b), (wanted, placed)


def test_a_full_screen_leaves_a_bubble_out_rather_than_cover_one():
    wanted = [(0, 0, 900, 200)] * 4  # only two fit in 498 px
    placed = layout_bubbles(wanted, AREA)
    shown = [p for p in placed if p is not None]
    assert len(shown) == 2 and not overlap(*shown) and all(inside(p) for p in shown)
