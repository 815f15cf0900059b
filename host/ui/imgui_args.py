"""Checking a mod's ImGui arguments against the binding table (host/ui/imgui_names.py).

Every value is checked before Dear ImGui sees it: a wrong type, a missing
argument, a string past the cap, a NaN, an enum value Dear ImGui does not
know, a printf format that would read a value it was not given: each is a
ModError naming the function, the argument's position and name, raised at the
mod's line.  Dear ImGui itself gets only values it accepts.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from host.errors import ModError
from lupa import lua_type  # the type name a value has in Lua (coroutines show as "function")
from host.ui.imgui_names import Arg, Binding

# Bounds of one bound call's arguments (the binding's own, not policy: the `ui` group of
# host.limits holds what a game tunes); documented in MODDING's limits section.
MAX_TEXT = 64 * 1024          # bytes of one string argument or InputText result
MAX_ITEMS = 10_000            # entries of a Combo / ListBox
MAX_SEGMENTS = 512            # segments of a circle, polygon or curve
FLT_MAX = 3.4028234663852886e38
INT_MIN, UINT_MAX = -(2 ** 31), 2 ** 32 - 1

# printf formats Dear ImGui fills with exactly one value of the widget's type:
# anything else (%s, %n, two conversions, a `*` width) would read memory it was not given
_FLOAT_FMT = re.compile(r"(?:[^%]|%%)*(?:%[-+ #0']*\d{0,3}(?:\.\d{0,3})?[fFeEgGaA](?:[^%]|%%)*)?\Z", re.S)
_INT_FMT = re.compile(r"(?:[^%]|%%)*(?:%[-+ #0']*\d{0,3}(?:\.\d{0,3})?[diuxXo](?:[^%]|%%)*)?\Z", re.S)
MAX_FORMAT = 64  # characters of one printf format (a bound of the binding, as above)


def _describe(v) -> str:
    t = lua_type(v)
    if t:
        return t
    if v is None:
        return "nil"
    return {bool: "boolean", int: "number", float: "number", str: "string", bytes: "string"}.get(type(v), "value")


def text(v, what: str = "string") -> str:
    """A string argument (numbers are turned into text, as Lua's tostring does)."""
    if type(v) is not str:
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, bool) or v is None:
            raise ModError(f"{what} expected, got {_describe(v)}")
        elif isinstance(v, int):
            v = str(v)
        elif isinstance(v, float):
            v = str(int(v)) if v.is_integer() and abs(v) < 1e15 else "%.14g" % v
        elif not isinstance(v, str):
            raise ModError(f"{what} expected, got {_describe(v)}")
    if len(v) > MAX_TEXT // 4 and len(v.encode("utf-8", "replace")) > MAX_TEXT:
        raise ModError(f"string longer than {MAX_TEXT} bytes")
    return v


def number(v) -> float:
    """A finite number (±inf is clamped to Dear ImGui's float range; NaN is refused)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ModError(f"number expected, got {_describe(v)}")
    v = float(v)
    if math.isnan(v):
        raise ModError("number expected, got nan")
    return max(-FLT_MAX, min(FLT_MAX, v))


def integer(v, lo: int = INT_MIN, hi: int = UINT_MAX) -> int:
    """An integer in [lo, hi] (a number with a fraction is truncated, as sol does)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ModError(f"integer expected, got {_describe(v)}")
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ModError(f"integer expected, got {v}")
        v = int(v)
    if not lo <= v <= hi:
        raise ModError(f"{v} is out of range ({lo}..{hi})")
    return v


def flags(v) -> int:
    """A 32-bit flags value, as the signed int Dear ImGui takes."""
    v = integer(v)
    return v - 2 ** 32 if v >= 2 ** 31 else v


def color(v) -> int:
    """A packed 0xAABBGGRR colour (a negative int from GetColorU32 is the same colour)."""
    return integer(v) & 0xFFFFFFFF


def boolean(v) -> bool:
    """A boolean (nil reads as false)."""
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ModError(f"boolean expected, got {_describe(v)}")
    return v


def fmt(v, kind: str) -> str:
    """A printf format for one float ("f") or integer ("i") value."""
    s = text(v, "format string")
    if len(s) > MAX_FORMAT or "\0" in s or not (_FLOAT_FMT if kind == "f" else _INT_FMT).match(s):
        want = "one %f/%e/%g" if kind == "f" else "one %d/%i/%u/%x"
        raise ModError(f"bad format {s[:MAX_FORMAT]!r}: at most {want} conversion and %% for a percent sign")
    return s


def plain(mod, v, what: str):
    """A Lua table as Python data (bounded by the host's transfer limits)."""
    if lua_type(v) != "table":
        raise ModError(f"{what} expected, got {_describe(v)}")
    return mod.from_lua_plain(v)


def numbers(mod, v, n: int, as_int: bool) -> list:
    """A table of n numbers, CET-style: missing entries read as 0."""
    data = plain(mod, v, f"table of {n} numbers")
    if isinstance(data, dict):
        data = [data.get(i + 1, 0) for i in range(n)] if not data or all(isinstance(k, int) for k in data) \
            else [0] * n
    out = []
    for i in range(n):
        x = data[i] if i < len(data) and data[i] is not None else 0
        out.append(integer(x, INT_MIN, 2 ** 31 - 1) if as_int else number(x))
    return out


def strings(mod, v, count) -> list[str]:
    """The items of a Combo / ListBox: `count` entries (all when nil), "Missing" for a hole, as CET."""
    data = plain(mod, v, "table of strings")
    if isinstance(data, dict):
        data = [data.get(i + 1) for i in range(max((k for k in data if isinstance(k, int)), default=0))]
    n = len(data) if count is None else integer(count, 0, MAX_ITEMS)
    if n > MAX_ITEMS:
        raise ModError(f"more than {MAX_ITEMS} items")
    out = []
    for i in range(n):
        x = data[i] if i < len(data) else None
        out.append("Missing" if x is None else text(x, "item"))
    return out


def enum(v, im, cls_name: str, lo: int, count_member: str | None = None) -> int:
    """An enum value Dear ImGui knows (headless: any integer >= lo)."""
    v = integer(v, lo, 2 ** 31 - 1)
    if im is not None:
        cls = getattr(im, cls_name)
        if count_member is not None:
            if v >= int(getattr(cls, count_member).value):
                raise ModError(f"{v} is not an {cls_name.rstrip('_')} value")
        else:
            try:
                cls(v)
            except ValueError:
                raise ModError(f"{v} is not a {cls_name.rstrip('_')} value") from None
    return v


class ArgReader:
    """Reads the Lua arguments of one call against a Binding (see the module docstring)."""

    def __init__(self, mod, im, draw_list: Callable[[Any], Any]):
        self.mod = mod
        self.im = im
        self.draw_list = draw_list          # handle -> draw list (raises ModError)

    def one(self, arg: Arg, raw: list) -> Any:
        """The checked value of one argument from its Lua value(s)."""
        t, im = arg.type, self.im
        v = raw[0]
        if t == "s":
            return text(v)
        if t == "f":
            return number(v)
        if t == "i":
            return flags(v)
        if t == "b":
            return boolean(v)
        if t == "u":
            return color(v)
        if t == "xy":
            return (number(raw[0]), number(raw[1]))
        if t == "rgba":
            return tuple(number(x) for x in raw)
        if t in ("f2", "f3", "f4"):
            return numbers(self.mod, v, int(t[1]), False)
        if t in ("i2", "i3", "i4"):
            return numbers(self.mod, v, int(t[1]), True)
        if t == "ffmt":
            return fmt(v, "f")
        if t == "ifmt":
            return fmt(v, "i")
        if t == "segs":
            return integer(v, 0, MAX_SEGMENTS)
        if t == "cols":
            return integer(v, 1, 64)
        if t == "btn":
            return integer(v, 0, 4)
        if t == "dir":
            return integer(v, 0, 3)
        if t == "cursor":
            return integer(v, -1, 11)
        if t == "col":
            return enum(v, im, "Col_", 0, "count")
        if t == "var":
            return enum(v, im, "StyleVar_", 0, "count")
        if t == "key":
            return enum(v, im, "Key", 0)
        if t == "dl":
            return self.draw_list(v)
        if t == "tex":
            return integer(v, 0)
        if t == "items":
            return v                      # read with its count by the handler
        raise AssertionError(t)

    def read(self, b: Binding, args: tuple, start: int = 0) -> list:
        """All arguments of `b` (defaults filled in, nil for optional ones without a default)."""
        out = []
        pos = start
        n = len(args)
        for a in b.args:
            w = a.width
            if w == 1:
                raw = [args[pos]] if pos < n else [None]
                missing = raw[0] is None
            else:
                raw = list(args[pos:pos + w]) + [None] * max(0, pos + w - n)
                missing = all(x is None for x in raw)
            if missing:
                if not a.optional:
                    raise ModError(f"ImGui.{b.name}: argument #{pos + 1} ({a.name}) is missing "
                                   f"(ImGui.{b.signature()})")
                out.append(a.default)
            else:
                try:
                    out.append(self.one(a, raw))
                except ModError as e:
                    raise ModError(f"ImGui.{b.name}: bad argument #{pos + 1} ({a.name}): {e}") from None
            pos += w
        if n > pos and any(x is not None for x in args[pos:]):
            raise ModError(f"ImGui.{b.name}: too many arguments ({n}; ImGui.{b.signature()})")
        return out
