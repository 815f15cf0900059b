"""Building one mod's Lua runtime: lupa flags, the privileged prelude, file access.

Each mod gets its own `lupa.luajit21.LuaRuntime` created with

- `register_eval=False`, `register_builtins=False`: no `python.eval`, no
  `python.builtins`;
- an attribute filter that refuses every attribute of every Python object
  (mods should never hold one; this is the second line of defence);
- `max_memory`: lupa's allocator enforces the cap on this LuaJIT build (GC64,
  so a custom allocator works on 64-bit).  The limit is the mod's cap only
  while mod code runs (`MemoryGate`); outside, the host keeps HEADROOM_MB
  above it, because lupa's own C-API calls (table building, pushing strings)
  are unprotected and an allocation failure there aborts the process.

Then `sandbox.lua` runs in the runtime's real globals and returns the box
(see that file).  `SourceResolver` is the only way a mod reaches files: .lua
files inside its own folder or the shared lua/ library, nothing else.  The
host's own Lua halves (host/runtime/lua/: the `llm`, `rag`, `db`, `io`, ImGui
bridges, the CET stand-ins) are loaded only by the host (`Mod.load_lib`);
a mod's `require`, `dofile` and `loadfile` never see them.
"""

from __future__ import annotations

import re
from pathlib import Path

from lupa import luajit21 as lupa

from host.errors import QuotaExceeded, SandboxViolation

_HERE = Path(__file__).resolve().parent
PLUMBING_DIR = _HERE / "lua"  # the host's Lua halves: loaded by the host, never required by a mod
MODULE_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z")
MODULE_PATH_RE = re.compile(r"[A-Za-z0-9_. /-]+\Z")
ESC = 0x1B


def default_lua_dir() -> Path:
    """The shared Lua library shipped with Relic: host/lua in an installed package, else the repo's lua/."""
    packaged = _HERE.parent / "lua"
    return packaged if packaged.is_dir() else _HERE.parent.parent / "lua"


def _prelude(name: str) -> bytes:
    return (_HERE / name).read_bytes()


def deny_attributes(obj, name, is_setting):
    """lupa attribute filter: no Python attribute is visible from Lua."""
    raise AttributeError("Python objects are not accessible from mods")


HEADROOM_MB = 32
MiB = 1024 * 1024


def new_runtime(memory_mb: int) -> "lupa.LuaRuntime":
    """A fresh LuaJIT runtime with the production sandbox flags.

    Owns the lua_State; it is closed when the last reference (the Mod, and any
    LuaTable/LuaFunction handed out) is dropped.  Starts with the host
    headroom; MemoryGate narrows it to the cap around mod code.
    """
    return lupa.LuaRuntime(
        register_eval=False,
        register_builtins=False,
        unpack_returned_tuples=True,
        attribute_filter=deny_attributes,
        max_memory=(memory_mb + HEADROOM_MB) * MiB,
    )


class MemoryGate:
    """enter(): limit = the mod's cap; leave(): limit = cap + headroom.

    Called from sandbox.lua around every outermost guarded call.  It lives
    inside the runtime (as a bridge function), so it must not reference the
    runtime itself: that cycle runs through the Lua registry, which Python's
    GC cannot see, and would keep every dropped runtime alive.  It asks
    `get_runtime` (the Mod) instead.
    """

    def __init__(self, get_runtime, memory_mb: int):
        self._get = get_runtime
        self.cap = memory_mb * MiB
        self.relaxed = (memory_mb + HEADROOM_MB) * MiB

    def enter(self) -> None:
        rt = self._get()
        if rt is not None:
            rt.set_max_memory(self.cap)

    def leave(self) -> None:
        rt = self._get()
        if rt is not None:
            rt.set_max_memory(self.relaxed)

    def room(self, nbytes: int) -> None:
        """Raise unless the mod's runtime can take nbytes more of host data.

        Data the host builds for a mod (results, GetMod copies) must fit under
        the mod's cap, less 1 MiB so the error itself still has room; the
        headroom above the cap is only for lupa's own small allocations.
        """
        rt = self._get()
        if rt is not None and rt.get_memory_used() + nbytes > self.cap - MiB:
            raise QuotaExceeded(f"the data is too large for the mod's memory cap ({self.cap // MiB} MiB): "
                                f"about {nbytes} bytes as Lua values, {rt.get_memory_used()} bytes in use")


def build_box(runtime, cfg: dict, bridge: dict):
    """Run the privileged prelude in `runtime`; return the box (a LuaTable)."""
    g = runtime.globals()
    load = g.load
    instrument = _load(load, _prelude("instrument.lua"), "@relic/instrument.lua")[0]()
    patterns_fn, err = _load(load, _prelude("patterns.lua"), "@relic/patterns.lua")
    patterns = patterns_fn()
    sandbox_fn, err = _load(load, _prelude("sandbox.lua"), "@relic/sandbox.lua")
    return sandbox_fn(runtime.table_from(cfg), runtime.table_from(bridge), patterns, instrument)


def _load(load, src: bytes, name: str):
    res = load(src, name)
    fn, err = (res if isinstance(res, tuple) else (res, None))
    if fn is None:
        raise RuntimeError(f"internal Lua file {name} failed to compile: {err}")
    return fn, err


class SourceResolver:
    """Finds the Lua sources a mod may load (require, dofile, loadfile).

    Returns (where, chunkname, source) with where = "mod" or "lib"; raises
    SandboxViolation for anything outside the two roots.
    """

    def __init__(self, mod_id: str, folder: Path, lua_dir: Path, max_bytes: int,
                 plumbing_dir: Path = PLUMBING_DIR):
        self.mod_id = mod_id
        self.folder = folder.resolve()
        self.lua_dir = lua_dir.resolve()
        self.plumbing_dir = plumbing_dir.resolve()
        self.max_bytes = max_bytes

    def _read(self, root: Path, rel: str, where: str):
        path = root / rel
        if not path.is_file():
            return None
        real = path.resolve()
        if not real.is_relative_to(root):
            raise SandboxViolation(f"'{rel}' leads outside the {where} folder (symlink); refused")
        size = real.stat().st_size
        if size > self.max_bytes:
            raise SandboxViolation(f"'{rel}' is {size} bytes; the limit is {self.max_bytes}")
        src = real.read_bytes()
        if src[:1] == bytes([ESC]):
            raise SandboxViolation(f"'{rel}' is precompiled bytecode; only source files can be loaded")
        prefix = {"mod": f"@mods/{self.mod_id}/", "lib": "@lua/", "host": "@relic/"}[where]
        return where if where != "host" else "lib", prefix + rel, src

    def module(self, name: str):
        """require(name): mod folder first, then the shared library.

        Like CET: `require("a/b")`, `require("a.b")` (-> a/b.lua), `require("dir")`
        (-> dir/init.lua) and `require("a/b.lua")`, all relative to the mod folder;
        backslashes count as `/`.
        """
        if not isinstance(name, str) or "\0" in name:
            raise SandboxViolation("require: module name must be a string without NUL bytes")
        path = name.replace("\\", "/")
        while path.startswith("./"):
            path = path[2:]
        parts = path.split("/")
        if (not path or path.startswith("/") or re.match(r"[A-Za-z]:", path) or ".." in path
                or any(p in ("", ".") for p in parts) or not MODULE_PATH_RE.match(path)):
            raise SandboxViolation(f"require: '{name}' is not a valid module name (a path relative "
                                   "to the mod folder: letters, digits, '_', '-', ' ', '.', '/'; "
                                   "no '..')")
        candidates = [path] if path.endswith(".lua") else []
        candidates += [path + ".lua", path + "/init.lua"]
        if "/" not in path and "." in path:
            base = path.replace(".", "/")
            candidates += [base + ".lua", base + "/init.lua"]
        for rel in candidates:
            found = self._read(self.folder, rel, "mod")
            if found:
                return found
        if MODULE_RE.match(name):
            base = name.replace(".", "/")
            for rel in (base + ".lua", base + "/init.lua"):
                found = self._read(self.lua_dir, rel, "lib")
                if found:
                    return found
        raise SandboxViolation(f"module '{name}' not found (mods can require .lua files in "
                               f"mods/{self.mod_id}/ and the shared lua/ library)")

    def lib(self, name: str):
        """A module the host loads (Mod.load_lib, library code's require):
        the shared lua/ library, then the host's own halves (host/runtime/lua/)."""
        if not MODULE_RE.match(name):
            raise SandboxViolation(f"'{name}' is not a valid module name")
        base = name.replace(".", "/")
        for root, where in ((self.lua_dir, "lib"), (self.plumbing_dir, "host")):
            for rel in (base + ".lua", base + "/init.lua"):
                found = self._read(root, rel, where)
                if found:
                    return found
        raise SandboxViolation(f"library module '{name}' not found in lua/")

    def file(self, path: str):
        """dofile/loadfile(path): a relative .lua path in the mod folder or lua/."""
        if not isinstance(path, str) or not path:
            raise SandboxViolation("path must be a non-empty string")
        if "\0" in path or "\\" in path:
            raise SandboxViolation(f"'{path}': invalid characters in path")
        if path.startswith("/") or re.match(r"[A-Za-z]:", path):
            raise SandboxViolation(f"'{path}': absolute paths are refused; "
                                   "use a path relative to the mod folder")
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise SandboxViolation(f"'{path}': '..', '.' and empty path parts are refused")
        if not path.endswith(".lua"):
            # CET's dofile/loadfile also try the name with .lua added.
            for root, where in ((self.folder, "mod"), (self.lua_dir, "lib")):
                found = self._read(root, path + ".lua", where)
                if found:
                    return found
            raise SandboxViolation(f"'{path}': only .lua files can be loaded")
        for root, where in ((self.folder, "mod"), (self.lua_dir, "lib")):
            found = self._read(root, path, where)
            if found:
                return found
        raise SandboxViolation(f"'{path}' not found in mods/{self.mod_id}/ or lua/")

    def resolve(self, kind: str, name):
        """Dispatch for the Lua bridge: kind is 'module', 'lib' or 'file'."""
        if not isinstance(name, str):
            raise SandboxViolation(f"{kind} name must be a string")
        if kind == "module":
            return self.module(name)
        if kind == "lib":
            return self.lib(name)
        if kind == "file":
            return self.file(name)
        raise SandboxViolation(f"unknown source kind {kind!r}")
