"""host.setup.embed_model: the safetensors reader, the BERT -> GGUF converter, verification, paths.

The converter is checked end to end on a tiny BERT built here with random
weights (so no download is needed): llama.cpp must load the GGUF and compute
the same embeddings as an independent numpy forward pass over the f32
weights.  The real all-MiniLM-L6-v2 GGUF that setup cached is checked for
its metadata and for the known sentence-pair ordering.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from host.errors import SetupError
from host.setup import embed_model
from host.setup.embed_model import bert_reference, convert_bert, read_safetensors

TINY_WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "in", "park", "hello", "world", "red",
              "blue", "house", "tree", ".", ",", "##s", "##ing", "walk", "river", "boat", "old"]
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS


def write_safetensors(path: Path, tensors: dict) -> None:
    """A minimal safetensors writer (header length, JSON header, raw little-endian data)."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[arr.dtype]
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def make_tiny_bert(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2, heads: int = 4,
                   ff: int = 64, max_pos: int = 64) -> Path:
    """A BERT in Hugging Face layout with random weights and non-default special token ids."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    V = len(TINY_VOCAB)

    def w(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    t = {
        "embeddings.word_embeddings.weight": w(V, hidden, scale=1.0),
        "embeddings.position_embeddings.weight": w(max_pos, hidden),
        "embeddings.token_type_embeddings.weight": w(2, hidden),
        "embeddings.LayerNorm.weight": 1 + w(hidden, scale=0.05),
        "embeddings.LayerNorm.bias": w(hidden, scale=0.05),
        "embeddings.position_ids": np.arange(max_pos, dtype=np.int64)[None, :],
        "pooler.dense.weight": w(hidden, hidden),
        "pooler.dense.bias": w(hidden),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            t[p + f"attention.self.{name}.weight"] = w(hidden, hidden)
            t[p + f"attention.self.{name}.bias"] = w(hidden, scale=0.05)
        t[p + "attention.output.dense.weight"] = w(hidden, hidden)
        t[p + "attention.output.dense.bias"] = w(hidden, scale=0.05)
        t[p + "attention.output.LayerNorm.weight"] = 1 + w(hidden, scale=0.05)
        t[p + "attention.output.LayerNorm.bias"] = w(hidden, scale=0.05)
        t[p + "intermediate.dense.weight"] = w(ff, hidden)
        t[p + "intermediate.dense.bias"] = w(ff, scale=0.05)
        t[p + "output.dense.weight"] = w(hidden, ff)
        t[p + "output.dense.bias"] = w(hidden, scale=0.05)
        t[p + "output.LayerNorm.weight"] = 1 + w(hidden, scale=0.05)
        t[p + "output.LayerNorm.bias"] = w(hidden, scale=0.05)
    write_safetensors(folder / "model.safetensors", t)
    config = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": ff,
              "max_position_embeddings": max_pos, "vocab_size": V, "type_vocab_size": 2,
              "layer_norm_eps": 1e-12, "hidden_act": "gelu", "position_embedding_type": "absolute"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    added = [{"id": i, "content": tok, "special": True} for i, tok in enumerate(TINY_VOCAB[:5])]
    (folder / "tokenizer.json").write_text(json.dumps({"added_tokens": added}))
    (folder / "modules.json").write_text(json.dumps([{"idx": 1, "name": "1", "path": "1_Pooling",
                                                      "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, lib):
    """(source folder, converted GGUF path) of the tiny BERT."""
    root = tmp_path_factory.mktemp("tiny-bert")
    src = make_tiny_bert(root / "src")
    return src, convert_bert(src, root / "tiny.gguf", name="tiny-bert")


# --- safetensors -------------------------------------------------------------

def test_read_safetensors_round_trip(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.array([[1, 2, 3]], dtype=np.int64)
    write_safetensors(tmp_path / "x.safetensors", {"a": a, "b": b})
    got = read_safetensors(tmp_path / "x.safetensors")
    assert np.array_equal(got["a"], a) and got["a"].dtype == np.float32
    assert np.array_equal(got["b"], b)


def test_read_safetensors_rejects_garbage_and_bad_offsets(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10 ** 9) + b"{}")
    with pytest.raises(SetupError, match="header length"):
        read_safetensors(bad)
    bad.write_bytes(b"\x01\x02")
    with pytest.raises(SetupError, match="cannot read"):
        read_safetensors(bad)
    raw = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    bad.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)
    with pytest.raises(SetupError, match="offsets"):
        read_safetensors(bad)


# --- the converter on the tiny BERT ------------------------------------------

def test_converted_tiny_bert_has_bert_metadata_and_tensor_types(tiny):
    import gguf

    _, path = tiny
    reader = gguf.GGUFReader(path)

    def value(key):
        field = reader.fields[key]
        return field.contents()

    assert value("general.architecture") == "bert"
    assert value("bert.pooling_type") == gguf.PoolingType.MEAN
    assert value("bert.attention.causal") is False
    assert value("tokenizer.ggml.model") == "bert"
    assert value("tokenizer.ggml.bos_token_id") == 2 and value("tokenizer.ggml.seperator_token_id") == 3
    tokens = value("tokenizer.ggml.tokens")
    assert tokens[:5] == TINY_VOCAB[:5] and tokens[5] == "\u2581the" and tokens[TINY_VOCAB.index("##s")] == "s"
    types = {t.name: t.tensor_type for t in reader.tensors}
    F16, F32 = gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32
    assert types["token_embd.weight"] == F16 and types["blk.1.ffn_up.weight"] == F16
    assert types["blk.0.attn_q.bias"] == F32 and types["blk.0.attn_output_norm.weight"] == F32
    assert types["position_embd.weight"] == F32 and types["token_types.weight"] == F32
    assert not any(name.startswith(("pooler", "cls")) or "position_ids" in name for name in types)
    assert len(types) == 5 + 2 * 16


def test_llama_cpp_matches_numpy_reference_on_tiny_bert(tiny, lib):
    from host.rag.embed import Embedder

    src, path = tiny
    tensors = read_safetensors(src / "model.safetensors")
    config = json.loads((src / "config.json").read_text())
    sentences = ["the cat sat on the mat.", "a dog ran in the park", "hello world", "old boats walking"]
    with Embedder(path, lib=lib) as emb:
        assert emb.dim == 32 and emb.pooling == "mean" and emb.max_tokens == 62
        ids = emb.tokenize("the cat sat on the mat.")
        assert ids == [2] + [TINY_VOCAB.index(w) for w in ("the", "cat", "sat", "on", "the", "mat", ".")] + [3]
        assert emb.tokenize("Boats zebra")[1:-1] == [TINY_VOCAB.index(w) for w in ("boat", "##s", "[UNK]")]
        got = emb.embed(sentences)
        for s, vec in zip(sentences, got):
            ref = bert_reference(tensors, config, emb.tokenize(s))
            assert float(vec @ ref) > 0.999, s
        # the check can fail: a model with other weights does not match this reference
        other = make_tiny_bert(src.parent / "other", seed=1)
        ref_other = bert_reference(read_safetensors(other / "model.safetensors"), config, emb.tokenize(sentences[0]))
        assert float(got[0] @ ref_other) < 0.99


def test_converter_refuses_what_it_cannot_convert(tmp_path):
    src = make_tiny_bert(tmp_path / "src")
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "model_type": "roberta"}))
    with pytest.raises(SetupError, match="BERT only"):
        convert_bert(src, tmp_path / "x.gguf")
    (src / "config.json").write_text(json.dumps({**cfg, "vocab_size": 999}))
    with pytest.raises(SetupError, match="vocab.txt has"):
        convert_bert(src, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


# --- the real embedding model that setup cached --------------------------------

def test_cached_minilm_is_a_mean_pooled_f16_bert_and_passes_verification(lib):
    import gguf

    path = embed_model.ensure_embed_model()
    assert path == embed_model.default_embed_model_file() and embed_model.cached_embed_model() == path
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == "bert"
    assert reader.fields["bert.pooling_type"].contents() == gguf.PoolingType.MEAN
    assert reader.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_F16
    report = embed_model.verify_embed_model(path, lib=lib)
    assert all(closer > farther for closer, farther in report["triples"])
    # all-MiniLM-L6-v2's published similarity for this pair is 0.7553
    assert report["triples"][0][0] == pytest.approx(0.755, abs=0.01)


def test_relic_embed_model_overrides_the_default(tmp_path, monkeypatch, tiny):
    _, path = tiny
    monkeypatch.setenv(embed_model.ENV_EMBED_MODEL, str(path))
    assert embed_model.embed_model_path() == path
    monkeypatch.setenv(embed_model.ENV_EMBED_MODEL, str(tmp_path / "missing.gguf"))
    with pytest.raises(SetupError, match="RELIC_EMBED_MODEL"):
        embed_model.embed_model_path()


def test_an_unstamped_or_changed_file_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("RELIC_HOME", str(tmp_path / "home"))
    assert embed_model.cached_embed_model() is None
    target = embed_model.default_embed_model_file()
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF not really")
    assert embed_model.cached_embed_model() is None
    embed_model._stamp_path(target).write_text(json.dumps(embed_model._stamp(target)))
    assert embed_model.cached_embed_model() == target
    target.write_bytes(b"GGUF changed after stamping")
    assert embed_model.cached_embed_model() is None


def test_setup_step_reports_the_cached_embedding_model():
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in __import__("os").environ.items() if k != embed_model.ENV_EMBED_MODEL}
    out = subprocess.run([sys.executable, "-m", "host.setup", "embed"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "cached:" in out.stdout and "all-MiniLM-L6-v2.f16.gguf" in out.stdout
