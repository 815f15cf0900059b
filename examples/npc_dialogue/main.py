"""`make npc`: NPC dialogue scripted from Lua on a market street.

Runs the host frame loop with the market mod: four NPCs react to game events
with lines constrained by a JSON schema, generated concurrently as one batch,
and the dialogue log is printed as it grows.  Reproducible with --seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from host.errors import RelicError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3, help="how many scene events (1-3)")
    ap.add_argument("--model", help="a GGUF chat model (default: $RELIC_MODEL or SmolLM2-135M-Instruct)")
    ap.add_argument("--template", help="a llama.cpp chat template name, for a model without one (or RELIC_TEMPLATE)")
    ap.add_argument("--mods", default=str(HERE / "mods"))
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", action="store_true", help="print the final log as JSON lines")
    args = ap.parse_args()

    from host.app import host_with_mod
    from host.cli import config_from

    try:
        config = config_from(args)  # --model/--template and $RELIC_* settings
        host, market = host_with_mod(args.mods, "market", config=config, rag=False,
                                     console=lambda line: print(line))
    except RelicError as exc:
        print(f"relic: {exc}", file=sys.stderr)
        return 1
    market.call(market.public.configure, args.seed, args.rounds)
    _, schema = market.call(market.public.schema)
    schema = market.from_lua(schema)
    shown = 0
    frame_ms = []
    deadline = time.monotonic() + args.timeout
    done, lines = False, []
    try:
        while time.monotonic() < deadline and market.state == "loaded":
            t0 = time.perf_counter()
            host.update(1 / 60)
            host.draw()
            frame_ms.append((time.perf_counter() - t0) * 1000)
            ok, lines = market.call(market.public.lines)
            lines = market.from_lua(lines) if ok and lines is not None else []
            lines = lines if isinstance(lines, list) else []
            for entry in lines[shown:]:
                print(f"  [{entry['round']}] {entry['speaker']:>6} ({entry['emotion']}, {entry['next_action']}): "
                      f"{entry['line']}", flush=True)
            shown = max(shown, len(lines))
            ok, done = market.call(market.public.done)
            if ok and done:
                break
            time.sleep(max(0.0, 1 / 60 - (time.perf_counter() - t0)))
    finally:
        host.shutdown()
    if args.json:
        print("SCHEMA " + json.dumps(schema))
        for entry in lines:
            print("LINE " + json.dumps(entry, ensure_ascii=False))
    frame_ms.sort()
    if frame_ms:
        print(f"{shown} lines; frame p50 {frame_ms[len(frame_ms) // 2]:.2f} ms, "
              f"p99 {frame_ms[int(len(frame_ms) * 0.99)]:.2f} ms over {len(frame_ms)} frames")
    if not done:
        why = f"the market mod stopped ({market.reason})" if market.state != "loaded" else \
            f"the scene did not finish within {args.timeout:.0f} s"
        print(f"relic: {why}; see {args.mods}/market/market.log", file=sys.stderr)
        return 1
    if not shown:
        print(f"relic: no NPC produced a usable line (every request failed); see {args.mods}/market/market.log",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
