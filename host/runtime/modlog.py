"""Per-mod log: `mods/<id>/<id>.log` (rotating, size-capped) plus the console.

print() and spdlog.* from a mod land here.  A per-frame line quota keeps a
flooding mod from filling the disk or the console; the dropped count is
written once at the next frame boundary.

A mod's text never passes for the host's: each line of it (a print with
"\\n" in it is several lines) gets the mod's prefix, and control characters
(CR, ESC and so ANSI/OSC sequences, the C1 controls, other C0 bytes but the
tab, and the Unicode line separators and bidirectional overrides) are
written as `\\xNN` / `\\uNNNN` escapes, on the console and in the file.

An error the host reports for a mod (``write(..., once=True)``) is shown on
the console once, as its first line; its traceback, and every time it
happens again, go to the file only.

File writes are buffered and written once per frame (`flush`, called by the
host at the end of each of its entry points), not one system call per line.
Frame thread only.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Callable

LEVELS = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
FLUSH_BYTES = 64 * 1024          # write the buffer early past this much text
MAX_SHOWN_ERRORS = 256           # distinct errors remembered per mod (later ones are shown every time; not a mod limit)

Console = Callable[[str], None]

_CONTROL_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_one(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02X}" if c < 0x100 else f"\\u{c:04X}"


def sanitize_lines(text: str) -> list[str]:
    """`text` as the lines it holds (a final "\\n" ends the last one), control characters escaped."""
    parts = text.split("\n")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    return [_CONTROL_RE.sub(_escape_one, line) for line in parts]


def default_console(line: str) -> None:
    """Console sink used when the host is given none: print to stdout."""
    print(line, flush=True)


class ModLog:
    """The log of one mod (one instance per mod runtime; close() when done)."""

    def __init__(self, mod_id: str, path: Path | None, *, console: Console | None,
                 max_bytes: int, backups: int, lines_per_frame: int, max_line: int):
        self.mod_id = mod_id
        self.path = path
        self.console = console
        self.max_bytes = max_bytes
        self.backups = backups
        self.lines_per_frame = lines_per_frame
        self.max_line = max_line
        self.lines_this_frame = 0
        self.dropped = 0
        self.total_lines = 0
        self._pending: list[str] = []      # file lines not written yet
        self._pending_bytes = 0
        self._closed = False
        self._errors_shown: set[str] = set()  # first lines of errors already on the console

    def write(self, level: str, text: str, *, force: bool = False, once: bool = False) -> None:
        """Log text, one line per line of it; `force` bypasses the frame quota (host messages).

        ``once`` (the host's error reports): the console shows the first line,
        the first time only; the file gets all of it every time.
        """
        if level not in LEVELS:
            level = "info"
        if len(text) > self.max_line:
            text = text[: self.max_line] + " [...]"
        lines = sanitize_lines(text)
        # A reported error reaches the console once, as its first line (its traceback and
        # every repeat are in the file): a callback failing each frame does not flood it.
        shown = not (once and self._seen_error(lines[0]))
        for i, line in enumerate(lines):
            if not force:
                if self.lines_this_frame >= self.lines_per_frame:
                    self.dropped += 1
                    continue
                self.lines_this_frame += 1
            self.total_lines += 1
            self._emit(level, line, console=shown and (i == 0 or not once))

    def _seen_error(self, first_line: str) -> bool:
        """True if this error was shown on the console before (remembers up to MAX_SHOWN_ERRORS)."""
        if first_line in self._errors_shown:
            return True
        if len(self._errors_shown) < MAX_SHOWN_ERRORS:
            self._errors_shown.add(first_line)
        return False

    def _emit(self, level: str, text: str, console: bool = True) -> None:
        if self.path is not None and not self._closed:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            line = f"{stamp} [{level}] {text}\n"
            self._pending.append(line)
            self._pending_bytes += len(line)
            if self._pending_bytes > FLUSH_BYTES:
                self.flush()
        if self.console is not None and console:
            prefix = f"[{self.mod_id}]" if level == "info" else f"[{self.mod_id}:{level}]"
            self.console(f"{prefix} {text}")

    def flush(self) -> None:
        """Write the buffered lines to the file (one write per rotation; rotates past max_bytes)."""
        if not self._pending or self.path is None:
            return
        lines, self._pending, self._pending_bytes = self._pending, [], 0
        try:
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                size = 0
            chunk: list[bytes] = []
            for line in lines:
                b = line.encode("utf-8", "replace")
                if size + len(b) > self.max_bytes and (size or chunk):
                    self._append(chunk)
                    self._rotate()
                    chunk, size = [], 0
                chunk.append(b)
                size += len(b)
            self._append(chunk)
        except OSError:
            pass            # a log that cannot be written never stops the game

    def _append(self, chunk: list[bytes]) -> None:
        if chunk:
            with open(self.path, "ab") as f:
                f.write(b"".join(chunk))

    def _rotate(self) -> None:
        path = str(self.path)
        if not os.path.exists(path):
            return
        if self.backups <= 0:
            os.remove(path)
            return
        for i in range(self.backups - 1, 0, -1):
            if os.path.exists(f"{path}.{i}"):
                os.replace(f"{path}.{i}", f"{path}.{i + 1}")
        os.replace(path, f"{path}.1")

    def new_frame(self) -> None:
        """Frame boundary: report lines dropped by the quota, reset the count, write the file."""
        if self.dropped:
            n, self.dropped = self.dropped, 0
            self._emit("warning", f"{n} log lines dropped (limit {self.lines_per_frame} per frame)")
        self.lines_this_frame = 0
        self.flush()

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if not self._closed:
            self.new_frame()
            self._closed = True
