"""Tokenize, detokenize, token pieces and streaming UTF-8 with the real tokenizer."""

from __future__ import annotations

import pytest

from host.errors import TokenizeError
from host.llama import Utf8Stream

SAMPLES = [
    "Hello, world!",
    "Grüße aus Köln — naïve café",
    "emoji: 😀🎮🦊 and a family 👨‍👩‍👧",
    "中文文本，日本語のテキスト，한국어 텍스트",
    "tabs\tand\nnewlines\r\n  spaces",
    "",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip(model, text):
    vocab = model.vocab
    tokens = vocab.tokenize(text, add_special=False)
    assert vocab.detokenize(tokens) == text
    # the cached pieces glue back to the same bytes
    assert b"".join(vocab.piece(t) for t in tokens) == text.encode()


def test_bytes_input_equals_str_input(model):
    text = "héllo 世界 😀"
    assert model.vocab.tokenize(text.encode()) == model.vocab.tokenize(text)


@pytest.mark.parametrize("bad", [b"\xff\xfe abc", b"abc \xe4\xb8", b"\xc0\x80", "lone \udc80 surrogate"])
def test_invalid_utf8_is_a_clear_error(model, bad):
    with pytest.raises(TokenizeError, match="not valid"):
        model.vocab.tokenize(bad)


def test_wrong_type_is_a_clear_error(model):
    with pytest.raises(TokenizeError, match="str or bytes"):
        model.vocab.tokenize(12345)


def test_tokenize_has_no_length_cap(model):
    text = "The quick brown fox jumps over the lazy dog. " * 5000  # ~225 kB
    tokens = model.vocab.tokenize(text, add_special=False)
    assert len(tokens) > 40000
    assert model.vocab.detokenize(tokens) == text


def test_special_tokens_are_parsed_only_when_asked(model):
    vocab = model.vocab
    as_special = vocab.tokenize("<|im_start|>", add_special=False, parse_special=True)
    as_text = vocab.tokenize("<|im_start|>", add_special=False, parse_special=False)
    assert len(as_special) == 1 and len(as_text) > 1
    assert vocab.piece(as_special[0], special=True) == b"<|im_start|>"
    assert vocab.piece(as_special[0], special=False) == b""


@pytest.mark.parametrize("token", [-1, 10**6, 2**31 - 1])
def test_token_out_of_range(model, token):
    with pytest.raises(TokenizeError, match="out of range"):
        model.vocab.piece(token)
    with pytest.raises(TokenizeError, match="out of range"):
        model.vocab.detokenize([1, token])
    with pytest.raises(TokenizeError, match="out of range"):
        model.vocab.is_eog(token)


def test_utf8_stream_never_splits_a_character(model):
    text = "añ😀世"
    data = text.encode()
    stream = Utf8Stream()
    deltas = [stream.push(data[i:i + 1]) for i in range(len(data))]
    deltas.append(stream.flush())
    assert "".join(deltas) == text
    for d in deltas:
        d.encode("utf-8")  # every delta is valid on its own
    assert [d for d in deltas if d] == ["a", "ñ", "😀", "世"]


def test_utf8_stream_over_real_token_pieces(model):
    """Byte-fallback tokens split emoji; the stream still emits whole characters."""
    text = "🦊🎮 日本"
    vocab = model.vocab
    stream = Utf8Stream()
    out = [stream.push(vocab.piece(t)) for t in vocab.tokenize(text, add_special=False)]
    out.append(stream.flush())
    assert "".join(out) == text
    assert all("\ufffd" not in d for d in out)


def test_utf8_stream_flushes_an_incomplete_tail():
    stream = Utf8Stream()
    assert stream.push(b"ok\xe4\xb8") == "ok"
    assert stream.flush() == "\ufffd"
