"""PNG charts of a results file written by bench/run_all.py (matplotlib, the `bench` extra).

    python bench/charts.py bench/results/<date>-<host>.json

Writes ``<results stem>-<chart>.png`` next to the JSON and returns/prints their
paths.  Each bar shows the median; the black whisker spans min..max.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLORS = {"native": "#4c4c4c", "llama-bench": "#9a9a9a", "relic-python": "#1f77b4", "relic-worker": "#2a9df4",
          "relic-lua": "#17becf", "relic-ffi": "#0b5394", "llama-cpp-python": "#ff7f0e"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, names, summaries, scale=1.0):
    med = [s["median"] * scale for s in summaries]
    lo = [(s["median"] - s["min"]) * scale for s in summaries]
    hi = [(s["max"] - s["median"]) * scale for s in summaries]
    ax.bar(range(len(names)), med, color=[COLORS.get(n, "#888888") for n in names], yerr=[lo, hi], capsize=3)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)


def gen_speed(res, plt, out):
    rows = res["generation"]["table"]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in ((axes[0], "tg", "generation tok/s"), (axes[1], "pp", "prompt tok/s")):
        names = [n for n in rows if key in rows[n]]
        _bars(ax, names, [rows[n][key] for n in names])
        ax.set_title(title)
    fig.suptitle(f"Same model, prompt, {res['config']['threads']} thread(s), greedy; median of "
                 f"{res['config']['runs']} fresh processes", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    return out


def micro(res, plt, out):
    table = res["micro"]["table"]
    if not table:
        return None
    ops = ["detokenize", "token_to_piece", "is_eog", "tokenize", "count"]
    names = list(table)
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        xs = [j + i * width for j, op in enumerate(ops) if op in table[n]]
        ys = [table[n][op]["median"] for op in ops if op in table[n]]
        ax.bar(xs, ys, width, label=n, color=COLORS.get(n, "#888888"))
    ax.set_yscale("log")
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(ops))])
    ax.set_xticklabels(ops)
    ax.set_ylabel("calls/s (log)")
    ax.set_title("Binding-layer micro-costs")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    return out


def frames(res, plt, out):
    table = res["frame_loop"].get("table") or {}
    if not table:
        return None
    designs = list(table)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.27
    for i, stat in enumerate(("p50", "p99", "max")):
        ax.bar([d + i * width for d in range(len(designs))], [table[d][stat]["median"] for d in designs], width,
               label=stat)
    ax.axhline(1000 / 60, color="red", lw=0.8, ls="--", label="16.7 ms frame budget")
    ax.set_xticks([d + width for d in range(len(designs))])
    ax.set_xticklabels(designs)
    ax.set_ylabel("frame time, ms")
    ax.set_yscale("log")
    ax.set_title("Frame time at 60 FPS while a mod generates")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    return out


def sessions(res, plt, out):
    s = res.get("sessions") or {}
    if not s.get("npcs"):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ks = [int(k) for k in s["npcs"]]
    for mode, color in (("concurrent", "#1f77b4"), ("sequential", "#ff7f0e")):
        axes[0].plot(ks, [s["npcs"][str(k)][f"{mode}_tps"]["median"] for k in ks], "o-", label=mode, color=color)
    sc = s.get("decode_scaling")
    if sc:
        axes[0].plot(ks, [sc[str(k)]["tps"]["median"] for k in ks], "s--", color="#777777",
                     label="llama_decode alone (ceiling)")
    axes[0].set_ylim(bottom=0)
    axes[0].set_xscale("log", base=2)
    axes[0].set_xticks(ks)
    axes[0].set_xticklabels(ks)
    axes[0].set_xlabel("NPC sessions answering at once")
    axes[0].set_ylabel("aggregate tok/s")
    axes[0].legend(fontsize=8)
    axes[0].set_title("Many NPCs in one batch")
    chat = s["chat"]
    for mode, color in (("reuse", "#1f77b4"), ("replay", "#ff7f0e")):
        lat = [t["median"] for t in chat[mode]["turn_latency_ms"]]
        axes[1].plot(range(1, len(lat) + 1), lat, "o-", label=mode, color=color)
    axes[1].set_xlabel("turn")
    axes[1].set_ylabel("latency, ms")
    axes[1].legend(fontsize=8)
    axes[1].set_title("10-turn chat: prefix reuse vs replay")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    return out


def memory(res, plt, out):
    table = res["memory"]["table"]
    if not table:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    names = list(table)
    _bars(axes[0], names, [table[n]["peak_rss_mb"] for n in names])
    axes[0].set_title("peak RSS, MB")
    _bars(axes[1], names, [table[n]["faults_per_1k"] for n in names])
    axes[1].set_title("page faults per 1k generated tokens")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    return out


def make_charts(json_path: Path) -> list[Path]:
    """Render every chart the results have data for; returns the PNG paths."""
    plt = _plt()
    res = json.loads(Path(json_path).read_text())
    stem = Path(json_path).with_suffix("")
    made = []
    for name, fn in (("speed", gen_speed), ("micro", micro), ("frames", frames), ("sessions", sessions),
                     ("memory", memory)):
        try:
            path = fn(res, plt, Path(f"{stem}-{name}.png"))
        except KeyError:
            path = None  # that section was skipped in this run
        plt.close("all")
        if path is not None:
            made.append(path)
    return made


if __name__ == "__main__":
    for p in make_charts(Path(sys.argv[1])):
        print(p)
