"""Many NPCs and prefix reuse, through the real Worker and scheduler.

1. Aggregate tok/s for 1, 2, 4, 8 NPC sessions answering at the same time
   (one llama_decode per step for all of them) versus the same turns run one
   after another.  Every NPC has its own system prompt and question, answers
   greedily, and is held to exactly --tokens tokens (end-of-generation tokens get
   a -inf logit bias), so both modes do the same work; aggregate tok/s is all
   generated tokens over the wall time from the first say() to the last result.
   The greedy answers of the two modes are compared (the scheduler promises
   concurrent == sequential).
2. Turn latency over a 10-turn chat: one session (each turn decodes only what
   follows the longest common prefix with its KV cache) versus no reuse (each
   turn is a fresh request that replays the whole history through the chat
   template).  Latency is say()/submit() to the result, per turn.

Each configuration runs in a fresh process; runs are interleaved.

    python bench/sessions_bench.py [--runs 3] [--tokens 64] [--threads 1] [--turn-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONCURRENCY = (1, 2, 4, 8)
ROLES = ("blacksmith", "fisher", "innkeeper", "guard", "diver", "priest", "merchant", "sailor")
QUESTIONS = ("What do you sell?", "How was the catch today?", "Is there a room free?", "Who goes there?",
             "What is under the water?", "When is the bell rung?", "What is the price of rope?",
             "Where is the ship going?")
CHAT_SYSTEM = "You are Mara, a diver in a flooded harbor town. Answer briefly."
CHAT_TURNS = ("Hello, who are you?", "What do you do all day?", "Is diving dangerous?",
              "What did you find last week?", "Who buys what you find?", "Do you have a family?",
              "What is the bell at the pier for?", "Can you teach me to dive?", "What should I bring?",
              "Thank you. Goodbye!")
TIMEOUT_S = 600


def _worker(threads: int, n_seq_max: int, n_ctx: int):
    from host.llama import Model
    from host.setup.model_fetch import model_path
    from host.worker import Worker, WorkerConfig

    model = Model(model_path())
    cfg = WorkerConfig(n_ctx=n_ctx, n_batch=512, n_seq_max=n_seq_max, n_threads=threads, n_threads_batch=threads,
                       nice=0, max_pending_per_mod=64)
    return model, Worker(model, cfg).start()


def _child_npcs(mode: str, k: int, tokens: int, threads: int) -> dict:
    from host.messages import StatsRequest

    model, w = _worker(threads, max(CONCURRENCY), 512)
    vocab = model.vocab
    no_eog = {"logit_bias": {t: float("-inf") for t in range(vocab.n_tokens) if vocab.is_eog(t)}}
    sids = [w.create_session("bench", system=f"You are the {ROLES[i]} of a flooded harbor town.", sampler=no_eog)
            for i in range(k)]
    decode0 = w.wait(w.call(StatsRequest, "bench"), 60)["value"]["decode_calls"]
    results = []
    t0 = time.perf_counter()
    if mode == "concurrent":
        handles = [w.say("bench", sid, QUESTIONS[i], max_tokens=tokens, temperature=0.0) for i, sid in enumerate(sids)]
        results = [w.wait(h, TIMEOUT_S) for h in handles]
    else:
        for i, sid in enumerate(sids):
            results.append(w.wait(w.say("bench", sid, QUESTIONS[i], max_tokens=tokens, temperature=0.0), TIMEOUT_S))
    wall = time.perf_counter() - t0
    decodes = w.wait(w.call(StatsRequest, "bench"), 60)["value"]["decode_calls"] - decode0
    w.shutdown()
    model.close()
    errors = [r["error"] for r in results if r["error"]]
    if errors:
        raise RuntimeError(errors[0])
    n_gen = sum(r["usage"]["completion_tokens"] for r in results)
    return {"k": k, "mode": mode, "wall_s": wall, "tokens": n_gen, "agg_tps": n_gen / wall, "decode_calls": decodes,
            "texts": [r["text"] for r in results]}


def _child_chat(mode: str, tokens: int, threads: int) -> dict:
    model, w = _worker(threads, 1, 2048)
    latencies, cached, prompt_tokens, replies = [], [], [], []
    if mode == "reuse":
        sid = w.create_session("bench", system=CHAT_SYSTEM)
        for text in CHAT_TURNS:
            t0 = time.perf_counter()
            r = w.wait(w.say("bench", sid, text, max_tokens=tokens, temperature=0.0), TIMEOUT_S)
            latencies.append((time.perf_counter() - t0) * 1000)
            cached.append(r["usage"]["cached_tokens"])
            prompt_tokens.append(r["usage"]["prompt_tokens"])
            replies.append(r["text"])
            if r["error"]:
                raise RuntimeError(r["error"])
    else:
        history = [{"role": "system", "content": CHAT_SYSTEM}]
        for text in CHAT_TURNS:
            history.append({"role": "user", "content": text})
            t0 = time.perf_counter()
            r = w.wait(w.submit("bench", messages=tuple(history), max_tokens=tokens, temperature=0.0), TIMEOUT_S)
            latencies.append((time.perf_counter() - t0) * 1000)
            if r["error"]:
                raise RuntimeError(r["error"])
            cached.append(r["usage"]["cached_tokens"])
            prompt_tokens.append(r["usage"]["prompt_tokens"])
            replies.append(r["text"])
            history.append({"role": "assistant", "content": r["text"]})
    w.shutdown()
    model.close()
    return {"mode": mode, "latency_ms": latencies, "cached_tokens": cached, "prompt_tokens": prompt_tokens,
            "replies": replies}


def _child_decode_scaling(threads: int, steps: int = 16) -> dict:
    """The ceiling for batching: time llama_decode alone for k tokens in k sequences.

    The context is set up like the scheduler's (a KV stream per sequence, flash
    attention, n_seq_max 8); each sequence first holds a 40-token prompt.
    """
    from host.llama import Batch, Context, Model
    from host.setup.model_fetch import model_path

    model = Model(model_path())
    n = max(CONCURRENCY)
    ctx = Context(model, n_ctx=512 * n, n_batch=512, n_seq_max=n, n_threads=threads, n_threads_batch=threads,
                  flash_attn=True, kv_unified=False)
    batch = Batch(model.lib, 512, 1)
    prompt = model.vocab.tokenize(" ".join(QUESTIONS))[:40]
    out = {}
    for k in CONCURRENCY:
        for s in range(n):
            ctx.memory_seq_rm(s)
        for s in range(k):
            batch.set_tokens(prompt, 0, s, True)
            ctx.decode(batch)
        times = []
        for step in range(steps):
            batch.clear()
            for s in range(k):
                batch.add(prompt[step % len(prompt)], len(prompt) + step, (s,), True)
            t0 = time.perf_counter()
            ctx.decode(batch)
            times.append(time.perf_counter() - t0)
        out[str(k)] = k / statistics.median(times)
    batch.close()
    ctx.close()
    model.close()
    return out


# --- parent --------------------------------------------------------------------

def _run(args: list[str]) -> dict:
    from bench import gen_speed

    return gen_speed.run_json([sys.executable, __file__, *args])


def measure(runs: int, tokens: int, turn_tokens: int, threads: int, log=print) -> dict:
    """Both benchmarks; returns a JSON-ready dict with medians, min/max and the raw runs."""
    from bench.gen_speed import summarize

    npc_raw: dict[str, list[dict]] = {}
    chat_raw: dict[str, list[dict]] = {"reuse": [], "replay": []}
    scaling_raw: list[dict] = []
    for i in range(runs):
        for k in CONCURRENCY:
            for mode in ("concurrent", "sequential"):
                r = _run(["--child", "npcs", "--mode", mode, "--k", str(k), "--tokens", str(tokens),
                          "--threads", str(threads)])
                npc_raw.setdefault(f"{mode}-{k}", []).append(r)
                log(f"  run {i + 1}/{runs} {k} NPC(s) {mode:10} {r['agg_tps']:7.1f} tok/s "
                    f"({r['tokens']} tokens, {r['decode_calls']} decodes, {r['wall_s']:.2f} s)")
        r = _run(["--child", "scaling", "--threads", str(threads)])
        scaling_raw.append(r)
        log(f"  run {i + 1}/{runs} raw decode tok/s by batch size: " + "  ".join(f"k={k} {v:.1f}" for k, v in r.items()))
        for mode in ("reuse", "replay"):
            r = _run(["--child", "chat", "--mode", mode, "--tokens", str(turn_tokens), "--threads", str(threads)])
            chat_raw[mode].append(r)
            log(f"  run {i + 1}/{runs} 10-turn chat {mode:6} total {sum(r['latency_ms']):7.0f} ms, "
                f"last turn {r['latency_ms'][-1]:6.0f} ms")
    npcs = {}
    for k in CONCURRENCY:
        con, seq = npc_raw[f"concurrent-{k}"], npc_raw[f"sequential-{k}"]
        npcs[str(k)] = {
            "concurrent_tps": summarize([r["agg_tps"] for r in con]),
            "sequential_tps": summarize([r["agg_tps"] for r in seq]),
            "speedup": statistics.median(r["agg_tps"] for r in con) / statistics.median(r["agg_tps"] for r in seq),
            "decode_calls_concurrent": con[0]["decode_calls"], "decode_calls_sequential": seq[0]["decode_calls"],
            "outputs_match": all(c["texts"] == s["texts"] for c, s in zip(con, seq)),
        }
    one = statistics.median(r["agg_tps"] for r in npc_raw["concurrent-1"])
    for k in CONCURRENCY:
        npcs[str(k)]["vs_one_session"] = npcs[str(k)]["concurrent_tps"]["median"] / one
    chat = {}
    for mode, rs in chat_raw.items():
        per_turn = [summarize([r["latency_ms"][t] for r in rs]) for t in range(len(CHAT_TURNS))]
        chat[mode] = {"turn_latency_ms": per_turn, "total_ms": summarize([sum(r["latency_ms"]) for r in rs]),
                      "cached_tokens": rs[0]["cached_tokens"], "prompt_tokens": rs[0]["prompt_tokens"]}
    # Reused KV was computed in other chunks than a full replay computes it, so float rounding can
    # flip a greedy pick now and then; after the first differing reply the two histories differ too.
    pairs = list(zip(chat_raw["reuse"][0]["replies"], chat_raw["replay"][0]["replies"]))
    chat["identical_turns"] = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
    chat["sample_replies"] = chat_raw["reuse"][0]["replies"][:3]
    one_k = statistics.median(r["1"] for r in scaling_raw)
    scaling = {str(k): {"tps": summarize([r[str(k)] for r in scaling_raw]),
                        "vs_one": statistics.median(r[str(k)] for r in scaling_raw) / one_k} for k in CONCURRENCY}
    return {"npcs": npcs, "chat": chat, "decode_scaling": scaling, "tokens_per_npc": tokens, "turn_max_tokens": turn_tokens, "threads": threads,
            "runs": runs}


def print_tables(res: dict) -> None:
    print(f"NPC sessions, {res['tokens_per_npc']} tokens each (aggregate tok/s, median [min-max])")
    for k, row in res["npcs"].items():
        c, s = row["concurrent_tps"], row["sequential_tps"]
        print(f"  {k} NPC(s): concurrent {c['median']:6.1f} [{c['min']:.1f}-{c['max']:.1f}]  sequential "
              f"{s['median']:6.1f} [{s['min']:.1f}-{s['max']:.1f}]  x{row['speedup']:.2f} vs sequential, "
              f"x{row['vs_one_session']:.2f} vs one session; outputs match: {row['outputs_match']}")
    print("10-turn chat, latency per turn (ms, median)")
    for mode in ("reuse", "replay"):
        lat = [f"{t['median']:.0f}" for t in res["chat"][mode]["turn_latency_ms"]]
        print(f"  {mode:6} total {res['chat'][mode]['total_ms']['median']:7.0f}  turns " + " ".join(lat))
    print(f"  cached tokens per turn with reuse: {res['chat']['reuse']['cached_tokens']}")
    print(f"  replies identical with and without reuse for the first {res['chat']['identical_turns']} turn(s)")
    sc = res.get("decode_scaling")
    if sc:
        print("raw llama_decode, k tokens in k sequences (tok/s): "
              + "  ".join(f"k={k} {v['tps']['median']:.1f} (x{v['vs_one']:.2f})" for k, v in sc.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child")
    ap.add_argument("--mode")
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--turn-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.child == "npcs":
        print(json.dumps(_child_npcs(args.mode, args.k, args.tokens, args.threads)))
        return
    if args.child == "scaling":
        print(json.dumps(_child_decode_scaling(args.threads)))
        return
    if args.child == "chat":
        print(json.dumps(_child_chat(args.mode, args.tokens, args.threads)))
        return
    res = measure(args.runs, args.tokens, args.turn_tokens, args.threads)
    print_tables(res)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
