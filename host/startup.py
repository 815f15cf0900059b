"""Set-up before the game starts: everything a configuration needs, resolved once, with progress.

    config = Config.load(args=..., environ=os.environ)
    prepared = prepare(config)            # builds, downloads, converts, probes (cached)
    host = create_host(config, prepared)   # takes paths only

``prepare`` is the only place that builds llama.cpp, fetches or converts
models and probes a GPU build; the binding, the engine, the worker and
`rag` below it take the paths it returns and never do any of that.  A warm
call (everything cached) checks a few files and returns in milliseconds.
Progress lines go to ``progress`` (stderr by default).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from host.config import Config
from host.errors import SetupError


@dataclass(frozen=True)
class Prepared:
    """What set-up resolved for one configuration (paths only; nothing is loaded)."""

    config: Config
    library: object  # host.setup.llama_build.LibInfo
    selection: object  # host.llama.lib.Selection: which build and why
    model: Path | None  # the chat model (None with a remote server and no embedded mods)
    embed_model: Path | None  # the embedding model for `rag` (None when rag is off)


def _say_to_stderr(line: str) -> None:
    print(f"[relic setup] {line}", file=sys.stderr, flush=True)


def _existing(path: Path, what: str, setting: str) -> Path:
    if not path.is_file():
        raise SetupError(f"{setting}={path} does not name an existing file; point it at a {what} "
                         f"or leave it unset for the default")
    return path


def prepare(config: Config, *, progress: Callable[[str], None] | None = None,
            llm: bool = True) -> Prepared:
    """Resolve, build and download what ``config`` needs; return the paths (see module docstring).

    ``llm=False`` prepares nothing for the model (mods only).  Raises
    SetupError (or ConfigError) with a message for the user.
    """
    from host.engine.grammar import use_checker_model
    from host.llama import lib as _lib
    from host.setup import paths

    say = progress or _say_to_stderr
    if config.cache_dir is not None:
        paths.use_root(config.cache_dir)
    info = selection = model = embed = None
    embedded = llm and (config.server is None or "embedded" in config.backends.values())
    if embedded or (llm and config.rag):
        from host.setup.library import choose_library

        info, selection = choose_library(config.gpu, config.library, say)
        _lib.use_default(info, selection)
    if embedded:
        from host.setup.model_fetch import ensure_default_model

        model = (_existing(config.model, "GGUF chat model", "model") if config.model is not None
                 else ensure_default_model())
        use_checker_model(model)
    if llm and config.rag:
        from host.setup.embed_model import ensure_embed_model

        embed = (_existing(config.embed_model, "GGUF embedding model", "embed_model")
                 if config.embed_model is not None else ensure_embed_model())
    return Prepared(config, info, selection, model, embed)
