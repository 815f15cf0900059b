"""Peak RSS and page faults per 1,000 generated tokens, for the generation job of gen_speed.

The job is bench/gen_speed.py's (same model, prompt, threads, greedy tokens),
run in a fresh process per run; every contender's child reads its own
``getrusage(RUSAGE_SELF)`` (the C harness calls getrusage itself):

  peak RSS          ru_maxrss of the whole process at the end of the job
  faults / 1k tok   minor + major page faults during the job (prompt decode and
                    generation, after loading) per 1,000 generated tokens
  process faults    all faults of the process (start-up, imports and model load
                    included) per 1,000 generated tokens

llama-bench is left out: its job is not the same (warm-up, random tokens).

    python bench/memory.py [--runs 3] [--tokens 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONTENDERS = ("native", "relic-python", "relic-worker", "relic-lua", "llama-cpp-python")


def table_from_runs(raw: dict) -> dict:
    """{contender: {peak_rss_mb, faults_per_1k, process_faults_per_1k}} from gen_speed.measure() output."""
    from bench.gen_speed import summarize

    out = {}
    for name, r in raw.items():
        runs = [x for x in r["runs"] if "maxrss_kb" in x and "job_faults" in x]
        if name not in CONTENDERS or not runs:
            continue
        out[name] = {
            "peak_rss_mb": summarize([x["maxrss_kb"] / 1024 for x in runs]),
            "faults_per_1k": summarize([x["job_faults"] * 1000 / x["n_gen"] for x in runs]),
            "process_faults_per_1k": summarize([(x["minflt"] + x["majflt"]) * 1000 / x["n_gen"] for x in runs]),
            "major_faults": summarize([x["majflt"] for x in runs]),
        }
    return out


def print_table(table: dict) -> None:
    print(f"  {'':18} {'peak RSS MB':>12} {'faults/1k tok':>14} {'process faults/1k':>18}")
    for name, row in table.items():
        print(f"  {name:18} {row['peak_rss_mb']['median']:12.1f} {row['faults_per_1k']['median']:14.0f} "
              f"{row['process_faults_per_1k']['median']:18.0f}")


def main() -> None:
    from bench import gen_speed

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    c = gen_speed.Contenders(CONTENDERS)
    raw = gen_speed.measure(c, args.runs, args.threads, args.tokens)
    c.close()
    table = table_from_runs(raw)
    print_table(table)
    print(json.dumps({"table": table, "unavailable": c.unavailable}))


if __name__ == "__main__":
    main()
