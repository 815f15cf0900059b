"""``relic chat``: a plain streaming terminal chat over host.llama (no mods)."""

from __future__ import annotations

import sys
import time

from host.errors import TemplateError


def chat_main(args, config, prepared) -> int:
    """Read lines from stdin, stream the model's replies to stdout; ``quit`` exits.

    ``config``/``prepared``: the entry point's Config and what host.prepare resolved.
    """
    from host.app import load_model
    from host.engine.chat_tokens import chat_tokens
    from host.llama import Context, generate

    model = load_model(config, prepared)  # a RelicError is one line on stderr (host.cli.main)
    if model.template_override is None and model.chat_template() is None:
        model.close()
        raise TemplateError(f"{model.path.name} has no chat template (a base model?): pass --template NAME, "
                            "e.g. --template chatml")
    ctx = Context(model, n_ctx=2048)
    history = [{"role": "system", "content": args.system}]
    interactive = sys.stdin.isatty()
    print(f"Chatting with {model.path.name} — type 'quit' or press Ctrl-D to leave.")
    try:
        while True:
            if interactive:
                print("you> ", end="", flush=True)
            line = sys.stdin.readline()
            if not line or line.strip() in ("quit", "exit"):
                break
            if not line.strip():
                continue
            history.append({"role": "user", "content": line.strip()})
            prompt = chat_tokens(model, history)  # what the user typed stays plain text
            while len(prompt) > ctx.n_ctx - args.max_tokens and len(history) > 2:
                del history[1:3]  # forget the oldest exchange, keep the system prompt
                prompt = chat_tokens(model, history)
            print("model> ", end="", flush=True)
            reply, n, t0 = [], 0, time.perf_counter()
            for delta in generate(ctx, prompt, max_tokens=args.max_tokens, temperature=args.temperature):
                reply.append(delta)
                n += 1
                print(delta, end="", flush=True)
            dt = time.perf_counter() - t0
            print(f"\n  [{n} pieces in {dt:.2f} s]", flush=True)
            history.append({"role": "assistant", "content": "".join(reply).strip()})
    except KeyboardInterrupt:
        print()
    finally:
        ctx.close()
        model.close()
    return 0
