"""The embedded model vs a loopback llama-server (same GGUF), side by side in one run.

Rows:

  greedy     the same raw prompt, greedy, on both: is the text identical?
             (the embedded engine with an f16 KV cache, as the server's default)
  npcs       N NPC sessions (one llama-server with -np N vs the embedded worker with
             n_seq_max N) each answer one line at once while a 60 FPS game loop
             runs and pumps the worker: aggregate tok/s, first token (median of the
             sessions), frame p50/p99 against the same loop idle
  turns      one session, T turns: prompt tokens re-read per turn (prompt_tokens -
             cached_tokens), on the server (its slot's prompt cache) and embedded

    python bench/remote_bench.py [--sessions 8] [--tokens 48] [--turns 30] [--threads 1] [--n-ctx 2048] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.frame_loop_worker import FPS, run_loop, stats  # noqa: E402  the same game loop as the frame bench

PROMPT = "The old lighthouse keeper climbed the stairs and"
PERSONAS = ["a baker", "a guard", "a fisherman", "a smith", "a herbalist", "a bard", "a merchant", "a priest",
            "a farmer", "a sailor", "a miner", "a hunter"]
TURNS = ["Hello there!", "What is your trade?", "How is business?", "Any news from the road?",
         "Do you know the innkeeper?", "What do you think of the mayor?", "Is the bridge safe?",
         "Where can I buy bread?", "Have you seen any wolves?", "Goodbye for now."]


def npc_round(worker, n: int, tokens: int) -> dict:
    """n sessions each say one line at once, inside a 60 FPS loop that pumps the worker."""
    sids = [worker.create_session("npc", system=f"You are {PERSONAS[i % len(PERSONAS)]} in a market town. "
                                  "Answer in one or two sentences.") for i in range(n)]
    first: dict[int, float] = {}
    handles = []
    t0 = time.perf_counter()
    for i, sid in enumerate(sids):
        def on_token(_t, i=i):
            first.setdefault(i, time.perf_counter() - t0)
        handles.append(worker.say("npc", sid, "Good morning! What is new today?", max_tokens=tokens,
                                  temperature=0.7, seed=i, on_token=on_token))
    frames = []
    while not all(h.done() for h in handles) and time.perf_counter() - t0 < 600:
        frames += run_loop(0.25, lambda: worker.pump(0.004))
    wall = time.perf_counter() - t0
    results = [h.result for h in handles]
    errors = [r["error"] for r in results if r and r.get("error")]
    n_tok = sum(r["usage"]["completion_tokens"] for r in results if r)
    for sid in sids:
        worker.close_session("npc", sid)
    return {"sessions": n, "completion_tokens": n_tok, "wall_s": round(wall, 2),
            "aggregate_tok_s": round(n_tok / wall, 1),
            "first_token_ms_median": round(statistics.median(first.values()) * 1000, 1) if first else None,
            "frames": stats(frames), "errors": errors[:3]}


def turns_reread(worker, turns: int) -> dict:
    """One session, ``turns`` turns: prompt tokens re-read each turn."""
    sid = worker.create_session("chat", system="You are Mira, a baker in a small town. Answer in one sentence.")
    rows = []
    for k in range(turns):
        r = worker.wait(worker.say("chat", sid, TURNS[k % len(TURNS)], max_tokens=24), 600)
        if r.get("error"):
            return {"error": r["error"], "turns_done": k, "rows": rows}
        u = r["usage"]
        rows.append({"prompt_tokens": u["prompt_tokens"], "cached_tokens": u["cached_tokens"],
                     "reread": u["prompt_tokens"] - u["cached_tokens"]})
    later = [r["reread"] for r in rows[1:]]
    # the history before this turn (the previous turn's whole prompt) came from the cache, every turn
    from_cache = all(b["cached_tokens"] >= a["prompt_tokens"] for a, b in zip(rows, rows[1:]))
    return {"turns": turns, "history_from_cache_every_turn": from_cache, "first_turn_prompt": rows[0]["prompt_tokens"],
            "last_turn_prompt": rows[-1]["prompt_tokens"],
            "reread_mean_after_first": round(statistics.mean(later), 1) if later else None,
            "reread_max_after_first": max(later) if later else None, "rows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-ctx", type=int, default=2048, help="tokens per session / slot (30 turns fit in 2048)")
    ap.add_argument("--idle-seconds", type=float, default=3.0)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    from host.llama import Model
    from host.remote.backend import ServerConfig, start_remote_worker
    from host.setup.llama_server import LocalLlamaServer, server_path
    from bench.benchsetup import model_path
    from host.worker import Worker, WorkerConfig

    path = model_path()
    n = args.sessions
    res = {"model": path.name, "sessions": n, "threads": args.threads, "tokens": args.tokens,
           "n_ctx": args.n_ctx, "load_average_1min_start": round(os.getloadavg()[0], 2)}
    res["idle"] = stats(run_loop(args.idle_seconds))
    print(f"idle loop: p50 {res['idle']['p50']:.2f} ms, p99 {res['idle']['p99']:.2f} ms", flush=True)
    log = Path(tempfile.gettempdir()) / "relic-remote-bench-server.log"
    srv = LocalLlamaServer.start(path, binary=server_path(allow_build=False), ctx=args.n_ctx * n, parallel=n,
                                 threads=args.threads, extra=["-ctk", "f16", "-ctv", "f16"], log_path=log)
    model = Model(path)
    quiet = []
    cfg = WorkerConfig(n_ctx=args.n_ctx, n_seq_max=n, n_threads=args.threads, n_threads_batch=args.threads,
                       kv_type="f16", max_pending_per_mod=max(16, n))
    try:
        remote = start_remote_worker(ServerConfig(srv.url), worker_config=WorkerConfig(max_pending_per_mod=max(16, n)),
                                     say=quiet.append)
        local = Worker(model, cfg).start()
        try:
            a = local.wait(local.submit("g", prompt=PROMPT, max_tokens=32, temperature=0.0), 600)
            b = remote.wait(remote.submit("g", prompt=PROMPT, max_tokens=32, temperature=0.0), 600)
            res["greedy"] = {"identical": a["text"] == b["text"], "embedded": a["text"], "server": b["text"]}
            print(f"greedy text identical: {res['greedy']['identical']}", flush=True)
            for name, w in (("embedded", local), ("server", remote)):  # interleaved, same loop
                res[f"npcs_{name}"] = r = npc_round(w, n, args.tokens)
                print(f"{n} NPCs {name:8}: {r['aggregate_tok_s']} tok/s, first token {r['first_token_ms_median']} ms, "
                      f"frame p50 {r['frames']['p50']:.2f} / p99 {r['frames']['p99']:.2f} ms "
                      f"(idle p99 {res['idle']['p99']:.2f})", flush=True)
            for name, w in (("server", remote), ("embedded", local)):
                res[f"turns_{name}"] = t = turns_reread(w, args.turns)
                print(f"{args.turns} turns {name:8}: re-read per turn after the first: mean "
                      f"{t.get('reread_mean_after_first')}, max {t.get('reread_max_after_first')}, history from the cache "
                      f"every turn: {t.get('history_from_cache_every_turn')} "
                      f"(prompt {t.get('first_turn_prompt')} -> {t.get('last_turn_prompt')} tokens)", flush=True)
        finally:
            local.shutdown()
            remote.shutdown()
    finally:
        srv.stop()
        model.close()
    res["idle_after"] = stats(run_loop(args.idle_seconds))
    res["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if not k.startswith("turns_")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
