"""The ``relic`` command: ``relic run``, ``relic doctor``, ``relic setup``, ``relic chat``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _doctor(args) -> int:
    from host.setup.doctor import doctor

    apply_offload_arguments(args)
    return doctor()


def _setup(args) -> int:
    from host.setup.__main__ import run

    return run(args.target)


def add_offload_arguments(p: argparse.ArgumentParser) -> None:
    """--gpu, --gpu-layers, --split-mode, --main-gpu, --rpc (they set the RELIC_* variables)."""
    p.add_argument("--gpu", metavar="KIND", help="GPU build to use: cuda, vulkan, metal, hip or cpu "
                   "(default: $RELIC_GPU or what `make setup GPU=...` chose)")
    p.add_argument("--gpu-layers", metavar="N|all", help="layers to offload to the GPU / RPC servers "
                   "(default: $RELIC_GPU_LAYERS, else all when a GPU or RPC server is present)")
    p.add_argument("--split-mode", choices=["none", "layer", "row"],
                   help="how to split the model over several devices (default: layer)")
    p.add_argument("--main-gpu", type=int, metavar="I", help="the device that holds the model with --split-mode none")
    p.add_argument("--rpc", metavar="HOST:PORT[,...]", help="llama.cpp rpc-servers to spread the model "
                   "over (default: $RELIC_RPC)")


def apply_offload_arguments(args) -> None:
    """Put the offload flags into the environment every model load reads (chat and embedding)."""
    import os

    for attr, var in (("gpu", "RELIC_GPU"), ("gpu_layers", "RELIC_GPU_LAYERS"),
                      ("split_mode", "RELIC_SPLIT_MODE"), ("main_gpu", "RELIC_MAIN_GPU"),
                      ("rpc", "RELIC_RPC")):
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[var] = str(value)


def _run(args) -> int:
    """`relic run`: the frame loop with a console, and the model behind `llm` unless --no-llm."""
    from host.runtime import console

    apply_offload_arguments(args)
    host = None
    if not args.no_llm:
        from host.app import build_host
        from host.errors import RelicError

        if not Path(args.mods).is_dir():
            print(f"relic run: mods folder '{args.mods}' does not exist", file=sys.stderr)
            return 2
        try:  # a bad model is a clear error here, at start
            host = build_host(args.mods, model_path=args.model, load=False,
                              console=lambda line: print(line, flush=True), grants=trust_grants(args))
        except RelicError as exc:
            print(f"relic run: {exc}", file=sys.stderr)
            return 1
        model = next((p.model for p in host.providers if hasattr(getattr(p, "model", None), "placement")), None)
        if model is not None:  # where inference runs, once at start (results carry it too)
            print(f"relic run: {model.path.name} on {model.placement}", file=sys.stderr, flush=True)
    status = console.run(args, host=host)
    if host is not None:
        from host.llama import frees_held

        if frees_held():
            # The worker thread is still inside llama.cpp (it did not stop within the
            # shutdown wait): interpreter teardown could run Python callbacks or free
            # memory under it, so end the process here, after flushing what was printed.
            print(f"relic run: exiting without teardown: {frees_held()}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(status)
    return status


def trust_grants(args) -> dict:
    """Grants from `--trust ID` (the player's say: a mod's own files never grant trust)."""
    from host.runtime.grants import Grant

    return {mod_id: Grant(trusted=True) for mod_id in (getattr(args, "trust", None) or [])}


def _chat(args) -> int:
    from host.chat import chat_main

    return chat_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relic", description="LuaJIT mods and a local LLM in one process")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the mod host frame loop with a console")
    try:
        from host.runtime import console

        console.add_run_arguments(p)
    except ImportError:  # pragma: no cover - only while the runtime is missing
        pass
    p.add_argument("--model", help="a GGUF chat model (default: $RELIC_MODEL or the default model)")
    p.add_argument("--no-llm", action="store_true", help="run mods without a model (no `llm` module)")
    p.add_argument("--trust", action="append", metavar="ID", help="run mod ID trusted: the full standard "
                   "library, FFI and the raw `llama` binding, no sandbox (repeatable; mods cannot trust themselves)")
    add_offload_arguments(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("doctor", help="report the library, model, ABI check, devices and offload")
    add_offload_arguments(p)
    p.set_defaults(func=_doctor)

    p = sub.add_parser("setup", help="build llama.cpp and fetch the default model (cached)")
    p.add_argument("target", nargs="?", default="all", choices=["all", "llama", "model"])
    p.set_defaults(func=_setup)

    p = sub.add_parser("chat", help="a plain streaming chat with the model in the terminal")
    p.add_argument("--model", help="path to a GGUF model (default: $RELIC_MODEL or the default model)")
    p.add_argument("--system", default="You are a helpful assistant. Answer briefly.")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0)
    p.set_defaults(func=_chat)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
