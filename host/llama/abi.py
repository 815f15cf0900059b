"""Compare cffi's view of the declarations with what the C compiler measured.

In cffi's ABI mode a wrong struct layout is silent memory corruption, so the
library refuses to load when any size, alignment, field offset, field size or
constant value differs from the probe that setup compiled against the same
header (see :mod:`host.llama.cdefgen`).
"""

from __future__ import annotations


def check(ffi, lib, probe: dict) -> list[str]:
    """Return one message per mismatch between cffi and the probe; empty is OK."""
    problems: list[str] = []
    fields_cache: dict[str, dict] = {}

    def fields(struct: str) -> dict:
        if struct not in fields_cache:
            fields_cache[struct] = _flat_fields(ffi, ffi.typeof(struct))
        return fields_cache[struct]

    for key, expected in probe.items():
        kind, _, name = key.partition(" ")
        try:
            if kind == "size":
                got = ffi.sizeof(name)
            elif kind == "align":
                got = ffi.alignof(name)
            elif kind == "offset":
                struct, _, fname = name.rpartition(".")
                got = ffi.offsetof(struct, fname)
            elif kind == "fsize":
                struct, _, fname = name.rpartition(".")
                got = ffi.sizeof(fields(struct)[fname])
            elif kind == "const":
                got = getattr(lib, name)
            else:
                problems.append(f"{key}: unknown probe entry")
                continue
        except (AttributeError, KeyError, TypeError, ValueError, ffi.error) as exc:
            problems.append(f"{key}: not declared to cffi ({exc})")
            continue
        if got != expected:
            problems.append(f"{key}: cffi says {got}, the compiler says {expected}")
    return problems


def _flat_fields(ffi, ctype) -> dict:
    """Field name -> ctype, with anonymous struct/union members flattened."""
    out = {}
    for fname, f in ctype.fields:
        if fname:
            out[fname] = f.type
        elif f.type.kind in ("struct", "union"):
            out.update(_flat_fields(ffi, f.type))
    return out
