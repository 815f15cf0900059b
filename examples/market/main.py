"""`make game`: a market street in a pygame-ce window, with four NPCs whose minds are Relic mods.

Walk with the arrow keys; type and press Enter to talk to the nearest NPC.
The NPCs (examples/market/mods/) wander their stalls, stream their lines into
speech bubbles token by token, answer each other, and act on the street (give
you things, follow you, call the guard, leave for a while).

Headless (what the CI test runs, under Xvfb):

    python examples/market/main.py --demo --frames 900 --until-lines 2 \\
        --shots /tmp/shots --report /tmp/report.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

DEMO_LINE = "Hello! What are you selling today?"


def demo_script(shots_dir: Path | None, shot_every: int):
    """Scripted input for the headless run: walk right, stop, greet the nearest NPC, take screenshots."""
    import pygame

    def post_key(kind, key):
        pygame.event.post(pygame.event.Event(kind, key=key, mod=0, unicode="", scancode=0))

    def script(game):
        f = game.frame
        if f == 20:
            post_key(pygame.KEYDOWN, pygame.K_RIGHT)
        elif f == 75:
            post_key(pygame.KEYUP, pygame.K_RIGHT)
        elif f == 80:
            post_key(pygame.KEYDOWN, pygame.K_UP)
        elif f == 95:
            post_key(pygame.KEYUP, pygame.K_UP)
        elif f == 100:
            for ch in DEMO_LINE:
                pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text=ch))
        elif f == 102:
            post_key(pygame.KEYDOWN, pygame.K_RETURN)
        elif f == 130:
            post_key(pygame.KEYDOWN, pygame.K_F1)       # open the mods' ImGui overlay
            post_key(pygame.KEYUP, pygame.K_F1)
        if shots_dir is not None and f > 0 and f % shot_every == 0:
            pygame.image.save(game.screen, str(shots_dir / f"frame{f:05d}.png"))

    return script


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a GGUF chat model (default: $RELIC_MODEL or SmolLM2-135M-Instruct)")
    ap.add_argument("--template", help="a llama.cpp chat template name, for a model without one")
    ap.add_argument("--mods", default=str(HERE / "mods"))
    ap.add_argument("--fps", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--frames", type=int, help="stop after this many frames")
    ap.add_argument("--seconds", type=float, help="stop after this many seconds")
    ap.add_argument("--until-lines", type=int, default=0,
                    help="with --frames: stop early once NPCs finished this many lines, every line of the player "
                         "was answered, and 240 frames ran")
    ap.add_argument("--demo", action="store_true", help="scripted input: walk, then greet the nearest NPC")
    ap.add_argument("--shots", help="folder for screenshots (every --shot-every frames, and the last frame)")
    ap.add_argument("--shot-every", type=int, default=120)
    ap.add_argument("--report", help="write what happened (lines, frame times, actions) as JSON here")
    ap.add_argument("--ambient", type=float, default=14.0, help="seconds between street events")
    args = ap.parse_args(argv)

    import pygame

    import host as relic
    from game import EVENTS, Game
    from world import HEIGHT, WIDTH

    try:  # --model/--template over $RELIC_* settings; the NPCs need no `rag`
        config = relic.Config.load(args={"model": args.model, "template": args.template, "mods_dir": args.mods},
                                   environ=os.environ, rag=False)
        prepared = relic.prepare(config)  # builds and downloads (cached) before the game starts
    except relic.RelicError as exc:
        print(f"relic: {exc}", file=sys.stderr)
        return 2

    shots = Path(args.shots) if args.shots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)

    def host_factory(market):
        ui = None
        try:   # the mods' ImGui overlay (F1), as CET's; needs imgui-bundle (the game extra)
            ui = relic.imgui_layer((WIDTH, HEIGHT))
        except ImportError as exc:
            print(f"relic: no ImGui overlay ({exc}); mods' ImGui calls draw nothing", flush=True)
        # the game decides privileges: its tools window asks for 250 ms (ImGui calls wait for the GIL while
        # the worker runs); the NPC mods get the default
        game_host = relic.create_host(config, prepared, console=lambda line: print(line, flush=True), ui=ui,
                                      grants={"tools": relic.Grant(budget_ms=250)})
        game_host.expose_per_mod("market", market.for_mod)   # each NPC mod: its own body on the street
        game_host.declare_event(*EVENTS)                      # onHear / onStreetEvent
        game_host.load()
        return game_host, (relic.ImGuiOverlay(game_host) if ui is not None else None)

    try:
        game = Game(host_factory, fps=args.fps, seed=args.seed, ambient_s=args.ambient)
    except relic.RelicError as exc:
        print(f"relic: {exc}", file=sys.stderr)
        return 1
    script = demo_script(shots, args.shot_every) if args.demo else None
    if shots and not args.demo:
        def script(g):  # noqa: E306 - screenshots only
            if g.frame and g.frame % args.shot_every == 0:
                pygame.image.save(g.screen, str(shots / f"frame{g.frame:05d}.png"))

    t0 = time.monotonic()

    def with_stop(g):
        if script is not None:
            script(g)
        lines = sum(n.lines for n in g.world.npcs.values())
        answered = len(g.world.answers) >= len(g.said)
        if args.until_lines and lines >= args.until_lines and answered and g.frame >= 240:
            g.running = False
        if args.seconds and time.monotonic() - t0 > args.seconds:
            g.running = False

    try:
        game.run(max_frames=args.frames, script=with_stop)
    finally:
        if shots:
            pygame.image.save(game.screen, str(shots / "last.png"))
        if args.report:
            game.save_report(Path(args.report))
        pygame.quit()
    rep = game.report()
    fw = rep["frame_work_ms"]
    print(f"{rep['frames']} frames in {time.monotonic() - t0:.1f} s; frame work p50 {fw['p50']:.2f} ms, "
          f"p99 {fw['p99']:.2f} ms, max {fw['max']:.1f} ms; {len(rep['log'])} NPC lines", flush=True)
    for entry in rep["log"]:
        print(f"  {entry['speaker']}: {entry['text']}")
    held = relic.frees_held()
    if held:  # the worker was still inside llama.cpp at shutdown: no interpreter teardown under it
        print(f"relic: exiting without teardown: {held}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
