"""Relic: LuaJIT mods and a local llama.cpp LLM inside a game process.

What a game uses (docs/EMBEDDING.md walks through it)::

    import host as relic

    config = relic.Config.load(args={"model": path}, environ=os.environ)   # once, at the entry point
    prepared = relic.prepare(config)                  # builds and downloads (cached), before the game
    game_host = relic.create_host(config, prepared)   # the model, the inference worker, the mod APIs
    game_host.expose("Market", market)                # publish the game's objects and functions
    game_host.expose_per_mod("me", body_for)          # ... or a value of each mod's own
    game_host.declare_event("onHear")                 # events mods registerForEvent
    game_host.load()                                  # run every mod's init.lua
    while running:
        game_host.update(dt)                          # Cron, onUpdate, results from the model
        game_host.draw()                              # mods' onDraw (ImGui)
        game_host.emit("onHear", who, text)           # game events: every mod, or emit_to(mod_id, ...)
    game_host.shutdown()

- :class:`Host` — the mod host (host/runtime/host.py): ``load``, ``update``,
  ``draw``, ``expose``, ``expose_per_mod``, ``declare_event``, ``emit``,
  ``emit_to``, ``hookable``, ``run_command``, ``shutdown``; a host without a
  model is ``Host("mods")``.
- :class:`Config` — every setting, read once at the entry point (host/config.py).
- :func:`prepare` — set-up before the game starts: resolves, builds and
  downloads what the config needs, returns :class:`Prepared` paths (host/startup.py).
- :func:`create_host` — a Host (not yet loaded) with the model and the ``llm``,
  ``grammar`` and ``rag`` modules wired to a started inference worker
  (host/app.py; :func:`build_host` is the same with more shortcuts).
- :class:`Limits` — every budget, cap and quota a host enforces, one tree (host/limits.py)
  with its groups :class:`LlmLimits`, :class:`PersonaLimits`, :class:`GrammarLimits`,
  :class:`ToolLimits`, :class:`UiLimits`, :class:`RagLimits`: ``Config(limits=...)``; :class:`Grant` —
  what the game allows one mod (trust, budget, memory): ``grants={id: Grant(...)}``.
- :class:`Result` — what a mod's request ends with (host/results.py).
- :class:`RelicError` and its subclasses (host/errors.py): every error Relic
  raises on purpose; a game catches ``RelicError`` at start.
- The mods' ImGui in a pygame window: ``imgui_layer(size)`` as the Host's
  ``ui=``, then ``ImGuiOverlay(host)`` (host/ui/imgui_overlay.py; they need the
  ``ui`` extra, and raise ImportError on first use without it).

- :func:`frees_held` — after ``shutdown()``: why native objects were left
  allocated (the worker was still inside llama.cpp past its shutdown wait), or
  None.  When it says why, end the process with ``os._exit`` (no teardown).

Names are imported on first use, so ``import host`` is cheap and needs none
of the optional extras.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "host.config",
    "prepare": "host.startup",
    "Prepared": "host.startup",
    "create_host": "host.app",
    "Host": "host.runtime.host",
    "build_host": "host.app",
    "Limits": "host.limits",
    "LlmLimits": "host.limits",
    "PersonaLimits": "host.limits",
    "GrammarLimits": "host.limits",
    "ToolLimits": "host.limits",
    "UiLimits": "host.limits",
    "RagLimits": "host.limits",
    "Grant": "host.runtime.grants",
    "Result": "host.results",
    "Usage": "host.results",
    "Timings": "host.results",
    "ToolCall": "host.results",
    "imgui_layer": "host.ui.imgui_overlay",
    "ImGuiOverlay": "host.ui.imgui_overlay",
    "frees_held": "host.llama",
    "RelicError": "host.errors",
    "SetupError": "host.errors",
    "ConfigError": "host.errors",
    "ModelLoadError": "host.errors",
    "TemplateError": "host.errors",
    "DeviceError": "host.errors",
    "ModError": "host.errors",
    "GameAPIError": "host.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'host' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
