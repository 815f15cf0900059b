"""`make judy`: chat with the model in the terminal, replies streaming as they are generated.

Until the Judy persona mod lands this is a plain streaming chat over host.llama.
`make judy MODEL=path.gguf` (or RELIC_MODEL) uses another model; `quit` or Ctrl-C exits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from host.chat import chat_main  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", help="a GGUF model (default: $RELIC_MODEL or SmolLM2-135M-Instruct)")
    p.add_argument("--max-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.0)
    args = p.parse_args()
    args.system = ("You are Judy, a salvage diver and machinist in a flooded harbor district. "
                   "You are warm, direct and practical. Answer in one to three sentences.")
    return chat_main(args)


if __name__ == "__main__":
    sys.exit(main())
