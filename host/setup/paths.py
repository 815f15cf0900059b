"""Where Relic keeps what setup downloads and builds.

Everything lives under one cache root, so deleting that folder resets setup
and nothing is ever written into the repository:

* ``$RELIC_HOME`` when set (any path; ``~`` is expanded),
* else ``$XDG_CACHE_HOME/relic`` when that is set to an absolute path
  (the XDG spec says a relative value must be ignored),
* else ``~/.cache/relic``.

Layout under the root (each part owned by one module)::

    src/llama.cpp-<commit>/     vendor/llama.cpp of the pinned sdist   (llama_build)
    lib/<version>-<hash>/       built shared libraries + headers       (llama_build)
    ext/<hash>/                 headers + artifacts for LLAMA_CPP_LIB  (llama_build)
    server/<version>-<hash>/    llama-server + the libraries it needs  (llama_build)
    models/<file>.gguf          verified model files                   (model_fetch)
    logs/                       full build logs
    locks/                      one lock file per cached item
    tmp/                        downloads and builds in progress
"""

from __future__ import annotations

import os
from pathlib import Path


_root: Path | None = None  # set by use_root (the configuration's cache_dir)


def use_root(path) -> None:
    """Use ``path`` as the cache root from now on (``Config.cache_dir``, applied by host.prepare)."""
    global _root
    _root = Path(path).expanduser().absolute()


def cache_root() -> Path:
    """The cache root: the configured one, else $RELIC_HOME for set-up's own command line (not created)."""
    if _root is not None:
        return _root
    relic_home = os.environ.get("RELIC_HOME", "")
    if relic_home:
        return Path(relic_home).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "relic"
    return Path.home() / ".cache" / "relic"


def subdir(name: str) -> Path:
    """A folder under the cache root, created on first use."""
    path = cache_root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def tmp_dir() -> Path:
    """Scratch space on the same file system as the cache, so renames are atomic."""
    return subdir("tmp")


def lock_path(name: str) -> Path:
    """The lock file guarding one cached item (see :func:`host.setup.util.file_lock`)."""
    return subdir("locks") / f"{name}.lock"
