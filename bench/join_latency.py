"""Latency under load: a newcomer joins three NPCs that are already talking.

Through the real Worker and scheduler, with a frame loop on this thread that
pumps events at --fps.  Three sessions generate continuously (end-of-generation
tokens banned, greedy); after they have run for --steady seconds a fourth
session says something with a long prompt (about 185 tokens of system prompt and
question).  Measured, per run:

  steady gap    the longest time between two token events of any of the three,
                over the --steady seconds before the newcomer arrives
  join gap      the same, from the newcomer's say() until --after seconds after its
                first token (so every prompt chunk it needed is inside the window)
  first token   the newcomer's say() -> its first token event
  alone         the same newcomer prompt, with nobody else running (a fresh session)

and the ratios of the targets: join gap / steady gap (target <= 2) and first
token / alone (target <= 1.3; bench/player_first.py measures the same scene
next to the other scheduler targets).  Times are wall clock on
the frame thread (when a game would show the token), also given in 60 fps frames.

``--gap-factors 2,3`` compares step budgets side by side (one worker each, taking
turns in every run): a step that also reads a prompt may take that many
decode-only steps (host.engine.step_builder; the default is its GAP_FACTOR).

    python bench/join_latency.py [--runs 3] [--threads N] [--fps 60] [--steady 3] [--after 1] [--gap-factors 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROLES = ("blacksmith", "fisher", "innkeeper")
QUESTIONS = ("What do you sell?", "How was the catch today?", "Is there a room free?")
NEWCOMER_SYSTEM = (
    "You are Mara, a diver in a flooded harbor town called Lowmarsh. The old town lies under the water; "
    "the people live on stilts and boats, and they trade what the divers bring up from the drowned streets: "
    "copper pipes, glass bottles, coins, bells, tools and sometimes the bones of those who did not leave in time. "
    "You have dived for twenty years, you know every street below, and you distrust the harbor master, who takes "
    "a third of every find as tax. You speak plainly and briefly, you never use long words, and you always end "
    "with a question for the traveler. The traveler is new in town and has just stepped off the ferry."
)
NEWCOMER_QUESTION = "Hello there! I am new here. What is this place, and what do you do for a living?"


class Tracker:
    """Token arrival times per request, recorded on the frame thread."""

    def __init__(self):
        self.times: dict[str, list[float]] = {}

    def on_token(self, name: str):
        self.times[name] = []

        def cb(_text):
            self.times[name].append(time.perf_counter())
        return cb


def longest_gap(times: list[float], t0: float, t1: float) -> float:
    inside = [t for t in times if t0 <= t <= t1]
    before = [t for t in times if t < t0]
    if before:
        inside.insert(0, before[-1])  # a gap that starts before the window still counts
    if len(inside) < 2:
        return float("inf")
    return max(b - a for a, b in zip(inside, inside[1:]))


def frame_loop(worker, until, fps: float) -> None:
    period = 1.0 / fps
    nxt = time.perf_counter()
    while not until():
        now = time.perf_counter()
        if now < nxt:
            time.sleep(nxt - now)
        nxt += period
        worker.pump(budget_s=0.004)


def measure(w, no_eog, args) -> tuple:
    """One run on worker ``w``: (steady gap, join gap, first token, alone), in seconds."""
    # alone
    tr = Tracker()
    sid = w.create_session("bench", system=NEWCOMER_SYSTEM, sampler=no_eog)
    t0 = time.perf_counter()
    h = w.say("bench", sid, NEWCOMER_QUESTION, max_tokens=4, temperature=0.0, on_token=tr.on_token("new"))
    frame_loop(w, lambda: h.done(), args.fps)
    alone = tr.times["new"][0] - t0
    w.close_session("bench", sid)

    # three talking, then the newcomer
    tr = Tracker()
    sids = [w.create_session("bench", system=f"You are the {r} of a flooded harbor town.", sampler=no_eog)
            for r in ROLES]
    hs = [w.say("bench", s, q, max_tokens=900, temperature=0.0, on_token=tr.on_token(r))
          for s, q, r in zip(sids, QUESTIONS, ROLES)]
    frame_loop(w, lambda: all(len(tr.times[r]) >= 5 for r in ROLES), args.fps)
    t_steady = time.perf_counter()
    frame_loop(w, lambda: time.perf_counter() - t_steady >= args.steady, args.fps)
    nsid = w.create_session("bench", system=NEWCOMER_SYSTEM, sampler=no_eog)
    t_join = time.perf_counter()
    hn = w.say("bench", nsid, NEWCOMER_QUESTION, max_tokens=4, temperature=0.0, on_token=tr.on_token("new"))
    frame_loop(w, lambda: bool(tr.times["new"]), args.fps)
    first = tr.times["new"][0] - t_join
    t_end = tr.times["new"][0] + args.after
    frame_loop(w, lambda: time.perf_counter() >= t_end, args.fps)
    if any(x.done() for x in hs):
        raise RuntimeError("a talking NPC finished inside the window; raise max_tokens")
    steady = max(longest_gap(tr.times[r], t_steady, t_join) for r in ROLES)
    joined = max(longest_gap(tr.times[r], t_join, t_end) for r in ROLES)
    for x in hs + [hn]:
        x.cancel()
    frame_loop(w, lambda: all(x.done() for x in hs + [hn]), args.fps)
    for s in sids + [nsid]:
        w.close_session("bench", s)
    return steady, joined, first, alone


def run(args) -> None:
    from host.llama import Model
    from host.llama.context import default_threads
    from bench.benchsetup import model_path, worker_config
    from host.engine.scheduler import Scheduler
    from host.engine.service import Engine
    from host.worker import Worker

    model = Model(model_path())
    cfg = worker_config()
    cfg.n_ctx, cfg.n_seq_max, cfg.max_pending_per_mod = 1024, 4, 64
    if args.threads:
        cfg.n_threads = cfg.n_threads_batch = args.threads

    def engine(gap_factor):
        threads = cfg.n_threads or default_threads()
        return lambda: Engine(Scheduler(model, n_ctx=cfg.n_ctx, n_batch=cfg.n_batch, n_seq_max=cfg.n_seq_max,
                                        n_threads=threads, n_threads_batch=cfg.n_threads_batch or threads,
                                        kv_type=cfg.kv_type, gap_factor=gap_factor))

    factors = [float(f) for f in args.gap_factors.split(",")] if args.gap_factors else [None]
    workers = []
    for f in factors:
        workers.append(Worker(model, cfg, engine_factory=engine(f) if f is not None else None).start())
    vocab = model.vocab
    no_eog = {"logit_bias": {t: float("-inf") for t in range(vocab.n_tokens) if vocab.is_eog(t)}}
    n_prompt = len(vocab.tokenize(model.apply_chat_template(
        [{"role": "system", "content": NEWCOMER_SYSTEM}, {"role": "user", "content": NEWCOMER_QUESTION}]),
        add_special=True, parse_special=True))
    print(f"model {model.path.name}, n_batch {cfg.n_batch}, "
          f"newcomer prompt {n_prompt} tokens, "
          f"{args.fps:.0f} fps frame loop, {args.runs} runs")
    rows = {f: [] for f in factors}
    names = {f: ("default budget" if f is None else f"gap factor {f:g}") for f in factors}
    try:
        for run_i in range(args.runs):
            for f, w in zip(factors, workers):
                steady, joined, first, alone = measure(w, no_eog, args)
                rows[f].append((steady, joined, first, alone))
                print(f"  run {run_i + 1} {names[f]}: steady gap {steady * 1000:6.0f} ms ({steady * 60:4.1f} frames)  "
                      f"join gap {joined * 1000:6.0f} ms ({joined * 60:4.1f} frames) = {joined / steady:4.2f}x   "
                      f"first token {first * 1000:6.0f} ms vs alone {alone * 1000:6.0f} ms = {first / alone:4.2f}x",
                      flush=True)
    finally:
        for w in workers:
            w.shutdown()
        model.close()
    for f in factors:
        med = [statistics.median(c) for c in zip(*rows[f])]
        ratio_gap = statistics.median(r[1] / r[0] for r in rows[f])
        ratio_first = statistics.median(r[2] / r[3] for r in rows[f])
        print(f"median, {names[f]}: steady gap {med[0] * 1000:.0f} ms, join gap {med[1] * 1000:.0f} ms "
              f"({ratio_gap:.2f}x, target <= 2), first token {med[2] * 1000:.0f} ms vs alone {med[3] * 1000:.0f} ms "
              f"({ratio_first:.2f}x, target <= 1.3)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="inference threads (default: WorkerConfig's)")
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--steady", type=float, default=3.0, help="seconds of steady generation measured before the join")
    ap.add_argument("--after", type=float, default=1.0, help="seconds measured after the newcomer's first token")
    ap.add_argument("--gap-factors", default="", help="comma-separated step budgets to compare side by side "
                    "(default: the scheduler's own)")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
