"""Peak RSS of `make judy`: the persona mod, its memory store and a two-turn chat.

Runs ``examples/judy/main.py`` (what `make judy` runs) in a fresh process per
run, on a fresh copy of mods/judy (so the first run embeds her lore, as on a
new machine), with two lines of input; then a second process on the same copy
(the saved conversation is restored).  The peak RSS of each process is its own
``ru_maxrss`` (``os.wait4``).  The reply checks are tests/test_judy.py's: her
greeting, a non-empty reply, and on the second run a restored prompt prefix.

Settings are compared through the environment, e.g. the KV cache type:

    python bench/judy_memory.py [--runs 2] [--env RELIC_KV_TYPE=f16] [--env RELIC_N_CTX=512]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINES = ("Hello Judy, what are you fixing today?", "What is the weather like on the water?")


def run_judy(mods: Path, text: str, env: dict) -> tuple[float, str]:
    """(peak RSS MB, stdout) of one examples/judy/main.py process."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen([sys.executable, str(ROOT / "examples" / "judy" / "main.py"), "--mods", str(mods)],
                             stdin=subprocess.PIPE, stdout=out, stderr=subprocess.DEVNULL, env={**os.environ, **env})
        p.stdin.write(text.encode())
        p.stdin.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode("utf-8", "replace")
    if p.returncode != 0:
        raise RuntimeError(f"judy exited with {p.returncode}: {stdout[-2000:]}")
    return usage.ru_maxrss / 1024, stdout


def checks(first: str, second: str) -> list[str]:
    """What tests/test_judy.py checks about her replies; the problems found."""
    problems = []
    if "bilge pump" not in first:
        problems.append("no greeting")
    replies = [r.strip() for r in re.findall(r"Judy: (.+)", first)]
    if len(replies) < len(LINES) or not all(replies):
        problems.append(f"empty or missing replies: {replies}")
    reused = re.findall(r"(\d+) of (\d+) prompt tokens reused", second)
    if not reused or int(reused[0][0]) <= 50:
        problems.append(f"the restored conversation was not reused: {reused}")
    return problems


def measure(env: dict, runs: int) -> dict:
    peaks, peaks2, problems = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            mods = Path(tmp) / "mods"
            shutil.copytree(ROOT / "mods" / "judy", mods / "judy",
                            ignore=shutil.ignore_patterns("sessions", "*.rag.sqlite3*", "*.log"))
            peak, first = run_judy(mods, "\n".join(LINES) + "\n", env)
            peak2, second = run_judy(mods, "And what did I ask you before?\n", env)
        peaks.append(peak)
        peaks2.append(peak2)
        problems += checks(first, second)
    return {"peak_mb": statistics.median(peaks), "peak_restored_mb": statistics.median(peaks2),
            "all": peaks + peaks2, "problems": problems}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for one more configuration (repeatable)")
    args = ap.parse_args()
    configs = [("default", {})] + [(e, dict([e.split("=", 1)])) for e in args.env]
    print(f"make judy peak RSS, median of {args.runs} fresh copies (first run: lore embedded, two turns; "
          f"second: restored, one turn); target <= 300 MB")
    for name, env in configs:
        r = measure(env, args.runs)
        print(f"  {name:24s} first run {r['peak_mb']:6.1f} MB   restored run {r['peak_restored_mb']:6.1f} MB   "
              f"replies {'ok' if not r['problems'] else 'PROBLEMS: ' + '; '.join(r['problems'])}")


if __name__ == "__main__":
    main()
