"""The Lua corpus of the differential test: pure-Lua libraries from Debian packages.

tests/test_lua_differential.py runs the same Lua in a sandboxed mod, a trusted
mod and plain LuaJIT.  Besides the project's own Lua it needs code no one here
wrote; this step fetches pinned Debian 12 packages of pure-Lua libraries with
apt (private lists and cache under the Relic cache; the system's apt
configuration and installed packages are untouched), and keeps their Lua 5.1
trees and dkjson's own test suite in ``$RELIC_HOME/lua-corpus-<n>/``:

    lua/          dkjson.lua, inspect.lua, pl/*.lua, argparse.lua, markdown.lua, ...
    tests/        jsontest.lua (dkjson's test suite)

``python -m host.setup lua-corpus`` (``make lua-corpus``, part of ``make test``).
Idempotent: a complete cached copy is used as is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from host.errors import SetupError
from host.setup import paths
from host.setup.util import apt_private_options, file_lock, remove_tree, say

DEBIAN_SUITE = "bookworm"
PACKAGES = {
    "lua-dkjson": "2.6-2",
    "lua-inspect": "3.1.1-2",
    "lua-penlight": "1.13.1-3",
    "lua-argparse": "0.7.1-2",
    "lua-markdown": "0.32-6",
    "lua-basexx": "0.3-2.1",
    "lua-binaryheap": "0.4-2",
    "lua-fifo": "0.2-3.1",
    "lua-say": "1.4.1-2",
}
LUA_TREE = Path("usr/share/lua/5.1")
SUITE_FILES = {Path("usr/share/doc/lua-dkjson/examples/jsontest.lua"): "jsontest.lua"}
DONE = ".complete"
VERSION = 1   # bump when PACKAGES changes


def cached_dir() -> Path:
    """Where the corpus lives (may not exist yet)."""
    return paths.cache_root() / f"lua-corpus-{VERSION}"


def cached() -> Path | None:
    """The corpus folder when it is complete, else None."""
    d = cached_dir()
    return d if (d / DONE).is_file() else None


def ensure() -> Path:
    """Fetch and unpack the corpus unless it is cached; return its folder."""
    found = cached()
    if found is not None:
        return found
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SetupError(f"the Lua corpus comes from Debian packages and {tool} is not here (not Debian?)")
    final = cached_dir()
    with file_lock(paths.lock_path(final.name)):
        if cached() is not None:
            return final
        work = Path(tempfile.mkdtemp(prefix="luacorpus-", dir=paths.tmp_dir()))
        try:
            debs = _download(work)
            out = work / "corpus"
            (out / "tests").mkdir(parents=True)
            for deb in debs:
                x = work / "x" / deb.stem
                x.mkdir(parents=True)
                proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(x)], capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SetupError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()[-500:]}")
                if (x / LUA_TREE).is_dir():
                    shutil.copytree(x / LUA_TREE, out / "lua", dirs_exist_ok=True)
                for rel, name in SUITE_FILES.items():
                    if (x / rel).is_file():
                        shutil.copyfile(x / rel, out / "tests" / name)
            missing = [n for n in SUITE_FILES.values() if not (out / "tests" / n).is_file()]
            if missing or not (out / "lua").is_dir():
                raise SetupError(f"the Debian packages lacked expected files: {missing or 'the Lua tree'}")
            (out / DONE).write_text("\n".join(f"{k}={v}" for k, v in PACKAGES.items()) + "\n")
            remove_tree(final)
            os.rename(out, final)
        finally:
            remove_tree(work)
    say(f"Lua corpus ({len(PACKAGES)} Debian packages) -> {final}")
    return final


def _download(work: Path) -> list[Path]:
    opts = apt_private_options(work, DEBIAN_SUITE)
    say(f"fetching {len(PACKAGES)} pure-Lua Debian {DEBIAN_SUITE} packages for the differential test")
    wanted = [f"{name}={version}" for name, version in PACKAGES.items()]
    for cmd in (["apt-get", "-q", *opts, "update"], ["apt-get", "-q", *opts, "download", *wanted]):
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"`{' '.join(cmd[:2])} ... {cmd[-1]}` failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip()[-800:]}")
    debs = sorted(work.glob("*.deb"))
    if len(debs) != len(PACKAGES):
        raise SetupError(f"apt-get download saved {len(debs)} of {len(PACKAGES)} packages")
    return debs
