"""Set-up: the pinned llama.cpp build, the default model, and ``relic doctor``.

Run ``python -m host.setup [all|llama|model|doctor]``; everything is cached
under :func:`host.setup.paths.cache_root` and every step is idempotent.
"""

from host.setup.llama_build import LibInfo, ensure_library, ensure_source, find_library
from host.setup.model_fetch import ensure_default_model, model_path
from host.setup.paths import cache_root

__all__ = [
    "LibInfo",
    "cache_root",
    "ensure_default_model",
    "ensure_library",
    "ensure_source",
    "find_library",
    "model_path",
]
