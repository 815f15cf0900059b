"""RPC overhead and the Vulkan path: local CPU vs 1 and 2 loopback rpc-servers, and Vulkan/lavapipe.

Rows (each run a fresh child process; the default model; greedy):

  local-cpu        the CPU build, no offload (what `make test` runs)
  rpc-1            every layer on one ggml-rpc-server on 127.0.0.1
  rpc-2            layers split over two ggml-rpc-servers on 127.0.0.1
  vulkan-lavapipe  the Vulkan build on Mesa's software driver: a correctness row
                   (same greedy text as local-cpu?), not a speed claim; only when
                   `make test-gpu` (or `make setup GPU=vulkan`) built it

Each row reports prompt tok/s (one batch), generation tok/s (one decode per
token; both timed to llama_synchronize, as RPC and GPU backends finish
asynchronously), the client's peak RSS and, for RPC, the servers' peak RSS (VmHWM), and
whether its greedy text equals local-cpu's.  The servers run with --threads
threads each, like the client; on loopback the "network" is the kernel's.

    python bench/rpc_bench.py [--tokens 64] [--runs 2] [--threads 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gen_speed import PROMPT_TEXT  # noqa: E402  the prompt every speed bench decodes

_CHILD = r"""
import json, resource, sys, time
from host.llama import Batch, Context, Model, load
from host.llama.sampler import SamplerChain
import os
from host.app import load_model
from host.config import Config
from host.startup import prepare
cfg = Config.load(environ=os.environ, rag=False)
prompt, n_gen, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = load_model(cfg, prepare(cfg, progress=lambda line: None))
lib = m.lib
ctx = Context(m, n_ctx=1024, n_batch=512, n_threads=threads, n_threads_batch=threads)
toks = m.vocab.tokenize(prompt)
batch = Batch(lib, 512)
batch.set_tokens(toks, 0, 0, logits_last=True, n_vocab=m.vocab.n_tokens)
t0 = time.perf_counter(); ctx.decode(batch); lib.C.llama_synchronize(ctx.ptr)  # RPC/GPU run async
t_prompt = time.perf_counter() - t0
sampler = SamplerChain.temperature(lib, 0.0, None)
out, pos = [], len(toks)
t0 = time.perf_counter()
for _ in range(n_gen):
    tok = sampler.sample(ctx)
    out.append(tok)
    batch.clear(); batch.add(tok, pos, (0,), True); ctx.decode(batch); pos += 1
t_gen = time.perf_counter() - t0
print(json.dumps({"prompt_tokens": len(toks), "prompt_tps": len(toks) / t_prompt, "gen_tps": n_gen / t_gen,
                  "text": m.vocab.detokenize(out), "placement": m.placement,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RELIC_GPU", "RELIC_RPC", "RELIC_SPLIT", "RELIC_MAIN_GPU", "GGML_VK"))}
    env["PYTHONPATH"] = str(ROOT)
    env["RELIC_GPU"] = "cpu"
    env.update(extra)
    return env


def _child(tokens: int, threads: int, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", _CHILD, PROMPT_TEXT, str(tokens), str(threads)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _row(runs: list[dict], servers_mb: list[list[float]] | None = None) -> dict:
    row = {
        "prompt_tps": statistics.median(r["prompt_tps"] for r in runs),
        "gen_tps": statistics.median(r["gen_tps"] for r in runs),
        "gen_tps_runs": [round(r["gen_tps"], 1) for r in runs],
        "client_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "placement": runs[-1]["placement"],
        "text": runs[-1]["text"],
    }
    if servers_mb:
        row["server_peak_rss_mb"] = [round(max(col), 1) for col in zip(*servers_mb)]
    return row


def _rpc_run(n_servers: int, args, binary) -> tuple[dict, list[float]]:
    """One run through ``n_servers`` fresh servers: (child result, servers' peak RSS MB)."""
    from host.setup.rpc_server import LocalServer

    with tempfile.TemporaryDirectory() as tmp:
        servers = [LocalServer.start(binary, threads=args.threads, log_path=Path(tmp) / f"s{i}.log")
                   for i in range(n_servers)]
        try:
            res = _child(args.tokens, args.threads, _env(RELIC_RPC=",".join(s.endpoint for s in servers)))
            return res, [_vm_hwm_mb(s.proc.pid) or 0.0 for s in servers]
        finally:
            for s in servers:
                s.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--no-vulkan", action="store_true", help="leave out the Vulkan/lavapipe row")
    args = ap.parse_args()

    from host.setup import gpu, llama_build
    from host.setup.rpc_server import server_path

    binary = server_path("cpu", allow_build=False)
    load_before = os.getloadavg()[0]
    vulkan = not args.no_vulkan and llama_build.find_library(gpu.flags("vulkan")) is not None
    runs: dict[str, list] = {"local-cpu": [], "rpc-1": [], "rpc-2": [], "vulkan-lavapipe": []}
    servers_mb: dict[str, list] = {"rpc-1": [], "rpc-2": []}
    for _ in range(args.runs):  # rows interleaved, so a noisy neighbour hurts them alike
        runs["local-cpu"].append(_child(args.tokens, args.threads, _env(RELIC_GPU_LAYERS="0")))
        for name, n in (("rpc-1", 1), ("rpc-2", 2)):
            res, mb = _rpc_run(n, args, binary)
            runs[name].append(res)
            servers_mb[name].append(mb)
        if vulkan:
            env = _env(RELIC_GPU="vulkan", GGML_VK_VISIBLE_DEVICES="0")
            runs["vulkan-lavapipe"].append(_child(args.tokens, args.threads, env))
    rows: dict[str, dict] = {name: _row(r, servers_mb.get(name)) for name, r in runs.items() if r}
    if vulkan:
        rows["vulkan-lavapipe"]["note"] = "software Vulkan (lavapipe): correctness, not speed"
    elif not args.no_vulkan:
        rows["vulkan-lavapipe"] = {"skipped": "the Vulkan build is not there (make test-gpu builds it)"}
    ref = rows["local-cpu"]["text"]
    for row in rows.values():
        if "text" in row:
            row["same_text_as_local"] = row["text"] == ref
    result = {"tokens": args.tokens, "runs": args.runs, "threads": args.threads, "rows": rows,
              "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}

    print(f"{'row':17} {'prompt tok/s':>12} {'gen tok/s':>10} {'client RSS':>11} {'server RSS':>14}  same text  placement")
    for name, r in rows.items():
        if "skipped" in r:
            print(f"{name:17} skipped: {r['skipped']}")
            continue
        srv = "+".join(f"{v:.0f}" for v in r.get("server_peak_rss_mb", [])) or "-"
        print(f"{name:17} {r['prompt_tps']:12.1f} {r['gen_tps']:10.1f} {r['client_peak_rss_mb']:9.0f}MB "
              f"{srv:>12}MB  {'yes' if r['same_text_as_local'] else 'NO':9}  {r['placement']}")
    print(f"(1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
          f"on {os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
