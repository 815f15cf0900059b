"""Set-up for the bench scripts (each is an entry point): the settings from the environment,
prepared once (library chosen, default model fetched), so ``Model(path)`` finds its library."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def prepared(rag: bool = False):
    """host.prepare for $RELIC_* (RELIC_MODEL, RELIC_GPU, ...); cached per process."""
    from host.config import Config
    from host.startup import prepare

    return prepare(Config.load(environ=os.environ, rag=rag))


def model_path() -> Path:
    """The chat model the settings name (the default one unless $RELIC_MODEL)."""
    return prepared().model


def embed_model_path() -> Path:
    """The embedding model the settings name (the default one unless $RELIC_EMBED_MODEL)."""
    return prepared(rag=True).embed_model


def worker_config(**overrides):
    """The worker settings of the environment ($RELIC_N_CTX, $RELIC_N_THREADS, ...)."""
    from host.config import Config

    return Config.load(environ=os.environ).worker_config(**overrides)
