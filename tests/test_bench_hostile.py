"""Smoke test of bench/hostile.py: one class runs in its own process and reports its figures.

Timings are not asserted (they live in bench/results/); the run must finish
cleanly, the good mod must stay loaded, the attacker's error must be the
read-only one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_hostile_bench_runs_a_class_beside_a_good_mod(tmp_path, model_path):
    out = tmp_path / "hostile.json"
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "hostile.py"), "--frames", "90",
                        "--classes", "readonly_write", "--no-worker-pieces",
                        "--json", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["rc"] == 0 and row["good_state"] == "loaded"
    assert row["frames"] > 0 and row["worst_frame_ms"] > 0 and row["rss_growth_mb"] is not None
    assert row["attacker_state"] == "loaded" and "is read-only" in row["attacker_last_error"]
    assert "| readonly_write | 0 |" in p.stdout
