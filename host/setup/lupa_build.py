"""lupa's LuaJIT built the way CET builds its LuaJIT: with LUAJIT_ENABLE_LUA52COMPAT.

Cyber Engine Tweaks links OpenResty's LuaJIT 2.1 through xmake's
`openrestry-luajit` package, whose build defines LUAJIT_ENABLE_LUA52COMPAT
(and GC64).  CET mods rely on what that flag brings: `table.unpack`,
`table.pack`, `rawlen`, `__pairs`/`__ipairs`/`__len` on tables, and no
"ambiguous syntax" error for a line that starts with `(`.  The lupa wheel
on PyPI builds its bundled LuaJIT without it.

This step downloads the pinned lupa sdist (sha256-checked), removes every
bundled Lua but LuaJIT 2.1 (so only `lupa.luajit21` is built), turns the flag
on in LuaJIT's own Makefile, builds a wheel with pip (LuaJIT and the
extension from the sdist's generated C; a few minutes on 2 cores), caches the
wheel under `$RELIC_HOME/lupa/`, and installs it into the running
interpreter's environment.  A warm run only checks the installed lupa.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from host.errors import SetupError
from host.setup import paths
from host.setup.util import file_lock, pip_download, remove_tree, run_forwarding, say, verify_sha256

LUPA_VERSION = "2.8"
SDIST_SHA256 = "d8022641b9ec8ecf2c5ecbe9f47e5a70e0b87c4b5ae921b92cb02a638e0acd08"
FLAG_LINE = "#XCFLAGS+= -DLUAJIT_ENABLE_LUA52COMPAT"
_LAYOUT = 1

# Run in a child interpreter: the answer must not depend on a lupa this
# process may already have imported.
_PROBE = r"""
from lupa import luajit21
rt = luajit21.LuaRuntime()
ok = rt.eval("type(table.unpack) == 'function' and type(rawlen) == 'function'")
amb = rt.execute("return (load('local t = print\\n(print)(1)')) ~= nil")
print("LUA52COMPAT" if ok and amb else "PLAIN")
"""


def compat_installed(python: str = sys.executable) -> bool:
    """Whether `python`'s lupa.luajit21 was built with LUAJIT_ENABLE_LUA52COMPAT."""
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == "LUA52COMPAT"


def wheel_dir() -> Path:
    """Cache folder of the built wheel (one per lupa version, Python and machine)."""
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}"
    return paths.cache_root() / "lupa" / f"lupa-{LUPA_VERSION}-lua52compat-{tag}-v{_LAYOUT}"


def cached_wheel() -> Path | None:
    """The built wheel, if the cache has it."""
    d = wheel_dir()
    wheels = sorted(d.glob("lupa-*.whl")) if d.is_dir() else []
    return wheels[0] if wheels else None


def _safe_extract(tarball: Path, dest: Path) -> None:
    with tarfile.open(tarball) as tf:
        for m in tf.getmembers():
            name = m.name
            if name.startswith("/") or ".." in Path(name).parts or not (m.isfile() or m.isdir()):
                continue
            tf.extract(m, dest, set_attrs=False)


def _prepare_tree(root: Path) -> None:
    third = root / "third-party"
    if not (third / "luajit21" / "src" / "Makefile").is_file():
        raise SetupError(f"the lupa {LUPA_VERSION} sdist has no third-party/luajit21/src/Makefile")
    for sub in third.iterdir():
        if sub.is_dir() and sub.name != "luajit21" and sub.name.startswith("lua"):
            remove_tree(sub)
    makefile = third / "luajit21" / "src" / "Makefile"
    text = makefile.read_text()
    if FLAG_LINE not in text:
        raise SetupError(f"LuaJIT's Makefile in lupa {LUPA_VERSION} has no line '{FLAG_LINE}' to enable")
    makefile.write_text(text.replace(FLAG_LINE, FLAG_LINE.lstrip("#"), 1))


def build_wheel() -> Path:
    """Download, patch and build; returns the cached wheel."""
    final = wheel_dir()
    with file_lock(paths.lock_path(final.name)):
        found = cached_wheel()
        if found is not None:
            return found
        work = Path(tempfile.mkdtemp(prefix="lupa-", dir=paths.tmp_dir()))
        try:
            say(f"downloading lupa=={LUPA_VERSION} (source only; ~6 MB)")
            # pip prepares an sdist's metadata by running its setup.py, and lupa's
            # setup.py builds every bundled Lua while it is imported (minutes);
            # LUPA_NO_BUNDLE=true keeps that step to the metadata.  Only lupa itself must
            # come as source: its build tools (setuptools, Cython) come as wheels, which
            # saves building Cython from source first (tens of minutes on two cores).
            old = os.environ.get("LUPA_NO_BUNDLE")
            os.environ["LUPA_NO_BUNDLE"] = "true"
            try:
                files = pip_download(["--no-binary", "lupa", "--no-deps", f"lupa=={LUPA_VERSION}"],
                                     work / "dl")
            finally:
                if old is None:
                    os.environ.pop("LUPA_NO_BUNDLE", None)
                else:
                    os.environ["LUPA_NO_BUNDLE"] = old
            sdists = [f for f in files if f.name.endswith((".tar.gz", ".tgz"))]
            if len(sdists) != 1:
                raise SetupError(f"pip download saved {[f.name for f in files]}, expected one sdist")
            verify_sha256(sdists[0], SDIST_SHA256, f"lupa {LUPA_VERSION} sdist")
            _safe_extract(sdists[0], work / "src")
            root = work / "src" / f"lupa-{LUPA_VERSION}"
            _prepare_tree(root)
            say("building lupa's LuaJIT 2.1 with LUAJIT_ENABLE_LUA52COMPAT (as CET builds it; a few minutes)")
            os.environ.pop("LUPA_NO_BUNDLE", None)   # the build itself uses the (patched) bundle
            run_forwarding([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps",
                            "--disable-pip-version-check", "-w", str(work / "out")])
            wheels = sorted((work / "out").glob("lupa-*.whl"))
            if len(wheels) != 1:
                raise SetupError(f"building lupa gave {[w.name for w in wheels]}, expected one wheel")
            final.mkdir(parents=True, exist_ok=True)
            target = final / wheels[0].name
            os.replace(wheels[0], target)
            return target
        finally:
            remove_tree(work)


def ensure_compat_lupa() -> str:
    """Make the running environment's lupa CET's dialect; returns what was done."""
    if compat_installed():
        return "cached: lupa.luajit21 has LUAJIT_ENABLE_LUA52COMPAT"
    wheel = cached_wheel() or build_wheel()
    say(f"installing {wheel.name}")
    run_forwarding([sys.executable, "-m", "pip", "install", "--force-reinstall", "--no-deps",
                    "--disable-pip-version-check", str(wheel)])
    if not compat_installed():
        raise SetupError(f"installed {wheel} but lupa.luajit21 still lacks Lua 5.2 compatibility; "
                         f"delete {wheel_dir()} and run setup again")
    return f"ready: {wheel}"
