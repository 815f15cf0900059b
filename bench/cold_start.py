"""Cold start: host start to the first onInit, and model load time versus native.

1. Host start to first onInit, each in a fresh process; a mod's onInit is the
   finish line (its print reaches the console callback):
     host-no-model    build_host(mods, llm=False): the mod runtime alone
     host-with-model  build_host(mods): + libllama, the default model, the worker
                      and its context, the llm module
   ``in_process_ms`` runs from the child's first line (before importing host);
   ``from_spawn_ms`` from the parent's spawn (interpreter start included).
2. Model load and context creation (n_ctx 2048), fresh process each:
     native            llama_model_load_from_file + llama_init_from_model (C harness)
     relic-python      host.llama.load() (cffi, ABI check), Model(), Context()
     llama-cpp-python  import llama_cpp, Llama(...) (model + context together)

    python bench/cold_start.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

T_START = time.perf_counter()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_CTX = 2048
_INIT_MOD = 'registerForEvent("onInit", function() print("ready") end)\n'


def _child_host(with_model: bool, spawn_wall: float) -> dict:
    """Build a host over one mod and stop at its onInit."""
    t_import = time.perf_counter()
    from host.app import build_host

    import_ms = (time.perf_counter() - t_import) * 1000
    marks = {}

    def console(line: str) -> None:
        if line.endswith("ready") and "oninit" not in marks:
            marks["oninit"] = time.perf_counter()
            marks["oninit_wall"] = time.time()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mods" / "hello"
        folder.mkdir(parents=True)
        (folder / "init.lua").write_text(_INIT_MOD, encoding="utf-8")
        t0 = time.perf_counter()
        host = build_host(folder.parent, llm=with_model, console=console)
        if "oninit" not in marks:
            raise RuntimeError("onInit did not run")
        res = {"in_process_ms": (marks["oninit"] - T_START) * 1000, "build_host_ms": (marks["oninit"] - t0) * 1000,
               "import_ms": import_ms, "from_spawn_ms": (marks["oninit_wall"] - spawn_wall) * 1000}
        host.shutdown()
    return res


def _child_relic_load(threads: int) -> dict:
    t0 = time.perf_counter()
    from host.llama import Context, Model, load
    from bench.benchsetup import model_path

    import_ms = (time.perf_counter() - t0) * 1000
    path = model_path()
    t0 = time.perf_counter()
    load()
    lib_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    model = Model(path)
    load_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    Context(model, n_ctx=N_CTX, n_batch=512, n_threads=threads, n_threads_batch=threads)
    ctx_ms = (time.perf_counter() - t0) * 1000
    return {"import_ms": import_ms, "lib_ms": lib_ms, "load_ms": load_ms, "ctx_ms": ctx_ms,
            "total_ms": import_ms + lib_ms + load_ms + ctx_ms}


def _child_lcpp_load(threads: int, model: str) -> dict:
    t0 = time.perf_counter()
    from llama_cpp import Llama

    import_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    Llama(model_path=model, n_ctx=N_CTX, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False,
          flash_attn=True)
    load_ctx_ms = (time.perf_counter() - t0) * 1000
    return {"import_ms": import_ms, "load_ctx_ms": load_ctx_ms, "total_ms": import_ms + load_ctx_ms}


# --- parent --------------------------------------------------------------------

def measure(runs: int, threads: int = 1, log=print) -> dict:
    """Both parts, interleaved fresh-process runs; a JSON-ready dict."""
    from bench.gen_speed import run_json, summarize
    from bench.native import build, lcpp
    from host.setup import llama_build
    from bench.benchsetup import model_path

    model = str(model_path())
    me = [sys.executable, __file__, "--threads", str(threads)]
    cmds = {
        "host-no-model": lambda: me + ["--child", "host", "--spawn", repr(time.time())],
        "host-with-model": lambda: me + ["--child", "host-model", "--spawn", repr(time.time())],
        "relic-python": lambda: me + ["--child", "relic-load"],
    }
    unavailable = {}
    try:
        exe = str(build.harness_path(llama_build.ensure_library()))
        cmds["native"] = lambda: [exe, "load", model, str(threads), str(N_CTX)]
    except Exception as exc:
        unavailable["native"] = f"{type(exc).__name__}: {exc}"
    try:
        py = str(lcpp.ensure_python())
        cmds["llama-cpp-python"] = lambda: [py, __file__, "--threads", str(threads), "--child", "lcpp-load",
                                            "--model", model]
    except Exception as exc:
        unavailable["llama-cpp-python"] = f"{type(exc).__name__}: {exc}"
    raw: dict[str, list] = {n: [] for n in cmds}
    errors = {}
    for i in range(runs):
        for name, cmd in cmds.items():
            if name in errors:
                continue
            t0 = time.perf_counter()
            try:
                r = run_json(cmd())
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
                log(f"  {name}: failed: {errors[name][:300]}")
                continue
            r["process_ms"] = (time.perf_counter() - t0) * 1000
            raw[name].append(r)
            shown = {k: round(v, 1) for k, v in r.items() if isinstance(v, float)}
            log(f"  run {i + 1}/{runs} {name:17} {shown}")
    table = {}
    for name, rs in raw.items():
        if rs:
            keys = [k for k, v in rs[0].items() if isinstance(v, (int, float)) and k not in ("maxrss_kb", "minflt", "majflt")]
            table[name] = {k: summarize([r[k] for r in rs]) for k in keys}
    return {"table": table, "unavailable": unavailable, "errors": errors, "threads": threads, "n_ctx": N_CTX}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child")
    ap.add_argument("--spawn", type=float, default=0.0)
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.child:
        if args.child in ("host", "host-model"):
            res = _child_host(args.child == "host-model", args.spawn)
        elif args.child == "relic-load":
            res = _child_relic_load(args.threads)
        elif args.child == "lcpp-load":
            res = _child_lcpp_load(args.threads, args.model)
        else:
            raise SystemExit(f"unknown child {args.child}")
        print(json.dumps(res))
        return
    res = measure(args.runs, args.threads)
    for name, row in res["table"].items():
        print(f"  {name:17} " + "  ".join(f"{k} {v['median']:.1f}" for k, v in row.items()))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
