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
`make llama-server` (host.setup.llama_build); without it the scene says so.

    python bench/server_scene.py [--threads N] [--window 8] [--join 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
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


def relic_scene(model, threads, window: float, join: float) -> dict:
    from bench.player_first import frame_loop
    from host.worker import Worker, WorkerConfig

    cfg = WorkerConfig(n_ctx=N_CTX, n_seq_max=N_TALKERS + 1, max_pending_per_mod=64)
    if threads:
        cfg.n_threads = cfg.n_threads_batch = threads
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stream(port, prompt, n_predict, on_token, stop_flag):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"prompt": prompt, "n_predict": n_predict, "stream": True, "temperature": 0.0,
                       "ignore_eos": True, "cache_prompt": True})
    conn.request("POST", "/completion", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    for raw in resp:
        if stop_flag.is_set():
            break
        line = raw.decode("utf-8", "replace").strip()
        if line.startswith("data: "):
            data = json.loads(line[6:])
            if data.get("content"):
                on_token()
            if data.get("stop"):
                break
    conn.close()


def server_scene(model, threads, window: float, join: float) -> dict:
    try:
        from host.setup.llama_build import find_llama_server
    except ImportError:
        return {"skipped": "llama-server is not built by this tree's set-up (no make llama-server)"}
    binary = find_llama_server()
    if binary is None:
        return {"skipped": "llama-server not built: run `make llama-server`"}
    port = _free_port()
    n_slots = N_TALKERS + 1
    threads = threads or 1
    cmd = [str(binary), "-m", str(model.path), "--host", "127.0.0.1", "--port", str(port), "-t", str(threads),
           "-tb", str(threads), "-np", str(n_slots), "-c", str(N_CTX * n_slots), "-b", "128",
           "-fa", "on", "-ctk", "q8_0", "-ctv", "q8_0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                return {"skipped": f"llama-server exited: {proc.stderr.read().decode()[-500:]}"}
            time.sleep(0.5)
        talkers, joiner = _prompts()
        times: dict[str, list] = {}
        stop = threading.Event()

        def rec(name):
            times[name] = []
            return lambda: times[name].append(time.perf_counter())

        ths = [threading.Thread(target=_stream, args=(port, model.apply_chat_template(m), N_CTX - 100,
                                                      rec(f"t{i}"), stop), daemon=True)
               for i, m in enumerate(talkers)]
        for t in ths:
            t.start()
        while not all(len(times.get(f"t{i}", ())) >= 3 for i in range(N_TALKERS)):
            time.sleep(0.01)
        t0 = time.perf_counter()
        time.sleep(join)
        t_join = time.perf_counter()
        tj = threading.Thread(target=_stream, args=(port, model.apply_chat_template(joiner), 16, rec("joiner"),
                                                    threading.Event()), daemon=True)
        tj.start()
        while time.perf_counter() - t0 < window or tj.is_alive():
            time.sleep(0.01)
        t1 = time.perf_counter()
        stop.set()
        return _summary(times, t0, t1, t_join)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def scene_server(model, threads, window: float = 8.0, join: float = 3.0) -> dict:
    """Both engines, one after the other, with the same model and threads."""
    out = {"relic": relic_scene(model, threads, window, join), "llama_server": server_scene(model, threads, window, join)}
    for name, r in out.items():
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
