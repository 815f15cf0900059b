"""The same scene on Relic and on llama-server: four NPCs talking, then a player request joins.

Same model, same threads, as many server slots as Relic has sequences (five:
four talkers and the joiner), greedy, end-of-generation ignored.  For each
engine, over a window of --window seconds after all four talk (the joiner
arrives --join seconds in):

  aggregate tok/s     tokens of the four talkers in the window / the window
  longest gap         per talker, the longest time between two of its tokens
  joiner first token  its request -> its first token

On Relic the joiner runs at priority "player"; llama-server has no
priorities, so it is an ordinary request there.  llama-server comes from
`make llama-server` (host.setup.llama_build); without it the scene says so.  The
streams to it go through Relic's own HTTP client (host.remote.client).

    python bench/server_scene.py [--threads N] [--window 8] [--join 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.join_latency import NEWCOMER_QUESTION, NEWCOMER_SYSTEM, QUESTIONS, ROLES  # noqa: E402

N_TALKERS = 4
N_CTX = 1024


def _prompts():
    talkers = [[{"role": "system", "content": f"You are the {ROLES[i % 3]} of a flooded harbor town, number {i}."},
                {"role": "user", "content": QUESTIONS[i % 3]}] for i in range(N_TALKERS)]
    joiner = [{"role": "system", "content": NEWCOMER_SYSTEM}, {"role": "user", "content": NEWCOMER_QUESTION}]
    return talkers, joiner


def _summary(times: dict, t0: float, t1: float, t_join: float) -> dict:
    talk = [n for n in times if n != "joiner"]
    n_tok = sum(1 for n in talk for t in times[n] if t0 <= t <= t1)
    gaps = {}
    for n in talk:
        inside = [t for t in times[n] if t0 <= t <= t1]
        gaps[n] = max((b - a for a, b in zip(inside, inside[1:])), default=float("inf"))
    first = (times["joiner"][0] - t_join) if times.get("joiner") else None
    return {"aggregate_tok_s": n_tok / (t1 - t0), "longest_gap_s": gaps, "longest_gap_max_s": max(gaps.values()),
            "joiner_first_token_s": first}


def relic_scene(model, threads: int, window: float, join: float) -> dict:
    from bench.player_first import frame_loop
    from host.worker import Worker, WorkerConfig

    cfg = WorkerConfig(n_ctx=N_CTX, n_seq_max=N_TALKERS + 1, max_pending_per_mod=64, n_threads=threads,
                       n_threads_batch=threads)
    w = Worker(model, cfg).start()
    vocab = model.vocab
    no_eog = {"logit_bias": {t: float("-inf") for t in range(vocab.n_tokens) if vocab.is_eog(t)}}
    talkers, joiner = _prompts()
    times: dict[str, list] = {}

    def rec(name):
        times[name] = []
        return lambda _text: times[name].append(time.perf_counter())

    try:
        hs = [w.submit(f"npc{i}", messages=tuple(m), max_tokens=N_CTX - 100, temperature=0.0, sampler=no_eog,
                       on_token=rec(f"t{i}")) for i, m in enumerate(talkers)]
        frame_loop(w, lambda: all(len(times[f"t{i}"]) >= 3 for i in range(N_TALKERS)))
        t0 = time.perf_counter()
        frame_loop(w, lambda: time.perf_counter() - t0 >= join)
        t_join = time.perf_counter()
        hj = w.submit("player", messages=tuple(joiner), max_tokens=16, temperature=0.0, sampler=no_eog,
                      priority="player", on_token=rec("joiner"))
        frame_loop(w, lambda: time.perf_counter() - t0 >= window and hj.done())
        t1 = time.perf_counter()
        for h in hs:
            h.cancel()
        frame_loop(w, lambda: all(h.done() for h in hs))
    finally:
        w.shutdown()
    return _summary(times, t0, t1, t_join)


def _stream(client, tokens, n_predict, on_token, stop_flag):
    """One /completion stream (host.remote.client: httpx + httpx-sse); each event with text is a token."""
    from host.engine import sampling
    from host.remote import llama_server

    # greedy as Relic sends it to a server (every filter off: one argmax per token, like the embedded chain)
    body = {"prompt": tokens, "n_predict": n_predict, "stream": True, "ignore_eos": True, "cache_prompt": True,
            **llama_server.sampling(sampling.resolve(None))}
    with client.stream("/completion", body) as events:
        for data in events:
            if stop_flag.is_set():
                break  # leaving the block closes the connection: the server stops this slot
            if data.get("content"):
                on_token()
            if data.get("stop"):
                break


def server_scene(model, threads: int, window: float, join: float) -> dict:
    from host.remote.client import ServerClient
    from host.setup.llama_server import LocalLlamaServer, find_server

    binary = find_server()
    if binary is None:
        return {"skipped": "llama-server not built: run `make llama-server`"}
    n_slots = N_TALKERS + 1
    # the embedded worker's settings: q8_0 KV cache with flash attention, 128-token prompt chunks,
    # one context of N_CTX per sequence, the same threads for prompts and generation
    srv = LocalLlamaServer.start(model.path, binary=binary, ctx=N_CTX * n_slots, parallel=n_slots, threads=threads,
                                 extra=["-tb", threads, "-b", 128, "-fa", "on", "-ctk", "q8_0", "-ctv", "q8_0"])
    client = ServerClient(srv.url, stall_s=600)
    try:
        talkers, joiner = _prompts()
        times: dict[str, list] = {}
        stop = threading.Event()

        def rec(name):
            times[name] = []
            return lambda: times[name].append(time.perf_counter())

        def tokens(messages):  # the same tokens the embedded worker reads for these messages
            return model.vocab.tokenize(model.apply_chat_template(messages), add_special=True, parse_special=True)

        ths = [threading.Thread(target=_stream, args=(client, tokens(m), N_CTX - 100, rec(f"t{i}"), stop),
                                daemon=True) for i, m in enumerate(talkers)]
        for t in ths:
            t.start()
        while not all(len(times.get(f"t{i}", ())) >= 3 for i in range(N_TALKERS)):
            time.sleep(0.01)
        t0 = time.perf_counter()
        time.sleep(join)
        t_join = time.perf_counter()
        tj = threading.Thread(target=_stream, args=(client, tokens(joiner), 16, rec("joiner"), threading.Event()),
                              daemon=True)
        tj.start()
        while time.perf_counter() - t0 < window or tj.is_alive():
            time.sleep(0.01)
        t1 = time.perf_counter()
        stop.set()
        for t in ths:
            t.join(10)
        return _summary(times, t0, t1, t_join)
    finally:
        client.close()
        srv.stop()


def scene_server(model, threads=None, window: float = 8.0, join: float = 3.0) -> dict:
    """Both engines, one after the other, with the same model and threads (default: the worker's)."""
    from host.llama.context import default_threads

    threads = threads or default_threads()
    out = {"threads": threads, "relic": relic_scene(model, threads, window, join), "llama_server": server_scene(model, threads, window, join)}
    for name in ("relic", "llama_server"):
        r = out[name]
        if "skipped" in r:
            print(f"  server scene, {name}: skipped: {r['skipped']}", flush=True)
        else:
            print(f"  server scene, {name}: {r['aggregate_tok_s']:.1f} tok/s (four talkers), longest gap "
                  f"{r['longest_gap_max_s'] * 1000:.0f} ms, joiner first token "
                  f"{(r['joiner_first_token_s'] or 0) * 1000:.0f} ms", flush=True)
    if "skipped" not in out["llama_server"]:
        out["tok_s_ratio"] = out["relic"]["aggregate_tok_s"] / out["llama_server"]["aggregate_tok_s"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--join", type=float, default=3.0)
    args = ap.parse_args()
    from host.llama import Model
    from bench.benchsetup import model_path

    model = Model(model_path())
    try:
        print(json.dumps(scene_server(model, args.threads, args.window, args.join), indent=1, default=str))
    finally:
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
