"""Binding-layer micro-costs in calls/s: detokenize, token->piece, is_eog, tokenize.

The same inputs for every contender: MICRO_TEXT tokenized without BOS; detokenize
takes its first 16 tokens per call; token->piece and is_eog take one token per
call, cycling over its tokens; tokenize takes the whole text (no BOS).

Contenders (each run in a fresh process; runs interleaved):
  native            C calls into libllama (bench/native/relic_native.c)
  relic-python      host.llama.Vocab: detokenize(), piece(), is_eog(), tokenize()
                    (piece and is_eog are cached per token by design)
  relic-lua         a sandboxed mod: llm.tokenize and llm.count, the only
                    tokenizer calls the sandboxed API has (docs/MODDING.md); the
                    others are not exposed to sandboxed mods
  relic-ffi         a trusted mod: llama.C.* through LuaJIT's FFI, JIT on
  llama-cpp-python  Llama.detokenize / Llama.tokenize (high level) and the
                    low-level ctypes llama_token_to_piece / llama_vocab_is_eog

Each figure is calls/s over at least --seconds of calls (the batch doubles until
then); the Lua figures time mod.call(fn, n) from Python, so one guarded call's
overhead is spread over n calls.

    python bench/micro.py [--runs 3] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MICRO_TEXT = "The quick brown fox jumps over the lazy dog near the old harbor, where divers work the tides."
OPS = ("detokenize", "token_to_piece", "is_eog", "tokenize")
CONTENDERS = ("native", "relic-python", "relic-lua", "relic-ffi", "llama-cpp-python")
N_DETOK = 16


def calls_per_second(run_batch, seconds: float) -> float:
    """run_batch(n) performs n calls; grow n until a batch takes >= seconds."""
    n = 64
    while True:
        t0 = time.perf_counter()
        run_batch(n)
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt
        n *= 2 if dt > seconds / 8 else 8


def _cycle(items, n):
    reps = n // len(items) + 1
    return (items * reps)[:n]


def _python_loops(detok, piece, is_eog, tokenize, toks, seconds) -> dict:
    """The same loop shapes for both Python contenders."""
    d16 = toks[:N_DETOK]
    text = MICRO_TEXT

    def b_detok(n):
        for _ in range(n):
            detok(d16)

    def b_piece(n):
        for t in _cycle(toks, n):
            piece(t)

    def b_eog(n):
        for t in _cycle(toks, n):
            is_eog(t)

    def b_tok(n):
        for _ in range(n):
            tokenize(text)

    return {"detokenize": calls_per_second(b_detok, seconds), "token_to_piece": calls_per_second(b_piece, seconds),
            "is_eog": calls_per_second(b_eog, seconds), "tokenize": calls_per_second(b_tok, seconds)}


def _child_relic_python(seconds: float) -> dict:
    from host.llama import Model
    from bench.benchsetup import model_path

    vocab = Model(model_path()).vocab
    toks = vocab.tokenize(MICRO_TEXT, add_special=False)
    return _python_loops(lambda ts: vocab.detokenize(ts), lambda t: vocab.piece(t, False), vocab.is_eog,
                         lambda s: vocab.tokenize(s, add_special=False), toks, seconds)


def _child_lcpp(seconds: float, model: str) -> dict:
    import ctypes

    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_ctx=512, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    toks = llm.tokenize(MICRO_TEXT.encode(), add_bos=False, special=False)
    buf = ctypes.create_string_buffer(256)
    to_piece, eog = llama_cpp.llama_token_to_piece, llama_cpp.llama_vocab_is_eog
    return _python_loops(lambda ts: llm.detokenize(ts), lambda t: to_piece(vocab, t, buf, 256, 0, False),
                         lambda t: eog(vocab, t), lambda s: llm.tokenize(s.encode(), add_bos=False, special=False),
                         toks, seconds)


_SANDBOXED_MOD = """
local llm = llm
return {
  tokenize = function(n, text)
    local s = 0
    for i = 1, n do s = s + #llm.tokenize(text) end
    return s
  end,
  count = function(n, text)
    local s = 0
    for i = 1, n do s = s + llm.count(text) end
    return s
  end,
}
"""

_TRUSTED_MOD = """
local C, ffi, vocab = llama.C, llama.ffi, llama.vocab
local text = [==[%s]==]
local cap = #text + 8
local toks = ffi.new("llama_token[?]", cap)
local NT = C.llama_tokenize(vocab, text, #text, toks, cap, false, false)
local tbuf = ffi.new("llama_token[?]", cap)
local buf = ffi.new("char[4096]")
return {
  detokenize = function(n)
    local s = 0
    for i = 1, n do s = s + C.llama_detokenize(vocab, toks, %d, buf, 4096, false, false) end
    return s
  end,
  token_to_piece = function(n)
    local s, k = 0, 0
    for i = 1, n do
      s = s + C.llama_token_to_piece(vocab, toks[k], buf, 4096, 0, false)
      k = k + 1
      if k == NT then k = 0 end
    end
    return s
  end,
  is_eog = function(n)
    local s, k = 0, 0
    for i = 1, n do
      if C.llama_vocab_is_eog(vocab, toks[k]) then s = s + 1 end
      k = k + 1
      if k == NT then k = 0 end
    end
    return s
  end,
  tokenize = function(n)
    local s = 0
    for i = 1, n do s = s + C.llama_tokenize(vocab, text, #text, tbuf, cap, false, false) end
    return s
  end,
}
"""


def _child_lua(seconds: float, trusted: bool) -> dict:
    from host.app import build_host
    from host.llama import Model
    from bench.benchsetup import model_path
    from host.worker import WorkerConfig

    model = Model(model_path())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mods" / "microbench"
        folder.mkdir(parents=True)
        src = _TRUSTED_MOD % (MICRO_TEXT, N_DETOK) if trusted else _SANDBOXED_MOD
        (folder / "init.lua").write_text(src, encoding="utf-8")
        lines: list[str] = []
        from host.runtime.grants import Grant

        host = build_host(folder.parent, model=model, worker_config=WorkerConfig(n_ctx=256, n_seq_max=1),
                          console=lines.append, grants={"microbench": Grant(trusted=trusted)})
        try:
            mod = host.mods["microbench"]
            if mod.state != "loaded" or mod.public is None:
                raise RuntimeError("bench mod did not load: " + " | ".join(lines[-5:]))

            def timed(name, *args):
                fn = mod.public[name]

                def run(n):
                    ok, _ = mod.call(fn, n, *args, budget=600.0)
                    if not ok:
                        raise RuntimeError(f"{name} failed in the mod: " + " | ".join(lines[-5:]))
                return calls_per_second(run, seconds)

            if trusted:
                return {op: timed(op) for op in OPS}
            return {"tokenize": timed("tokenize", MICRO_TEXT), "count": timed("count", MICRO_TEXT)}
        finally:
            host.shutdown()


def child_main(mode: str, seconds: float, model: str | None) -> None:
    if mode == "relic-python":
        res = _child_relic_python(seconds)
    elif mode == "relic-lua":
        res = _child_lua(seconds, trusted=False)
    elif mode == "relic-ffi":
        res = _child_lua(seconds, trusted=True)
    elif mode == "llama-cpp-python":
        res = _child_lcpp(seconds, model)
    else:
        raise SystemExit(f"unknown child mode {mode}")
    print(json.dumps(res))


# --- parent --------------------------------------------------------------------

def measure(runs: int, seconds: float, names=CONTENDERS, log=print) -> dict:
    """Interleaved fresh-process runs; returns {"table": {contender: {op: summary}}, "unavailable": ...}."""
    from bench import gen_speed
    from bench.native import build, lcpp
    from host.setup import llama_build
    from bench.benchsetup import model_path

    model = str(model_path())
    unavailable: dict[str, str] = {}
    cmds: dict[str, list[str]] = {}
    text_file = Path(tempfile.gettempdir()) / "relic-bench-micro.txt"
    text_file.write_text(MICRO_TEXT, encoding="utf-8")
    for name in names:
        try:
            if name == "native":
                exe = build.harness_path(llama_build.ensure_library())
                cmds[name] = [str(exe), "micro", model, str(text_file), str(seconds)]
            else:
                py = lcpp.ensure_python() if name == "llama-cpp-python" else Path(sys.executable)
                cmds[name] = [str(py), __file__, "--child", name, "--seconds", str(seconds), "--model", model]
        except Exception as exc:
            unavailable[name] = f"{type(exc).__name__}: {exc}"
    raw: dict[str, list[dict]] = {n: [] for n in cmds}
    errors: dict[str, str] = {}
    for i in range(runs):
        for name, cmd in cmds.items():
            if name in errors:
                continue
            try:
                r = gen_speed.run_json(cmd)
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
                log(f"  {name}: failed: {errors[name][:300]}")
                continue
            raw[name].append(r)
            cells = "  ".join(f"{k} {r[k] / 1e6:.3f}M" for k in (*OPS, "count") if k in r)
            log(f"  run {i + 1}/{runs} {name:17} {cells}")
    text_file.unlink(missing_ok=True)
    table = {}
    for name, rs in raw.items():
        if rs:
            table[name] = {k: gen_speed.summarize([r[k] for r in rs]) for k in (*OPS, "count") if k in rs[0]}
    return {"table": table, "unavailable": unavailable, "errors": errors, "text": MICRO_TEXT,
            "seconds_per_figure": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child")
    ap.add_argument("--model")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    args = ap.parse_args()
    if args.child:
        child_main(args.child, args.seconds, args.model)
        return
    res = measure(args.runs, args.seconds, [n for n in args.contenders.split(",") if n])
    print(f"calls/s (median of {args.runs} runs)")
    print(f"  {'':18}" + "".join(f"{op:>16}" for op in (*OPS, "count")))
    for name, row in res["table"].items():
        print(f"  {name:18}" + "".join(f"{row[op]['median']:16,.0f}" if op in row else f"{'n/a':>16}"
                                       for op in (*OPS, "count")))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
