"""`make game`'s target: the player's partner answers as fast with the street talking as with it empty.

Runs the market game (examples/market: its mods, its frame loop, the real model)
headless (SDL's dummy video driver), in pairs of two cases, each in a fresh game:

  empty     nobody else on the street talks; the player speaks to the partner
  talking   the three other NPCs are given a street event whenever they are
            idle, and at least two are streaming lines when the player speaks
            to the partner (how many streamed meanwhile, on average, is shown)

Measured: the player's line -> the first piece in the partner's bubble (what
the thinking mark covers: the game's ``first_tokens`` report; a persona
streams whole sentences, so this is the first sentence), and per pair the
ratio talking / empty; the summary gives the median and the p90 of the
ratios (target: <= 1.5).  The partner runs at priority "player" (the game's
``llm_focus``); the others at their own priority.

What is held the same, so that the two cases of a pair differ only in the street:

* the same seed for the street (``Game(seed=)``) and for every NPC's sampling
  (the persona NPC's ``reseed``), so the partner's answer is the same text in
  both cases (shown: ``same text``), and the same player line (the pairs go
  through LINES, one line per pair);
* the player stands at the partner's stall (so the focus holds: walking away
  from the partner clears it) and has met everyone (no greetings);
* the partner hears nothing before the player's line (a neighbour's line
  would make it react: its history, and so its prompt and its seed, would
  differ, and the player would wait for its own line, not for the street's);
* the cases alternate, and their order alternates too (empty first in even
  pairs, talking first in odd ones), so machine load and drift hit both alike.

    python bench/market_partner.py [--pairs 8] [--seed 7] [--partner oona]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKET = ROOT / "examples" / "market"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(MARKET))

LINES = (
    "Hello! What are you selling today?",
    "Good morning! How is business on the street?",
    "What's your name?",
    "Is the weather going to hold today?",
)
EVENT = "A barge horn sounds from the drowned canal."
FPS = 60


def one_case(config, prepared, partner: str, talking: bool, line: str, seed: int,
             timeout_s: float = 300.0) -> dict:
    """One fresh game: the player says ``line`` to ``partner``; what its first piece took."""
    import host as relic
    from game import EVENTS, Game

    def host_factory(market):
        h = relic.create_host(config, prepared, console=lambda text: None)
        h.expose_per_mod("market", market.for_mod)
        h.declare_event(*EVENTS)
        h.load()
        return h, None

    game = Game(host_factory, fps=FPS, seed=seed, ambient_s=1e9)  # no random street events: the bench gives them
    try:
        world = game.world
        target = world.npcs[partner]
        others = [n for m, n in world.npcs.items() if m != partner]
        for mod_id, mod in game.host.mods.items():  # every NPC samples from a fixed seed
            if mod.public is not None and mod.public["reseed"] is not None:
                mod.call(mod.public.reseed, seed * 1000 + sum(map(ord, mod_id)))
        for npc in world.npcs.values():
            npc.met_player = True  # no greeting lines
        world.player.x, world.player.y = target.home_x + 40.0, 440.0  # at the partner's stall
        period, nxt, end = 1.0 / FPS, time.perf_counter(), time.perf_counter() + timeout_s
        asked = set()
        quiet = [True]  # until the player speaks, nothing reaches the partner (its history stays empty)

        def frames(until):
            nonlocal nxt
            while not until():
                if time.perf_counter() > end:
                    raise TimeoutError("the market scene did not finish in time")
                if quiet[0]:
                    world.heard = deque(d for d in world.heard if d[1] != partner)
                if talking:  # the others keep talking: an idle one gets the next street event
                    for npc in others:
                        if not npc.busy and npc.mod_id not in asked:
                            world.hear(npc.mod_id, "event", "", EVENT)
                            asked.add(npc.mod_id)
                        elif npc.busy:
                            asked.discard(npc.mod_id)
                game.step(period)
                nxt += period
                time.sleep(max(0.0, nxt - time.perf_counter()))

        frames(lambda: game.frame >= 30)  # the mods are loaded and the street is drawn
        if talking:
            frames(lambda: sum(1 for n in others if n.streaming and n.bubble) >= 2)
        world.heard = deque(d for d in world.heard if d[1] != partner)
        assert not target.busy and target.lines == 0, "the partner spoke before the player did"
        quiet[0] = False
        said = len(world.first_tokens)
        game.say_to(target, line)
        streaming = []
        frames(lambda: streaming.append(sum(1 for n in others if n.streaming)) or len(world.first_tokens) > said)
        name, seconds = world.first_tokens[-1]
        assert name == target.name, world.first_tokens
        return {"seconds": seconds, "streaming": statistics.mean(streaming), "text": target.bubble}
    finally:
        game.host.shutdown()


def nearest_rank(values, q: float) -> float:
    """The q-th percentile (0-100) of a non-empty sequence, nearest rank."""
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q / 100 * (len(v) - 1)))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=8, help="pairs of cases (empty + talking)")
    ap.add_argument("--seed", type=int, default=7, help="pair i uses seed + i in both of its cases")
    ap.add_argument("--partner", default="oona", help="the NPC mod the player speaks to")
    args = ap.parse_args()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    import host as relic

    config = relic.Config.load(args={"mods_dir": str(MARKET / "mods")}, environ=os.environ, rag=False)
    prepared = relic.prepare(config)
    print(f"market game, partner {args.partner}, {args.pairs} pairs, seed {args.seed}, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for i in range(args.pairs):
        line, seed = LINES[i % len(LINES)], args.seed + i
        order = (False, True) if i % 2 == 0 else (True, False)
        got = {talking: one_case(config, prepared, args.partner, talking, line, seed) for talking in order}
        empty, busy = got[False], got[True]
        ratio = busy["seconds"] / empty["seconds"]
        rows.append((empty["seconds"], busy["seconds"], ratio))
        same = "same text" if busy["text"] == empty["text"] else f"texts differ: {empty['text']!r} / {busy['text']!r}"
        print(f"  pair {i + 1} ({'empty first' if i % 2 == 0 else 'talking first'}, seed {seed}): "
              f"{busy['seconds'] * 1000:6.0f} ms with the street talking ({busy['streaming']:.1f} others "
              f"streaming) vs {empty['seconds'] * 1000:6.0f} ms empty = {ratio:4.2f}x; {same}; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
    ratios = [r for _, _, r in rows]
    print(f"partner's first piece: median {statistics.median(t for _, t, _ in rows) * 1000:.0f} ms talking vs "
          f"{statistics.median(e for e, _, _ in rows) * 1000:.0f} ms empty; ratio talking/empty median "
          f"{statistics.median(ratios):.2f}x, p90 {nearest_rank(ratios, 90):.2f}x, range "
          f"{min(ratios):.2f}-{max(ratios):.2f}x over {len(rows)} pairs (target <= 1.5); "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
