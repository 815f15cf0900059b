"""GPU build variants: one word (``cuda``, ``vulkan``, ``metal``, ``hip``, ``cpu``) to cmake flags.

``make setup GPU=vulkan`` (``python -m host.setup all --gpu vulkan``) checks the
toolchain first and names the package to install when something is missing,
builds the variant (its flags are part of the cache key, so each variant is
its own cached build and switching back is instant), and records the word as
this virtual environment's choice.  Every later load uses the choice:

* ``$RELIC_GPU`` when set (one of the words; ``cpu`` forces the CPU build),
* else the word saved by the last ``make setup GPU=...`` in this venv,
* else ``cpu``.

The CPU variant is always built too: it is what a GPU build falls back to
when its probe fails (see :mod:`host.llama.probe`).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from host.errors import SetupError
from host.setup import paths

ENV_GPU = "RELIC_GPU"
CHOICE_FILE = "relic-gpu"

# cmake flags added after the base flags (see llama_build.cmake_args).  The
# CPU variant turns Metal off explicitly: ggml enables it by default on macOS,
# and the fallback must not touch a GPU.
BACKENDS: dict[str, tuple[str, ...]] = {
    "cpu": ("-DGGML_METAL=OFF",) if sys.platform == "darwin" else (),
    "cuda": ("-DGGML_CUDA=ON",),
    "vulkan": ("-DGGML_VULKAN=ON",),
    "metal": ("-DGGML_METAL=ON",),
    "hip": ("-DGGML_HIP=ON",),
}


def check_kind(kind: str) -> str:
    """``kind`` lower-cased, or SetupError listing the accepted words."""
    word = (kind or "").strip().lower()
    if word in ("", "none", "off"):
        word = "cpu"
    if word not in BACKENDS:
        raise SetupError(f"unknown GPU backend {kind!r}: use one of {', '.join(BACKENDS)}")
    return word


def flags(kind: str) -> tuple[str, ...]:
    """The extra cmake flags of a variant.

    Vulkan: when the system's headers are too old for the pinned ggml-vulkan
    and newer ones were fetched (host.setup.vulkan_headers), the build uses those.
    """
    kind = check_kind(kind)
    extra: tuple[str, ...] = ()
    if kind == "vulkan":
        from host.setup import vulkan_headers

        if vulkan_headers.system_headers() is None and vulkan_headers.headers_ok(vulkan_headers.cached_dir()):
            extra = (f"-DVulkan_INCLUDE_DIR={vulkan_headers.cached_dir()}",)
    return BACKENDS[kind] + extra


def choice_path() -> Path:
    """Where the venv's choice is kept: inside the venv, else in the cache root."""
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        return Path(sys.prefix) / CHOICE_FILE
    return paths.cache_root() / CHOICE_FILE


def saved_choice() -> str | None:
    """The word the last ``make setup GPU=...`` saved, or None."""
    try:
        word = choice_path().read_text().strip()
    except OSError:
        return None
    try:
        return check_kind(word)
    except SetupError:
        return None  # a hand-edited file: ignore it rather than refuse to start


def save_choice(kind: str) -> None:
    """Record ``kind`` as this venv's choice."""
    path = choice_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(check_kind(kind) + "\n")


def selected() -> tuple[str, str]:
    """``(kind, where the choice came from)`` for this process."""
    env = os.environ.get(ENV_GPU, "")
    if env.strip():
        return check_kind(env), f"${ENV_GPU}"
    saved = saved_choice()
    if saved is not None:
        return saved, f"make setup GPU={saved} ({choice_path()})"
    return "cpu", "default"


# --- toolchain checks ---------------------------------------------------------

def _which(names, extra_dirs=()) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for d in extra_dirs:
            candidate = Path(d) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def _header(rel: str, extra_roots=()) -> bool:
    roots = [*extra_roots, "/usr/include", "/usr/local/include", "/opt/homebrew/include"]
    return any((Path(r) / rel).is_file() for r in roots if r)


def _sdk_include() -> list[str]:
    sdk = os.environ.get("VULKAN_SDK", "")
    return [str(Path(sdk) / "include")] if sdk else []


def missing_toolchain(kind: str) -> list[tuple[str, str]]:
    """``[(what is missing, how to install it), ...]`` for building ``kind``; empty when ready."""
    kind = check_kind(kind)
    missing: list[tuple[str, str]] = []
    if kind == "cuda":
        cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
        if not (os.environ.get("CUDACXX") or _which(["nvcc"], [Path(cuda_home) / "bin"])):
            missing.append(("nvcc (the CUDA toolkit)",
                            "Debian/Ubuntu: sudo apt-get install nvidia-cuda-toolkit, or NVIDIA's "
                            "cuda-toolkit package; then put nvcc on PATH (or set CUDACXX)"))
    elif kind == "vulkan":
        if not _header("vulkan/vulkan.h", _sdk_include()):
            missing.append(("the Vulkan headers and loader",
                            "Debian/Ubuntu: sudo apt-get install libvulkan-dev; Fedora: vulkan-headers "
                            "vulkan-loader-devel; or the LunarG Vulkan SDK (set VULKAN_SDK)"))
        else:
            from host.setup import vulkan_headers

            try:
                vulkan_headers.include_dir()
            except SetupError as exc:
                missing.append(("Vulkan headers new enough for ggml-vulkan", str(exc)))
        if not _which(["glslc"], [Path(os.environ.get("VULKAN_SDK", "/nonexistent")) / "bin"]):
            missing.append(("glslc (the GLSL to SPIR-V compiler)",
                            "Debian/Ubuntu: sudo apt-get install glslc; Fedora: glslc; or the LunarG Vulkan SDK"))
        if not _header("spirv/unified1/spirv.hpp", _sdk_include()):
            missing.append(("SPIRV-Headers",
                            "Debian/Ubuntu: sudo apt-get install spirv-headers; Fedora: spirv-headers-devel; "
                            "or the LunarG Vulkan SDK"))
    elif kind == "metal":
        if sys.platform != "darwin":
            missing.append(("macOS", "the Metal backend builds only on macOS; use cuda, vulkan or hip here"))
        elif not _which(["xcrun"]):
            missing.append(("the Xcode command-line tools", "xcode-select --install"))
    elif kind == "hip":
        rocm = os.environ.get("ROCM_PATH", "/opt/rocm")
        if not _which(["hipcc", "hipconfig"], [Path(rocm) / "bin"]):
            missing.append(("hipcc (ROCm/HIP)",
                            "Debian/Ubuntu: sudo apt-get install hipcc rocm-dev, or AMD's "
                            "`amdgpu-install --usecase=hip`; set GPU targets with "
                            "RELIC_CMAKE_ARGS=-DGPU_TARGETS=gfx1100 (your card's)"))
    return missing


def check_toolchain(kind: str) -> None:
    """Raise SetupError naming each missing tool and the package that provides it."""
    missing = missing_toolchain(kind)
    if missing:
        lines = "\n".join(f"  - {what}: {how}" for what, how in missing)
        raise SetupError(f"cannot build the {kind} variant of llama.cpp; missing:\n{lines}\n"
                         f"(`make setup` without GPU= builds the CPU variant)")
