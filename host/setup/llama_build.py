"""Fetch the pinned llama.cpp source and build its shared libraries, cached.

The pinned source is the ``vendor/llama.cpp`` tree of the
``llama-cpp-python==0.3.36`` sdist (llama.cpp commit 0c1e570), checked by
sha256.  We build only the ``llama`` target (libllama plus the libggml* it
links, with ggml's RPC client backend) and llama.cpp's own ``ggml-rpc-server``
(one more source file on top of ggml), Release, shared, and keep the result in
the cache under a name made of the version and a hash of the exact cmake
flags, so a different flag set (a GPU backend: see host.setup.gpu) is a
different cached build and never a silent mismatch.

llama.cpp's ``llama-server`` is cached the same way in a folder of its own
(the library's flags plus SERVER_CMAKE_ARGS).  On a fresh machine that wants
both (``make test``), one build makes both and fills both folders.

Every cached item appears by one ``rename`` of a finished folder: a build that
failed or was interrupted leaves only a temp folder (cleaned up next time),
never something that looks like a good build.

Environment:
  RELIC_CMAKE_ARGS  extra cmake flags, shell-split (e.g. ``-DGGML_CUDA=ON``);
                    part of the cache key.
  LLAMA_CPP_LIB     path to an existing libllama: no build; the headers (and so
                    the cffi declarations) still come from the pinned source.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from host.errors import SetupError
from host.setup import paths
from host.setup.util import file_lock, pip_download, remove_tree, say, verify_sha256

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
LLAMA_CPP_COMMIT = "0c1e570"
VENDOR_PREFIX = ("vendor", "llama.cpp")

ENV_CMAKE_ARGS = "RELIC_CMAKE_ARGS"
ENV_LIB = "LLAMA_CPP_LIB"

# The build every cache key starts from.  CPU by default (ggml's defaults);
# RELIC_CMAKE_ARGS come after these, and with cmake the last -D wins.
BASE_CMAKE_ARGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    # tools/ (and the common/ they need) are only configured, so that the
    # ggml-rpc-server target exists; only llama and ggml-rpc-server are built.
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_COMMON=ON",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    # The extracted tree has no .git: name the commit so build-info is right.
    f"-DLLAMA_BUILD_COMMIT={LLAMA_CPP_COMMIT}",
    # $ORIGIN-relative RUNPATH: libllama finds libggml* next to itself after
    # the build folder is renamed into the cache.
    "-DCMAKE_BUILD_RPATH_USE_ORIGIN=ON",
    # ggml's RPC backend: the client that `RELIC_RPC` / `relic run --rpc` uses
    # in-process, and the server binary `make rpc-server` hands out.
    "-DGGML_RPC=ON",
)

RPC_SERVER_TARGET = "ggml-rpc-server"
LLAMA_SERVER_TARGET = "llama-server"
# llama-server is its own cached build (the library's flags plus these), so
# building it never changes the library's cache key.  The web UI stays out:
# no npm, and no download of prebuilt assets at build time.
SERVER_CMAKE_ARGS: tuple[str, ...] = (
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)

# Bump when the cached layout changes, so old caches are not misread.
_LAYOUT_VERSION = 1
# Files (relative to the ``host`` package) whose source decides the generated
# cdef/ABI files; their bytes key the artifacts folder, so editing the
# generator regenerates (seconds) without rebuilding the library (minutes).
# Read as files, not imported: importing host.llama here could load the library.
GENERATOR_FILES: tuple[str, ...] = ("llama/cdefgen.py",)
_INFO_FILE = "info.json"
_MIN_CMAKE = (3, 14)
_PROGRESS = re.compile(r"^\[\s*\d+%\]|^\[\d+/\d+\]")  # make and ninja


@dataclass(frozen=True)
class LibInfo:
    """A usable libllama: where it is, its headers and its generated artifacts."""

    lib_path: Path  # libllama.so (libllama.dylib on macOS)
    lib_dir: Path  # folder with libllama and the libggml* it needs
    include_dir: Path  # folder with llama.h
    ggml_include_dir: Path  # folder with ggml.h and friends
    commit: str  # llama.cpp commit of the headers (and of the build, unless external)
    build_flags: tuple[str, ...]  # cmake flags of the build; () for LLAMA_CPP_LIB
    artifacts_dir: Path  # cdef + ABI probe results written by host.llama.cdefgen
    external: bool = False  # True when LLAMA_CPP_LIB named the library

    @property
    def rpc_server(self) -> Path | None:
        """llama.cpp's ggml-rpc-server built with this library, or None (external or no RPC)."""
        if self.external:
            return None
        path = self.lib_dir / _exe_name(RPC_SERVER_TARGET)  # next to the libs its RUNPATH names
        return path if path.is_file() else None


# --- the pinned source -------------------------------------------------------

def source_dir() -> Path:
    """Where the extracted vendor/llama.cpp tree lives in the cache."""
    return paths.cache_root() / "src" / f"llama.cpp-{LLAMA_CPP_COMMIT}"


def _source_ok(src: Path) -> bool:
    return (src / "CMakeLists.txt").is_file() and (src / "include" / "llama.h").is_file()


def ensure_source() -> Path:
    """Return the pinned vendor/llama.cpp tree, downloading it once.

    ``pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36``,
    sha256 check, then only vendor/llama.cpp is extracted (no links, no
    absolute or ``..`` paths) and renamed into place.  The sdist is deleted.
    """
    src = source_dir()
    if _source_ok(src):
        return src
    with file_lock(paths.lock_path(src.name)):
        if _source_ok(src):
            return src  # another set-up fetched it while we waited
        remove_tree(src)  # a tree with its key files missing is not trusted
        work = Path(tempfile.mkdtemp(prefix="src-", dir=paths.tmp_dir()))
        try:
            say(f"downloading llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} (source only; ~77 MB)")
            files = pip_download(
                ["--no-binary", "llama-cpp-python", "--no-deps", f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"],
                work / "dl",
            )
            sdists = [f for f in files if f.name.endswith((".tar.gz", ".tgz"))]
            if len(sdists) != 1:
                raise SetupError(f"pip download saved {[f.name for f in files]}, expected one .tar.gz sdist")
            verify_sha256(sdists[0], SDIST_SHA256, f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist")
            say("extracting vendor/llama.cpp")
            n = extract_vendor_tree(sdists[0], work / "tree")
            say(f"extracted {n} files")
            if not _source_ok(work / "tree"):
                raise SetupError("the sdist's vendor/llama.cpp has no CMakeLists.txt or include/llama.h")
            src.parent.mkdir(parents=True, exist_ok=True)
            os.rename(work / "tree", src)
        finally:
            remove_tree(work)  # also deletes the downloaded sdist
    return src


def _safe_parts(name: str) -> tuple[str, ...]:
    """Path components of an archive member, refusing anything that could escape."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise SetupError(f"archive member has an absolute path: {name!r}")
    parts = tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))
    if ".." in parts:
        raise SetupError(f"archive member escapes the target folder: {name!r}")
    return parts


def extract_vendor_tree(tarball: Path, dest: Path, prefix: Sequence[str] = VENDOR_PREFIX) -> int:
    """Extract ``<top>/<prefix>/...`` of an sdist into ``dest``; return the file count.

    Only plain files and folders are written, by us, with permission bits
    masked to 0o755; a link, device, absolute path or ``..`` anywhere in the
    archive raises SetupError (the pinned sdist has none).
    """
    prefix = tuple(prefix)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    count = 0
    with tarfile.open(tarball, "r:*") as tar:
        for member in tar:
            parts = _safe_parts(member.name)
            if not (member.isfile() or member.isdir()):
                raise SetupError(f"archive member is a link or special file: {member.name!r}")
            if len(parts) < 1 + len(prefix) or parts[1:1 + len(prefix)] != prefix:
                continue  # outside vendor/llama.cpp: not needed
            rel = parts[1 + len(prefix):]
            if not rel:
                continue
            target = dest.joinpath(*rel)
            if root not in target.resolve().parents:  # defence in depth
                raise SetupError(f"archive member escapes the target folder: {member.name!r}")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fh = tar.extractfile(member)
            if fh is None:
                raise SetupError(f"cannot read archive member {member.name!r}")
            with fh, open(target, "wb") as out:
                shutil.copyfileobj(fh, out, 1 << 20)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
            count += 1
    return count


# --- cache keys --------------------------------------------------------------

def cmake_args(extra_cmake_args: Iterable[str] | None = None) -> tuple[str, ...]:
    """The full cmake flag list: base flags, then RELIC_CMAKE_ARGS, then ``extra``."""
    env = shlex.split(os.environ.get(ENV_CMAKE_ARGS, ""))
    return BASE_CMAKE_ARGS + tuple(env) + tuple(extra_cmake_args or ())


def cache_key(flags: Sequence[str]) -> str:
    """Folder name of a build: version, commit and a hash of everything that shapes it.

    The hash covers the flag list in order (with cmake the last -D wins), the
    machine type (ggml builds for the native CPU) and the cache layout version.
    It uses sha256 over JSON, so it is the same in every process and run.
    """
    blob = json.dumps({
        "layout": _LAYOUT_VERSION,
        "version": LLAMA_CPP_PYTHON_VERSION,
        "commit": LLAMA_CPP_COMMIT,
        "system": platform.system(),
        "machine": platform.machine(),
        "flags": list(flags),
    }, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}-{LLAMA_CPP_COMMIT}-{digest}"


def library_dir(flags: Sequence[str]) -> Path:
    """Where the build with these flags is (or will be) cached."""
    return paths.cache_root() / "lib" / cache_key(flags)


def _lib_name() -> str:
    return "libllama.dylib" if sys.platform == "darwin" else "libllama.so"


def _exe_name(stem: str) -> str:
    return stem + ".exe" if sys.platform == "win32" else stem


def flag_value(flags: Sequence[str], name: str) -> str | None:
    """The value of ``-D<name>=`` in a cmake flag list (the last one wins), or None."""
    value = None
    for flag in flags:
        m = re.match(rf"^-D{re.escape(name)}(?::\w+)?=(.*)$", flag)
        if m:
            value = m.group(1)
    return value


def _is_on(value: str | None) -> bool:
    return value is not None and value.upper() in ("ON", "1", "YES", "TRUE", "Y")


def _targets(flags: Sequence[str]) -> list[str]:
    targets = ["llama"]
    if _is_on(flag_value(flags, "GGML_RPC")):
        targets.append(RPC_SERVER_TARGET)
    return targets


def generator_hash() -> str:
    """Hash of the cdef/ABI generator's source: keys the artifacts folder."""
    host_dir = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for rel in GENERATOR_FILES:
        try:
            digest.update(rel.encode() + b"\0" + (host_dir / rel).read_bytes())
        except FileNotFoundError:
            raise SetupError(f"host/{rel} is missing: the checkout is incomplete") from None
    return digest.hexdigest()[:12]


# --- lookup (no building) ----------------------------------------------------

def _info_for(base: Path, lib_path: Path, flags: tuple[str, ...], external: bool) -> LibInfo:
    include = base / "headers" / "include"
    return LibInfo(
        lib_path=lib_path,
        lib_dir=lib_path.parent,
        include_dir=include,
        ggml_include_dir=base / "headers" / "ggml" / "include",
        commit=LLAMA_CPP_COMMIT,
        build_flags=flags,
        artifacts_dir=base / f"artifacts-{generator_hash()}",
        external=external,
    )


def _external_lib(external=None) -> Path | None:
    """The external library to use: ``external`` (the configuration's), else $LLAMA_CPP_LIB."""
    value = str(external) if external is not None else os.environ.get(ENV_LIB, "")
    if not value:
        return None
    path = Path(value).expanduser().absolute()
    if not path.is_file():
        raise SetupError(f"{ENV_LIB}={value} does not name an existing file; point it at a libllama "
                         f"shared library or unset it to build the pinned one")
    return path


def _external_dir(lib: Path) -> Path:
    st = lib.stat()
    ident = f"{os.path.realpath(lib)}\0{st.st_size}\0{st.st_mtime_ns}\0{_LAYOUT_VERSION}"
    return paths.cache_root() / "ext" / hashlib.sha256(ident.encode()).hexdigest()[:16]


def _built_ok(base: Path) -> bool:
    return (base / _INFO_FILE).is_file() and (base / "lib" / _lib_name()).exists()


def _server_ok(base: Path, flags: Sequence[str]) -> bool:
    return RPC_SERVER_TARGET not in _targets(flags) or (base / "lib" / _exe_name(RPC_SERVER_TARGET)).is_file()


def _artifacts_ok(info: LibInfo) -> bool:
    return info.artifacts_dir.is_dir()


def find_library(extra_cmake_args: Iterable[str] | None = None, *, external=None) -> LibInfo | None:
    """The cached library for the current flags (or LLAMA_CPP_LIB), or None if not ready.

    Never downloads or builds; "ready" includes up-to-date artifacts.
    """
    external = _external_lib(external)
    if external is not None:
        base = _external_dir(external)
        if not (base / "headers" / "include" / "llama.h").is_file():
            return None
        info = _info_for(base, external, (), True)
    else:
        flags = cmake_args(extra_cmake_args)
        base = library_dir(flags)
        if not (_built_ok(base) and _server_ok(base, flags)):
            return None
        info = _info_for(base, base / "lib" / _lib_name(), flags, False)
    return info if _artifacts_ok(info) else None


# --- building ----------------------------------------------------------------

def check_toolchain() -> None:
    """Raise SetupError naming what to install when cmake or a C/C++ compiler is missing."""
    missing = []
    cmake = shutil.which("cmake")
    if cmake is None:
        missing.append("cmake")
    if not _find_tool("CC", ("cc", "gcc", "clang")):
        missing.append("a C compiler")
    if not _find_tool("CXX", ("c++", "g++", "clang++")):
        missing.append("a C++ compiler")
    if missing:
        raise SetupError(
            f"cannot build llama.cpp: {' and '.join(missing)} not found on PATH. Install them "
            "(Debian/Ubuntu: sudo apt-get install cmake build-essential; Fedora: sudo dnf install "
            "cmake gcc gcc-c++; macOS: xcode-select --install && brew install cmake), or set "
            f"{ENV_LIB} to an existing libllama."
        )
    out = subprocess.run([cmake, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    if m and (int(m.group(1)), int(m.group(2))) < _MIN_CMAKE:
        raise SetupError(f"cmake {m.group(1)}.{m.group(2)} is too old: llama.cpp needs cmake >= "
                         f"{_MIN_CMAKE[0]}.{_MIN_CMAKE[1]} (pip install cmake, or your package manager)")


def _find_tool(env_var: str, names: Sequence[str]) -> str | None:
    value = os.environ.get(env_var, "")
    if value:
        words = shlex.split(value)  # CC may be "ccache gcc"
        return shutil.which(words[0]) if words else None
    return next((found for n in names if (found := shutil.which(n))), None)


def _jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


def _run_logged(cmd: list[str], log, show_progress: bool) -> None:
    """Run a build command, all output to ``log``; echo only progress lines."""
    last: deque[str] = deque(maxlen=30)
    log.write(f"$ {shlex.join(cmd)}\n")
    log.flush()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                last.append(line.rstrip("\n"))
                if show_progress and _PROGRESS.match(line):
                    # cmake's [NN%] lines; compiler warnings stay in the log
                    print("    " + line.rstrip("\n"), file=sys.stderr, flush=True)
            proc.wait()
        except BaseException:
            proc.kill()  # Ctrl-C: stop the compiler too, then clean up
            raise
    if proc.returncode < 0:
        raise SetupError(f"`{shlex.join(cmd[:2])} ...` was stopped by signal {-proc.returncode}; "
                         "nothing was kept, run setup again to restart the build")
    if proc.returncode != 0:
        tail = "\n".join(last)
        raise SetupError(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}); full log: "
                         f"{log.name}\n{tail}")


# What each cached folder keeps of a build tree.  The library's: libllama and
# the libggml* it links (libggml, -base, -cpu, -rpc, a GPU backend's), nothing
# else, so a library staged from a build that also made llama-server holds the
# same files as one from a library-only build.  llama-server's: those plus what
# it links beyond them (libllama-common, libllama-server-impl, libmtmd).
LIBRARY_LIBS = re.compile(r"^lib(llama|ggml(-[\w-]+)?)\.(so|dylib)(\.[\d.]+)?$")
SERVER_LIBS = re.compile(r"^lib(llama|ggml|mtmd)[\w-]*\.(so|dylib)(\.[\d.]+)?$")


def build_targets(flags: Sequence[str], *, with_server: bool = False) -> list[str]:
    """The cmake targets of a library build (``llama``, ``ggml-rpc-server`` with RPC), plus llama-server."""
    targets = _targets(flags)
    if with_server:
        targets.append(LLAMA_SERVER_TARGET)
    return targets


def _copy_libs(build: Path, dest: Path, keep: re.Pattern) -> None:
    """Copy the shared libraries named by ``keep`` (files and their soname links) out of the build tree."""
    dest.mkdir(parents=True)
    found = sorted(p for p in build.rglob("lib*") if keep.match(p.name) and "CMakeFiles" not in p.parts)
    for p in found:
        target = dest / p.name
        if target.exists() or target.is_symlink():
            continue
        if p.is_symlink():
            os.symlink(os.readlink(p), target)  # relative soname links stay relative
        else:
            shutil.copy2(p, target)
    if not (dest / _lib_name()).exists():
        raise SetupError(f"the build finished but produced no {_lib_name()} (looked under {build})")


def _copy_programs(build: Path, dest: Path, targets: Sequence[str]) -> None:
    """Copy the built executables (``ggml-rpc-server``, ``llama-server``) out of the build tree."""
    for target in targets:
        if target == "llama":
            continue
        name = _exe_name(target)
        found = sorted(p for p in build.rglob(name) if p.is_file() and "CMakeFiles" not in p.parts)
        if not found:
            raise SetupError(f"the build finished but produced no {name} (looked under {build})")
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(found[0], dest / name)


def _copy_headers(src: Path, dest: Path) -> None:
    """Copy llama.h and ggml's public headers, keeping the tree's relative layout."""
    for rel in ("include", "ggml/include"):
        out = dest / rel
        out.mkdir(parents=True, exist_ok=True)
        for header in (src / rel).glob("*.h"):
            shutil.copy2(header, out / header.name)


def stage_build(build: Path, src: Path, stage: Path, *, libs: re.Pattern, programs: Sequence[str],
                flags: Sequence[str], seconds: float) -> None:
    """Lay out one cached folder in ``stage`` from a finished build tree.

    ``lib/`` gets the shared libraries matching ``libs`` and the executables
    named in ``programs`` (next to the libraries their $ORIGIN runpath
    names), ``headers/`` the pinned public headers, and ``info.json`` records
    ``flags`` (the flags of this folder's cache key) and the build time.
    """
    _copy_libs(build, stage / "lib", libs)
    _copy_programs(build, stage / "lib", programs)
    _copy_headers(src, stage / "headers")
    (stage / _INFO_FILE).write_text(json.dumps({
        "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
        "commit": LLAMA_CPP_COMMIT,
        "build_flags": list(flags),
        "build_seconds": seconds,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, indent=2))


def _compile(src: Path, build: Path, flags: Sequence[str], targets: Sequence[str], log_path: Path) -> None:
    """Configure ``src`` with ``flags`` into ``build`` and build ``targets``, all output to ``log_path``."""
    jobs = _jobs()
    with open(log_path, "w") as log:
        say(f"configuring llama.cpp {LLAMA_CPP_COMMIT} (log: {log_path})")
        _run_logged(["cmake", "-S", str(src), "-B", str(build), *flags], log, False)
        say(f"building {', '.join(targets)} with {jobs} job(s); this takes a few minutes "
            "on 2 cores (longer with a GPU backend)")
        _run_logged(["cmake", "--build", str(build), "--config", "Release",
                     "--target", *targets, "-j", str(jobs)], log, True)


def _new_work_dir(*finals: Path) -> Path:
    """A fresh temp folder for a build of ``finals``, after removing ones an interrupted build left."""
    for final in finals:
        for stale in paths.tmp_dir().glob(f"build-{final.name}-*"):
            remove_tree(stale)  # left by an interrupted build; the caller holds the locks
    return Path(tempfile.mkdtemp(prefix=f"build-{finals[0].name}-", dir=paths.tmp_dir()))


def _move_into_place(stage: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_tree(final)  # an incomplete folder (tampered with) under the final name
    os.rename(stage, final)


def _build(flags: tuple[str, ...], final: Path, targets: Sequence[str] | None = None) -> None:
    """Configure and build ``targets`` (default: the library's) into a temp folder; rename it to ``final``."""
    check_toolchain()
    src = ensure_source()
    work = _new_work_dir(final)
    started = time.monotonic()
    try:
        stage, build = work / "stage", work / "build"
        targets = list(targets or _targets(flags))
        _compile(src, build, flags, targets, paths.subdir("logs") / f"build-{final.name}.log")
        seconds = round(time.monotonic() - started, 1)
        libs = SERVER_LIBS if LLAMA_SERVER_TARGET in targets else LIBRARY_LIBS
        stage_build(build, src, stage, libs=libs, programs=targets, flags=flags, seconds=seconds)
        _move_into_place(stage, final)
        say(f"built {' and '.join(targets)} in {seconds:.0f} s -> {final}")
    finally:
        remove_tree(work)


def _build_library_and_server(lib_flags: tuple[str, ...], lib_final: Path, server_final: Path) -> None:
    """Build the library and llama-server in one configure and one ``cmake --build``; cache both.

    The tree is configured with the server's flags (the library's plus
    SERVER_CMAKE_ARGS).  Those only add the server's targets (tools/server and
    what it links); libllama, libggml* and ggml-rpc-server compile from the
    same sources with the same options as in a library-only build, so they are
    staged under the library's own cache key, with the library's flags in its
    info.json, exactly as a library-only build leaves them.  The caller holds
    both folders' locks.
    """
    check_toolchain()
    src = ensure_source()
    work = _new_work_dir(lib_final, server_final)
    server_flags = lib_flags + SERVER_CMAKE_ARGS
    lib_targets = build_targets(lib_flags)
    started = time.monotonic()
    try:
        build = work / "build"
        _compile(src, build, server_flags, build_targets(lib_flags, with_server=True),
                 paths.subdir("logs") / f"build-{lib_final.name}+server-{server_final.name}.log")
        seconds = round(time.monotonic() - started, 1)
        stage_build(build, src, work / "lib-stage", libs=LIBRARY_LIBS, programs=lib_targets,
                    flags=lib_flags, seconds=seconds)
        stage_build(build, src, work / "server-stage", libs=SERVER_LIBS, programs=[LLAMA_SERVER_TARGET],
                    flags=server_flags, seconds=seconds)
        _move_into_place(work / "lib-stage", lib_final)
        _move_into_place(work / "server-stage", server_final)
        say(f"built {', '.join(lib_targets)} and {LLAMA_SERVER_TARGET} in one build, {seconds:.0f} s "
            f"-> {lib_final} and {server_final}")
    finally:
        remove_tree(work)


def _prepare_external(lib: Path, base: Path) -> None:
    """Cache the pinned headers for an LLAMA_CPP_LIB library (no build)."""
    src = ensure_source()
    work = Path(tempfile.mkdtemp(prefix="ext-", dir=paths.tmp_dir()))
    try:
        _copy_headers(src, work / "headers")
        (work / _INFO_FILE).write_text(json.dumps({"external_lib": str(lib)}, indent=2))
        base.parent.mkdir(parents=True, exist_ok=True)
        remove_tree(base)
        os.rename(work, base)
    finally:
        remove_tree(work)


def _ensure_artifacts(info: LibInfo) -> None:
    """Generate the cdef and ABI probe results for ``info`` into its artifacts folder."""
    if _artifacts_ok(info):
        return
    from host.llama.cdefgen import build_artifacts  # the binding's generator

    base = info.artifacts_dir.parent
    say("generating cffi declarations and ABI probe results")
    work = Path(tempfile.mkdtemp(prefix="artifacts-", dir=paths.tmp_dir()))
    try:
        build_artifacts(info.include_dir, info.lib_dir, work / "out", cc=os.environ.get("CC"))
        for old in base.glob("artifacts-*"):
            remove_tree(old)  # made by an older generator
        os.rename(work / "out", info.artifacts_dir)
    finally:
        remove_tree(work)


def ensure_library(extra_cmake_args: Iterable[str] | None = None, *, allow_build: bool = True,
                   external=None) -> LibInfo:
    """Return a ready libllama, building (or preparing LLAMA_CPP_LIB) once.

    Cached by version and flags (see :func:`cache_key`); a warm call only
    checks a few paths.  ``allow_build=False`` raises SetupError instead of
    starting a multi-minute build (artifacts are still regenerated: seconds).
    ``external``: an existing libllama to use instead (else $LLAMA_CPP_LIB).
    """
    external = _external_lib(external)
    if external is not None:
        base = _external_dir(external)
        with file_lock(paths.lock_path(base.name)):
            if not (base / "headers" / "include" / "llama.h").is_file():
                _prepare_external(external, base)
            info = _info_for(base, external, (), True)
            _ensure_artifacts(info)
        return info

    flags = cmake_args(extra_cmake_args)
    base = library_dir(flags)
    info = _info_for(base, base / "lib" / _lib_name(), flags, False)
    if _built_ok(base) and _server_ok(base, flags) and _artifacts_ok(info):
        return info  # the warm path: no lock, no subprocess
    with file_lock(paths.lock_path(base.name)):
        if not (_built_ok(base) and _server_ok(base, flags)):
            if not allow_build:
                raise SetupError(f"libllama is not built for these flags ({base.name}); "
                                 "run `make setup` or `python -m host.setup llama`")
            _build(flags, base)
        _ensure_artifacts(info)
    return info


# --- llama-server --------------------------------------------------------------

def server_build_dir(extra_cmake_args: Iterable[str] | None = None) -> Path:
    """Where llama-server for the current flags is (or will be) cached."""
    return paths.cache_root() / "server" / cache_key(cmake_args(extra_cmake_args) + SERVER_CMAKE_ARGS)


def find_llama_server(extra_cmake_args: Iterable[str] | None = None) -> Path | None:
    """The cached llama-server binary for the current flags, or None (never builds)."""
    path = server_build_dir(extra_cmake_args) / "lib" / _exe_name(LLAMA_SERVER_TARGET)
    # llama-server also needs libmtmd (multimodal) next to it: a folder without it is not a build
    complete = path.is_file() and (path.parent.parent / _INFO_FILE).is_file() and \
        any(path.parent.glob("libmtmd.*"))
    return path if complete else None


def ensure_llama_server(extra_cmake_args: Iterable[str] | None = None, *, allow_build: bool = True) -> Path:
    """Return llama.cpp's llama-server built from the pinned source, building it once (minutes).

    Cached like the library (a folder per flag set, renamed into place when
    complete); its shared libraries sit next to it, found through $ORIGIN.
    When the library for the same flags is not cached yet either (a fresh
    machine: ``make test`` asks for this before the library), one build makes
    both and fills both cache folders, instead of compiling ggml and libllama
    twice; with the library cached, only llama-server is built.
    """
    found = find_llama_server(extra_cmake_args)
    if found is not None:
        return found
    lib_flags = cmake_args(extra_cmake_args)
    lib_base = library_dir(lib_flags)
    base = server_build_dir(extra_cmake_args)

    def library_built() -> bool:
        return _built_ok(lib_base) and _server_ok(lib_base, lib_flags)

    # Lock order, wherever both are taken: the library's, then the server's.
    # The library's lock is taken only when this call may build the library.
    lib_lock = nullcontext() if library_built() else file_lock(paths.lock_path(lib_base.name))
    with lib_lock, file_lock(paths.lock_path(base.name)):
        found = find_llama_server(extra_cmake_args)
        if found is None:
            if not allow_build:
                raise SetupError("llama-server is not built for these flags; run `make llama-server` "
                                 "or `python -m host.setup llama-server`")
            if isinstance(lib_lock, nullcontext) or library_built():
                _build(lib_flags + SERVER_CMAKE_ARGS, base, [LLAMA_SERVER_TARGET])
            else:
                _build_library_and_server(lib_flags, lib_base, base)
            found = find_llama_server(extra_cmake_args)
        if found is None:
            raise SetupError(f"the build finished but {base} has no {LLAMA_SERVER_TARGET}")
    return found
