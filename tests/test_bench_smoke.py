"""Smoke tests of the benchmark harness (bench/): same job across contenders, target judging.

Timings are never asserted here; the real figures live in bench/results/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import gen_speed, run_all  # noqa: E402


def test_native_harness_runs_the_same_job_as_relic_python(tmp_path, model_path):
    """The C harness, compiled against Relic's libllama, decodes the same prompt to the same greedy text."""
    from bench.native import build

    exe = build.harness_path()
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(gen_speed.PROMPT_TEXT, encoding="utf-8")
    out = subprocess.run([str(exe), "gen", str(model_path), str(prompt), "6", "1", str(gen_speed.N_CTX),
                          str(gen_speed.N_BATCH)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    native = gen_speed.last_json_line(out.stdout)
    relic = gen_speed._job_relic_python(threads=1, tokens=6)
    assert native["n_prompt"] == relic["n_prompt"] > 200
    assert native["n_gen"] == relic["n_gen"] == 6
    assert native["text_hex"] == relic["text_hex"] and native["text_hex"]
    for r in (native, relic):
        assert r["pp"] > 0 and r["tg"] > 0 and r["job_faults"] >= 0
    assert native["maxrss_kb"] > 50_000  # the model's weights are resident


def _s(x):
    return {"median": x, "min": x, "max": x, "runs": 1}


def test_targets_are_judged_from_the_figures():
    res = {
        "generation": {"table": {"native": {"tg": _s(100.0)}, "relic-python": {"tg": _s(99.5)},
                                 "relic-worker": {"tg": _s(98.0)}}},
        "memory": {"table": {"native": {"peak_rss_mb": _s(170.0), "faults_per_1k": _s(100.0)},
                             "relic-python": {"peak_rss_mb": _s(205.0), "faults_per_1k": _s(120.0)}}},
        "frame_loop": {"table": {"idle": {"p99": _s(2.0)}, "worker": {"p99": _s(2.5)}, "mod": {"p99": _s(3.5)}}},
        "sessions": {"npcs": {"1": {"concurrent_tps": _s(50.0)},
                              "4": {"vs_one_session": 2.4, "concurrent_tps": _s(120.0)}}},
        "micro": {"table": {"native": {"is_eog": _s(1e8)}, "relic-ffi": {"is_eog": _s(2.1e8)},
                            "relic-python": {op: _s(10.0) for op in ("detokenize", "token_to_piece", "is_eog",
                                                                     "tokenize")},
                            "llama-cpp-python": {op: _s(20.0 if op == "tokenize" else 5.0)
                                                 for op in ("detokenize", "token_to_piece", "is_eog", "tokenize")}}},
    }
    got = {t["target"]: t["met"] for t in run_all.targets(res)}
    assert got["relic-python generation tok/s >= 99% of native"] is True
    assert got["relic-worker generation tok/s >= 99% of native"] is False
    assert got["relic-lua generation tok/s >= 99% of native"] is None  # not measured
    assert got["relic-python peak RSS <= native + 40 MB"] is True
    assert got["relic-python page faults per 1k tokens <= 1.1 x native"] is False
    assert got["frame p99 while generating (worker design) <= idle p99 + 1 ms"] is True
    assert got["frame p99 while generating (mod design) <= idle p99 + 1 ms"] is False
    assert got["4 concurrent sessions >= 2.5 x the aggregate tok/s of one"] is False
    assert got["trusted-mod FFI is_eog >= 200 M calls/s"] is True
    assert got["Relic Python is_eog >= llama-cpp-python"] is True
    assert got["Relic Python tokenize >= llama-cpp-python"] is False


def test_summarize_and_last_json_line():
    assert gen_speed.summarize([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}
    assert gen_speed.last_json_line('noise\n{"a": 1}\n\n') == {"a": 1}
    with pytest.raises(ValueError):
        gen_speed.last_json_line("  \n")
