"""Native contenders, built from the pinned llama.cpp source into Relic's cache.

Two programs, both tied to the exact libllama that Relic loads:

* ``relic-native``: our small C harness (bench/native/relic_native.c), compiled
  in a second or two against the cached library and its pinned headers.  It runs
  the same jobs as the Python contenders (generation, micro-costs, load time).
* ``llama-bench``: llama.cpp's own benchmark tool, built once (minutes) with
  setup's cmake flags plus ``-DLLAMA_BUILD_TOOLS=ON``, only its target.  It is
  run with ``LD_LIBRARY_PATH`` naming Relic's library folder, so libllama and
  libggml* are the very files Relic uses (its own libllama-common and
  libllama-bench-impl come from the tool folder through ``$ORIGIN``).

Cache layout, next to setup's ``lib/`` (see host.setup.paths)::

    tools/<cache key of the tool flags>/bin/llama-bench (+ libllama-common, ...)
    tools/harness-<library key>-<source hash>/relic-native

Both appear by one rename of a finished folder, like setup's builds, so a
failed or interrupted build never looks like a good one.  Nothing built here
goes into the repository.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from host.errors import SetupError  # noqa: E402
from host.setup import llama_build, paths  # noqa: E402
from host.setup.util import file_lock, remove_tree, say  # noqa: E402

HARNESS_SOURCE = Path(__file__).resolve().parent / "relic_native.c"
TOOL_FLAGS = ("-DLLAMA_BUILD_COMMON=ON", "-DLLAMA_BUILD_TOOLS=ON")
_TOOL_LIB = re.compile(r"^lib[\w.-]+\.so(\.[\d.]+)?$")


def tools_root() -> Path:
    """``<cache>/tools``: where the bench's native programs are cached."""
    return paths.cache_root() / "tools"


# --- the C harness -----------------------------------------------------------

def harness_path(lib_info=None) -> Path:
    """Compile (once) and return the C harness, linked to Relic's cached libllama."""
    info = lib_info or llama_build.ensure_library()
    src_hash = hashlib.sha256(HARNESS_SOURCE.read_bytes()).hexdigest()[:12]
    base = tools_root() / f"harness-{Path(info.lib_dir).parent.name}-{src_hash}"
    exe = base / "relic-native"
    if exe.is_file():
        return exe
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise SetupError("no C compiler found (cc/gcc/clang) to build bench/native/relic_native.c")
    with file_lock(paths.lock_path(base.name)):
        if exe.is_file():
            return exe
        work = Path(tempfile.mkdtemp(prefix="harness-", dir=paths.tmp_dir()))
        try:
            cmd = [cc, "-O2", "-std=c11", "-Wall", "-o", str(work / "relic-native"), str(HARNESS_SOURCE),
                   f"-I{info.include_dir}", f"-I{info.ggml_include_dir}", f"-L{info.lib_dir}", "-lllama",
                   f"-Wl,-rpath,{info.lib_dir}", "-lm"]
            say("compiling bench/native/relic_native.c against the cached libllama")
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                raise SetupError(f"compiling the C harness failed:\n{out.stderr[-3000:]}")
            base.parent.mkdir(parents=True, exist_ok=True)
            remove_tree(base)
            os.rename(work, base)
        finally:
            remove_tree(work)
    return exe


# --- llama-bench ----------------------------------------------------------------

def tool_flags() -> tuple[str, ...]:
    """Setup's cmake flags with common + tools switched on (with cmake the last -D wins)."""
    return llama_build.cmake_args() + TOOL_FLAGS


def llama_bench_dir() -> Path:
    return tools_root() / llama_build.cache_key(tool_flags())


def find_llama_bench() -> Path | None:
    """The cached llama-bench, or None (never builds)."""
    exe = llama_bench_dir() / "bin" / "llama-bench"
    return exe if exe.is_file() and (exe.parent.parent / "info.json").is_file() else None


def ensure_llama_bench() -> Path:
    """Build llama-bench from the pinned source once (a few minutes on 2 cores), then cached."""
    found = find_llama_bench()
    if found is not None:
        return found
    final = llama_bench_dir()
    with file_lock(paths.lock_path(final.name)):
        found = find_llama_bench()
        if found is not None:
            return found
        llama_build.check_toolchain()
        src = llama_build.ensure_source()
        for stale in paths.tmp_dir().glob(f"build-{final.name}-*"):
            remove_tree(stale)
        work = Path(tempfile.mkdtemp(prefix=f"build-{final.name}-", dir=paths.tmp_dir()))
        log_path = paths.subdir("logs") / f"build-{final.name}.log"
        started = time.monotonic()
        try:
            build, stage = work / "build", work / "stage"
            jobs = str(llama_build._jobs())
            with open(log_path, "w") as log:
                say(f"configuring llama.cpp tools (log: {log_path})")
                llama_build._run_logged(["cmake", "-S", str(src), "-B", str(build), *tool_flags()], log, False)
                say(f"building llama-bench with {jobs} job(s); a few minutes on 2 cores, once")
                llama_build._run_logged(["cmake", "--build", str(build), "--config", "Release",
                                         "--target", "llama-bench", "-j", jobs], log, True)
            exe = next((p for p in build.rglob("llama-bench") if p.is_file() and os.access(p, os.X_OK)), None)
            if exe is None:
                raise SetupError(f"the build finished but produced no llama-bench (log: {log_path})")
            (stage / "bin").mkdir(parents=True)
            shutil.copy2(exe, stage / "bin" / "llama-bench")
            for p in exe.parent.iterdir():  # the shared libraries it was linked with ($ORIGIN RUNPATH)
                if _TOOL_LIB.match(p.name):
                    target = stage / "bin" / p.name
                    if p.is_symlink():
                        os.symlink(os.readlink(p), target)
                    else:
                        shutil.copy2(p, target)
            seconds = round(time.monotonic() - started, 1)
            (stage / "info.json").write_text(json.dumps({
                "commit": llama_build.LLAMA_CPP_COMMIT, "build_flags": list(tool_flags()),
                "build_seconds": seconds, "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2))
            final.parent.mkdir(parents=True, exist_ok=True)
            remove_tree(final)
            os.rename(stage, final)
            say(f"built llama-bench in {seconds:.0f} s -> {final}")
        finally:
            remove_tree(work)
    return final / "bin" / "llama-bench"


def llama_bench_env(lib_info=None) -> dict:
    """Environment that makes llama-bench load Relic's own libllama and libggml*."""
    info = lib_info or llama_build.ensure_library()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(info.lib_dir), env.get("LD_LIBRARY_PATH")]))
    return env


def main() -> None:
    """``python bench/native/build.py``: build both native programs, print their paths."""
    print(harness_path())
    print(ensure_llama_bench())


if __name__ == "__main__":
    main()
