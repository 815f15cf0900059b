"""Sample-then-check grammar sampling (GrammarChain) with the real model.

The chain picks first and the grammar checks only the pick; on a rejection the
whole vocabulary is filtered and the chain picks again.  These tests pin what
that must keep: greedy output is token for token that of grammar-first sampling,
the rejection path really runs, and seeded random output is valid and repeatable.
"""

from __future__ import annotations

import re

from host.engine import sampling
from host.engine.grammar import Grammar
from host.llama import Batch, Context, SamplerChain
from host.llama.sampler import GrammarChain

PROMPT = "Say hello to the blacksmith."


def _generate(model, sampler, n: int) -> list[int]:
    """n tokens from one sequence, sampled with ``sampler`` (stops at end of generation)."""
    vocab = model.vocab
    ctx = Context(model, n_ctx=512, n_batch=128, n_threads=1, n_threads_batch=1)
    batch = Batch(model.lib, 128)
    try:
        tokens = vocab.tokenize(model.apply_chat_template([{"role": "user", "content": PROMPT}]), add_special=True,
                                parse_special=True)
        batch.set_tokens(tokens, 0, 0)
        ctx.decode(batch)
        out, pos = [], len(tokens)
        for _ in range(n):
            tok = sampler.sample(ctx, -1)
            if vocab.is_eog(tok):
                break
            out.append(tok)
            batch.clear()
            batch.add(tok, pos, (0,), True)
            ctx.decode(batch)
            pos += 1
        return out
    finally:
        batch.close()
        ctx.close()


def test_greedy_output_equals_grammar_first(model):
    """The checked pick is the best allowed token, as when the grammar filters first."""
    lib, vocab = model.lib, model.vocab
    grammar = Grammar.from_gbnf('root ::= "Greetings, " [a-z]{2,12} (" " [a-z]{2,12}){0,6} "."', model=model)
    checked = sampling.build(lib, vocab, sampling.resolve({"greedy": True}), grammar=grammar.sampler(lib, vocab))
    first = SamplerChain(lib).add(grammar.sampler(lib, vocab)).add(lib.C.llama_sampler_init_greedy())
    try:
        assert isinstance(checked, GrammarChain)
        a = _generate(model, checked, 24)
        b = _generate(model, first, 24)
        assert a == b
        text = vocab.detokenize(a)
        assert re.fullmatch(r"Greetings, [a-z]{2,12}( [a-z]{2,12}){0,6}\.", text), text
        assert checked.picks == len(a) + 1  # the end-of-generation pick too
        assert checked.resampled >= 1, "the model's own first pick is not 'Greetings': a rejection must occur"
    finally:
        checked.close()
        first.close()
        assert checked.closed


def test_seeded_random_output_is_valid_and_repeatable(model):
    lib, vocab = model.lib, model.vocab
    grammar = Grammar.choice(["north gate", "south gate", "the old mill"], model=model)
    texts = []
    for _ in range(2):
        chain = sampling.build(lib, vocab, sampling.resolve({"temperature": 1.5, "top_k": 0, "seed": 7}),
                               grammar=grammar.sampler(lib, vocab))
        try:
            texts.append(vocab.detokenize(_generate(model, chain, 16)))
            assert chain.resampled >= 1
        finally:
            chain.close()
    assert texts[0] == texts[1]
    value, problem = grammar.parse_result(texts[0])
    assert problem is None and value in ("north gate", "south gate", "the old mill"), texts[0]


def test_bad_sampler_config_frees_the_grammar(model):
    """A config error after the grammar sampler was made raises a clear error (the sampler is freed once, no crash)."""
    lib, vocab = model.lib, model.vocab
    grammar = Grammar.choice(["yes", "no"], model=model)
    try:
        sampling.build(lib, vocab, {"logit_bias": {10 ** 7: 1.0}}, grammar=grammar.sampler(lib, vocab))
    except Exception as exc:
        assert "out of range" in str(exc)
    else:
        raise AssertionError("an out-of-range logit_bias token must raise")
