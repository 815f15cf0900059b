"""What happens when ggml aborts: an RPC server lost mid-computation stops inference, not the game.

ggml calls ``abort()`` on failed internal assertions and, in ggml-rpc, when an
RPC server stops answering in the middle of a computation (at the pinned
commit: ``RPC_STATUS_ASSERT`` -> ``GGML_ABORT("Remote RPC server crashed or
returned malformed response")``, raised on ggml-rpc's per-server dispatcher
thread).  Left alone, that ends the whole process: the game with it.

ggml lets a program install one hook (``ggml_set_abort_callback``) that runs
with the message just before ``abort()``.  Relic's hook:

* an RPC failure while an inference worker runs (host.worker registers itself
  with :func:`worker_running`; decoding then happens only on its thread) and
  on a thread other than the main (frame) thread: prints one line saying so, records it (:func:`stalled`), and never returns, so
  ``abort()`` is never reached.  The thread stays parked; the inference
  worker waiting on it stays blocked for good.  Relic then fails every pending
  and later ``llm`` request with that message (host.worker), frees no native
  object any more (freeing would wait on the parked thread), and the game
  goes on without inference until it is restarted.
* anything else (an assertion; an RPC failure with no worker, as in a script
  decoding on its main thread, which would otherwise hang): prints
  one line naming the cause, flushes Python's log handlers, and returns, so
  the process ends as ggml intends.
"""

from __future__ import annotations

import logging
import sys
import threading

_callback = None  # the cffi callback object; must outlive the library
_ffi = None
_stalled: str | None = None  # the message of the RPC failure that stopped inference
_park = threading.Event()  # never set: parked threads wait on it for good
_workers = 0  # inference workers running (see worker_running)
_workers_lock = threading.Lock()

RPC_MARKERS = ("Remote RPC server crashed", "RPC handshake failed", "Failed to connect to",
               "Failed to parse endpoint")
_RPC_HINT = ("an RPC server stopped answering mid-computation; llama.cpp's RPC backend cannot "
             "recover from that")


def is_rpc_failure(message: str) -> bool:
    """True for ggml-rpc's connection-loss abort messages."""
    return any(marker in message for marker in RPC_MARKERS)


def explain(message: str, *, parked: bool) -> str:
    """The one line printed for a ggml abort message."""
    text = " ".join(message.split())
    if parked:
        return (f"relic: {_RPC_HINT} ({text}). Inference is stopped until restart (requests fail with "
                f"this message); the game goes on. Check the server, or drop it from --rpc / $RELIC_RPC.")
    if is_rpc_failure(text):
        return (f"relic: llama.cpp is ending the process: {text} -- its RPC backend cannot recover "
                f"from a lost or malformed server connection.")
    return f"relic: llama.cpp is ending the process (internal assertion): {text}"


def worker_running(running: bool) -> None:
    """An inference worker started (True) or stopped (False): parking is safe while one runs."""
    global _workers
    with _workers_lock:
        _workers = max(0, _workers + (1 if running else -1))


def stalled() -> str | None:
    """The RPC failure that stopped inference in this process, or None."""
    return _stalled


def _flush_logs() -> None:
    for name in ("", "relic"):
        for handler in logging.getLogger(name).handlers:
            try:
                handler.flush()
            except Exception:
                pass


def _on_abort(message) -> None:
    global _stalled
    try:
        text = _ffi.string(message).decode("utf-8", "replace") if message else "(no message)"
        park = (is_rpc_failure(text) and _workers > 0
                and threading.current_thread() is not threading.main_thread())
        if park:
            _stalled = text.split(": ", 1)[-1].strip() if ".cpp:" in text else text.strip()
        print(explain(text, parked=park), file=sys.stderr, flush=True)
        _flush_logs()
    except Exception:  # never raise into C
        park = False
    if park:
        while True:  # never return: ggml would call abort() next
            _park.wait(3600)


def install(lib) -> None:
    """Install the hook once per process (a library without the symbol is skipped)."""
    global _callback, _ffi
    if _callback is not None:
        return
    try:
        setter = lib.C.ggml_set_abort_callback
    except AttributeError:
        return
    _ffi = lib.ffi
    _callback = lib.ffi.callback("ggml_abort_callback_t", _on_abort)
    setter(_callback)
