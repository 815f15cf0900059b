"""Frame times at 60 FPS: idle, while the worker generates, and the naive synchronous design.

The frame thread does a fixed slice of "game" work per frame (about 1 ms of
Python), pumps worker events, then sleeps to the next frame.  A frame's time is
its work time plus how late it started (the jitter a player sees).

Designs:
  idle    the game work only
  worker  Python keeps a generation running on the Worker and pumps its events
  mod     a sandboxed Lua mod keeps an llm.chat running from onUpdate; the frame
          calls host.update (mods, the worker pump, callbacks into Lua)
  naive   one token of synchronous generation inside every frame

    python bench/frame_loop_worker.py [--seconds 5] [--threads N] [--nice 5] [--designs idle,worker,mod,naive]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FPS = 60


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def stats(frame_ms):
    return {"p50": percentile(frame_ms, 0.50), "p99": percentile(frame_ms, 0.99), "max": max(frame_ms),
            "frames": len(frame_ms)}


def game_work():
    x = 0
    for i in range(12000):  # ~1 ms of interpreter work
        x += i * i
    return x


def run_loop(seconds, per_frame=None):
    period = 1.0 / FPS
    frames = []
    next_t = time.perf_counter()
    end = next_t + seconds
    while next_t < end:
        now = time.perf_counter()
        if now < next_t:
            time.sleep(next_t - now)
        start = time.perf_counter()
        late = start - next_t
        game_work()
        if per_frame:
            per_frame()
        frames.append((time.perf_counter() - start + max(0.0, late)) * 1000)
        next_t += period
        if time.perf_counter() > next_t + period:  # fell behind: do not try to catch up
            next_t = time.perf_counter()
    return frames


# The mod of the "mod" design: always one story in flight, tokens counted in Lua.
STORY_MOD = """
local tokens, h = 0, nil
local msgs = { { role = "user", content = "Tell me a long story about a flooded harbor district." } }
registerForEvent("onUpdate", function(dt)
  if h == nil or h:done() then
    h = llm.chat{ messages = msgs, max_tokens = 256, temperature = 0.8,
                  on_token = function(t) tokens = tokens + 1 end }
  end
end)
return { tokens = function() return tokens end }
"""


def mod_design(model, seconds, config):
    """Frame stats while a Lua mod generates continuously through the host."""
    from host.app import build_host

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mods" / "storyteller"
        folder.mkdir(parents=True)
        (folder / "init.lua").write_text(STORY_MOD, encoding="utf-8")
        lines = []
        host = build_host(folder.parent, model=model, worker_config=config, console=lines.append)
        try:
            mod = host.mods["storyteller"]
            t0 = time.perf_counter()
            res = stats(run_loop(seconds, lambda: host.update(1.0 / FPS)))
            ok, n = mod.call(mod.public["tokens"])
            res["tokens_per_s"] = (n or 0) / (time.perf_counter() - t0)
            if mod.state != "loaded":
                raise RuntimeError(f"the story mod stopped: {mod.state} " + " | ".join(lines[-3:]))
        finally:
            host.shutdown()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--threads-batch", type=int, default=None)
    ap.add_argument("--nice", type=int, default=5)
    ap.add_argument("--designs", default="idle,worker,mod,naive")
    args = ap.parse_args()
    designs = set(args.designs.split(","))

    from host.llama import Context, Model, generate
    from bench.benchsetup import model_path
    from host.worker import Worker, WorkerConfig

    model = Model(model_path())
    results = {}
    if "idle" in designs:
        results["idle"] = stats(run_loop(args.seconds))

    config = WorkerConfig(n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads_batch, nice=args.nice)
    if "worker" in designs:
        w = Worker(model, config).start()
        msgs = ({"role": "user", "content": "Tell me a long story about a flooded harbor district."},)
        state = {"h": None, "tokens": 0}

        def keep_generating():
            if state["h"] is None or state["h"].done():
                state["h"] = w.submit("bench", messages=msgs, max_tokens=256, temperature=0.8,
                                      on_token=lambda _t: state.__setitem__("tokens", state["tokens"] + 1))
            w.pump(0.002)

        t0 = time.perf_counter()
        results["worker"] = stats(run_loop(args.seconds, keep_generating))
        results["worker"]["tokens_per_s"] = state["tokens"] / (time.perf_counter() - t0)
        if state["h"] is not None:
            state["h"].cancel()
        w.shutdown()

    if "mod" in designs:
        results["mod"] = mod_design(model, args.seconds, config)

    if "naive" in designs:
        # naive: one token of synchronous generation inside every frame (what CET-style code would do)
        msgs = ({"role": "user", "content": "Tell me a long story about a flooded harbor district."},)
        ctx = Context(model, n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads_batch)
        prompt = model.apply_chat_template(list(msgs))
        gen = {"it": generate(ctx, prompt, max_tokens=100000, temperature=0.8), "tokens": 0}

        def naive():
            try:
                next(gen["it"])
                gen["tokens"] += 1
            except StopIteration:
                gen["it"] = generate(ctx, prompt, max_tokens=100000, temperature=0.8)

        t0 = time.perf_counter()
        results["naive"] = stats(run_loop(args.seconds, naive))
        results["naive"]["tokens_per_s"] = gen["tokens"] / (time.perf_counter() - t0)
        ctx.close()

    print(f"frame time at {FPS} FPS (ms), {args.seconds:.0f} s each:")
    for name, r in results.items():
        extra = f"  ({r['tokens_per_s']:.1f} tok/s)" if "tokens_per_s" in r else ""
        print(f"  {name:8} p50 {r['p50']:.2f}  p99 {r['p99']:.2f}  max {r['max']:.2f}{extra}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
