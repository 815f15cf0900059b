"""The same generated declarations, for LuaJIT's FFI (the trusted-mod `llama` module).

LuaJIT's ``ffi.cdef`` takes plain C declarations but no ``#define``, so
integer macros become ``static const`` declarations of a type that holds them.
"""

from __future__ import annotations

import re

_DEFINE = re.compile(r"^#define (\w+) (-?\d+)$", re.M)


def _const(m: re.Match) -> str:
    name, value = m.group(1), int(m.group(2))
    if -(2**31) <= value < 2**31:
        ctype = "int32_t"
    elif 0 <= value < 2**32:
        ctype = "uint32_t"
    else:
        ctype = "int64_t"
    return f"static const {ctype} {name} = {value};"


def luajit_cdef(lib) -> str:
    """cdef text for LuaJIT: the cffi cdef with #defines turned into static consts."""
    text = getattr(lib, "_luajit_cdef", None)
    if text is None:
        from host.llama.cdefgen import CDEF_FILE

        cdef = (lib.paths.artifacts_dir / CDEF_FILE).read_text()
        # FILE is a cffi built-in; LuaJIT needs it declared (only used behind pointers)
        text = "typedef struct _IO_FILE FILE;\n" + _DEFINE.sub(_const, cdef)
        lib._luajit_cdef = text
    return text


def address(lib, ptr) -> int:
    """A native pointer as an integer (exact in a Lua number: user-space addresses fit 53 bits)."""
    return int(lib.ffi.cast("uintptr_t", ptr))
