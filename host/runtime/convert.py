"""Moving values between Python and a mod's Lua runtime, with limits.

Mods must never hold raw Python objects (lupa would let them poke at
attributes), so everything the host hands to Lua goes through `to_lua`, which
builds Lua tables and refuses anything that is not plain data or a callable
the caller wrapped.  `to_python` copies Lua data out (tables by raw
iteration, so no metamethods run) with depth and size limits.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from lupa import luajit21 as lupa

from host.errors import BudgetExceeded, ModError

LuaError = lupa.LuaError
LuaMemoryError = lupa.LuaMemoryError
_lupa_lua_type = lupa.lua_type
_THREAD_CLASSES = ("_LuaThread", "_LuaCoroutineFunction")


def lua_type(value: Any) -> str | None:
    """Lua type name of a lupa object ('table', 'function', 'thread', ...), None otherwise.

    lupa reports coroutines as 'function' (it hands them out as
    _LuaCoroutineFunction); they are told apart here.
    """
    t = _lupa_lua_type(value)
    if t == "function" and type(value).__name__ in _THREAD_CLASSES:
        return "thread"
    return t

PRIMITIVES = (type(None), bool, int, float, str, bytes)


# A value cannot be moved between Python and Lua (or between mods): too deep,
# too big, a cycle, or not plain data.  Raised to the mod as a Lua error.
TransferError = ModError


class LuaFixup:
    """Marks a bridge result that may hold raw Python callables inside tables.

    The privileged Lua side (sandbox.lua, `unwrap`) replaces every userdata
    in such a result with a Lua closure around it before a mod sees it.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


CHECK_EVERY = 1024  # values converted between two looks at the deadline (~1-3 ms of work)


def past_deadline(deadline: float | None, what: str) -> None:
    """Raise BudgetExceeded when `deadline` (time.monotonic(); None: none) has passed."""
    if deadline is not None and time.monotonic() > deadline:
        raise BudgetExceeded(f"{what} ran past the time left to this call (the mod's time budget); "
                             "pass less data at once")


def to_python(value: Any, *, max_depth: int = 32, max_items: int = 100_000,
              keep_functions: bool = True, deadline: float | None = None) -> Any:
    """Copy a Lua value into Python data.

    Tables become lists when their keys are exactly 1..n (n >= 1) and dicts
    otherwise; functions stay LuaFunction objects (or raise when
    `keep_functions` is false).  Raises TransferError past the limits, on
    cycles (as too deep) and on userdata, threads and non-scalar keys, and
    BudgetExceeded past `deadline` (time.monotonic()).
    """
    budget = [max_items]

    def conv(v, depth):
        t = lua_type(v)
        if t is None:
            if isinstance(v, PRIMITIVES):
                return v
            raise TransferError(f"cannot convert a {type(v).__name__}")
        if t == "function":
            if keep_functions:
                return v
            raise TransferError("functions cannot be passed here")
        if t != "table":
            raise TransferError(f"cannot convert a Lua {t}")
        if depth >= max_depth:
            raise TransferError(f"table nested deeper than {max_depth} levels (or a cycle)")
        out = {}
        for k, item in v.items():
            budget[0] -= 1
            if budget[0] < 0:
                raise TransferError(f"more than {max_items} values")
            if budget[0] % CHECK_EVERY == 0:
                past_deadline(deadline, "reading the mod's data")
            if lua_type(k) is not None or not isinstance(k, (bool, int, float, str, bytes)):
                raise TransferError("table keys must be strings, numbers or booleans")
            out[k] = conv(item, depth + 1)
        n = len(out)
        if n and all(isinstance(k, int) and not isinstance(k, bool) for k in out) \
                and min(out) == 1 and max(out) == n:
            return [out[i] for i in range(1, n + 1)]
        return out

    try:
        return conv(value, 0)
    finally:
        # conv calls itself through its closure cell, a reference cycle that
        # holds the runtime: left to the cycle collector, a released mod's
        # whole Lua state would be freed at a random later time, inside some
        # other mod's callback and charged to its budget
        del conv


# What building a value costs in a LuaJIT (GC64) heap, as an upper bound:
# a table header, array slots (8 bytes, grown by doubling, and during a
# resize old and new parts coexist) and hash nodes (24 bytes, likewise), a
# string header plus its UTF-8 bytes.
TABLE_BYTES = 64
ARRAY_SLOT_BYTES = 16
HASH_NODE_BYTES = 48
STRING_BYTES = 32
CLOSURE_BYTES = 128


def string_cost(v: str | bytes) -> int:
    """Upper bound of the Lua heap bytes a Python str/bytes takes as a Lua string."""
    if isinstance(v, bytes) or v.isascii():   # str.isascii() is O(1) in CPython
        return STRING_BYTES + len(v)
    return STRING_BYTES + 4 * len(v)


def lua_cost(value: Any, *, max_depth: int = 32) -> int:
    """Upper bound of the Lua heap bytes `to_lua(value)` allocates.

    Walks the whole value first (no Lua involved), so a caller can refuse
    data that would not fit before lupa starts building it: lupa's table
    building is not protected against allocation failures, and running out
    of memory inside it aborts the process or leaves the GIL held.
    """

    def cost(v, depth):
        if isinstance(v, LuaFixup) or v is None or isinstance(v, (bool, int, float)):
            return 0
        if isinstance(v, (str, bytes)):
            return string_cost(v)
        if lua_type(v) is not None:
            return 0
        if depth >= max_depth:
            raise TransferError(f"data nested deeper than {max_depth} levels (or a cycle)")
        if isinstance(v, dict):
            total = TABLE_BYTES + HASH_NODE_BYTES * len(v)
            for k, item in v.items():
                if isinstance(k, (str, bytes)):
                    total += string_cost(k)
                total += cost(item, depth + 1)
            return total
        if isinstance(v, (list, tuple)):
            total = TABLE_BYTES + ARRAY_SLOT_BYTES * len(v)
            for item in v:
                if not (item is None or isinstance(item, (bool, int, float))):
                    total += cost(item, depth + 1)
            return total
        if callable(v):
            return CLOSURE_BYTES
        return 0   # refused by to_lua itself

    return cost(value, 0)


def to_lua(runtime, value: Any, *, wrap: Callable[[Callable], Any] | None = None,
           max_depth: int = 32, raw_callables: list | None = None,
           room: Callable[[int], None] | None = None, deadline: float | None = None) -> Any:
    """Build the Lua equivalent of Python data in `runtime`.

    dict/list/tuple become tables (lists are 1-based), primitives pass
    through, Lua objects of the same runtime pass through, and callables are
    turned into Lua functions by `wrap` (refused when no `wrap` is given).

    With `raw_callables` (a list), callables are stored as they are and the
    list gets an entry, so the caller can mark the result as a LuaFixup.
    Only table building happens here, never a call into Lua: lupa returns
    wrong values when Python calls a Lua function of a runtime that is
    running a coroutine, and bridge functions may be called from one.

    `room(nbytes)` is called once, before anything is built, with the whole
    value's cost (`lua_cost`), and raises when the runtime cannot take that
    much more (see MemoryGate.room): lupa's table building is not protected
    against allocation failures, so the check must cover the real size.
    Past `deadline` (time.monotonic()) it stops with BudgetExceeded.
    """
    count = [0]

    def tick():
        count[0] += 1
        if count[0] >= CHECK_EVERY:
            count[0] = 0
            past_deadline(deadline, "building the result")

    if room is not None:
        if isinstance(value, (str, bytes)):
            if len(value) > 256:
                room(string_cost(value))
        elif isinstance(value, (dict, list, tuple)):
            # the outer table alone first: a huge list is refused in O(1)
            slot = HASH_NODE_BYTES if isinstance(value, dict) else ARRAY_SLOT_BYTES
            room(TABLE_BYTES + slot * len(value))
            room(lua_cost(value, max_depth=max_depth))

    def conv(v, depth):
        if isinstance(v, LuaFixup):
            if raw_callables is not None:
                raw_callables.append(v)
            return v.value
        if isinstance(v, PRIMITIVES):
            return v
        if lua_type(v) is not None:
            return v
        if depth >= max_depth:
            raise TransferError(f"data nested deeper than {max_depth} levels (or a cycle)")
        if isinstance(v, dict):
            t = runtime.table()
            for k, item in v.items():
                if not isinstance(k, (bool, int, float, str, bytes)):
                    raise TransferError(f"table keys must be strings or numbers, not {type(k).__name__}")
                t[k] = conv(item, depth + 1)
                tick()
            return t
        if isinstance(v, (list, tuple)):
            t = runtime.table()
            for i, item in enumerate(v, 1):
                t[i] = conv(item, depth + 1)
                tick()
            return t
        if callable(v) and raw_callables is not None:
            raw_callables.append(v)
            return v
        if callable(v) and wrap is not None:
            return wrap(v)
        raise TransferError(f"a {type(v).__name__} cannot be handed to Lua")

    try:
        return conv(value, 0)
    finally:
        # conv calls itself through its closure cell, a reference cycle that
        # holds the runtime: left to the cycle collector, a released mod's
        # whole Lua state would be freed at a random later time, inside some
        # other mod's callback and charged to its budget
        del conv
