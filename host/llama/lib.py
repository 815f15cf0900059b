"""Load libllama through cffi (ABI mode) with declarations generated at setup.

One :class:`Lib` per library path per process.  Loading:

1. reads ``cdef.h`` and ``abi.json`` written next to the library by setup
   (generating them if they are missing, e.g. for ``LLAMA_CPP_LIB``);
2. loads the ggml libraries globally, then libllama;
3. runs the ABI check and refuses to load on any mismatch;
4. installs the logging bridge and initialises the backend once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cffi

from host.errors import ABIMismatchError, LibraryLoadError
from host.llama import abi, aborts, cdefgen, log

_lock = threading.Lock()  # guards _loaded; held only while loading
_loaded: dict[str, "Lib"] = {}

# ggml's libraries, loaded globally before libllama so its NEEDED entries
# resolve whatever the RPATH says (the build directory may have moved).
_GGML_LIBS = ("libggml-base", "libggml-cpu", "libggml-rpc", "libggml")


@dataclass(frozen=True)
class LibPaths:
    """Where a built library and its generated declarations live."""

    lib_path: Path
    include_dir: Path
    artifacts_dir: Path


class Lib:
    """A loaded libllama: ``ffi`` (declarations) and ``C`` (the functions)."""

    def __init__(self, paths: LibPaths, info=None):
        self.paths = paths
        self.info = info
        start = time.perf_counter()
        cdef, probe, self.functions = _read_artifacts(paths)
        self.ffi = cffi.FFI()
        try:
            self.ffi.cdef(cdef)
        except cffi.CDefError as exc:  # pragma: no cover - generator bug
            raise LibraryLoadError(f"generated cdef in {paths.artifacts_dir} is not valid: {exc}") from exc
        self._ggml = _preload_ggml(self.ffi, paths.lib_path.parent)
        try:
            self.C = self.ffi.dlopen(str(paths.lib_path))
        except OSError as exc:
            raise LibraryLoadError(f"cannot load {paths.lib_path}: {exc}") from exc
        problems = abi.check(self.ffi, self.C, probe)
        if problems:
            shown = "\n  ".join(problems[:20])
            raise ABIMismatchError(
                f"{paths.lib_path} does not match the declarations in {paths.artifacts_dir} "
                f"({len(problems)} mismatches):\n  {shown}\nRe-run setup (make setup) to rebuild both."
            )
        self.abi_checked = len(probe)
        log.install(self)
        aborts.install(self)
        self.C.llama_backend_init()
        self.load_seconds = time.perf_counter() - start

    def __repr__(self) -> str:
        return f"<Lib {self.paths.lib_path}>"

    def missing_functions(self) -> list[str]:
        """Declared LLAMA_API functions the loaded library does not export."""
        missing = []
        for name in self.functions:
            try:
                getattr(self.C, name)
            except AttributeError:
                missing.append(name)
        return missing

    def system_info(self) -> str:
        return self.ffi.string(self.C.llama_print_system_info()).decode("utf-8", "replace")


def _read_artifacts(paths: LibPaths):
    art = paths.artifacts_dir
    need = [art / cdefgen.CDEF_FILE, art / cdefgen.ABI_FILE, art / cdefgen.FUNCTIONS_FILE]
    if not all(p.is_file() for p in need):
        cdefgen.build_artifacts(paths.include_dir, paths.lib_path.parent, art)
    try:
        return (
            need[0].read_text(),
            json.loads(need[1].read_text()),
            json.loads(need[2].read_text()),
        )
    except (OSError, ValueError) as exc:
        raise LibraryLoadError(f"generated files in {art} are unreadable ({exc}); re-run make setup") from exc


def _preload_ggml(ffi, lib_dir: Path) -> list:
    handles = []
    for stem in _GGML_LIBS:
        candidates = sorted(lib_dir.glob(stem + ".so*")) or sorted(lib_dir.glob(stem + ".dylib"))
        if candidates:
            try:
                handles.append(ffi.dlopen(str(candidates[0]), ffi.RTLD_NOW | ffi.RTLD_GLOBAL))
            except OSError as exc:
                raise LibraryLoadError(f"cannot load {candidates[0]}: {exc}") from exc
    return handles


@dataclass(frozen=True)
class Selection:
    """Which build this process uses, and why (shown by doctor and the status lines)."""

    requested: str  # the GPU word asked for: cpu, cuda, vulkan, metal, hip
    source: str  # where the word came from ($RELIC_GPU, make setup GPU=..., default)
    used: str  # the build in use: the requested one, or cpu after a failed probe
    reason: str = ""  # why the requested GPU build is not used ("" when it is)
    probe: dict | None = None  # the GPU probe's verdict (devices, placement, text)


_selection: Selection | None = None  # decided once per process (the probe runs once)


def _paths_of(info) -> LibPaths:
    return LibPaths(Path(info.lib_path), Path(info.include_dir), Path(info.artifacts_dir))


# The library this process uses when none is named: chosen once by set-up
# (host.prepare), which builds, probes and falls back before any model loads.
# Guarded by _lock; written by use_default, read by load.
_default_info = None
_selection: Selection | None = None


def use_default(lib_info, selection: Selection | None = None) -> None:
    """Make ``lib_info`` (a LibPaths or setup's LibInfo) the library :func:`load` uses by default.

    Called by ``host.prepare`` after it built or found the library and probed a
    GPU build; the binding itself never builds, downloads or probes.
    """
    global _default_info, _selection
    with _lock:
        _default_info, _selection = lib_info, selection


def selection() -> Selection | None:
    """The build decision of this process (None until set-up chose the default library)."""
    return _selection


def load(lib_info=None) -> Lib:
    """Load (once per process) and ABI-check libllama.

    ``lib_info`` is a :class:`LibPaths` or setup's ``LibInfo``; by default the
    library that set-up chose (``host.prepare``) is used.  Never builds: with
    no library chosen it raises LibraryLoadError saying how to get one.
    """
    info = None
    if lib_info is None:
        with _lock:
            lib_info = _default_info
        if lib_info is None:
            raise LibraryLoadError("no llama.cpp library was prepared: call host.prepare(config) first "
                                   "(or run `make setup`)")
    if isinstance(lib_info, LibPaths):
        paths = lib_info
    else:
        info = lib_info
        paths = _paths_of(info)
    key = os.path.realpath(paths.lib_path)
    with _lock:
        lib = _loaded.get(key)
        if lib is None:
            if not Path(key).is_file():
                raise LibraryLoadError(f"no llama library at {paths.lib_path}; run make setup")
            lib = Lib(paths, info)
            _loaded[key] = lib
    return lib


logger = logging.getLogger("relic.llama")
