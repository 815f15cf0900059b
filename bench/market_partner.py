"""`make game`'s target: the player's partner answers as fast with the street talking as with it empty.

Runs the market game (examples/market: its mods, its frame loop, the real model)
headless (SDL's dummy video driver), two cases taking turns run by run so
machine load hits both alike:

  empty     nobody else on the street talks; the player speaks to the partner
  talking   the three other NPCs are given street events whenever they are
            idle, and at least two are streaming lines when the player speaks
            to the partner (how many streamed meanwhile, on average, is shown)

Measured: the player's line -> the first token in the partner's bubble (what
the thinking mark covers; the game's ``first_tokens`` report), and the ratio
talking / empty (target <= 1.5).  The partner runs at priority "player" (the
game's ``llm_focus``); the others at their own priority.

    python bench/market_partner.py [--runs 3] [--partner oona]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKET = ROOT / "examples" / "market"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(MARKET))

LINE = "Hello! What are you selling today?"
EVENT = "A barge horn sounds from the drowned canal."
FPS = 60


def one_case(config, prepared, partner: str, talking: bool, timeout_s: float = 300.0) -> float:
    """Seconds from the player's line to the partner's first token, in a fresh game."""
    import host as relic
    from game import EVENTS, Game

    def host_factory(market):
        h = relic.create_host(config, prepared, console=lambda line: None)
        h.expose_per_mod("market", market.for_mod)
        h.declare_event(*EVENTS)
        h.load()
        return h, None

    game = Game(host_factory, fps=FPS, ambient_s=1e9)  # no random street events: the bench gives them
    try:
        world = game.world
        target = world.npcs[partner]
        others = [n for m, n in world.npcs.items() if m != partner]
        period, nxt, end = 1.0 / FPS, time.perf_counter(), time.perf_counter() + timeout_s

        asked = set()

        def frames(until):
            nonlocal nxt
            while not until():
                if time.perf_counter() > end:
                    raise TimeoutError("the market scene did not finish in time")
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
        said = len(world.first_tokens)
        game.say_to(target, LINE)
        streaming = []
        frames(lambda: streaming.append(sum(1 for n in others if n.streaming)) or len(world.first_tokens) > said)
        name, seconds = world.first_tokens[-1]
        assert name == target.name, world.first_tokens
        return seconds, statistics.mean(streaming)
    finally:
        game.host.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--partner", default="oona", help="the NPC mod the player speaks to")
    args = ap.parse_args()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    import host as relic

    config = relic.Config.load(args={"mods_dir": str(MARKET / "mods")}, environ=os.environ, rag=False)
    prepared = relic.prepare(config)
    print(f"market game, partner {args.partner}, {args.runs} runs, load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for i in range(args.runs):
        empty, _ = one_case(config, prepared, args.partner, talking=False)
        talking, busy = one_case(config, prepared, args.partner, talking=True)
        rows.append((empty, talking))
        print(f"  run {i + 1}: partner's first token {talking * 1000:6.0f} ms with the street talking "
              f"({busy:.1f} others streaming) vs {empty * 1000:6.0f} ms empty = {talking / empty:4.2f}x", flush=True)
    ratio = statistics.median(t / e for e, t in rows)
    print(f"median: {statistics.median(t for _, t in rows) * 1000:.0f} ms talking vs "
          f"{statistics.median(e for e, _ in rows) * 1000:.0f} ms empty = {ratio:.2f}x (target <= 1.5); "
          f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
