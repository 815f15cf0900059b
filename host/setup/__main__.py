"""``python -m host.setup [all|llama|model|embed|doctor]``: run the set-up steps.

Every step is idempotent and cached; a warm run only checks a few paths and
says so.  Each step prints how long it took.  Exit status 0 on success, 1 on a
set-up error (its message says what to do), 2 on bad usage.
"""

from __future__ import annotations

import os
import sys
import time

from host.errors import SetupError

_USAGE = "usage: python -m host.setup [all|llama|model|embed|doctor]"


def _step_llama() -> str:
    from host.setup import llama_build

    if llama_build.find_library() is not None:
        info = llama_build.ensure_library()
        return f"cached: {info.lib_path}"
    info = llama_build.ensure_library()
    return f"ready: {info.lib_path}"


def _step_model() -> str:
    from host.setup import model_fetch

    if os.environ.get(model_fetch.ENV_MODEL):
        return f"using $RELIC_MODEL: {model_fetch.model_path()}"
    if model_fetch.cached_default_model() is not None:
        return f"cached: {model_fetch.ensure_default_model()}"
    return f"ready: {model_fetch.ensure_default_model()}"


def _step_embed() -> str:
    from host.setup import embed_model

    if os.environ.get(embed_model.ENV_EMBED_MODEL):
        return f"using $RELIC_EMBED_MODEL: {embed_model.embed_model_path()}"
    if embed_model.cached_embed_model() is not None:
        return f"cached: {embed_model.ensure_embed_model()}"
    return f"ready: {embed_model.ensure_embed_model()}"


_STEPS = {"llama": _step_llama, "model": _step_model, "embed": _step_embed}


def run(target: str) -> int:
    """Run the steps for ``target`` ("all" or one step name); return an exit status."""
    names = list(_STEPS) if target == "all" else [target]
    started = time.monotonic()
    all_cached = True
    for name in names:
        t0 = time.monotonic()
        try:
            result = _STEPS[name]()
        except SetupError as exc:
            print(f"relic setup: {name} failed after {time.monotonic() - t0:.1f} s:\n{exc}", file=sys.stderr)
            return 1
        all_cached &= result.startswith(("cached", "using"))
        print(f"{name:6} {result} ({time.monotonic() - t0:.2f} s)")
    total = time.monotonic() - started
    if all_cached:
        print(f"everything is cached; nothing to do ({total:.2f} s)")
    else:
        print(f"setup done in {total:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = sys.argv[1:] if argv is None else argv
    target = args[0] if args else "all"
    if len(args) > 1 or target not in ("all", "doctor", *_STEPS):
        print(_USAGE, file=sys.stderr)
        return 2
    if target == "doctor":
        from host.setup.doctor import doctor

        return doctor()
    try:
        return run(target)
    except KeyboardInterrupt:
        print("\nrelic setup: interrupted; nothing half-done was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
