"""The watchdog thread: stops a mod's call once it has used its CPU budget.

Sandboxed mod code runs with the JIT on.  Every chunk is instrumented when it
is loaded (instrument.lua): each loop iteration, function entry and goto reads
the mod's *stop flag*, a 32-bit word owned here, and raises the watchdog error
when it is not zero.  This module sets the flags.

While the host calls into a mod (`Slot.arm` ... `Slot.disarm`, around every
outermost guarded call), the thread below watches the frame thread's CPU clock
(CLOCK_THREAD_CPUTIME_ID, through `time.pthread_getcpuclockid`): the budget is
CPU time the frame thread spent in that call, so a mod is not blamed for time
the machine gave to other threads or processes.  A wall-clock ceiling (a
generous multiple of the budget, see Limits) is the backstop for a call that
blocks without using CPU.  Flag values: 1 = CPU budget spent, 2 = ceiling.

Ownership: the flag memory is allocated in chunks that are never freed, so a
runtime can never read freed memory, whatever the order in which runtimes and
Mods are collected.  Slots are reused after `release`.

Threads: `arm`, `disarm` and `stopped` run on the frame thread; the watchdog
thread only reads the armed table and writes flags, both under `_cond`'s lock,
and writes a flag only for a call that is still armed (arm clears the flag and
disarm removes the record under that lock), so a late decision can never stop
the next call.  The frame thread's CPU clock at the start of a call is written
into the slot by the Lua side (sandbox.lua's guarded_call), where reading it
costs far less than from Python.
"""

from __future__ import annotations

import ctypes
import gc
import math
import threading
import time
from typing import NamedTuple

CHUNK = 1024
STOP_BUDGET = 1
STOP_CEILING = 2


class SlotMemory(ctypes.Structure):
    """One runtime's shared word: the stop flag, and the frame thread's CPU
    clock at the start of the running call (written by sandbox.lua)."""

    _fields_ = [("stop", ctypes.c_int32), ("pad", ctypes.c_int32), ("cpu_start", ctypes.c_double)]


def _cpu_clock_id(ident: int):
    try:
        return time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):
        return None


class _Armed(NamedTuple):
    budget: float        # CPU seconds
    ceiling: float       # wall seconds
    wall_start: float
    clock: object        # the frame thread's CPU clock id, or None: wall time only


class Watchdog:
    """Owns the stop flags and the thread that sets them (one per process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._chunks: list = []          # SlotMemory arrays; never freed (see module doc)
        self._free: list[int] = []
        self._size = 0
        self._armed: dict[int, _Armed] = {}   # guarded by _cond
        self._wake_at = math.inf              # guarded by _cond: when the thread looks next
        # Started here, once per process, not on the first call: it idles on
        # _cond while nothing is armed, and a thread that appeared in the
        # middle of a host's life would look like one the host left behind.
        self._thread = threading.Thread(target=self._run, name="relic-watchdog", daemon=True)
        self._thread.start()
        self._gc_clock = None        # CPU clock of the thread collecting now; None: no collection
        self._gc_cpu_start = 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info) -> None:
        # Python's cycle collector runs on whichever thread allocates when its
        # thresholds are hit, often inside a mod's call, and a full collection
        # of a big heap costs tens of ms: the host's work, not the mod's.  Its
        # CPU time is credited back to the call running on that thread (its
        # start moves forward); while it runs, _cpu_used leaves it out (this
        # thread may get the GIL in the middle of the stop callback).  No lock:
        # a collection can start while the frame thread holds _lock; the
        # fields are single values, read racily by design (a late read only
        # credits the call twice for a moment, never charges it).
        if phase == "start":
            self._gc_cpu_start = time.thread_time()
            self._gc_clock = _cpu_clock_id(threading.get_ident())
            return
        spent = time.thread_time() - self._gc_cpu_start
        for mem, a in list(self._armed.values()):
            if a.clock is not None and a.clock == self._gc_clock and mem.cpu_start != 0.0:
                mem.cpu_start += spent
        self._gc_clock = None

    # -- slots --------------------------------------------------------------------

    def slot(self) -> "Slot":
        """A stop flag for one runtime (cleared)."""
        with self._cond:
            if not self._free:
                arr = (SlotMemory * CHUNK)()
                base = len(self._chunks) * CHUNK
                self._chunks.append(arr)
                self._free.extend(range(base + CHUNK - 1, base - 1, -1))
            idx = self._free.pop()
            mem = self._chunks[idx // CHUNK][idx % CHUNK]
            mem.stop, mem.cpu_start = 0, 0.0
            return Slot(self, idx, mem, ctypes.addressof(mem))

    def _release(self, idx: int, mem: SlotMemory) -> None:
        with self._cond:
            self._armed.pop(idx, None)
            mem.stop = 0
            self._free.append(idx)

    # -- arming (frame thread) -------------------------------------------------------

    def _arm(self, idx: int, mem: SlotMemory, budget: float, ceiling: float) -> None:
        # asked each time (no syscall): a cached id could outlive its thread
        # and name another one once the thread ident is reused
        clock = _cpu_clock_id(threading.get_ident())
        now = time.monotonic()
        with self._lock:
            mem.stop, mem.cpu_start = 0, 0.0
            self._armed[idx] = (mem, _Armed(budget, ceiling, now, clock))
            if now + min(budget, ceiling) < self._wake_at:
                self._cond.notify()

    def _disarm(self, idx: int) -> None:
        with self._lock:
            self._armed.pop(idx, None)

    def _stop_now(self, idx: int, mem: SlotMemory) -> None:
        with self._cond:
            self._armed.pop(idx, None)
            mem.stop = STOP_BUDGET

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                wake = math.inf
                for idx, (mem, a) in list(self._armed.items()):
                    wall = now - a.wall_start
                    if wall >= a.ceiling:
                        self._stop(idx, mem, STOP_CEILING)
                        continue
                    if wall < a.budget:             # CPU time never runs ahead of wall time
                        at = a.wall_start + a.budget
                    else:
                        used = self._cpu_used(a, mem)
                        if used >= a.budget:
                            self._stop(idx, mem, STOP_BUDGET)
                            continue
                        at = now + (a.budget - used)
                    wake = min(wake, at, a.wall_start + a.ceiling)
                self._wake_at = wake
                self._cond.wait(None if wake == math.inf else max(0.0, wake - now))

    def _cpu_used(self, a: _Armed, mem: SlotMemory) -> float:
        start = mem.cpu_start
        if a.clock is None:                   # no CPU clock: wall time stands for it
            return time.monotonic() - a.wall_start
        if start == 0.0:
            # Armed, but the Lua side has not begun (it notes the clock first thing):
            # the mod has run nothing yet.  Wall time here is the frame thread waiting
            # for a CPU on a busy machine, which is not the mod's; the ceiling still holds.
            return 0.0
        try:
            now = time.clock_gettime(a.clock)
        except OSError:                       # the frame thread is gone
            return math.inf
        if self._gc_clock is not None and self._gc_clock == a.clock:   # collecting now: not the mod's
            now -= max(0.0, now - self._gc_cpu_start)
        return now - start

    def _stop(self, idx: int, mem: SlotMemory, why: int) -> None:
        # under _cond: the call is still the armed one
        mem.stop = why
        del self._armed[idx]


WATCHDOG = Watchdog()


class Slot:
    """One runtime's stop flag: its address for the Lua side, arm/disarm for the host."""

    __slots__ = ("_wd", "_mem", "index", "address")

    def __init__(self, wd: Watchdog, index: int, mem: SlotMemory, address: int):
        self._wd = wd
        self._mem = mem
        self.index = index
        self.address = address

    def arm(self, budget_s: float, ceiling_s: float) -> None:
        """Clear the flag and start watching: CPU budget and wall ceiling, in seconds."""
        self._wd._arm(self.index, self._mem, budget_s, ceiling_s)

    def disarm(self) -> None:
        """Stop watching (the call returned); the flag keeps its value."""
        self._wd._disarm(self.index)

    def stop(self) -> None:
        """Stop the running call now, as if its budget were spent (host work ran out of it)."""
        self._wd._stop_now(self.index, self._mem)

    @property
    def stopped(self) -> int:
        """0, or why the watchdog stopped the call (STOP_BUDGET, STOP_CEILING)."""
        return self._mem.stop

    @property
    def cpu_start(self) -> float:
        """The frame thread's CPU clock when the running call began (0.0: not begun)."""
        return self._mem.cpu_start

    def release(self) -> None:
        """Give the flag back (the runtime will never run again)."""
        self._wd._release(self.index, self._mem)
