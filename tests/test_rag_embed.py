"""host.rag.embed.Embedder with the real libllama and the real all-MiniLM-L6-v2 GGUF."""

from __future__ import annotations

import numpy as np
import pytest

from host.errors import ClosedError, EmbeddingError
from host.rag.embed import Embedder


@pytest.fixture(scope="module")
def emb(lib):
    from host.setup.embed_model import ensure_embed_model

    e = Embedder(ensure_embed_model(), lib=lib)
    yield e
    e.close()


def test_vectors_are_normalized_float32_rows_in_order(emb):
    texts = ["The harbour is quiet at dawn.", "Dragons hoard gold.", "A recipe for bread."]
    v = emb.embed(texts)
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert emb.pooling == "mean" and emb.dim == 384 and emb.max_tokens == 510
    # each row is the text at that position
    for i, t in enumerate(texts):
        assert float(emb.embed_one(t) @ v[i]) > 0.9999


def test_sequences_in_one_batch_do_not_see_each_other(emb):
    """Many texts share a batch as separate sequences; each must embed as if alone."""
    texts = [f"Entry {i}: the merchant sells {w} at the market." for i, w in
             enumerate(["apples", "swords", "maps", "rope", "salt", "wine"] * 7)]  # 42 > n_seq_max
    together = emb.embed(texts)
    for i in (0, 17, 33, 41):
        alone = emb.embed([texts[i]])[0]
        assert float(alone @ together[i]) > 0.9999
    assert float(together[0] @ together[1]) < 0.999  # and different texts still differ


def test_similar_sentences_are_closer(emb):
    a, b, c = emb.embed(["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."])
    assert float(a @ b) > float(a @ c)


def test_too_long_text_is_refused_not_truncated(emb):
    ok = " ".join(["word"] * emb.max_tokens)
    assert emb.count_tokens(ok) == emb.max_tokens
    assert emb.embed([ok]).shape == (1, 384)
    with pytest.raises(EmbeddingError, match=r"text 2 has 511 tokens .* at most 510"):
        emb.embed(["short", ok + " word"])


@pytest.mark.parametrize("bad, message", [
    ("", "empty"), ("  \n\t ", "empty"), (b"caf\xe9", "not valid UTF-8"), ("lone \ud800 surrogate", "tokenized"),
    (42, "must be a string"),
])
def test_bad_texts_raise_embedding_error(emb, bad, message):
    with pytest.raises(EmbeddingError, match=message):
        emb.embed(["fine", bad])


def test_utf8_bytes_embed_like_the_string(emb):
    s = "Café crème in Zürich"
    assert float(emb.embed([s.encode("utf-8")])[0] @ emb.embed([s])[0]) > 0.9999


def test_a_single_string_is_not_taken_for_a_list(emb):
    with pytest.raises(EmbeddingError, match="list of texts"):
        emb.embed("not a list")
    assert emb.embed([]).shape == (0, 384)


def test_model_id_names_model_dimension_and_file(emb):
    assert emb.model_id.startswith("all-MiniLM-L6-v2/384d/mean/sha256:")
    assert emb.model_id == emb.model_id


def test_a_chat_model_without_pooling_metadata_embeds_with_mean_pooling(model):
    """RELIC_EMBED_MODEL may name any GGUF: a causal LM gets mean pooling; the borrowed model stays open."""
    e = Embedder(model, n_batch=256, n_seq_max=4)
    try:
        v = e.embed(["The cat sits outside.", "A dog runs in the park.", "The cat sits outside.",
                     "Stocks fell sharply today.", "The cat sits outside."])
        assert v.shape == (5, model.n_embd) and e.pooling == "mean"
        assert float(v[0] @ v[2]) > 0.9999 and float(v[0] @ v[4]) > 0.9999  # memory cleared between batches
        assert float(v[0] @ v[3]) < 0.999
    finally:
        e.close()
    assert not model.closed


def test_closed_embedder_raises(lib):
    from host.setup.embed_model import ensure_embed_model

    e = Embedder(ensure_embed_model(), lib=lib)
    e.close()
    e.close()
    with pytest.raises(ClosedError):
        e.embed(["x"])
