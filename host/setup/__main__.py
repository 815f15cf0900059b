"""``python -m host.setup [all|llama|model|embed|lupa|rpc-server|llama-server|doctor] [--gpu KIND]``: run the set-up steps.

Every step is idempotent and cached; a warm run only checks a few paths and
says so.  Each step prints how long it took.  Exit status 0 on success, 1 on a
set-up error (its message says what to do), 2 on bad usage.

``--gpu cuda|vulkan|metal|hip|cpu`` (``make setup GPU=...``): the llama step
checks that variant's toolchain, builds it next to the CPU build, and saves
the word as this venv's choice (see host.setup.gpu).  Without ``--gpu`` the
saved choice (or ``$RELIC_GPU``) is built.
"""

from __future__ import annotations

import os
import sys
import time

from host.errors import SetupError

_USAGE = ("usage: python -m host.setup [all|llama|model|embed|lupa|rpc-server|llama-server|vulkan-headers|lua-corpus|doctor] "
          "[--gpu cuda|vulkan|metal|hip|cpu]")

_gpu_request: str | None = None  # set by --gpu for this run


def _ensure_variant(kind: str) -> tuple[bool, str]:
    """(was cached, library path) for one variant, checking its toolchain before a build."""
    from host.setup import gpu, llama_build

    flags = gpu.flags(kind)
    if llama_build.find_library(flags) is not None:
        return True, str(llama_build.ensure_library(flags).lib_path)
    if kind != "cpu":
        gpu.check_toolchain(kind)  # names the package to install, before any download or build
    return False, str(llama_build.ensure_library(flags).lib_path)


def _step_llama() -> str:
    from host.setup import gpu, llama_build

    if os.environ.get(llama_build.ENV_LIB):
        info = llama_build.ensure_library()
        return f"using ${llama_build.ENV_LIB}: {info.lib_path}"
    kind = gpu.check_kind(_gpu_request) if _gpu_request else gpu.selected()[0]
    if kind != "cpu" and llama_build.find_library(gpu.flags(kind)) is None:
        gpu.check_toolchain(kind)  # fail before the CPU build, not after it
    cached, path = _ensure_variant("cpu")  # the fallback of every GPU build
    parts = [f"cpu {path}"]
    if kind != "cpu":
        was, gpath = _ensure_variant(kind)
        cached &= was
        parts.append(f"{kind} {gpath}")
    if _gpu_request:
        gpu.save_choice(kind)
        parts.append(f"this venv now uses {kind} ({gpu.choice_path()})")
    return ("cached: " if cached else "ready: ") + "; ".join(parts)


def _step_rpc_server() -> str:
    from host.setup.rpc_server import server_path

    path = server_path(_gpu_request)
    return (f"ready: {path}\n       run it on each machine that lends its CPU/GPU: {path} -H <its LAN address> "
            f"-p 50052\n       then here: RELIC_RPC=<address>:50052[,...] (or relic run --rpc ...). "
            "Never expose it to an untrusted network: the protocol has no authentication.")


def _step_llama_server() -> str:
    from host.setup import gpu, llama_build

    flags = gpu.flags(gpu.check_kind(_gpu_request) if _gpu_request else gpu.selected()[0])
    cached = llama_build.find_llama_server(flags) is not None
    lib_cached = llama_build.library_dir(llama_build.cmake_args(flags)).is_dir()
    path = llama_build.ensure_llama_server(flags)
    if not cached and not lib_cached and llama_build.library_dir(llama_build.cmake_args(flags)).is_dir():
        return f"ready: {path} (built together with the library, cached for the llama step)"
    return f"{'cached' if cached else 'ready'}: {path}"


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


def _step_lupa() -> str:
    from host.setup import lupa_build

    return lupa_build.ensure_compat_lupa()


def _step_vulkan_headers() -> str:
    from host.setup import vulkan_headers

    if vulkan_headers.system_headers() is not None:
        return f"using the system's: {vulkan_headers.system_headers()} has {vulkan_headers.NEEDED_SYMBOL}"
    cached = vulkan_headers.headers_ok(vulkan_headers.cached_dir())
    path = vulkan_headers.ensure()
    return f"{'cached' if cached else 'ready'}: {path}"


def _step_lua_corpus() -> str:
    from host.setup import lua_corpus

    cached = lua_corpus.cached() is not None
    return f"{'cached' if cached else 'ready'}: {lua_corpus.ensure()}"


_STEPS = {"llama": _step_llama, "model": _step_model, "embed": _step_embed, "lupa": _step_lupa}
_EXTRA_STEPS = {"rpc-server": _step_rpc_server,  # on request, not part of "all"
                "llama-server": _step_llama_server,
                "vulkan-headers": _step_vulkan_headers,
                "lua-corpus": _step_lua_corpus}


def run(target: str) -> int:
    """Run the steps for ``target`` ("all" or one step name); return an exit status."""
    names = list(_STEPS) if target == "all" else [target]
    steps = {**_STEPS, **_EXTRA_STEPS}
    started = time.monotonic()
    all_cached = True
    for name in names:
        t0 = time.monotonic()
        try:
            result = steps[name]()
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
    global _gpu_request
    args = list(sys.argv[1:] if argv is None else argv)
    if "--gpu" in args:
        i = args.index("--gpu")
        if i + 1 >= len(args):
            print(_USAGE, file=sys.stderr)
            return 2
        _gpu_request = args[i + 1]
        del args[i:i + 2]
        try:
            from host.setup.gpu import check_kind

            check_kind(_gpu_request)
        except SetupError as exc:
            print(f"relic setup: {exc}", file=sys.stderr)
            return 2
    target = args[0] if args else "all"
    if len(args) > 1 or target not in ("all", "doctor", *_STEPS, *_EXTRA_STEPS):
        print(_USAGE, file=sys.stderr)
        return 2
    if target == "doctor":
        from host.config import Config
        from host.setup.doctor import doctor

        return doctor(Config.load(environ=os.environ))
    try:
        return run(target)
    except KeyboardInterrupt:
        print("\nrelic setup: interrupted; nothing half-done was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
