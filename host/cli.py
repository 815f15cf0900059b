"""The ``relic`` command: ``relic run``, ``relic doctor``, ``relic setup``, ``relic chat``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _doctor(_args) -> int:
    from host.setup.doctor import doctor

    return doctor()


def _setup(args) -> int:
    from host.setup.__main__ import run

    return run(args.target)


def _run(args) -> int:
    """`relic run`: the frame loop with a console, and the model behind `llm` unless --no-llm."""
    from host.runtime import console

    host = None
    if not args.no_llm:
        from host.app import build_host
        from host.errors import RelicError

        if not Path(args.mods).is_dir():
            print(f"relic run: mods folder '{args.mods}' does not exist", file=sys.stderr)
            return 2
        try:  # a bad model is a clear error here, at start
            host = build_host(args.mods, model_path=args.model, load=False,
                              console=lambda line: print(line, flush=True))
        except RelicError as exc:
            print(f"relic run: {exc}", file=sys.stderr)
            return 1
    return console.run(args, host=host)


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
    p.set_defaults(func=_run)

    p = sub.add_parser("doctor", help="report the library, model and ABI check")
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
