"""A minimal generation loop over host.llama (the full engine is host.engine)."""

from __future__ import annotations

from collections.abc import Iterator

from host.errors import PromptTooLongError
from host.llama.context import Batch, Context
from host.llama.sampler import SamplerChain
from host.llama.text import Utf8Stream


def generate(ctx: Context, prompt, *, max_tokens: int = 128, temperature: float = 0.0,
             seed: int | None = None, parse_special: bool = True, batch: Batch | None = None) -> Iterator[str]:
    """Stream the completion of ``prompt`` (str or token list) as text deltas.

    Greedy when ``temperature`` is 0.  Uses sequence 0 of ``ctx`` and clears
    it first; stops at an end-of-generation token or after ``max_tokens``.
    """
    vocab = ctx.model.vocab
    tokens = prompt if isinstance(prompt, list) else vocab.tokenize(prompt, add_special=True,
                                                                    parse_special=parse_special)
    if len(tokens) + 1 > ctx.n_ctx:
        raise PromptTooLongError(f"prompt is {len(tokens)} tokens; the context holds {ctx.n_ctx}")
    own_batch = batch is None
    batch = batch or Batch(ctx.lib, ctx.n_batch)
    sampler = SamplerChain.temperature(ctx.lib, temperature, seed)
    stream = Utf8Stream()
    try:
        ctx.memory_seq_rm(0)
        for start in range(0, len(tokens), ctx.n_batch):
            chunk = tokens[start:start + ctx.n_batch]
            batch.set_tokens(chunk, start, 0, logits_last=start + len(chunk) == len(tokens),
                             n_vocab=vocab.n_tokens)
            ctx.decode(batch)
        pos = len(tokens)
        for _ in range(max_tokens):
            if pos >= ctx.n_ctx:
                break
            token = sampler.sample(ctx)
            if vocab.is_eog(token):
                break
            text = stream.push(vocab.piece(token, False))
            if text:
                yield text
            batch.clear()
            batch.add(token, pos, (0,), True)
            ctx.decode(batch)
            pos += 1
        tail = stream.flush()
        if tail:
            yield tail
    finally:
        sampler.close()
        if own_batch:
            batch.close()
