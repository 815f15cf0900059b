"""`relic run`: drive a Host at a fixed frame rate with a console that never blocks.

    relic run --mods DIR [--fps 60] [--frames N] [--headless] [--stats]

A reader thread only reads stdin lines into a queue (it never touches Lua);
the frame loop drains the queue between frames and hands each line to
`Host.run_command`.  With --frames the loop stops after N frames (status 0);
without it, it stops at end of input or on `quit`.  --headless reads commands
without printing a prompt.  --stats prints frame-time percentiles at exit.
"""

from __future__ import annotations

import argparse
import math
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from host.runtime.host import Host

_EOF = object()
MAX_FPS = 10_000.0  # the valid range of `relic run --fps` (a setting's bound, not a mod limit)


@dataclass
class FrameStats:
    """Frame work times (update + draw) and frame-to-frame intervals, in seconds."""

    work: list[float] = field(default_factory=list)
    interval: list[float] = field(default_factory=list)

    @staticmethod
    def percentile(values: list[float], q: float) -> float:
        """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
        if not values:
            return 0.0
        s = sorted(values)
        k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
        return s[k]

    def summary(self, values: list[float]) -> str:
        """'p50 a / p99 b / max c ms' for a list of seconds."""
        return (f"p50 {self.percentile(values, 50) * 1000:.3f} / "
                f"p99 {self.percentile(values, 99) * 1000:.3f} / "
                f"max {max(values, default=0.0) * 1000:.3f} ms")

    def report(self) -> str:
        """Two lines: work time and frame interval percentiles."""
        return (f"frames: {len(self.work)}\n"
                f"frame work (update+draw): {self.summary(self.work)}\n"
                f"frame interval: {self.summary(self.interval)}")


class LineReader:
    """Reads lines from a stream on a daemon thread into a queue.

    Invariant: the thread only calls stream.readline() and queue.put(); the
    frame thread only calls drain().  The thread ends at end of input.
    """

    def __init__(self, stream: IO[str], prompt: str | None = None, out: IO[str] | None = None):
        self._stream = stream
        self._prompt = prompt
        self._out = out
        self._queue: queue.Queue = queue.Queue()
        self.eof = False
        self._thread = threading.Thread(target=self._run, name="relic-console", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                if self._prompt and self._out is not None:
                    self._out.write(self._prompt)
                    self._out.flush()
                line = self._stream.readline()
                if not line:
                    break
                self._queue.put(line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass            # stream closed under us: treat as end of input
        finally:
            self._queue.put(_EOF)

    def drain(self) -> list[str]:
        """Lines read so far (never blocks); sets .eof once input has ended."""
        lines = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return lines
            if item is _EOF:
                self.eof = True
            else:
                lines.append(item)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `relic run` options to an argparse parser."""
    parser.add_argument("--mods", default="mods", help="folder of mod folders (default: mods)")
    parser.add_argument("--fps", type=float, default=60.0, help="frame rate (default: 60)")
    parser.add_argument("--frames", type=int, default=None,
                        help="exit after this many frames (default: run until quit or end of input)")
    parser.add_argument("--headless", action="store_true",
                        help="read console commands from stdin without a prompt")
    parser.add_argument("--stats", action="store_true",
                        help="print frame-time p50/p99/max at exit")


def run(args: argparse.Namespace, *, stdin: IO[str] | None = None,
        stdout: IO[str] | None = None, host: Host | None = None) -> int:
    """Run the frame loop until --frames, quit or end of input; return the exit status.

    `stdin`/`stdout` default to the process streams (tests pass their own);
    `host` lets an embedder pass a Host with providers already added (it is
    loaded here unless it already was, and shut down at the end).
    """
    out = stdout or sys.stdout
    inp = stdin or sys.stdin

    def console(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    mods_dir = Path(getattr(args, "mods", "mods"))
    fps = getattr(args, "fps", None)
    frames_limit = getattr(args, "frames", None)
    headless = bool(getattr(args, "headless", False))
    fps = 60.0 if fps is None else fps
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) \
            or not 0 < fps <= MAX_FPS:
        console(f"relic run: --fps must be a frame rate from above 0 to {MAX_FPS:g} frames a second, got {fps!r}")
        return 2
    fps = float(fps)
    if frames_limit is not None and frames_limit < 0:
        console("relic run: --frames must be >= 0")
        return 2
    if host is None:
        if not mods_dir.is_dir():
            console(f"relic run: mods folder '{mods_dir}' does not exist")
            return 2
        from host.runtime.grants import Grant

        host = Host(mods_dir, console=console,
                    grants={m: Grant(trusted=True) for m in (getattr(args, "trust", None) or [])})
    if not host.loaded:
        host.load()
    interactive = not headless and hasattr(inp, "isatty") and inp.isatty()
    reader = LineReader(inp, prompt="relic> " if interactive else None, out=out)
    stats = FrameStats()
    period = 1.0 / fps
    frames = 0
    status = 0
    last = time.perf_counter()
    next_frame = last
    try:
        while True:
            if frames_limit is not None and frames >= frames_limit:
                break
            if host.quit_requested:
                break
            for line in reader.drain():
                host.run_command(line)
            # End of input ends the run unless a frame count was given; one more
            # frame still runs so a final `reload` takes effect.
            last_frame = reader.eof and frames_limit is None
            start = time.perf_counter()
            dt = start - last if frames else period
            if frames:
                stats.interval.append(dt)
            last = start
            host.update(dt)
            host.draw()
            stats.work.append(time.perf_counter() - start)
            frames += 1
            if last_frame or host.quit_requested:
                break
            next_frame += period
            delay = next_frame - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:
                next_frame = time.perf_counter()   # fell behind: do not burst to catch up
    except KeyboardInterrupt:
        status = 130
    finally:
        host.shutdown()
    if getattr(args, "stats", False):
        console(stats.report())
    return status


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (`python -m host.runtime.console`)."""
    parser = argparse.ArgumentParser(prog="relic run", description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
