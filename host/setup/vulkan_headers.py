"""Vulkan headers new enough for the pinned ggml-vulkan, when the system's are too old.

ggml-vulkan at the pinned commit uses ``VK_EXT_layer_settings`` (Vulkan
headers 1.3.272 and later) unconditionally.  Debian 12 ships headers 1.3.239,
so there the Vulkan build fails to compile.  This step fetches Debian 13's
``libvulkan-dev`` package with apt (its own lists and cache under the Relic
cache; the system's apt configuration and installed packages are untouched),
unpacks only its ``usr/include`` into ``$RELIC_HOME/vulkan-headers-<version>``
and the Vulkan build then compiles against it (``-DVulkan_INCLUDE_DIR``, part
of the cache key).  The loader, driver and glslc stay the system's.

``python -m host.setup vulkan-headers`` (``make vulkan-deps`` runs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from host.errors import SetupError
from host.setup import paths
from host.setup.util import apt_private_options, file_lock, remove_tree, say

DEBIAN_SUITE = "trixie"
PACKAGE = "libvulkan-dev"
PACKAGE_VERSION = "1.4.309.0-1"
NEEDED_SYMBOL = "VK_EXT_layer_settings"  # what the pinned ggml-vulkan needs from the headers
SYSTEM_ROOTS = ("/usr/include", "/usr/local/include")


def headers_ok(include_dir: Path) -> bool:
    """True when ``include_dir/vulkan`` has the C and C++ headers ggml-vulkan needs."""
    core = Path(include_dir) / "vulkan" / "vulkan_core.h"
    try:
        text = core.read_text(errors="replace")
    except OSError:
        return False
    return NEEDED_SYMBOL in text and (Path(include_dir) / "vulkan" / "vulkan.hpp").is_file()


def system_headers() -> Path | None:
    """The system include folder whose Vulkan headers suffice, or None."""
    roots = list(SYSTEM_ROOTS)
    sdk = os.environ.get("VULKAN_SDK", "")
    if sdk:
        roots.insert(0, str(Path(sdk) / "include"))
    return next((Path(r) for r in roots if headers_ok(Path(r))), None)


def system_header_version() -> str | None:
    """VK_HEADER_VERSION of the first system vulkan_core.h, for messages."""
    for r in SYSTEM_ROOTS:
        try:
            m = re.search(r"#define VK_HEADER_VERSION (\d+)", (Path(r) / "vulkan" / "vulkan_core.h").read_text())
        except OSError:
            continue
        if m:
            return f"1.x.{m.group(1)}"
    return None


def cached_dir() -> Path:
    """Where the fetched headers live (``<dir>/vulkan/vulkan.hpp`` ...)."""
    return paths.cache_root() / f"vulkan-headers-{PACKAGE_VERSION}" / "include"


def include_dir() -> Path | None:
    """The headers the Vulkan build should use: None for the system's, else the fetched ones.

    Raises SetupError when neither suffices (the message says how to fix it).
    """
    if system_headers() is not None:
        return None
    if headers_ok(cached_dir()):
        return cached_dir()
    found = system_header_version()
    raise SetupError(
        f"the Vulkan headers here ({found or 'none found'}) lack {NEEDED_SYMBOL}, which the pinned "
        f"ggml-vulkan needs (headers 1.3.272 or later): run `make vulkan-deps` (fetches Debian 13's "
        f"{PACKAGE} {PACKAGE_VERSION} headers into the Relic cache) or install the LunarG Vulkan SDK "
        "and set VULKAN_SDK")


def ensure() -> Path | None:
    """Fetch the headers if the system's are too old; return the include folder to use (None: system)."""
    if system_headers() is not None:
        return None
    final = cached_dir()
    if headers_ok(final):
        return final
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SetupError(f"newer Vulkan headers are needed and {tool} is not here (not Debian?): install "
                             "the LunarG Vulkan SDK and set VULKAN_SDK")
    with file_lock(paths.lock_path(final.parent.name)):
        if headers_ok(final):
            return final
        work = Path(tempfile.mkdtemp(prefix="vkh-", dir=paths.tmp_dir()))
        try:
            deb = _download(work)
            _extract_headers(deb, work / "x")
            if not headers_ok(work / "x" / "usr" / "include"):
                raise SetupError(f"{deb.name} has no usable Vulkan headers ({NEEDED_SYMBOL} missing)")
            remove_tree(final.parent)
            (work / "final").mkdir()
            os.rename(work / "x" / "usr" / "include", work / "final" / "include")
            os.rename(work / "final", final.parent)
        finally:
            remove_tree(work)
    say(f"Vulkan headers {PACKAGE_VERSION} -> {final}")
    return final


def _download(work: Path) -> Path:
    """apt-get download the pinned package from Debian 13 with private lists; return the .deb."""
    opts = apt_private_options(work, DEBIAN_SUITE)
    say(f"fetching Debian {DEBIAN_SUITE}'s {PACKAGE} {PACKAGE_VERSION} (headers only are kept)")
    for cmd in (["apt-get", "-q", *opts, "update"],
                ["apt-get", "-q", *opts, "download", f"{PACKAGE}={PACKAGE_VERSION}"]):
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"`{' '.join(cmd[:2])} ... {cmd[-1]}` failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip()[-800:]}")
    debs = sorted(work.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise SetupError(f"apt-get download saved no {PACKAGE} package")
    return debs[0]


def _extract_headers(deb: Path, dest: Path) -> None:
    proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()[-500:]}")
