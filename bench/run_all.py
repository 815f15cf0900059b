"""`make bench`: every Relic benchmark in one run, side by side with native llama.cpp and llama-cpp-python.

Sets up what the contenders need (cached: the C harness, llama-bench built from
the pinned source, llama-cpp-python 0.3.36 from the same sdist in its own
virtualenv), waits for a quiet machine, runs every section, and writes

    bench/results/<date>-<host>.json   everything, raw runs included
    bench/results/<date>-<host>.md     the tables and the targets (also printed)
    bench/results/<date>-<host>-*.png  charts (bench/charts.py)

and puts the latest tables and charts into bench/README.md.  A contender that
cannot be built here is recorded with the reason; the rest goes on.

    python bench/run_all.py [--runs 3] [--threads 1] [--tokens 128] [--quick]
                            [--only speed,micro,frames,sessions,cold,extras] [--no-wait]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import cold_start, gen_speed, memory, micro, sessions_bench  # noqa: E402
from bench.gen_speed import summarize  # noqa: E402

RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
SECTIONS = ("speed", "micro", "frames", "sessions", "cold", "extras")
# Each issue's own benches: run when present, skipped with a note when not.
EXTRAS = {
    "grammar_overhead": "bench/grammar_overhead.py",
    "rag_eval": "bench/rag_eval.py",
    "rag_bench": "bench/rag_bench.py",
    "frame_loop_idle": "bench/frame_loop_idle.py",
    "cancel_latency": "bench/cancel_latency.py",
    "rpc_bench": "bench/rpc_bench.py",
    "remote_bench": "bench/remote_bench.py",
    "server_scene": "bench/server_scene.py",
    "hostile": "bench/hostile.py",
    "hostile_worker": "bench/hostile_worker.py",
    "sandbox_speed": "bench/sandbox_speed.py",
    "watchdog_latency": "bench/watchdog_latency.py",
    "join_latency": "bench/join_latency.py",
    "player_first": "bench/player_first.py",
    "market_partner": "bench/market_partner.py",
    "judy_memory": "bench/judy_memory.py",
    "judy_chat": "bench/judy_chat.py",
    "quality": "bench/quality.py",
}
EXTRA_TIMEOUT_S = 3600
README_START, README_END = "<!-- latest-results:start -->", "<!-- latest-results:end -->"


def log(msg: str = "") -> None:
    print(msg, flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def wait_for_quiet(threshold: float, max_wait_s: float) -> dict:
    """Poll the 1-minute load average until it is under ``threshold`` or ``max_wait_s`` passes."""
    t0 = time.monotonic()
    start = load1()
    while load1() >= threshold and time.monotonic() - t0 < max_wait_s:
        log(f"  load average {load1():.2f} >= {threshold}: waiting for a quieter machine "
            f"({time.monotonic() - t0:.0f}/{max_wait_s:.0f} s)")
        time.sleep(30)
    return {"load_before_wait": start, "waited_s": round(time.monotonic() - t0), "load_at_start": load1()}


def machine_info() -> dict:
    from host.setup import llama_build
    from bench.benchsetup import model_path

    info = llama_build.ensure_library()
    cpu = ""
    try:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip()
        if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                          text=True, cwd=ROOT).stdout.strip():
            commit += "+uncommitted changes"
    except OSError:
        commit = ""
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "relic_commit": commit,
            "llama_cpp_commit": info.commit, "library": str(info.lib_path), "build_flags": list(info.build_flags),
            "model": Path(model_path()).name}


# --- sections ------------------------------------------------------------------

def section_setup() -> dict:
    """Build (or find cached) every contender; record how long and why any is missing."""
    from bench.native import build, lcpp

    out = {}
    for name, fn in (("native harness", build.harness_path), ("llama-bench", build.ensure_llama_bench),
                     ("llama-cpp-python", lcpp.ensure_python)):
        t0 = time.monotonic()
        try:
            path = fn()
            out[name] = {"path": str(path), "seconds": round(time.monotonic() - t0, 1)}
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000], "seconds": round(time.monotonic() - t0, 1)}
        log(f"  {name}: {out[name].get('path') or out[name]['error'][:300]} ({out[name]['seconds']} s)")
    return out


def section_speed(args) -> tuple[dict, dict]:
    c = gen_speed.Contenders(gen_speed.CONTENDERS)
    for name, why in c.unavailable.items():
        log(f"  {name}: unavailable: {why[:300]}")
    raw = gen_speed.measure(c, args.speed_runs, args.threads, args.tokens, log=log)
    c.close()
    texts = {}
    for name, r in raw.items():
        hexes = {run.get("text_hex") for run in r["runs"] if run.get("text_hex") is not None}
        if hexes:
            texts[name] = hexes
    reference = texts.get("native")
    same_text = {n: (h == reference) for n, h in texts.items()} if reference else {}
    sample = bytes.fromhex(next(iter(reference))).decode("utf-8", "replace")[:120] if reference else ""
    n_prompt = {n: r["runs"][0]["n_prompt"] for n, r in raw.items() if r["runs"]}
    for r in raw.values():
        for run in r["runs"]:
            run.pop("text_hex", None)  # keep the results file small; identity is recorded below
    generation = {"table": gen_speed.table(raw, ("pp", "tg", "outside_decode_us", "decode_ms")), "raw": raw,
                  "runs": args.speed_runs, "unavailable": c.unavailable,
                  "errors": {n: r["error"] for n, r in raw.items() if r.get("error")},
                  "same_text_as_native": same_text, "sample_text": sample, "n_prompt": n_prompt,
                  "tokens": args.tokens, "threads": args.threads}
    mem = {"table": memory.table_from_runs(raw)}
    return generation, mem


def section_frames(args) -> dict:
    script = ROOT / "bench" / "frame_loop_worker.py"
    runs, errors = [], []
    for i in range(args.runs):
        try:
            r = gen_speed.run_json([sys.executable, str(script), "--seconds", str(args.frame_seconds)],
                                   timeout=600)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            log(f"  frame loop run {i + 1} failed: {errors[-1][:300]}")
            continue
        runs.append(r)
        log(f"  run {i + 1}/{args.runs} " + "  ".join(f"{d} p99 {v['p99']:.2f} ms" for d, v in r.items()))
    table = {}
    for design in (runs[0] if runs else {}):
        table[design] = {k: summarize([r[design][k] for r in runs]) for k in ("p50", "p99", "max", "tokens_per_s")
                         if k in runs[0][design]}
    return {"table": table, "raw": runs, "errors": errors, "seconds_per_design": args.frame_seconds,
            "note": "worker threads: cores-1 generation, all cores prompt, nice 5 (the WorkerConfig defaults)"}


def run_extra(name: str, rel: str, quick: bool) -> dict:
    """Run one of the EXTRAS scripts; JSON from --json PATH or its last stdout line."""
    path = ROOT / rel
    if not path.is_file():
        return {"skipped": f"{rel} is not in this checkout (its issue has not landed)"}
    help_text = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True,
                               timeout=120).stdout
    cmd = [sys.executable, str(path)]
    if quick and "--limit" in help_text:
        cmd += ["--limit", "300"]
    if quick and "--chunks" in help_text:
        cmd += ["--chunks", "1000"]
    if quick and "--frames" in help_text:
        cmd += ["--frames", "120"]
    json_path = None
    if "--json" in help_text:
        json_path = Path(tempfile.gettempdir()) / f"relic-bench-{name}-{os.getpid()}.json"
        cmd += ["--json", str(json_path)]
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=EXTRA_TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {EXTRA_TIMEOUT_S} s", "command": " ".join(cmd[1:])}
    res = {"command": " ".join(Path(c).name if i == 1 else c for i, c in enumerate(cmd[1:], 1)),
           "seconds": round(time.monotonic() - t0, 1), "returncode": out.returncode}
    if out.returncode != 0:
        res["error"] = out.stderr.strip()[-1500:]
    data = None
    if json_path is not None and json_path.is_file():
        data = json.loads(json_path.read_text())
        json_path.unlink()
    else:
        try:
            data = gen_speed.last_json_line(out.stdout)
        except ValueError:
            data = None
    if data is not None:
        res["data"] = data
    res["stdout_tail"] = "\n".join(out.stdout.strip().splitlines()[-25:])
    return res


# --- targets -------------------------------------------------------------------

def _median(d, *keys):
    for k in keys:
        if d is None or k not in d:
            return None
        d = d[k]
    return d["median"] if isinstance(d, dict) and "median" in d else d


def targets(res: dict) -> list[dict]:
    """Every benchmark target, met or missed, with the figures it was judged on."""
    out = []

    def add(name, ok, detail):
        out.append({"target": name, "met": ok, "detail": detail})

    gen = res.get("generation", {}).get("table", {})
    native_tg = _median(gen, "native", "tg")
    for c in ("relic-python", "relic-worker", "relic-lua"):
        tg = _median(gen, c, "tg")
        if native_tg and tg:
            spread = gen[c]["tg"]
            add(f"{c} generation tok/s >= 99% of native", tg >= 0.99 * native_tg,
                f"{tg:.1f} [{spread['min']:.1f}–{spread['max']:.1f}] vs native {native_tg:.1f} "
                f"[{gen['native']['tg']['min']:.1f}–{gen['native']['tg']['max']:.1f}] tok/s = {100 * tg / native_tg:.1f}%")
        else:
            add(f"{c} generation tok/s >= 99% of native", None, "not measured")
    mem = res.get("memory", {}).get("table", {})
    n_rss, n_flt = _median(mem, "native", "peak_rss_mb"), _median(mem, "native", "faults_per_1k")
    for c in ("relic-python", "relic-worker", "relic-lua"):
        rss, flt = _median(mem, c, "peak_rss_mb"), _median(mem, c, "faults_per_1k")
        if n_rss and rss:
            add(f"{c} peak RSS <= native + 40 MB", rss <= n_rss + 40,
                f"{rss:.1f} MB vs native {n_rss:.1f} MB (+{rss - n_rss:.1f} MB)")
        if n_flt and flt is not None:
            add(f"{c} page faults per 1k tokens <= 1.1 x native", flt <= 1.1 * n_flt,
                f"{flt:.0f} vs native {n_flt:.0f} (x{flt / n_flt:.2f})")
    frames = res.get("frame_loop", {}).get("table", {})
    idle_p99 = _median(frames, "idle", "p99")
    for d in ("worker", "mod"):
        p99 = _median(frames, d, "p99")
        if idle_p99 is not None and p99 is not None:
            add(f"frame p99 while generating ({d} design) <= idle p99 + 1 ms", p99 <= idle_p99 + 1.0,
                f"{p99:.2f} ms vs idle {idle_p99:.2f} ms (+{p99 - idle_p99:.2f} ms)")
    npcs = res.get("sessions", {}).get("npcs", {})
    if "4" in npcs:
        x = npcs["4"]["vs_one_session"]
        ceiling = res["sessions"].get("decode_scaling", {}).get("4", {}).get("vs_one")
        add("4 concurrent sessions >= 2.5 x the aggregate tok/s of one", x >= 2.5,
            f"x{x:.2f} ({npcs['4']['concurrent_tps']['median']:.1f} vs {npcs['1']['concurrent_tps']['median']:.1f} "
            f"tok/s)" + (f"; llama_decode alone gives x{ceiling:.2f} for 4 tokens in 4 sequences" if ceiling else ""))
    mic = res.get("micro", {}).get("table", {})
    ffi = _median(mic, "relic-ffi", "is_eog")
    if ffi is not None:
        nat = _median(mic, "native", "is_eog")
        add("trusted-mod FFI is_eog >= 200 M calls/s", ffi >= 200e6,
            f"{ffi / 1e6:.1f} M calls/s (native C: {nat / 1e6:.1f} M)" if nat else f"{ffi / 1e6:.1f} M calls/s")
    if "relic-python" in mic and "llama-cpp-python" in mic:
        for op in micro.OPS:
            a, b = _median(mic, "relic-python", op), _median(mic, "llama-cpp-python", op)
            if a is not None and b is not None:
                add(f"Relic Python {op} >= llama-cpp-python", a >= b, f"{a:,.0f} vs {b:,.0f} calls/s (x{a / b:.2f})")
    extras = res.get("extras", {})
    frame = extras.get("sandbox_speed", {}).get("data", {}).get("game frame")
    if frame:
        add("sandboxed game-like frame <= 1.3 x trusted (JIT)", frame["ratio"] <= 1.3,
            f"{frame['sandboxed_ms']:.2f} vs {frame['trusted_ms']:.2f} ms (x{frame['ratio']:.2f})")
    wd = extras.get("watchdog_latency", {}).get("data")
    if wd:
        add("watchdog stops every runaway within budget + 10 ms (CPU time)", wd["worst_late_ms"] <= 10,
            f"worst {wd['worst_late_ms']:.1f} ms past the {wd['budget_ms']} ms budget")
    return out


# --- markdown ------------------------------------------------------------------

def _fmt(s, digits=1, scale=1.0):
    if not s:
        return "–"
    return f"{s['median'] * scale:,.{digits}f} [{s['min'] * scale:,.{digits}f}–{s['max'] * scale:,.{digits}f}]"


def markdown(res: dict, charts: list[str]) -> str:
    cfg, env = res["config"], res["machine"]
    L = [f"# Relic benchmarks — {res['date']} on {env['host']}", "",
         f"{env['cpu']} ({env['cores']} cores), {env['system']}, Python {env['python']}; Relic {env['relic_commit']}, "
         f"llama.cpp {env['llama_cpp_commit']}; model {env['model']}; {cfg['threads']} thread(s); "
         f"median [min–max] of {cfg['runs']} fresh-process runs ({cfg.get('speed_runs', cfg['runs'])} for tok/s).",
         f"Load average (1 min): {res['load']['load_at_start']} at start (after waiting {res['load']['waited_s']} s), "
         f"{res['load'].get('load_at_end', '?')} at the end. The machine is shared; figures taken under load are noisy.",
         "Per section (start → end): " + ", ".join(
             f"{k} {v['start']} → {v['end']}" if isinstance(v, dict) else f"{k} {v}"
             for k, v in res["load"].get("per_section", {}).items()) + ".",
         ""]
    gen = res.get("generation")
    if gen:
        L += ["## Generation and prompt speed (tok/s)", "",
              f"Prompt: {gen['n_prompt'].get('native', '?')} tokens, then {gen['tokens']} greedy tokens, one decode each.",
              "", "| contender | generation tok/s | prompt tok/s | same text as native |", "|---|---|---|---|"]
        for name, row in gen["table"].items():
            same = gen["same_text_as_native"].get(name)
            L.append(f"| {name} | {_fmt(row.get('tg'))} | {_fmt(row.get('pp'))} | "
                     f"{'–' if same is None else ('yes' if same else 'NO')} |")
        for name, why in {**gen["unavailable"], **gen["errors"]}.items():
            L.append(f"| {name} | unavailable: {why[:200].replace('|', '/')} | | |")
        L += ["", f"{gen['runs']} runs per contender. llama-bench is a reference: random tokens, no sampling, "
              "generation from an empty context, one warm-up run; it loads Relic's own libllama.", ""]
        nat, rp = gen["table"].get("native", {}), gen["table"].get("relic-python", {})
        if "outside_decode_us" in nat and "outside_decode_us" in rp:
            extra = rp["outside_decode_us"]["median"] - nat["outside_decode_us"]["median"]
            token_us = nat["decode_ms"]["median"] * 1000 + nat["outside_decode_us"]["median"]
            L += [f"Per generated token, time outside `llama_decode` (greedy sampling, the piece, the batch "
                  f"refill, the binding calls): native {_fmt(nat['outside_decode_us'])} µs, relic-python "
                  f"{_fmt(rp['outside_decode_us'])} µs; inside `llama_decode`: native {_fmt(nat['decode_ms'], 2)} ms, "
                  f"relic-python {_fmt(rp['decode_ms'], 2)} ms. Relic's binding adds {extra:.0f} µs to a "
                  f"{token_us / 1000:.1f} ms token ({100 * extra / token_us:.2f}%); the run-to-run spread of the "
                  "tok/s figures above is far larger than that.", ""]
    mem = res.get("memory")
    if mem and mem["table"]:
        L += ["## Memory for the same job", "", "| contender | peak RSS MB | page faults / 1k tokens (job) | "
              "process faults / 1k tokens |", "|---|---|---|---|"]
        for name, row in mem["table"].items():
            L.append(f"| {name} | {_fmt(row['peak_rss_mb'])} | {_fmt(row['faults_per_1k'], 0)} | "
                     f"{_fmt(row['process_faults_per_1k'], 0)} |")
        L.append("")
    mic = res.get("micro")
    if mic:
        ops = (*micro.OPS, "count")
        L += ["## Binding-layer micro-costs (calls/s)", "", f"Text: “{mic['text']}”", "",
              "| contender | " + " | ".join(ops) + " |", "|---" * (len(ops) + 1) + "|"]
        for name, row in mic["table"].items():
            L.append(f"| {name} | " + " | ".join(_fmt(row.get(op), 0) if op in row else "n/a" for op in ops) + " |")
        for name, why in {**mic["unavailable"], **mic["errors"]}.items():
            L.append(f"| {name} | unavailable: {why[:200].replace('|', '/')} |" + " |" * (len(ops) - 1))
        L += ["", "relic-lua (sandboxed) has only llm.tokenize and llm.count; relic-python caches piece and "
              "is_eog per token.", ""]
    fr = res.get("frame_loop")
    if fr and fr["table"]:
        L += ["## Frame time at 60 FPS (ms)", "", "| design | p50 | p99 | max | tok/s |", "|---|---|---|---|---|"]
        for d, row in fr["table"].items():
            L.append(f"| {d} | {_fmt(row['p50'], 2)} | {_fmt(row['p99'], 2)} | {_fmt(row['max'], 2)} | "
                     f"{_fmt(row.get('tokens_per_s'))} |")
        L.append("")
    ses = res.get("sessions")
    if ses and ses.get("npcs"):
        L += [f"## Many NPCs ({ses['tokens_per_npc']} tokens each, aggregate tok/s)", "",
              "| sessions | concurrent | sequential | vs sequential | vs one session | decodes (conc./seq.) | "
              "same output |", "|---|---|---|---|---|---|---|"]
        for k, row in ses["npcs"].items():
            L.append(f"| {k} | {_fmt(row['concurrent_tps'])} | {_fmt(row['sequential_tps'])} | x{row['speedup']:.2f} | "
                     f"x{row['vs_one_session']:.2f} | {row['decode_calls_concurrent']}/{row['decode_calls_sequential']} "
                     f"| {'yes' if row['outputs_match'] else 'NO'} |")
        chat = ses["chat"]
        L += ["", f"## 10-turn chat, turn latency (ms, up to {ses['turn_max_tokens']} tokens per reply)", "",
              "| turn | " + " | ".join(str(i) for i in range(1, 11)) + " | total |", "|---" * 12 + "|"]
        for mode in ("reuse", "replay"):
            L.append(f"| {mode} | " + " | ".join(f"{t['median']:.0f}" for t in chat[mode]["turn_latency_ms"])
                     + f" | {chat[mode]['total_ms']['median']:.0f} |")
        L.append("| cached tokens (reuse) | " + " | ".join(map(str, chat["reuse"]["cached_tokens"])) + " | |")
        L += ["", f"Replies are identical with and without reuse for the first {chat['identical_turns']} turn(s): "
              "reused KV was computed in other chunks than a full replay, so float rounding can flip a greedy "
              "pick, and from the first differing reply on the two histories differ.", ""]
        sc = ses.get("decode_scaling")
        if sc:
            L += ["Ceiling for batching — `llama_decode` alone, k tokens in k sequences, same context settings "
                  "as the scheduler:", "", "| k | " + " | ".join(sc) + " |", "|---" * (len(sc) + 1) + "|",
                  "| tok/s | " + " | ".join(_fmt(v["tps"]) for v in sc.values()) + " |",
                  "| vs k=1 | " + " | ".join(f"x{v['vs_one']:.2f}" for v in sc.values()) + " |", ""]
    cold = res.get("cold_start")
    if cold and cold["table"]:
        L += ["## Cold start (ms)", "", "| what | figures |", "|---|---|"]
        for name, row in cold["table"].items():
            L.append(f"| {name} | " + "; ".join(f"{k} {_fmt(v)}" for k, v in row.items()) + " |")
        L.append("")
    extras = res.get("extras")
    if extras:
        L += ["## Other benchmarks (grammar, RAG, idle host, cancel, hostile mods)", ""]
        for name, r in extras.items():
            if "skipped" in r:
                L.append(f"- **{name}**: skipped — {r['skipped']}")
            elif r.get("error") and "data" not in r:
                L.append(f"- **{name}**: failed — {r['error'][:300]}")
            else:
                L.append(f"- **{name}** (`{r['command']}`, {r['seconds']} s):")
                L += ["", "```", r["stdout_tail"][-2500:], "```", ""]
        L.append("")
    L += ["## Targets", "", "| target | met | figures |", "|---|---|---|"]
    for t in res["targets"]:
        mark = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        L.append(f"| {t['target']} | {mark} | {t['detail']} |")
    L.append("")
    if charts:
        L += ["## Charts", ""] + [f"![{Path(c).stem}]({Path(c).name})" for c in charts] + [""]
    L.append(f"Total time of this run: {res['elapsed_s'] / 60:.1f} min.")
    return "\n".join(L) + "\n"


def update_readme(md_path: Path, md_text: str, charts: list[str]) -> None:
    """Put the latest tables and charts between the markers in bench/README.md."""
    if not README.is_file():
        return
    body = md_text.split("\n", 1)[1]  # drop the title line
    body = re.sub(r"\]\(([^)/:]+\.(?:png|md))\)", r"](results/\1)", body)  # links relative to results/
    block = (f"{README_START}\nLatest: [{md_path.name}](results/{md_path.name})\n{body}{README_END}")
    text = README.read_text()
    if README_START in text and README_END in text:
        text = text[:text.index(README_START)] + block + text[text.index(README_END) + len(README_END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)


# --- main ----------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--speed-runs", type=int, default=5, help="runs per contender for tok/s (the noisiest figure)")
    ap.add_argument("--frame-seconds", type=float, default=10.0)
    ap.add_argument("--npc-tokens", type=int, default=64)
    ap.add_argument("--micro-seconds", type=float, default=0.5)
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--quick", action="store_true", help="short runs for development (1 run, few tokens)")
    ap.add_argument("--wait-load", type=float, default=1.0, help="wait for the 1-min load average to drop below this")
    ap.add_argument("--max-wait", type=float, default=600.0)
    ap.add_argument("--no-wait", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-readme", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.tokens, args.frame_seconds, args.npc_tokens, args.micro_seconds = 1, 32, 2.0, 16, 0.2
        args.speed_runs = 1
    only = set(args.only.split(","))
    started = time.monotonic()
    date = dt.date.today().isoformat()
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", platform.node() or "host")
    log(f"== Relic benchmarks: {args.runs} run(s), {args.threads} thread(s), {args.tokens} tokens")
    log("== setup: the contenders (cached after the first run)")
    res: dict = {"date": date, "machine": machine_info(),
                 "config": {"runs": args.runs, "speed_runs": args.speed_runs, "threads": args.threads,
                            "tokens": args.tokens, "quick": args.quick,
                            "frame_seconds": args.frame_seconds, "npc_tokens": args.npc_tokens,
                            "micro_seconds": args.micro_seconds, "prompt_text": gen_speed.PROMPT_TEXT},
                 "setup": section_setup()}
    log("== waiting for a quiet machine" if not args.no_wait else "== not waiting for a quiet machine")
    res["load"] = ({"load_before_wait": load1(), "waited_s": 0, "load_at_start": load1()} if args.no_wait
                   else wait_for_quiet(args.wait_load, args.max_wait))
    res["load"]["per_section"] = {}

    def section(name, title, fn):
        if name not in only:
            return
        log(f"== {title} (load {load1()})")
        start = load1()
        t0 = time.monotonic()
        try:
            fn()
        except Exception as exc:  # one broken section must not lose the others
            res.setdefault("section_errors", {})[name] = f"{type(exc).__name__}: {exc}"
            log(f"  section failed: {exc}")
        # the 1-minute average at both ends: a neighbour's burst in between shows in the spread
        res["load"]["per_section"][name] = {"start": start, "end": load1(), "seconds": round(time.monotonic() - t0)}
        log(f"  ({time.monotonic() - t0:.0f} s, load {load1()})")

    def do_speed():
        res["generation"], res["memory"] = section_speed(args)

    def do_micro():
        res["micro"] = micro.measure(args.runs, args.micro_seconds, log=log)

    def do_frames():
        res["frame_loop"] = section_frames(args)

    def do_sessions():
        res["sessions"] = sessions_bench.measure(args.runs, args.npc_tokens, 32, args.threads, log=log)

    def do_cold():
        res["cold_start"] = cold_start.measure(args.runs, args.threads, log=log)

    def do_extras():
        res["extras"] = {}
        for name, rel in EXTRAS.items():
            log(f"  {name} ...")
            res["extras"][name] = r = run_extra(name, rel, args.quick)
            log(f"  {name}: " + (r.get("skipped") or r.get("error", "")[:200] or f"done in {r['seconds']} s"))

    section("speed", "generation and prompt tok/s, peak RSS, page faults", do_speed)
    section("micro", "binding-layer micro-costs", do_micro)
    section("frames", "frame time at 60 FPS", do_frames)
    section("sessions", "many NPCs and prefix reuse", do_sessions)
    section("cold", "cold start and model load", do_cold)
    section("extras", "grammar, RAG and the other sessions' benchmarks", do_extras)
    res["load"]["load_at_end"] = load1()
    res["targets"] = targets(res)
    res["elapsed_s"] = round(time.monotonic() - started, 1)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{date}-{host}"
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(res, indent=1, default=str))
    charts: list[str] = []
    try:
        from bench.charts import make_charts

        charts = [str(p) for p in make_charts(json_path)]
    except ImportError as exc:
        log(f"  no charts: {exc} (install the bench extra: pip install -e '.[bench]')")
    md = markdown(res, charts)
    md_path = stem.with_suffix(".md")
    md_path.write_text(md)
    if not args.no_readme and args.out == RESULTS:
        update_readme(md_path, md, charts)
    log("")
    log(md)
    log(f"== wrote {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}, "
        f"{md_path.name} and {len(charts)} chart(s) in {res['elapsed_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
