"""Cancel latency: from handle.cancel() on the frame thread to the cancelled result arriving.

Two cases: during prompt processing (a long prompt decoded in n_batch chunks)
and during generation.  Prints median/max over --runs.

    python bench/cancel_latency.py [--runs 10] [--n-batch 128]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LONG = "The tide rolls in over the old piers and rusted cranes of the harbor district. " * 100


def measure(worker, when: str) -> float:
    started = {"gen": False}
    if when == "prompt":
        h = worker.submit("bench", prompt=LONG, max_tokens=64)
        time.sleep(0.02)  # inside the prompt (it takes far longer than this)
    else:
        h = worker.submit("bench", messages=({"role": "user", "content": "Tell a long story."},), max_tokens=500,
                          on_token=lambda _t: started.__setitem__("gen", True))
        while not started["gen"]:
            worker.pump(0.001)
            time.sleep(0.001)
    t0 = time.perf_counter()
    h.cancel()
    while not h.done():
        worker.pump(0.001)
        time.sleep(0.0002)
    assert h.result["finish_reason"] == "cancelled", h.result
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--n-batch", type=int, default=128)
    args = ap.parse_args()
    from bench.benchsetup import prepared
    from host.app import load_model
    from host.worker import Worker, WorkerConfig

    p = prepared()
    model = load_model(p.config, p)
    w = Worker(model, WorkerConfig(n_ctx=4096, n_seq_max=2, n_batch=args.n_batch)).start()
    out = {}
    for when in ("prompt", "generation"):
        ms = [measure(w, when) for _ in range(args.runs)]
        out[when] = {"median_ms": statistics.median(ms), "max_ms": max(ms), "runs": len(ms)}
        print(f"cancel during {when:10}: median {out[when]['median_ms']:.1f} ms, max {out[when]['max_ms']:.1f} ms")
    w.shutdown()
    model.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
