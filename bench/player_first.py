"""Player first: the scheduler's targets, measured side by side in one run.

Through the real Worker and scheduler, with a frame loop on this thread that
pumps events at 60 fps (times are when a game would show the token).  Each
scene alternates its two cases run by run, so machine load hits both alike,
and reports the median ratio.

  player      a player request (a fresh session, ~150-token turn, priority
              "player") while three "background" sessions talk, vs the same
              request alone: first token ratio (target <= 1.15)
  join        equal priorities: a newcomer joins three talking sessions: their
              longest token gap vs steady (target <= 2) and the newcomer's first
              token vs alone (target <= 1.3)
  fairness    a well-behaved mod's p95 wait beside a mod with 16 chats in flight
              vs alone (bench/hostile_worker.py; target <= 2)
  swap        what preempting a sequence costs: its state out to host memory
              and back, vs dropping it and reading its tokens again
  server      four NPC sessions talking and a player request joining, on Relic and
              on llama-server (same model, threads and slots): aggregate tok/s,
              each stream's longest gap, the joiner's first token

    python bench/player_first.py [--only player,join,fairness,swap,server] [--runs 3] [--threads N]
                                 [--seconds 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.join_latency import NEWCOMER_QUESTION, NEWCOMER_SYSTEM, QUESTIONS, ROLES, Tracker, longest_gap  # noqa: E402

FPS = 60.0


def frame_loop(worker, until, timeout: float = 600.0) -> None:
    period, nxt, end = 1.0 / FPS, time.perf_counter(), time.perf_counter() + timeout
    while not until():
        if time.perf_counter() > end:
            raise TimeoutError("a bench scene did not finish in time")
        now = time.perf_counter()
        if now < nxt:
            time.sleep(nxt - now)
        nxt += period
        worker.pump(budget_s=0.004)


def _worker(model, threads):
    from host.worker import Worker, WorkerConfig

    cfg = WorkerConfig(n_ctx=1024, n_seq_max=4, max_pending_per_mod=64)
    if threads:
        cfg.n_threads = cfg.n_threads_batch = threads
    return Worker(model, cfg).start()


def _no_eog(model):
    vocab = model.vocab
    return {"logit_bias": {t: float("-inf") for t in range(vocab.n_tokens) if vocab.is_eog(t)}}


def _talkers(w, model, tr, priority, n=3):
    """n sessions generating without end; returns (session ids, handles) once each has 5 tokens."""
    sids = [w.create_session(f"npc{i}", system=f"You are the {ROLES[i % 3]} of a flooded harbor town.",
                             sampler=_no_eog(model), priority=priority) for i in range(n)]
    hs = [w.say(f"npc{i}", s, QUESTIONS[i % 3], max_tokens=900, temperature=0.0, on_token=tr.on_token(f"t{i}"))
          for i, s in enumerate(sids)]
    frame_loop(w, lambda: all(len(tr.times[f"t{i}"]) >= 5 for i in range(n)))
    return sids, hs


def _stop(w, sids, hs):
    for h in hs:
        h.cancel()
    frame_loop(w, lambda: all(h.done() for h in hs))
    for i, s in enumerate(sids):
        w.close_session(f"npc{i}", s)


def _first_token(w, model, tr, mod, priority):
    """A fresh session's ~150-token turn; seconds from say() to its first token (and the result)."""
    sid = w.create_session(mod, system=NEWCOMER_SYSTEM, sampler=_no_eog(model), priority=priority)
    t0 = time.perf_counter()
    h = w.say(mod, sid, NEWCOMER_QUESTION, max_tokens=4, temperature=0.0, on_token=tr.on_token("new"))
    frame_loop(w, lambda: h.done())
    w.close_session(mod, sid)
    return tr.times["new"][0] - t0, h.result


def scene_player(model, runs, threads) -> dict:
    w = _worker(model, threads)
    rows = []
    try:
        for _ in range(runs):
            alone, _r = _first_token(w, model, Tracker(), "player", "player")
            tr = Tracker()
            sids, hs = _talkers(w, model, tr, "background")
            loaded, r = _first_token(w, model, tr, "player", "player")
            _stop(w, sids, hs)
            rows.append({"alone_s": alone, "with_background_s": loaded, "ratio": loaded / alone,
                         "timings": dict(r["timings"])})
            print(f"  player: first token alone {alone * 1000:6.0f} ms, beside three background talkers "
                  f"{loaded * 1000:6.0f} ms = {loaded / alone:4.2f}x", flush=True)
    finally:
        w.shutdown()
    ratio = statistics.median(r["ratio"] for r in rows)
    return {"runs": rows, "ratio_median": ratio, "target": 1.15, "met": ratio <= 1.15}


def scene_join(model, runs, threads, steady: float = 3.0, after: float = 1.0) -> dict:
    w = _worker(model, threads)
    rows = []
    try:
        for _ in range(runs):
            alone, _r = _first_token(w, model, Tracker(), "newcomer", None)
            tr = Tracker()
            sids, hs = _talkers(w, model, tr, None)
            t_steady = time.perf_counter()
            frame_loop(w, lambda: time.perf_counter() - t_steady >= steady)
            t_join = time.perf_counter()
            first, _r = _first_token(w, model, tr, "newcomer", None)
            t_end = tr.times["new"][0] + after
            frame_loop(w, lambda: time.perf_counter() >= t_end)
            names = [f"t{i}" for i in range(3)]
            st = max(longest_gap(tr.times[n], t_steady, t_join) for n in names)
            jg = max(longest_gap(tr.times[n], t_join, t_end) for n in names)
            _stop(w, sids, hs)
            rows.append({"steady_gap_s": st, "join_gap_s": jg, "gap_ratio": jg / st, "first_s": first,
                         "alone_s": alone, "first_ratio": first / alone})
            print(f"  join: gap {st * 1000:5.0f} -> {jg * 1000:5.0f} ms = {jg / st:4.2f}x, newcomer first token "
                  f"{first * 1000:6.0f} ms vs alone {alone * 1000:6.0f} ms = {first / alone:4.2f}x", flush=True)
    finally:
        w.shutdown()
    g = statistics.median(r["gap_ratio"] for r in rows)
    f = statistics.median(r["first_ratio"] for r in rows)
    return {"runs": rows, "gap_ratio_median": g, "first_ratio_median": f, "targets": {"gap": 2.0, "first": 1.3},
            "met": g <= 2.0 and f <= 1.3}


def scene_swap(model, threads, n_tokens: int = 400) -> dict:
    """Swap a sequence of n_tokens out to host memory and back, vs recomputing it (median of 5)."""
    from host.llama import Batch, Context

    ctx = Context(model, n_ctx=1024, n_batch=128, n_seq_max=2, n_threads=threads or None,
                  n_threads_batch=threads or None, flash_attn=True, kv_unified=False, kv_type="q8_0")
    batch = Batch(model.lib, 128, 1)
    tokens = model.vocab.tokenize(" ".join([NEWCOMER_SYSTEM] * 6), add_special=True)[:n_tokens]

    def read(seq):
        for i in range(0, len(tokens), 128):
            batch.clear()
            for k, t in enumerate(tokens[i:i + 128]):
                batch.add(t, i + k, (seq,), False)
            ctx.decode(batch)

    try:
        read(0)
        swap, recompute, size = [], [], 0
        for _ in range(5):
            t0 = time.perf_counter()
            state = ctx.seq_state(0)
            ctx.memory_seq_rm(0)
            ctx.set_seq_state(1, state)
            swap.append(time.perf_counter() - t0)
            size = len(state)
            ctx.memory_seq_rm(1)
            t0 = time.perf_counter()
            ctx.memory_seq_rm(0)
            read(0)
            recompute.append(time.perf_counter() - t0)
    finally:
        batch.close()
        ctx.close()
    s, r = statistics.median(swap), statistics.median(recompute)
    print(f"  swap: {len(tokens)} tokens, state {size / 1024:.0f} KiB: out and back {s * 1000:.1f} ms, "
          f"recomputed {r * 1000:.0f} ms ({r / s:.0f}x)", flush=True)
    return {"tokens": len(tokens), "state_bytes": size, "swap_s": s, "recompute_s": r, "recompute_over_swap": r / s}


def scene_fairness(seconds: float) -> dict:
    from bench.hostile_worker import fairness

    res = fairness(seconds)
    a, b = res["alone"], res["beside_hog"]
    print(f"  fairness: good mod p95 wait alone {a['wait_p95_s']}, beside a 16-chat hog {b['wait_p95_s']} "
          f"(served {b['served']} of {b['asked']}); ratio {res['p95_ratio']}", flush=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="player,join,fairness,swap,server")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=20.0, help="fairness: seconds per case")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    only = set(args.only.split(","))
    from host.llama import Model
    from bench.benchsetup import model_path

    out = {"load_average_1min": {"start": os.getloadavg()[0]}}
    model = Model(model_path())
    try:
        if "player" in only:
            out["player"] = scene_player(model, args.runs, args.threads)
        if "join" in only:
            out["join"] = scene_join(model, args.runs, args.threads)
        if "swap" in only:
            out["swap"] = scene_swap(model, args.threads)
        if "server" in only:
            from bench.server_scene import scene_server

            out["server"] = scene_server(model, args.threads)
    finally:
        model.close()
    if "fairness" in only:
        out["fairness"] = scene_fairness(args.seconds)
    out["load_average_1min"]["end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
