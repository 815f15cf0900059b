"""Per-mod log: `mods/<id>/<id>.log` (rotating, size-capped) plus the console.

print() and spdlog.* from a mod land here.  A per-frame line quota keeps a
flooding mod from filling the disk or the console; the dropped count is
written once at the next frame boundary.
"""

from __future__ import annotations

import logging
import logging.handlers
import time
from pathlib import Path
from typing import Callable

LEVELS = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

Console = Callable[[str], None]


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
        self.lines_per_frame = lines_per_frame
        self.max_line = max_line
        self.lines_this_frame = 0
        self.dropped = 0
        self.total_lines = 0
        self._handler: logging.Handler | None = None
        if path is not None:
            # Owns the file handle; opened lazily on the first line (delay=True).
            self._handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)
            self._handler.setFormatter(logging.Formatter("%(message)s"))

    def write(self, level: str, text: str, *, force: bool = False) -> None:
        """Log one line; `force` bypasses the frame quota (host messages)."""
        if level not in LEVELS:
            level = "info"
        if not force:
            if self.lines_this_frame >= self.lines_per_frame:
                self.dropped += 1
                return
            self.lines_this_frame += 1
        if len(text) > self.max_line:
            text = text[: self.max_line] + " [...]"
        self.total_lines += 1
        self._emit(level, text)

    def _emit(self, level: str, text: str) -> None:
        if self._handler is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            record = logging.LogRecord(self.mod_id, LEVELS[level], "", 0,
                                       f"{stamp} [{level}] {text}", None, None)
            self._handler.handle(record)
        if self.console is not None:
            prefix = f"[{self.mod_id}]" if level == "info" else f"[{self.mod_id}:{level}]"
            self.console(f"{prefix} {text}")

    def new_frame(self) -> None:
        """Frame boundary: report lines dropped by the quota, reset the count."""
        if self.dropped:
            n, self.dropped = self.dropped, 0
            self._emit("warning", f"{n} log lines dropped (limit {self.lines_per_frame} per frame)")
        self.lines_this_frame = 0

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._handler is not None:
            self.new_frame()
            self._handler.close()
            self._handler = None
