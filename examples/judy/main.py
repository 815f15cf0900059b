"""`make judy`: chat with Judy, a mod running in the Relic frame loop.

The host runs at a fixed frame rate the whole time; your lines go to the judy
mod's public `ask` function (as a game would call into a mod), and her reply
streams in token by token while the loop keeps ticking.  After each reply a
status line shows the time to her first token, tokens per second, frames per
second and the frame-time p99, so you can see the loop never stalls.  While she
answers, an empty line (or Esc, then Enter) cancels the reply; `quit` or Ctrl-C
exits (Judy saves the conversation; the next run picks it up and says how many
turns it restored).  `make judy MODEL=path.gguf` (or RELIC_MODEL) uses another
model; `TEMPLATE=NAME` (--template, RELIC_TEMPLATE) a chat template for a model
that has none.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host.errors import RelicError  # noqa: E402


NOTHING = object()  # no line waiting


class FrameClock:
    """Frame times of the last few seconds."""

    def __init__(self, keep: int = 600):
        self.times = deque(maxlen=keep)
        self.starts = deque(maxlen=keep)

    def add(self, start: float, ms: float) -> None:
        self.starts.append(start)
        self.times.append(ms)

    def status(self) -> str:
        if len(self.starts) < 2:
            return "[warming up]"
        span = self.starts[-1] - self.starts[0]
        fps = (len(self.starts) - 1) / span if span > 0 else 0.0
        s = sorted(self.times)
        p99 = s[min(len(s) - 1, int(0.99 * len(s)))]
        return f"[{fps:.0f} fps, frame p99 {p99:.2f} ms, max {s[-1]:.2f} ms]"


def read_lines(q: queue.Queue) -> None:
    """stdin -> queue; this thread never touches the host or Lua."""
    for line in sys.stdin:
        q.put(line.rstrip("\n"))
    q.put(None)


def with_chat_defaults(config):
    """Judy's own defaults where the player set none: an f16 KV cache and every core for reading prompts.

    A chat in a terminal has no game frame to protect, so the prompt (the whole wait for her
    first word) may use both cores; the f16 cache reads long conversations about 1.7x faster than
    the library's q8_0 default on this kind of machine, for a few more MB of memory.
    """
    from dataclasses import replace

    if config.kv_type is None:
        config = replace(config, kv_type="f16")
    if config.n_threads_batch is None:
        config = replace(config, n_threads_batch=max(1, os.cpu_count() or 1))
    return config


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mods", default=str(ROOT / "mods"), help="the mods folder (default: the repo's mods/)")
    ap.add_argument("--fps", type=float, default=60.0)
    ap.add_argument("--timings", action="store_true",
                    help="after each reply, where its time went (queue, retrieval, prompt, first token); "
                         "typing /timings toggles it")
    from host.cli import add_config_arguments, config_from

    add_config_arguments(ap)  # --model, --template, --gpu-layers, --rpc, --config ... (see host.config)
    args = ap.parse_args()
    try:
        config = with_chat_defaults(config_from(args))
    except RelicError as exc:
        print(f"relic: {exc}", file=sys.stderr)
        return 2

    from host.app import host_with_mod

    interactive = sys.stdin.isatty()
    out = sys.stdout

    def console(line: str) -> None:
        if not line.startswith("[judy] "):  # Judy's own log lines stay in her log file
            out.write(line + "\n")

    try:
        host, judy = host_with_mod(args.mods, "judy", config=config, console=console)
    except RelicError as exc:
        print(f"relic: {exc}", file=sys.stderr)
        return 1

    clock = FrameClock()
    state = {"talking": False, "handle": None, "asked": 0.0, "first": None, "timings": args.timings}
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(lines,), name="stdin-reader", daemon=True).start()

    def on_token(text):
        if state["first"] is None:
            state["first"] = time.perf_counter()
        out.write(text)
        out.flush()

    def on_done(result):
        state["talking"], state["handle"] = False, None
        if result["finish_reason"] == "error":
            out.write(f"\n(Judy could not answer: {result['error']})")
        elif result["finish_reason"] == "cancelled":
            out.write("\n(cancelled)")
        usage = result["usage"]
        if result["finish_reason"] == "error" or not usage["completion_tokens"]:
            out.write("\n")  # no reply, no speed to report
            if interactive:
                out.write("you> ")
            out.flush()
            return
        ttft = (state["first"] or time.perf_counter()) - state["asked"]
        timings = result["timings"]  # a Lua table: index it, it has no .get
        tps = (timings["tokens_per_second"] if timings is not None else None) or 0.0
        out.write(f"\n  [first token {ttft:.2f} s, {tps:.0f} tok/s] {clock.status()} {usage['completion_tokens']} "
                  f"tokens on {result['device'] or 'CPU'}, {usage['cached_tokens']} of {usage['prompt_tokens']} "
                  "prompt tokens reused\n")
        if state["timings"] and timings is not None:
            out.write(f"  [timings: queue {timings['queue_ms']:.0f} ms, retrieval {timings['retrieval_ms']:.0f} ms, "
                      f"prompt {timings['prompt_ms']:.0f} ms, first token {timings['first_token_ms']:.0f} ms "
                      f"(on the worker), {timings['tokens_per_second']:.0f} tok/s]\n")
        if interactive:
            out.write("you> ")
        out.flush()

    on_token_lua, on_done_lua = judy.wrap(on_token), judy.wrap(on_done)
    out.write(f"{judy.public.greeting}\n(type to talk; an empty line or Esc cancels her reply; 'quit' to leave)\n")
    restored = None
    until = time.perf_counter() + 10
    while restored is None and time.perf_counter() < until:  # the saved conversation loads on the worker
        host.update(1 / 60)
        ok, restored = judy.call(judy.public.restored, what="judy.restored")
        restored = restored if ok else 0
        time.sleep(0.005)
    if restored:
        ok, reread = judy.call(judy.public.reread, what="judy.reread")
        if ok and reread:  # another model: her cached state is not reusable
            out.write(f"(restored {int(restored)} turns; the model changed, so she re-reads {int(reread)} tokens "
                      "before her first reply)\n")
        else:
            out.write(f"(restored {int(restored)} turns)\n")
    if interactive:
        out.write("you> ")
    out.flush()

    period = 1.0 / args.fps
    next_frame = time.perf_counter()
    eof = False
    held = NOTHING  # the next line from stdin, read but not yet handled
    try:
        while not host.quit_requested:
            now = time.perf_counter()
            if now < next_frame:
                time.sleep(next_frame - now)
            start = time.perf_counter()
            if held is NOTHING:
                try:
                    held = lines.get_nowait()
                except queue.Empty:
                    pass
            if state["talking"]:  # a line typed now cancels (empty, Esc) or quits; others wait their turn
                word = held.strip() if isinstance(held, str) else None
                if word in ("", "\x1b") and state["handle"] is not None:
                    held = NOTHING
                    judy.call(state["handle"].cancel, state["handle"], what="cancel")  # on_done says "cancelled"
                elif word in ("quit", "exit", "/quit") and interactive:
                    break  # piped input: the reply in progress finishes first, then the quit is read
            else:
                line, held = held, NOTHING
                if line is NOTHING:
                    line = ""
                    if eof:
                        break
                if line is None:
                    eof = True
                elif line.strip() in ("quit", "exit", "/quit"):
                    break
                elif line.strip() == "/timings":
                    state["timings"] = not state["timings"]
                    out.write(f"(timings {'on' if state['timings'] else 'off'})\n" + ("you> " if interactive else ""))
                    out.flush()
                elif line.strip():
                    out.write("Judy: ")
                    out.flush()
                    state["talking"], state["asked"], state["first"] = True, time.perf_counter(), None
                    ok, state["handle"] = judy.call(judy.public.ask, line.strip(), on_token_lua, on_done_lua,
                                                    what="judy.ask")
                    if not ok:
                        state["talking"] = False
                        out.write("(Judy is not listening; see mods/judy/judy.log)\n")
            host.update(period)
            host.draw()
            clock.add(start, (time.perf_counter() - start) * 1000)
            next_frame += period
            if time.perf_counter() - next_frame > 0.25:  # fell far behind: resync, do not burst
                next_frame = time.perf_counter()
    except KeyboardInterrupt:
        out.write("\n")
    finally:
        host.shutdown()
    out.write(f"bye. {clock.status()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
