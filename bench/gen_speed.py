"""Generation and prompt tok/s: host.llama directly, through the Worker, and llama.cpp's llama-bench.

Same model (the default), same threads, greedy.  Each figure is the median of
--runs runs (min and max shown), each run in a fresh process.

    python bench/gen_speed.py [--threads 1] [--runs 3] [--tokens 128] [--llama-bench PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT_TOKENS = 512


def _one_run(mode: str, threads: int, tokens: int) -> dict:
    """Runs in a child process; prints one JSON line."""
    from host.llama import Batch, Context, Model, SamplerChain
    from host.setup.model_fetch import model_path

    model = Model(model_path())
    vocab = model.vocab
    text = "The harbor district flooded years ago, and the divers learned to work the tides. " * 64
    prompt = vocab.tokenize(text)[:PROMPT_TOKENS]
    if mode == "direct":
        ctx = Context(model, n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads)
        batch = Batch(model.lib, 512)
        sampler = SamplerChain.greedy(model.lib)
        # prompt processing, like llama-bench pp: one 512-token batch
        t0 = time.perf_counter()
        batch.set_tokens(prompt, 0, 0, True)
        ctx.decode(batch)
        pp = len(prompt) / (time.perf_counter() - t0)
        # generation, like llama-bench tg: one token per decode, never stopping at EOG
        ctx.memory_clear()
        batch.set_tokens(prompt[:1], 0, 0, True)
        ctx.decode(batch)
        t0 = time.perf_counter()
        for pos in range(1, tokens + 1):
            tok = sampler.sample(ctx)
            vocab.piece(tok, False)
            batch.clear()
            batch.add(tok, pos, (0,), True)
            ctx.decode(batch)
        tg = tokens / (time.perf_counter() - t0)
        return {"pp": pp, "tg": tg}
    if mode == "worker":
        from host.worker import Worker, WorkerConfig

        w = Worker(model, WorkerConfig(n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads,
                                       nice=0)).start()
        # ignore_eos via a logit bias that forbids every end-of-generation token
        eog = {t: -1e9 for t in range(vocab.n_tokens) if vocab.is_eog(t)}
        n = {"k": 0}
        h = w.submit("bench", prompt=vocab.detokenize(prompt[:8]), max_tokens=tokens,
                     sampler={"logit_bias": eog}, on_token=lambda _t: n.__setitem__("k", n["k"] + 1))
        r = w.wait(h, 300)
        w.shutdown()
        return {"tg": r["usage"]["completion_tokens"] / (r["timings"]["generation_ms"] / 1000)}
    raise SystemExit(f"unknown mode {mode}")


def _child(mode: str, threads: int, tokens: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--threads", str(threads),
                          "--tokens", str(tokens)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _llama_bench(path: str, threads: int, tokens: int) -> dict:
    from host.setup.model_fetch import model_path

    out = subprocess.run([path, "-m", str(model_path()), "-t", str(threads), "-p", str(PROMPT_TOKENS),
                          "-n", str(tokens), "-r", "1", "-o", "json"], capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    res = {}
    for row in rows:
        key = "pp" if row.get("n_prompt") else "tg"
        res[key] = row["avg_ts"]
    return res


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--llama-bench", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_one_run(args.child, args.threads, args.tokens)))
        return
    table = {}
    contenders = [("relic host.llama", lambda: _child("direct", args.threads, args.tokens)),
                  ("relic worker", lambda: _child("worker", args.threads, args.tokens))]
    if args.llama_bench:
        contenders.insert(0, ("llama-bench (native)", lambda: _llama_bench(args.llama_bench, args.threads, args.tokens)))
    for name, fn in contenders:
        runs = [fn() for _ in range(args.runs)]
        table[name] = {k: summarize([r[k] for r in runs]) for k in runs[0]}
    print(f"threads={args.threads} tokens={args.tokens} prompt={PROMPT_TOKENS} runs={args.runs}")
    for name, row in table.items():
        cells = "  ".join(f"{k} {v['median']:.1f} tok/s [{v['min']:.1f}-{v['max']:.1f}]" for k, v in row.items())
        print(f"  {name:24} {cells}")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
