"""Generation and prompt tok/s, side by side: native llama.cpp, Relic, llama-cpp-python.

One job for every contender: load the default model, tokenize PROMPT_TEXT
(add_special, no special parsing), decode it in one batch (prompt tok/s), then
generate ``--tokens`` tokens greedily, one decode per token, turning each into
its text piece (generation tok/s).  Same model, threads, context (n_ctx 2048,
n_batch 512), prompt and sampler everywhere; each run is a fresh process; the
contenders' runs are interleaved so a noisy neighbour hurts them alike.  Each
child also reports its peak RSS and page faults (bench/memory.py reads them).

Contenders:
  native            bench/native/relic_native.c against Relic's own libllama
  relic-python      host.llama object layer (Model, Context, Batch, SamplerChain)
  relic-worker      host.worker.Worker: the scheduler on its thread, from Python
  relic-lua         a sandboxed Lua mod calling llm.generate through the host
  llama-cpp-python  0.3.36 from the same sdist, Llama.generate (its own venv)
  llama-bench       llama.cpp's tool on Relic's libllama (reference only: random
                    tokens, no sampling, tg from an empty context, warm-up run)

Generation tok/s counts (sample, decode) steps per second.  The worker, the
Lua mod and llama-cpp-python time from the first sampled token, so they count
N-1 steps for N tokens; native and relic-python time N full steps.

    python bench/gen_speed.py [--threads 1] [--runs 3] [--tokens 128] [--contenders a,b]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The prompt every contender decodes (249 tokens with the default model).
PROMPT_TEXT = ("The harbor district flooded years ago, and the divers learned to work the tides. "
               "Every morning the bell at the pier rang twice before the boats went out. ") * 8
N_CTX = 2048
N_BATCH = 512
CONTENDERS = ("native", "relic-python", "relic-worker", "relic-lua", "llama-cpp-python", "llama-bench")
TIMEOUT_S = 600


# --- helpers shared by the bench scripts --------------------------------------

def summarize(values: list[float]) -> dict:
    """Median, min, max and count of a list of numbers."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def rusage_fields() -> dict:
    """Peak RSS and page faults of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"maxrss_kb": ru.ru_maxrss, "minflt": ru.ru_minflt, "majflt": ru.ru_majflt}


def _faults() -> int:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_minflt + ru.ru_majflt


def last_json_line(text: str) -> dict:
    """The JSON object on the last non-empty line of a child's stdout."""
    lines = [l for l in text.strip().splitlines() if l.strip()]
    if not lines:
        raise ValueError("no output")
    return json.loads(lines[-1])


def run_json(cmd: list[str], *, env=None, timeout: float = TIMEOUT_S) -> dict:
    """Run a child process and parse the JSON on its last stdout line; errors name the command."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} ... exited {out.returncode}: {out.stderr.strip()[-800:]}")
    return last_json_line(out.stdout)


def prompt_file() -> Path:
    """PROMPT_TEXT written to a file, for the native harness."""
    path = Path(tempfile.gettempdir()) / f"relic-bench-prompt-{os.getpid()}.txt"
    path.write_text(PROMPT_TEXT, encoding="utf-8")
    return path


# --- the job, once per contender (each runs in its own child process) ----------

def _job_relic_python(threads: int, tokens: int) -> dict:
    t0 = time.perf_counter()
    from host.llama import Batch, Context, Model, SamplerChain, load
    from bench.benchsetup import model_path

    lib = load()
    lib_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    model = Model(model_path())
    load_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    ctx = Context(model, n_ctx=N_CTX, n_batch=N_BATCH, n_threads=threads, n_threads_batch=threads)
    ctx_ms = (time.perf_counter() - t0) * 1000
    vocab = model.vocab
    prompt = vocab.tokenize(PROMPT_TEXT)
    batch = Batch(lib, N_BATCH)
    f0 = _faults()
    t0 = time.perf_counter()
    batch.set_tokens(prompt, 0, 0, True)
    ctx.decode(batch)
    pp_s = time.perf_counter() - t0
    sampler = SamplerChain.greedy(lib)
    out = bytearray()
    n = len(prompt)
    clock = time.perf_counter
    decode_s = 0.0  # time inside Context.decode; the rest is sampling, the piece and the batch refill
    t0 = clock()
    for i in range(tokens):
        tok = sampler.sample(ctx)
        out += vocab.piece(tok, False)
        batch.clear()
        batch.add(tok, n + i, (0,), True)
        td = clock()
        ctx.decode(batch)
        decode_s += clock() - td
    tg_s = clock() - t0
    return {"n_prompt": n, "n_gen": tokens, "pp": n / pp_s, "tg": tokens / tg_s, "lib_ms": lib_ms,
            "load_ms": load_ms, "ctx_ms": ctx_ms, "outside_decode_us": (tg_s - decode_s) / tokens * 1e6,
            "decode_ms": decode_s / tokens * 1e3, "job_faults": _faults() - f0, "text_hex": out.hex()}


def _worker_config(threads: int):
    from host.worker import WorkerConfig

    # one sequence, the whole prompt in one chunk, an f16 KV cache (llama.cpp's default, not
    # the worker's q8_0): the same work as the other contenders
    return WorkerConfig(n_ctx=N_CTX, n_batch=N_BATCH, n_seq_max=1, n_threads=threads, n_threads_batch=threads,
                        nice=0, kv_type="f16")


def _from_result(r: dict, extra: dict) -> dict:
    n_gen = r["usage"]["completion_tokens"]
    t = r["timings"]
    return {"n_prompt": r["usage"]["prompt_tokens"], "n_gen": n_gen, "pp": r["usage"]["prompt_tokens"] / (t["prompt_ms"] / 1000),
            "tg": (n_gen - 1) / (t["generation_ms"] / 1000), "text_hex": r["text"].encode("utf-8").hex(),
            "finish_reason": r["finish_reason"], **extra}


def _job_relic_worker(threads: int, tokens: int) -> dict:
    t0 = time.perf_counter()
    from host.llama import Model
    from bench.benchsetup import model_path
    from host.worker import Worker

    model = Model(model_path())
    load_ms = (time.perf_counter() - t0) * 1000
    w = Worker(model, _worker_config(threads)).start()
    f0 = _faults()
    h = w.submit("bench", prompt=PROMPT_TEXT, max_tokens=tokens, temperature=0.0)
    r = w.wait(h, TIMEOUT_S)
    faults = _faults() - f0
    w.shutdown()
    if r["error"]:
        raise RuntimeError(r["error"])
    return _from_result(r, {"load_ms": load_ms, "job_faults": faults})


_LUA_MOD = """
local result = nil
registerForEvent("onInit", function()
  llm.generate{ prompt = [==[%s]==], max_tokens = %d, temperature = 0,
    on_done = function(r) result = r end }
end)
return { result = function() return result end }
"""


def _job_relic_lua(threads: int, tokens: int) -> dict:
    """A sandboxed mod asks for the generation; the host runs a 60 FPS frame loop until on_done."""
    t0 = time.perf_counter()
    from host.app import build_host
    from host.llama import Model
    from bench.benchsetup import model_path

    model = Model(model_path())
    load_ms = (time.perf_counter() - t0) * 1000
    with tempfile.TemporaryDirectory() as tmp:
        mod_dir = Path(tmp) / "mods" / "genbench"
        mod_dir.mkdir(parents=True)
        (mod_dir / "init.lua").write_text(_LUA_MOD % (PROMPT_TEXT, tokens), encoding="utf-8")
        lines: list[str] = []
        host = build_host(mod_dir.parent, model=model, worker_config=_worker_config(threads), console=lines.append,
                          load=False)
        f0 = _faults()
        t_start = time.perf_counter()
        host.load()  # onInit submits the request
        mod = host.mods["genbench"]
        getter = mod.public["result"]
        r = None
        period = 1 / 60
        next_t = time.perf_counter()
        deadline = next_t + TIMEOUT_S
        while r is None and time.perf_counter() < deadline:
            host.update(period)
            ok, value = mod.call(getter)
            if ok and value is not None:
                r = mod.from_lua(value)
                break
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
        e2e_ms = (time.perf_counter() - t_start) * 1000
        faults = _faults() - f0
        host.shutdown()
    if r is None:
        raise RuntimeError("the Lua mod got no result: " + " | ".join(lines[-5:]))
    if r.get("error"):
        raise RuntimeError(r["error"])
    return _from_result(r, {"load_ms": load_ms, "job_faults": faults, "e2e_ms": e2e_ms})


def _job_lcpp(threads: int, tokens: int, model: str) -> dict:
    """llama-cpp-python's own generator (runs in its virtualenv: no Relic imports here)."""
    t0 = time.perf_counter()
    import llama_cpp
    from llama_cpp import Llama

    lib_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    # The others get llama.cpp's default flash attention, "auto", which the CPU backend resolves
    # to enabled ("resolve_fused_ops: Flash Attention enabled"); 0.3.36 only takes on/off.
    llm = Llama(model_path=model, n_ctx=N_CTX, n_batch=N_BATCH, n_ubatch=N_BATCH, n_threads=threads,
                n_threads_batch=threads, verbose=False, flash_attn=True)
    load_ms = (time.perf_counter() - t0) * 1000
    prompt = llm.tokenize(PROMPT_TEXT.encode("utf-8"), add_bos=True, special=False)
    out = bytearray()
    stamps = []
    f0 = _faults()
    t0 = time.perf_counter()
    for tok in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        stamps.append(time.perf_counter())
        out += llm.detokenize([tok])
        if len(stamps) == tokens:
            break
    faults = _faults() - f0
    return {"n_prompt": len(prompt), "n_gen": len(stamps), "pp": len(prompt) / (stamps[0] - t0),
            "tg": (len(stamps) - 1) / (stamps[-1] - stamps[0]), "lib_ms": lib_ms, "load_ms": load_ms,
            "job_faults": faults, "text_hex": bytes(out).hex(), "version": llama_cpp.__version__}


def child_main(mode: str, threads: int, tokens: int, model: str | None) -> None:
    """Entry point of one fresh child process: run the job, print one JSON line."""
    if mode == "relic-python":
        res = _job_relic_python(threads, tokens)
    elif mode == "relic-worker":
        res = _job_relic_worker(threads, tokens)
    elif mode == "relic-lua":
        res = _job_relic_lua(threads, tokens)
    elif mode == "llama-cpp-python":
        res = _job_lcpp(threads, tokens, model)
    else:
        raise SystemExit(f"unknown child mode {mode}")
    res.update(rusage_fields())
    print(json.dumps(res))


# --- running the contenders (parent side) -------------------------------------

class Contenders:
    """Resolves each contender's command once (building native tools on first use).

    ``unavailable`` maps a contender to the reason it cannot run here.
    """

    def __init__(self, names=CONTENDERS):
        from host.setup import llama_build
        from bench.benchsetup import model_path

        self.lib_info = llama_build.ensure_library()
        self.model = str(model_path())
        self.names = list(names)
        self.unavailable: dict[str, str] = {}
        self._cmd: dict[str, object] = {}
        self._prompt = None
        for name in self.names:
            try:
                self._cmd[name] = self._resolve(name)
            except Exception as exc:  # a contender that cannot be built is recorded, not fatal
                self.unavailable[name] = f"{type(exc).__name__}: {exc}"
        self.names = [n for n in self.names if n not in self.unavailable]

    def _resolve(self, name: str):
        from bench.native import build, lcpp

        if name == "native":
            return build.harness_path(self.lib_info)
        if name == "llama-bench":
            return build.ensure_llama_bench()
        if name == "llama-cpp-python":
            return lcpp.ensure_python()
        if name in ("relic-python", "relic-worker", "relic-lua"):
            return Path(sys.executable)
        raise ValueError(f"unknown contender {name!r}; known: {CONTENDERS}")

    def path(self, name: str):
        return self._cmd[name]

    def run(self, name: str, threads: int, tokens: int) -> dict:
        """One run of one contender in a fresh process."""
        exe = self._cmd[name]
        if name == "native":
            if self._prompt is None:
                self._prompt = prompt_file()
            return run_json([str(exe), "gen", self.model, str(self._prompt), str(tokens), str(threads),
                             str(N_CTX), str(N_BATCH)])
        if name == "llama-bench":
            return self._llama_bench(exe, threads, tokens)
        cmd = [str(exe), __file__, "--child", name, "--threads", str(threads), "--tokens", str(tokens),
               "--model", self.model]
        return run_json(cmd)

    def _llama_bench(self, exe, threads: int, tokens: int) -> dict:
        from bench.native import build

        n_prompt = self.n_prompt()
        out = subprocess.run([str(exe), "-m", self.model, "-t", str(threads), "-p", str(n_prompt), "-n", str(tokens),
                              "-b", str(N_BATCH), "-ub", str(N_BATCH), "-r", "1", "-o", "json"],
                             capture_output=True, text=True, env=build.llama_bench_env(self.lib_info),
                             timeout=TIMEOUT_S)
        if out.returncode != 0:
            raise RuntimeError(f"llama-bench exited {out.returncode}: {out.stderr.strip()[-800:]}")
        res = {"n_prompt": n_prompt, "n_gen": tokens}
        for row in json.loads(out.stdout):
            res["pp" if row.get("n_prompt") else "tg"] = row["avg_ts"]
        return res

    def n_prompt(self) -> int:
        """Token count of PROMPT_TEXT (add_special), for llama-bench's -p."""
        if not hasattr(self, "_n_prompt"):
            from host.llama import Model

            m = Model(self.model, vocab_only=True)
            self._n_prompt = len(m.vocab.tokenize(PROMPT_TEXT))
            m.close()
        return self._n_prompt

    def close(self) -> None:
        if self._prompt is not None:
            self._prompt.unlink(missing_ok=True)


def measure(contenders: Contenders, runs: int, threads: int, tokens: int, log=print) -> dict:
    """Interleaved runs of every contender; returns {name: {"runs": [...], "error": str?}}."""
    raw: dict[str, dict] = {n: {"runs": []} for n in contenders.names}
    for i in range(runs):
        for name in contenders.names:
            if raw[name].get("error"):
                continue
            try:
                r = contenders.run(name, threads, tokens)
            except Exception as exc:
                raw[name]["error"] = f"{type(exc).__name__}: {exc}"
                log(f"  {name}: failed: {raw[name]['error'][:300]}")
                continue
            raw[name]["runs"].append(r)
            log(f"  run {i + 1}/{runs} {name:17} pp {r.get('pp', 0):8.1f}  tg {r.get('tg', 0):7.2f} tok/s")
    return raw


def table(raw: dict, keys=("pp", "tg")) -> dict:
    """{name: {key: summary}} for the contenders that ran."""
    out = {}
    for name, r in raw.items():
        if r["runs"]:
            out[name] = {k: summarize([run[k] for run in r["runs"]]) for k in keys if k in r["runs"][0]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child")
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    args = ap.parse_args()
    if args.child:
        child_main(args.child, args.threads, args.tokens, args.model)
        return
    c = Contenders([n for n in args.contenders.split(",") if n])
    for name, why in c.unavailable.items():
        print(f"  {name}: unavailable: {why}")
    raw = measure(c, args.runs, args.threads, args.tokens)
    c.close()
    summary = table(raw)
    print(f"threads={args.threads} tokens={args.tokens} prompt={PROMPT_TEXT[:30]!r}... runs={args.runs}")
    for name, row in summary.items():
        cells = "  ".join(f"{k} {v['median']:.1f} tok/s [{v['min']:.1f}-{v['max']:.1f}]" for k, v in row.items())
        print(f"  {name:18} {cells}")
    print(json.dumps({"summary": summary, "unavailable": c.unavailable,
                      "errors": {n: r["error"] for n, r in raw.items() if r.get("error")}}))


if __name__ == "__main__":
    main()
