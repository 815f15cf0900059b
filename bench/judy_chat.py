"""Judy over many turns: time to first token per turn, and what happens when the context overflows.

Runs the real Judy mod (a copy of mods/judy in a temporary folder, so no saved
conversation is used or left behind) in the real host with her memory store,
the way `make judy` does, and asks scripted questions.  Per turn it records the
time from the ask to the first streamed token (measured on the frame thread,
as a player sees it), the prompt and reused tokens, and whether the turn
overflowed the context (the prompt got shorter than the conversation).

Targets: a normal turn's time to first token <= 1 s on the 2-core
machine; the overflow turn <= 2x a normal turn.  ``--n-ctx`` makes the
overflow come sooner (default 1024 tokens per sequence: it overflows around
turn 12 of 30).

    .venv/bin/python bench/judy_chat.py                   # 30 turns, default model
    .venv/bin/python bench/judy_chat.py --turns 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = [
    "Hi! Who are you?", "What is your name?", "What do you do for a living?", "Where do you live?",
    "What is the Patient Gull?", "What do you find when you dive?", "Is diving dangerous?",
    "Who are your neighbours?", "What was Lowmarsh like before the sea came?", "Can you fix my pump?",
    "How much would that cost?", "Do you have family?", "What is your favourite tool?",
    "What do you eat in Lowmarsh?", "How deep are the drowned streets?", "Have you ever been scared underwater?",
    "Who buys the copper you find?", "What is the weather like today?", "Do you ever leave the harbor?",
    "What's the strangest thing you found?", "How did you learn to dive?", "Do you sell dive suits?",
    "What's the tide doing now?", "Is there a good place to sleep nearby?", "What do people here fear most?",
    "Tell me about the stilt houses.", "Would you take me diving?", "What should I bring?",
    "Thanks for the chat. What's your name again?", "Goodbye, Judy!",
]


def run(turns: int, n_ctx: int, model_path=None, timeout: float = 600.0, questions=QUESTIONS) -> list[dict]:
    """Chat ``turns`` turns with Judy; returns one record per turn."""
    import importlib.util

    from host.app import host_with_mod
    from host.config import Config

    # the settings `make judy` runs with: the environment's, then Judy's own chat defaults
    spec = importlib.util.spec_from_file_location("judy_main", ROOT / "examples" / "judy" / "main.py")
    judy_main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(judy_main)
    chosen = {"model": Path(model_path).absolute()} if model_path else {}
    config = judy_main.with_chat_defaults(Config.load(environ=os.environ, n_ctx=n_ctx, **chosen))

    tmp = Path(tempfile.mkdtemp(prefix="relic-judy-bench-"))
    shutil.copytree(ROOT / "mods" / "judy", tmp / "judy",
                    ignore=shutil.ignore_patterns("sessions", "*.log*", "*.sqlite3*"))
    host, judy = host_with_mod(tmp, "judy", config=config, console=lambda line: None)
    records = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until her memory store has its lore (added at init)
            host.update(1 / 60)
            ok, restored = judy.call(judy.public.restored)
            if ok and restored is not None and not host.providers[1].worker.pending("judy"):
                break
            time.sleep(0.01)
        for i in range(turns):
            q = questions[i % len(questions)]
            st = {"first": None, "result": None, "text": []}

            def on_token(text, st=st):
                if st["first"] is None:
                    st["first"] = time.perf_counter()
                st["text"].append(text)

            def on_done(result, st=st):
                st["result"] = result

            t0 = time.perf_counter()
            ok, _ = judy.call(judy.public.ask, q, judy.wrap(on_token), judy.wrap(on_done))
            assert ok, "judy.ask failed"
            end = time.monotonic() + timeout
            while st["result"] is None and time.monotonic() < end:
                host.update(1 / 60)
                time.sleep(0.002)
            r = judy.from_lua(st["result"]) if st["result"] is not None else {"finish_reason": "timeout"}
            usage = r.get("usage") or {}
            records.append({
                "turn": i + 1, "question": q, "reply": "".join(st["text"]),
                "ttft_s": (st["first"] - t0) if st["first"] else None,
                "total_s": time.perf_counter() - t0,
                "prompt_tokens": usage.get("prompt_tokens"), "cached_tokens": usage.get("cached_tokens"),
                "finish_reason": r.get("finish_reason"),
                "timings": dict(r.get("timings") or {}),  # where the worker spent the turn
            })
            # her memory store adds the exchange on the worker: let it land before the next turn
            while host.providers[1].worker.pending("judy") and time.monotonic() < end:
                host.update(1 / 60)
                time.sleep(0.002)
    finally:
        host.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    prev = 0
    for rec in records:  # an overflow turn: the prompt shrank although the conversation grew
        rec["overflow"] = bool(rec["prompt_tokens"] is not None and rec["prompt_tokens"] < prev)
        prev = rec["prompt_tokens"] or prev
    return records


def summarize(records: list[dict]) -> dict:
    normal = [r["ttft_s"] for r in records[1:] if not r["overflow"] and r["ttft_s"] is not None]
    over = [r["ttft_s"] for r in records if r["overflow"] and r["ttft_s"] is not None]
    med = statistics.median(normal) if normal else None
    return {
        "turns": len(records),
        "first_turn_ttft_s": records[0]["ttft_s"] if records else None,
        "normal_ttft_median_s": med,
        "normal_ttft_p90_s": sorted(normal)[int(0.9 * (len(normal) - 1))] if normal else None,
        "overflow_turns": [r["turn"] for r in records if r["overflow"]],
        "normal_timings_median_ms": {k: statistics.median(r["timings"][k] for r in records[1:] if not r["overflow"]
                                                          and k in r["timings"])
                                     for k in ("queue_ms", "retrieval_ms", "prompt_ms", "first_token_ms")
                                     if any(k in r["timings"] for r in records[1:] if not r["overflow"])},
        "overflow_ttft_max_s": max(over) if over else None,
        "overflow_ratio": (max(over) / med) if over and med else None,
        "target_normal_le_1s": med is not None and med <= 1.0,
        "target_overflow_le_2x": (max(over) / med <= 2.0) if over and med else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--n-ctx", type=int, default=1024, help="context tokens per sequence")
    ap.add_argument("--model")
    ap.add_argument("--json", help="write the records and summary here")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    records = run(args.turns, args.n_ctx, args.model)
    print(f"{'turn':>4} {'ttft s':>7} {'total s':>8} {'prompt':>6} {'reused':>6} {'queue':>6} {'retr':>6} "
          f"{'read':>6}  overflow")
    for r in records:
        ttft = f"{r['ttft_s']:.2f}" if r["ttft_s"] is not None else "-"
        t = r["timings"]
        print(f"{r['turn']:>4} {ttft:>7} {r['total_s']:>8.2f} {r['prompt_tokens'] or 0:>6} "
              f"{r['cached_tokens'] or 0:>6} {t.get('queue_ms', 0):>6.0f} {t.get('retrieval_ms', 0):>6.0f} "
              f"{t.get('prompt_ms', 0):>6.0f}  {'OVERFLOW' if r['overflow'] else ''}")
    s = summarize(records)
    s["load_average_1min"] = {"start": load_before, "end": os.getloadavg()[0]}
    print(json.dumps(s, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": s, "records": records}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
