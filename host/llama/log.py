"""llama.cpp/ggml log messages into Python ``logging`` (logger ``relic.llama``).

The bridge goes through ``llama_log_set``; stdout/stderr are never touched.
llama.cpp sends lines in pieces (``GGML_LOG_LEVEL_CONT`` continues the last
one), so pieces are joined per thread until a newline.  The logger is quiet
below WARNING unless the application configures it otherwise.

:func:`capture` collects the messages logged by the current thread while a
native call runs, so errors such as a failed model load can say *why*.
"""

from __future__ import annotations

import contextlib
import logging
import threading

logger = logging.getLogger("relic.llama")
if logger.level == logging.NOTSET:
    logger.setLevel(logging.WARNING)

# ggml_log_level: NONE=0 DEBUG=1 INFO=2 WARN=3 ERROR=4 CONT=5 (checked by the ABI probe)
_LEVELS = {0: logging.INFO, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_CONT = 5

_local = threading.local()  # per thread: pending partial line, its level, capture stack
_callback = None  # the cffi callback object; must stay alive as long as the library


def _state():
    if not hasattr(_local, "pending"):
        _local.pending = ""
        _local.level = logging.INFO
        _local.captures = []
        _local.quiet = False
    return _local


def _emit(level: int, line: str) -> None:
    st = _state()
    if st.captures:
        st.captures[-1].append((level, line))
        if st.quiet:
            return
    if logger.isEnabledFor(level):
        logger.log(level, "%s", line)


def _on_log(level, text, _user_data) -> None:
    try:
        st = _state()
        if level != _CONT:
            st.level = _LEVELS.get(level, logging.INFO)
        piece = _ffi.string(text).decode("utf-8", "replace") if text else ""
        buf = st.pending + piece
        *lines, st.pending = buf.split("\n")
        for line in lines:
            if line.strip():
                _emit(st.level, line)
    except Exception:  # never let an exception cross into C
        pass


_ffi = None


def install(lib) -> None:
    """Route the library's log output into ``relic.llama``; idempotent."""
    global _callback, _ffi
    if _callback is not None:
        return
    _ffi = lib.ffi
    _callback = lib.ffi.callback("ggml_log_callback", _on_log)
    lib.C.llama_log_set(_callback, lib.ffi.NULL)


@contextlib.contextmanager
def capture():
    """Collect ``(level, line)`` pairs llama.cpp logs on this thread meanwhile."""
    st = _state()
    lines: list[tuple[int, str]] = []
    st.captures.append(lines)
    try:
        yield lines
    finally:
        st.captures.pop()
        if st.pending.strip():
            lines.append((st.level, st.pending.strip()))


@contextlib.contextmanager
def quiet():
    """Collect what llama.cpp logs on this thread meanwhile without logging it.

    For calls whose failure is expected (a decode aborted on purpose); the
    caller logs the collected ``(level, line)`` pairs if the failure was not.
    """
    st = _state()
    was = st.quiet
    st.quiet = True
    try:
        with capture() as lines:
            yield lines
    finally:
        st.quiet = was


def replay(lines) -> None:
    """Log lines collected by :func:`quiet` after all."""
    for level, line in lines:
        if logger.isEnabledFor(level):
            logger.log(level, "%s", line)
