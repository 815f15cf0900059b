"""Which llama.cpp build this process loads: the configured GPU variant if it is built and
passes its probe (in a child process), else the CPU build, with one line saying why.

Set-up's job, run by ``host.prepare`` (and ``relic doctor``) before anything
loads a model; the binding only loads the library chosen here.
"""

from __future__ import annotations

from pathlib import Path

from host.errors import GpuProbeError, SetupError
from host.setup import gpu, llama_build


def choose_library(kind: str | None = None, external=None, say=print):
    """``(LibInfo, Selection)``: build or find the library, probing a GPU build first.

    ``kind``: cpu, cuda, vulkan, metal or hip (None: what ``make setup GPU=...``
    saved, else cpu).  ``external``: an existing libllama to use as it is.
    Builds the CPU library when it is missing (cached); never builds a GPU one.
    """
    from host.llama.lib import LibPaths, Selection
    from host.llama.probe import probe_gpu
    from host.setup.model_fetch import cached_default_model

    if external is not None:
        info = llama_build.ensure_library(external=external)
        return info, Selection("external", "library setting", "external")
    if kind is not None:
        source = "the gpu setting"
    else:
        saved = gpu.saved_choice()
        kind, source = (saved, f"make setup GPU={saved}") if saved else ("cpu", "default")
    if kind == "cpu":
        return llama_build.ensure_library(gpu.flags("cpu")), Selection(kind, source, "cpu")
    reason, verdict = "", None
    try:
        info = llama_build.ensure_library(gpu.flags(kind), allow_build=False)
    except SetupError:
        reason = f"the {kind} build is not there (run `make setup GPU={kind}`)"
    else:
        paths = LibPaths(Path(info.lib_path), Path(info.include_dir), Path(info.artifacts_dir))
        try:
            verdict = probe_gpu(paths, cached_default_model())
        except GpuProbeError as exc:
            reason = f"its probe failed: {exc}"
        else:
            return info, Selection(kind, source, kind, "", verdict)
    say(f"GPU build '{kind}' not used, running on the CPU: {reason}")
    return llama_build.ensure_library(gpu.flags("cpu")), Selection(kind, source, "cpu", reason, verdict)
