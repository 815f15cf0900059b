"""Sentence embeddings through libllama: a separate embedding context, many texts per call.

An :class:`Embedder` owns one llama context created with ``embeddings=True``
and the model's own pooling (mean for all-MiniLM-L6-v2).  ``embed(texts)``
packs several texts into each batch as separate sequences, reads one pooled
vector per sequence and returns L2-normalized float32 rows, so cosine
similarity is a dot product.

Nothing is truncated silently: a text longer than the model takes raises
:class:`~host.errors.EmbeddingError` (the store splits documents with
:mod:`host.rag.chunking` first, so this only fires on misuse).

Threading: create, use and close an Embedder on one thread (the inference
worker); llama contexts are not safe to share between threads.

This package does not import ``host.setup``: the caller names the model
(``host.setup.embed_model.embed_model_path()`` gives the default), so setup
may use the embedder to verify a conversion without an import cycle.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from host.errors import CancelledError, ClosedError, DecodeError, EmbeddingError, RelicError, TokenizeError

POOLING_NAMES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}
_POOLING_NONE, _POOLING_MEAN, _POOLING_RANK = 0, 1, 4


def _as_text(text, where: str) -> str:
    """``text`` as str; bytes must be valid UTF-8 (Lua strings arrive as bytes)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EmbeddingError(f"{where} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not isinstance(text, str):
        raise EmbeddingError(f"{where} must be a string, not {type(text).__name__}")
    return text


def _check(cancelled) -> None:
    if cancelled is not None and cancelled():
        raise CancelledError("cancelled while embedding")


class Embedder:
    """Embeds texts with a GGUF embedding model; see the module docstring.

    ``model`` is a path to a GGUF (the Embedder loads and owns the model) or an
    open :class:`host.llama.Model` (borrowed: keep it open while this is); the
    default model's path is :func:`host.setup.embed_model.embed_model_path`.  ``n_batch`` is
    the most tokens one llama_encode call sees (all sequences together) and
    also the cap on one text; ``n_seq_max`` the most texts per call.
    ``n_threads`` defaults to every core but one: the frame thread keeps a
    core, and ggml's spinning thread pool slows down several-fold when it
    has more threads than free cores.
    """

    def __init__(self, model, *, lib=None, n_batch: int = 512, n_seq_max: int = 32,
                 n_threads: int | None = None):
        from host.llama import Batch, Context, Model
        from host.llama import load as load_lib
        from host.llama.context import default_threads

        if model is None:
            raise EmbeddingError("Embedder needs a model: a GGUF path (the default is "
                                 "host.setup.embed_model.embed_model_path()) or an open Model")
        self._owns_model = not isinstance(model, Model)
        try:
            self.model = (Model(Path(model), lib=lib or load_lib(), embed=True)  # RELIC_EMBED_GPU_LAYERS
                          if self._owns_model else model)
        except RelicError as exc:
            raise EmbeddingError(f"cannot load the embedding model: {exc}") from exc
        self.lib = self.model.lib
        C = self.lib.C
        n_threads = n_threads or default_threads()
        try:
            ctx = self._make_context(Context, n_batch, n_seq_max, n_threads, None)
            pooling = C.llama_pooling_type(ctx.ptr)
            if pooling == _POOLING_NONE:
                # a model without pooling metadata: mean pooling is the usual sentence embedding
                ctx.close()
                ctx = self._make_context(Context, n_batch, n_seq_max, n_threads, _POOLING_MEAN)
                pooling = C.llama_pooling_type(ctx.ptr)
            if pooling == _POOLING_RANK:
                ctx.close()
                raise EmbeddingError(f"{self.model.path.name} is a reranker (rank pooling), not an embedding model")
        except RelicError as exc:
            self._close_model()
            raise exc if isinstance(exc, EmbeddingError) else EmbeddingError(
                f"cannot create an embedding context: {exc}") from exc
        # owns the context (and the batch below); both freed by close()
        self.ctx = ctx
        self.pooling = POOLING_NAMES.get(pooling, str(pooling))
        self.dim = C.llama_model_n_embd_out(self.model.ptr)
        self.n_batch = self.ctx.n_batch
        self.n_seq_max = min(n_seq_max, self.ctx.n_seq_max)
        self._batch = Batch(self.lib, self.n_batch, 1)
        self._n_special = len(self._tokenize("", "text"))
        n_train = self.model.n_ctx_train or self.n_batch
        #: the most content tokens (special tokens excluded) one text may have
        self.max_tokens = min(n_train, self.n_batch) - self._n_special
        self._model_id: str | None = None

    def _make_context(self, Context, n_batch, n_seq_max, n_threads, pooling):
        # An encoder (BERT) cannot split a batch into micro-batches: n_ubatch must hold it all.
        # n_ctx = n_batch: a causal model's KV cache must hold the whole batch, and an encoder's
        # compute graph is sized by n_ctx (a smaller n_ctx makes llama.cpp re-plan every call).
        return Context(self.model, n_ctx=n_batch, n_batch=n_batch, n_ubatch=n_batch, n_seq_max=n_seq_max,
                       n_threads=n_threads, n_threads_batch=n_threads, embeddings=True, pooling=pooling)

    def __repr__(self) -> str:
        return f"<Embedder {self.model.path.name} dim={self.dim} pooling={self.pooling}>"

    # --- identity -------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """A stable id of the model (name, dimension, pooling, file hash): stores re-embed when it changes."""
        if self._model_id is None:
            digest = hashlib.sha256()
            with open(self.model.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            name = self.model.meta("general.name") or self.model.path.stem
            self._model_id = f"{name}/{self.dim}d/{self.pooling}/sha256:{digest.hexdigest()[:16]}"
        return self._model_id

    # --- tokens ---------------------------------------------------------------
    def _tokenize(self, text: str, where: str) -> list[int]:
        try:
            return self.model.vocab.tokenize(text, add_special=True, parse_special=False)
        except TokenizeError as exc:
            raise EmbeddingError(f"{where} cannot be tokenized: {exc}") from None

    def tokenize(self, text) -> list[int]:
        """The token ids the model sees for ``text``, special tokens included."""
        return self._tokenize(_as_text(text, "text"), "text")

    def count_tokens(self, text) -> int:
        """Content tokens of ``text`` (without the special tokens every sequence gets)."""
        return len(self.tokenize(text)) - self._n_special

    # --- embedding ------------------------------------------------------------
    def embed(self, texts: Sequence, *, cancelled=None) -> np.ndarray:
        """L2-normalized float32 embeddings, one row per text, in order.

        Raises EmbeddingError for a text that is empty (or only whitespace),
        not valid UTF-8, or longer than :attr:`max_tokens`; nothing is cut.
        ``cancelled()`` (optional) is checked before each text and each batch;
        when it returns True, CancelledError is raised.
        """
        steps = self.embed_steps(texts, cancelled=cancelled)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def embed_steps(self, texts: Sequence, *, cancelled=None):
        """:meth:`embed` as a generator: yields (None) after each text tokenized and each batch
        encoded, and returns the embeddings (the same batches and vectors as :meth:`embed`).

        The caller may use this embedder for other texts between two steps
        (the inference worker answers searches while a long document is
        embedded): nothing of the embedding in progress lives in the context
        between batches.
        """
        if self.ctx.closed:
            raise ClosedError("the embedder is closed; create a new one")
        if isinstance(texts, (str, bytes)):
            raise EmbeddingError("embed() takes a list of texts; use embed_one() for a single text")
        seqs = []
        for i, raw in enumerate(texts):
            _check(cancelled)
            where = f"text {i + 1}"
            text = _as_text(raw, where)
            if not text.strip():
                raise EmbeddingError(f"{where} is empty; there is nothing to embed")
            tokens = self._tokenize(text, where)
            if len(tokens) - self._n_special > self.max_tokens:
                raise EmbeddingError(f"{where} has {len(tokens) - self._n_special} tokens but the embedding model "
                                     f"takes at most {self.max_tokens}; split it first (host.rag.chunking)")
            seqs.append(tokens)
            yield
        out = np.empty((len(seqs), self.dim), dtype=np.float32)
        i = 0
        while i < len(seqs):
            j, used = i, 0
            while j < len(seqs) and j - i < self.n_seq_max and used + len(seqs[j]) <= self.n_batch:
                used += len(seqs[j])
                j += 1
            _check(cancelled)
            self._run(seqs[i:j], out[i:j])
            i = j
            yield
        norms = np.linalg.norm(out, axis=1)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise EmbeddingError("the embedding model returned a zero or non-finite vector")
        out /= norms[:, None]
        return out

    def embed_one(self, text) -> np.ndarray:
        """The embedding of one text (a 1-D float32 vector of length :attr:`dim`)."""
        return self.embed([text])[0]

    def _run(self, seqs: list[list[int]], out: np.ndarray) -> None:
        """Encode several sequences in one call and copy their pooled vectors into ``out``."""
        ffi = self.lib.ffi
        s = self._batch.struct
        self._batch.clear()
        n = 0
        for sid, tokens in enumerate(seqs):
            k = len(tokens)
            ffi.memmove(s.token + n, ffi.new("int32_t[]", tokens), 4 * k)
            ffi.memmove(s.pos + n, ffi.new("int32_t[]", list(range(k))), 4 * k)
            for t in range(n, n + k):
                s.n_seq_id[t] = 1
                s.seq_id[t][0] = sid
                s.logits[t] = 1
            n += k
        s.n_tokens = n
        self.ctx.memory_clear()  # a decoder-style embedding model keeps a KV cache; BERT has none
        try:
            self.ctx.decode(self._batch)
        except DecodeError as exc:
            raise EmbeddingError(f"the embedding model failed on a batch of {len(seqs)} texts: {exc}") from exc
        for sid in range(len(seqs)):
            ptr = self.ctx.embeddings_seq(sid)
            if ptr == ffi.NULL:
                raise EmbeddingError(f"llama.cpp returned no pooled embedding for sequence {sid}")
            out[sid] = np.frombuffer(ffi.buffer(ptr, 4 * self.dim), dtype=np.float32)

    # --- lifetime -------------------------------------------------------------
    def _close_model(self) -> None:
        if self._owns_model:
            self.model.close()

    def close(self) -> None:
        """Free the context and batch (and the model, if this Embedder loaded it). Idempotent."""
        for name in ("_batch", "ctx"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()
        self._close_model()

    @property
    def closed(self) -> bool:
        return self.ctx.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
