"""Where speech bubbles go on the screen: a pure function over rectangles (no pygame).

Each bubble wants to sit just above its speaker's head.  When two would
overlap, the later one (in order of how close to the ground its speaker
stands, so the bubble nearest the viewer keeps its place) moves up to the
nearest free spot, or down only where there is no room above (a bubble
below the heads covers the street, not another bubble); every bubble stays
inside the screen area.  A bubble that fits nowhere is
left out (None) rather than drawn over another.
"""

from __future__ import annotations

GAP = 4  # px between two bubbles


def _overlaps(a: tuple, b: tuple) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw + GAP and bx < ax + aw + GAP and ay < by + bh + GAP and by < ay + ah + GAP


def layout_bubbles(wanted: list[tuple], area: tuple) -> list[tuple | None]:
    """Place bubble rectangles without overlaps, inside ``area``.

    ``wanted``: one ``(x, y, w, h)`` per bubble, where it would like to be;
    ``area``: ``(x, y, w, h)`` the bubbles must stay in.  Returns one
    ``(x, y, w, h)`` per bubble, in the same order (only ``x`` and ``y`` change;
    ``x`` only to keep it inside the area), or None for a bubble that found no
    free place (a screen already full of bubbles).
    """
    left, top, width, height = area
    right, bottom = left + width, top + height
    placed: list[tuple] = []
    out: list[tuple | None] = [None] * len(wanted)
    # the bubble lowest on the screen (its speaker nearest the viewer) is placed first
    for i in sorted(range(len(wanted)), key=lambda k: -(wanted[k][1] + wanted[k][3])):
        x, y, w, h = wanted[i]
        if w > width or h > height:
            continue
        x = min(max(x, left), right - w)
        ys = {y, top, bottom - h}
        for px, py, pw, ph in placed:
            ys.update((py - h - GAP, py + ph + GAP))
        best = None
        for cy in sorted(ys, key=lambda c: (c > y, abs(c - y))):  # above the heads first, nearest first
            if cy < top or cy + h > bottom:
                continue
            rect = (x, cy, w, h)
            if not any(_overlaps(rect, p) for p in placed):
                best = rect
                break
        if best is not None:
            placed.append(best)
            out[i] = best
    return out
