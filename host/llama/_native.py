"""Lifetime rules shared by every wrapper of a native llama.cpp object.

- ``close()`` frees at once; closing twice is harmless; using a closed object
  raises :class:`~host.errors.ClosedError` instead of touching freed memory.
- A finalizer frees what the program forgot to close.
- A child keeps its parent alive: a parent closed while children are open is
  marked closed at once but freed only when its last child is freed, so any
  close order is safe.
- After an RPC failure stopped inference (host.llama.aborts), nothing is
  freed any more: a free would wait forever on the parked RPC thread.
- ``hold_frees(reason)``: from then on nothing is freed, by close() or by a
  finalizer (also the ones that run at interpreter exit).  The worker calls it
  when its thread is still inside llama.cpp after shutdown's wait: a leak at
  exit instead of a free under a running thread.
"""

from __future__ import annotations

import threading
import weakref

from host.errors import ClosedError
from host.llama import aborts

# Set once, never cleared: a thread that may still use native objects outlived
# its owner's shutdown.  Read without a lock (a bool; frees are rare).
_held: list[str] = []


def hold_frees(reason: str) -> None:
    """Free no native object again in this process (see the module docstring)."""
    if not _held:
        _held.append(reason)


def frees_held() -> str | None:
    """Why frees are held (the first reason), or None while they are not."""
    return _held[0] if _held else None


class _Handle:
    """The native pointer, its free function and the parent it pins.

    Kept apart from the wrapper so the finalizer can run without it.
    ``lock`` guards ``children``/``freed``/``wanted_free``; frees are rare.
    """

    __slots__ = ("ptr", "free", "parent", "children", "wanted_free", "freed", "lock")

    def __init__(self, ptr, free, parent):
        self.ptr = ptr
        self.free = free
        self.parent = parent
        self.children = 0
        self.wanted_free = False
        self.freed = False
        self.lock = threading.Lock()

    def release(self) -> None:
        """The owner is done with it: free now, or when the last child goes."""
        with self.lock:
            if self.wanted_free:
                return
            self.wanted_free = True
            ready = self.children == 0
        if ready:
            self._do_free()

    def child_gone(self) -> None:
        with self.lock:
            self.children -= 1
            ready = self.wanted_free and self.children == 0
        if ready:
            self._do_free()

    def _do_free(self) -> None:
        with self.lock:
            if self.freed:
                return
            self.freed = True
        if self.free is not None and not _held and aborts.stalled() is None:
            # _held: a thread may still be inside llama.cpp with this pointer (leak it)
            self.free(self.ptr)
        self.ptr = None
        if self.parent is not None:
            self.parent.child_gone()
            self.parent = None


class NativeObject:
    """Base class: owns one native pointer (see the module docstring)."""

    kind = "native object"

    def __init__(self, ptr, free, parent: "NativeObject | None" = None):
        parent_handle = None
        if parent is not None:
            parent_handle = parent._handle
            with parent_handle.lock:
                if parent_handle.wanted_free:
                    raise ClosedError(f"{parent.kind} is closed")
                parent_handle.children += 1
        self._handle = _Handle(ptr, free, parent_handle)
        self._ptr = ptr  # None once closed: the fast check in hot paths
        self._finalizer = weakref.finalize(self, _Handle.release, self._handle)

    @property
    def ptr(self):
        """The native pointer; raises ClosedError after close()."""
        if self._ptr is None:
            raise ClosedError(f"{self.kind} is closed; create a new one")
        return self._ptr

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def close(self) -> None:
        """Free the native object (deferred while children are open). Idempotent."""
        self._ptr = None
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
