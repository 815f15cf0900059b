"""The ``relic`` command: ``relic run``, ``relic doctor``, ``relic setup``, ``relic chat``.

This is an entry point: the only place (with the examples' own ``main``) where
settings are read — arguments, the config file and the environment become one
:class:`host.config.Config` (:func:`config_from`), passed down from here.
User errors (a bad setting, a missing model) are one line on stderr and exit
status 1 or 2; ``--debug`` shows the Python traceback too.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback


def add_config_arguments(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    """The settings flags every command that loads a model takes (see host.config.SETTINGS)."""
    p.add_argument("--config", metavar="FILE", help="a relic.toml config file (default: $RELIC_CONFIG)")
    p.add_argument("--debug", action="store_true", default=None, help="show Python tracebacks for errors")
    if model:
        p.add_argument("--model", help="a GGUF chat model (default: $RELIC_MODEL or the default model)")
        p.add_argument("--template", metavar="NAME", help="a llama.cpp chat template for a model without one "
                       "(default: $RELIC_TEMPLATE)")
    p.add_argument("--gpu", metavar="KIND", help="GPU build to use: cuda, vulkan, metal, hip or cpu "
                   "(default: $RELIC_GPU or what `make setup GPU=...` chose)")
    p.add_argument("--gpu-layers", metavar="N|all", help="layers to offload to the GPU / RPC servers "
                   "(default: $RELIC_GPU_LAYERS, else all when a GPU or RPC server is present)")
    p.add_argument("--split-mode", choices=["none", "layer", "row"],
                   help="how to split the model over several devices (default: layer)")
    p.add_argument("--main-gpu", metavar="I", help="the device that holds the model with --split-mode none")
    p.add_argument("--rpc", metavar="HOST:PORT[,...]", help="llama.cpp rpc-servers to spread the model "
                   "over (default: $RELIC_RPC)")
    p.add_argument("--server", metavar="URL", help="run `llm` on this llama-server (http://host:port) or "
                   "OpenAI-compatible server (a URL ending in /v1) instead of the embedded model (default: "
                   "$RELIC_SERVER; its API key from $RELIC_API_KEY; with doctor: check that server)")


# kept for callers of the earlier name
add_offload_arguments = add_config_arguments


def config_from(args, **overrides):
    """The Config of a parsed command line: its flags over $RELIC_* over the config file."""
    from host.config import Config

    values = dict(vars(args))
    if values.get("mods") is not None:
        values["mods_dir"] = values["mods"]
    return Config.load(args=values, file=values.get("config"), environ=os.environ, **overrides)


def _doctor(args) -> int:
    from host.setup.doctor import doctor, doctor_server

    config = config_from(args)
    if args.server:
        from host.remote.backend import from_config

        return doctor_server(from_config(config)[0])
    return doctor(config)


def _setup(args) -> int:
    from host.setup.__main__ import run

    return run(args.target)


def _run(args) -> int:
    """`relic run`: the frame loop with a console, and the model behind `llm` unless --no-llm."""
    from pathlib import Path

    from host.runtime import console

    config = config_from(args)
    if not Path(config.mods_dir).is_dir():
        print(f"relic run: mods folder '{args.mods}' does not exist", file=sys.stderr)
        return 2
    from host.app import build_host
    from host.startup import prepare

    prepared = prepare(config, llm=not args.no_llm)
    host = build_host(config=config, prepared=prepared, llm=not args.no_llm, load=False,
                      console=lambda line: print(line, flush=True))
    if not args.no_llm and config.server is None:  # a server says where it is itself, once
        from host.llama import lib as _lib

        sel = _lib.selection()
        where = sel.used if sel is not None else "cpu"
        print(f"relic run: {prepared.model.name} on {where}", file=sys.stderr, flush=True)
    status = console.run(args, host=host)
    from host.llama import frees_held

    if frees_held():
        # The worker thread is still inside llama.cpp (it did not stop within the
        # shutdown wait): interpreter teardown could run Python callbacks or free
        # memory under it, so end the process here, after flushing what was printed.
        print(f"relic run: exiting without teardown: {frees_held()}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(status)
    return status


def _chat(args) -> int:
    from host.chat import chat_main
    from host.startup import prepare

    config = config_from(args, rag=False)
    return chat_main(args, config, prepare(config))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relic", description="LuaJIT mods and a local LLM in one process")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the mod host frame loop with a console")
    from host.runtime import console

    console.add_run_arguments(p)
    add_config_arguments(p)
    p.add_argument("--no-llm", action="store_true", help="run mods without a model (no `llm` module)")
    p.add_argument("--trust", action="append", metavar="ID", help="run mod ID trusted: the full standard "
                   "library, FFI and the raw `llama` binding, no sandbox (repeatable; mods cannot trust themselves)")
    p.set_defaults(func=_run)

    p = sub.add_parser("doctor", help="report the library, model, ABI check, devices and offload")
    add_config_arguments(p)
    p.set_defaults(func=_doctor)

    p = sub.add_parser("setup", help="build llama.cpp and fetch the default model (cached)")
    p.add_argument("target", nargs="?", default="all", choices=["all", "llama", "model"])
    p.set_defaults(func=_setup)

    p = sub.add_parser("chat", help="a plain streaming chat with the model in the terminal")
    add_config_arguments(p)
    p.add_argument("--system", default="You are a helpful assistant. Answer briefly.")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0)
    p.set_defaults(func=_chat)
    return parser


def main(argv=None) -> int:
    """Run one ``relic`` command; user errors are one line on stderr (``--debug``: with a traceback)."""
    from host.errors import RelicError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except RelicError as exc:
        if getattr(args, "debug", None) or os.environ.get("RELIC_DEBUG", "").strip().lower() in ("1", "true"):
            traceback.print_exc()
        print(f"relic {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
