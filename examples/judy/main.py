"""`make judy`: chat with Judy, a mod running in the Relic frame loop.

The host runs at a fixed frame rate the whole time; your lines go to the judy
mod's public `ask` function (as a game would call into a mod), and her reply
streams in token by token while the loop keeps ticking.  After each reply a
status line shows frames per second and the frame-time p99, so you can see the
loop never stalls.  `quit` or Ctrl-C exits (Judy saves the conversation; the
next run picks it up).  `make judy MODEL=path.gguf` (or RELIC_MODEL) uses
another model.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from host.errors import RelicError  # noqa: E402


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a GGUF chat model (default: $RELIC_MODEL or SmolLM2-135M-Instruct)")
    ap.add_argument("--mods", default=str(ROOT / "mods"), help="the mods folder (default: the repo's mods/)")
    ap.add_argument("--fps", type=float, default=60.0)
    from host.cli import add_offload_arguments, apply_offload_arguments

    add_offload_arguments(ap)  # --gpu-layers, --rpc, ... (make judy GPU_LAYERS=... sets the variable)
    args = ap.parse_args()
    apply_offload_arguments(args)

    from host.app import host_with_mod

    interactive = sys.stdin.isatty()
    out = sys.stdout

    def console(line: str) -> None:
        if not line.startswith("[judy] "):  # Judy's own log lines stay in her log file
            out.write(line + "\n")

    try:
        host, judy = host_with_mod(args.mods, "judy", model_path=args.model, console=console)
    except RelicError as exc:
        print(f"relic: {exc}", file=sys.stderr)
        return 1

    clock = FrameClock()
    state = {"talking": False}
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(lines,), name="stdin-reader", daemon=True).start()

    def on_token(text):
        out.write(text)
        out.flush()

    def on_done(result):
        state["talking"] = False
        if result["finish_reason"] == "error":
            out.write(f"\n(Judy could not answer: {result['error']})")
        usage = result["usage"]
        out.write(f"\n  {clock.status()} {usage['completion_tokens']} tokens on {result['device'] or 'CPU'}, "
                  f"{usage['cached_tokens']} of {usage['prompt_tokens']} prompt tokens reused\n")
        if interactive:
            out.write("you> ")
        out.flush()

    on_token_lua, on_done_lua = judy.wrap(on_token), judy.wrap(on_done)
    out.write(f"{judy.public.greeting}\n(type to talk, 'quit' to leave)\n")
    if interactive:
        out.write("you> ")
    out.flush()

    period = 1.0 / args.fps
    next_frame = time.perf_counter()
    eof = False
    try:
        while not host.quit_requested:
            now = time.perf_counter()
            if now < next_frame:
                time.sleep(next_frame - now)
            start = time.perf_counter()
            if not state["talking"]:
                try:
                    line = lines.get_nowait()
                except queue.Empty:
                    line = ""
                    if eof:
                        break
                if line is None:
                    eof = True
                elif line.strip() in ("quit", "exit", "/quit"):
                    break
                elif line.strip():
                    out.write("Judy: ")
                    out.flush()
                    state["talking"] = True
                    ok, _ = judy.call(judy.public.ask, line.strip(), on_token_lua, on_done_lua, what="judy.ask")
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
