"""llama-cpp-python 0.3.36, built from the pinned sdist in its own virtualenv in the cache.

The contender named for comparison: the same source distribution Relic takes its
llama.cpp from (checked by the same sha256), compiled by ``pip install`` with
setup's cmake flags in ``CMAKE_ARGS`` (plus ``-DLLAVA_BUILD=OFF``: the
multimodal library is not benchmarked and would double the build).  The
package builds its own libllama from the vendored tree; that takes several
minutes on 2 cores, once.  The virtualenv lives at::

    <cache>/bench-envs/llama-cpp-python-0.3.36-<hash of flags + Python>/

It is made in a temp folder and renamed into place when complete, and is only
ever run as ``<venv>/bin/python`` (a renamed venv's scripts have stale
shebangs; ``python -m`` does not care).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from host.errors import SetupError  # noqa: E402
from host.setup import llama_build, paths  # noqa: E402
from host.setup.util import file_lock, pip_download, remove_tree, say, verify_sha256  # noqa: E402

VERSION = llama_build.LLAMA_CPP_PYTHON_VERSION
EXTRA_CMAKE_ARGS = ("-DLLAVA_BUILD=OFF",)
_PROGRESS = re.compile(r"\[\s*\d+%\]|\[\d+/\d+\]")


def cmake_args() -> tuple[str, ...]:
    """Setup's flags, then ours (with cmake the last -D wins)."""
    return llama_build.cmake_args() + EXTRA_CMAKE_ARGS


def env_dir() -> Path:
    """Where the virtualenv for the current flags and Python is (or will be)."""
    blob = json.dumps({"flags": list(cmake_args()), "python": sys.version_info[:2],
                       "sdist": llama_build.SDIST_SHA256}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return paths.cache_root() / "bench-envs" / f"llama-cpp-python-{VERSION}-{digest}"


def _python(base: Path) -> Path:
    return base / "bin" / "python"


def find_python() -> Path | None:
    """The cached virtualenv's python, or None (never builds)."""
    base = env_dir()
    return _python(base) if (base / "relic-bench.json").is_file() and _python(base).exists() else None


def _run(cmd: list[str], log, env=None) -> None:
    """Run a command with all output to ``log``, echoing build progress lines to stderr."""
    last: deque[str] = deque(maxlen=40)
    log.write(f"$ {shlex.join(cmd)}\n")
    log.flush()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", env=env) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                last.append(line.rstrip("\n"))
                step = _PROGRESS.search(line)
                if step:  # ninja's verbose lines are whole compiler commands: show the step and its output file
                    target = re.search(r"\s-o\s+(\S+)", line)
                    shown = Path(target.group(1)).name if target else line.strip()[step.end():][:80]
                    print(f"    {step.group(0)} {shown}", file=sys.stderr, flush=True)
            proc.wait()
        except BaseException:
            proc.kill()
            raise
    if proc.returncode != 0:
        raise SetupError(f"`{shlex.join(cmd[:4])} ...` failed (exit {proc.returncode}); log: {log.name}\n"
                         + "\n".join(last))


def ensure_python() -> Path:
    """Build the virtualenv once and return its python; SetupError says why when impossible."""
    found = find_python()
    if found is not None:
        return found
    final = env_dir()
    with file_lock(paths.lock_path(final.name)):
        found = find_python()
        if found is not None:
            return found
        work = Path(tempfile.mkdtemp(prefix="lcpp-", dir=paths.tmp_dir()))
        log_path = paths.subdir("logs") / f"{final.name}.log"
        started = time.monotonic()
        try:
            say(f"downloading the llama-cpp-python=={VERSION} sdist (~77 MB) for the benchmark contender")
            files = pip_download(["--no-binary", ":all:", "--no-deps", f"llama-cpp-python=={VERSION}"], work / "dl")
            sdist = next((f for f in files if f.name.endswith(".tar.gz")), None)
            if sdist is None:
                raise SetupError(f"pip download saved {[f.name for f in files]}, expected the sdist")
            verify_sha256(sdist, llama_build.SDIST_SHA256, f"llama-cpp-python {VERSION} sdist")
            venv = work / "venv"
            env = dict(os.environ, CMAKE_ARGS=" ".join(cmake_args()), CMAKE_BUILD_PARALLEL_LEVEL=str(llama_build._jobs()))
            with open(log_path, "w") as log:
                say(f"creating a virtualenv for llama-cpp-python (log: {log_path})")
                _run([sys.executable, "-m", "venv", str(venv)], log)
                say("pip install of the sdist compiles llama.cpp: several minutes on 2 cores, once")
                _run([str(_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "--no-cache-dir",
                      "-v", str(sdist)], log, env)
                _run([str(_python(venv)), "-c", "import llama_cpp; print(llama_cpp.__version__)"], log)
            remove_tree(work / "dl")
            seconds = round(time.monotonic() - started, 1)
            (venv / "relic-bench.json").write_text(json.dumps({
                "llama_cpp_python": VERSION, "cmake_args": list(cmake_args()), "build_seconds": seconds,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2))
            final.parent.mkdir(parents=True, exist_ok=True)
            remove_tree(final)
            os.rename(venv, final)
            say(f"llama-cpp-python ready in {seconds:.0f} s -> {final}")
        finally:
            remove_tree(work)
    return _python(final)


if __name__ == "__main__":
    print(ensure_python())
