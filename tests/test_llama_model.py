"""Model/Context lifetimes, bad inputs and minimal generation with the real model."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from host.errors import ClosedError, ContextError, DecodeError, ModelLoadError, TemplateError, TokenizeError
from host.llama import Batch, Context, Model, SamplerChain, decode_error, generate

PROMPT_MSGS = [{"role": "user", "content": "Name three colours."}]


def test_model_facts(model):
    assert model.vocab.n_tokens > 1000
    assert model.n_ctx_train > 0 and model.n_layer > 0
    assert "llama" in model.description.lower()
    assert model.meta("general.architecture") == "llama"
    assert model.meta("no.such.key") is None


def test_greedy_generation_is_identical_across_runs(model, ctx):
    prompt = model.apply_chat_template(PROMPT_MSGS)
    first = "".join(generate(ctx, prompt, max_tokens=40))
    second = "".join(generate(ctx, prompt, max_tokens=40))
    with Context(model, n_ctx=512) as other:
        third = "".join(generate(other, prompt, max_tokens=40))
    assert first.strip(), "the model produced nothing"
    assert first == second == third


def test_seeded_sampling_is_reproducible(model, ctx):
    prompt = model.apply_chat_template(PROMPT_MSGS)
    a = "".join(generate(ctx, prompt, max_tokens=30, temperature=0.9, seed=7))
    b = "".join(generate(ctx, prompt, max_tokens=30, temperature=0.9, seed=7))
    assert a == b


def test_prompt_longer_than_a_batch_is_decoded_in_chunks(model):
    """A prompt of several n_batch chunks gives the same greedy output as one big batch."""
    content = "Some words about boats: " + "harbor, sail, rope, anchor, tide, " * 20 + "Write one sentence about the sea."
    prompt = model.apply_chat_template([{"role": "user", "content": content}])
    assert model.vocab.count(prompt) > 3 * 32
    with Context(model, n_ctx=1024, n_batch=32) as small, Context(model, n_ctx=1024, n_batch=512) as big:
        chunked = "".join(generate(small, prompt, max_tokens=20))
        whole = "".join(generate(big, prompt, max_tokens=20))
    assert chunked.strip()
    assert chunked == whole


def test_chat_template(model):
    text = model.apply_chat_template(PROMPT_MSGS)
    assert "Name three colours." in text and text.rstrip().endswith("assistant")
    assert "<|im_start|>" in model.apply_chat_template(PROMPT_MSGS, template="chatml")
    with pytest.raises(TemplateError, match="not supported"):
        model.apply_chat_template(PROMPT_MSGS, template="no-such-template")
    with pytest.raises(TemplateError, match="role"):
        model.apply_chat_template([{"content": "x"}])


# --- lifetimes --------------------------------------------------------------

def test_close_order_context_then_model(lib, model_path):
    m = Model(model_path, lib=lib)
    c = Context(m, n_ctx=256)
    c.close()
    m.close()
    m.close()  # twice is harmless
    c.close()
    assert m.closed and c.closed


def test_close_model_first_keeps_context_usable(lib, model_path):
    m = Model(model_path, lib=lib)
    c = Context(m, n_ctx=256)
    m.close()  # deferred: the context pins the model
    with pytest.raises(ClosedError):
        m.vocab.tokenize("x")
    with pytest.raises(ClosedError):
        Context(m, n_ctx=256)
    b = Batch(lib, 8)
    b.add(1, 0, (0,), True)
    c.decode(b)  # the model is still there underneath
    c.close()
    b.close()


def test_use_after_close_raises(lib, model_path):
    m = Model(model_path, lib=lib)
    c = Context(m, n_ctx=256)
    b = Batch(lib, 4)
    s = SamplerChain.greedy(lib)
    for obj in (c, b, s):
        obj.close()
    with pytest.raises(ClosedError):
        c.decode(Batch(lib, 1))
    with pytest.raises(ClosedError):
        b.add(1, 0)
    with pytest.raises(ClosedError):
        s.sample(c)
    with pytest.raises(ClosedError):
        c.memory_clear()
    m.close()


def test_finalizer_frees_forgotten_objects(lib, model_path):
    """Objects dropped without close() are freed by their finalizers (no crash, no leak of handles)."""
    import gc

    for _ in range(3):
        m = Model(model_path, lib=lib)
        Context(m, n_ctx=128)
        del m
        gc.collect()


# --- bad inputs -------------------------------------------------------------

def test_missing_model(lib, tmp_path):
    with pytest.raises(ModelLoadError, match="no such file") as e:
        Model(tmp_path / "nope.gguf", lib=lib)
    assert "nope.gguf" in str(e.value)


def test_random_bytes_named_gguf(lib, tmp_path):
    p = tmp_path / "random.gguf"
    p.write_bytes(os.urandom(4096))
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        Model(p, lib=lib)
    q = tmp_path / "magic.gguf"  # right magic, garbage after: llama.cpp's own checks
    q.write_bytes(b"GGUF" + os.urandom(4096))
    with pytest.raises(ModelLoadError, match="magic.gguf"):
        Model(q, lib=lib)


@pytest.mark.parametrize("fraction", [0.001, 0.5, 0.99])
def test_truncated_model(lib, model_path, tmp_path, fraction):
    data = model_path.read_bytes()
    p = tmp_path / "truncated.gguf"
    p.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelLoadError) as e:
        Model(p, lib=lib)
    assert "truncated.gguf" in str(e.value)


def test_empty_and_directory(lib, tmp_path):
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty or truncated"):
        Model(tmp_path / "empty.gguf", lib=lib)
    with pytest.raises(ModelLoadError, match="not a regular file"):
        Model(tmp_path, lib=lib)


@pytest.mark.parametrize("n_ctx", [0, -1, 10**9, 2**32 + 5])
def test_bad_n_ctx(model, n_ctx):
    with pytest.raises(ContextError, match="n_ctx"):
        Context(model, n_ctx=n_ctx)


def test_token_out_of_range_in_a_batch(model, ctx):
    b = Batch(model.lib, 8)
    with pytest.raises(TokenizeError, match="out of range"):
        b.set_tokens([1, model.vocab.n_tokens + 10], 0, n_vocab=model.vocab.n_tokens)
    # unchecked path: llama.cpp itself rejects it, and we map the code
    b.clear()
    b.add(model.vocab.n_tokens + 10, 0, (0,), True)
    with pytest.raises(DecodeError, match="invalid input batch") as e:
        ctx.decode(b)
    assert e.value.code == -1
    b.close()


def test_batch_overflow_is_refused(lib):
    with Batch(lib, 2) as b:
        b.add(1, 0)
        b.add(2, 1)
        with pytest.raises(ContextError, match="full"):
            b.add(3, 2)


def test_decode_codes_have_meanings():
    assert "KV" in decode_error(1)
    assert "aborted" in decode_error(2)
    assert "invalid" in decode_error(-1)
    assert "fatal" in decode_error(-3)


def test_process_survives_every_bad_input(model_path, tmp_path):
    """All the bad inputs above, in one fresh process that must exit normally."""
    code = f"""
import os
from host.config import Config
from host.startup import prepare
from host.llama import Model, Context
prepare(Config.load(environ=os.environ, rag=False))
from host.errors import RelicError
p = {str(model_path)!r}
bad = os.path.join({str(tmp_path)!r}, 'b.gguf')
open(bad, 'wb').write(open(p, 'rb').read()[:3000000])
for path in (bad, '/nonexistent.gguf', {str(tmp_path)!r}):
    try:
        Model(path)
    except RelicError:
        pass
m = Model(p)
for n in (0, 10**9):
    try:
        Context(m, n_ctx=n)
    except RelicError:
        pass
print('survived')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "survived" in out.stdout
