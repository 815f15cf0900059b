"""Context (inference state and KV cache) and Batch (decode input)."""

from __future__ import annotations

import os

from host.errors import ContextError, DecodeError, TokenizeError
from host.llama import log
from host.llama._native import NativeObject

# llama_decode return codes, as documented in include/llama.h.
DECODE_CODES = {
    0: "success",
    1: "no KV cache slot for the batch (reduce the batch or increase n_ctx)",
    2: "aborted by the abort callback (processed ubatches remain in the memory)",
    -1: "invalid input batch",
}
# llama_encode: 0 success, < 0 error (memory state restored).


def decode_error(code: int) -> str:
    """The meaning of a llama_decode return code."""
    if code in DECODE_CODES:
        return DECODE_CODES[code]
    if code < -1:
        return f"fatal error {code} (processed ubatches remain in the memory)"
    return f"warning code {code}"


def default_threads() -> int:
    """Threads for generation: every core but one for the frame thread, at least 1."""
    return max(1, (os.cpu_count() or 2) - 1)


# KV cache element types a context accepts, with bytes per element (ggml block size / values).
# Quantized types need flash attention for the V cache (llama.cpp refuses them otherwise).
KV_TYPES = {"f32": ("GGML_TYPE_F32", 4.0), "f16": ("GGML_TYPE_F16", 2.0), "bf16": ("GGML_TYPE_BF16", 2.0),
            "q8_0": ("GGML_TYPE_Q8_0", 34 / 32), "q5_1": ("GGML_TYPE_Q5_1", 24 / 32),
            "q5_0": ("GGML_TYPE_Q5_0", 22 / 32), "q4_1": ("GGML_TYPE_Q4_1", 20 / 32),
            "q4_0": ("GGML_TYPE_Q4_0", 18 / 32), "iq4_nl": ("GGML_TYPE_IQ4_NL", 18 / 32)}


def check_kv_type(kv_type: str, flash_attn: bool | None = True) -> str:
    """``kv_type`` if it names a KV cache type this binding knows; ContextError otherwise."""
    if kv_type not in KV_TYPES:
        raise ContextError(f"unknown KV cache type {kv_type!r}; use one of {sorted(KV_TYPES)}")
    if KV_TYPES[kv_type][1] < 2 and flash_attn is False:
        raise ContextError(f"a {kv_type} KV cache needs flash attention (flash_attn=True)")
    return kv_type


def _available_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-Linux
        return None


class Context(NativeObject):
    """A llama context over a model: KV cache, threads, sequences.

    ``n_ctx=None`` takes the model's training context capped at 4096; an
    ``n_ctx`` of 0, a negative one, or one whose KV cache would not fit in
    memory raises :class:`~host.errors.ContextError`.  ``kv_type`` is the KV
    cache element type (``"f16"``, ``"q8_0"``, ... see ``KV_TYPES``); ``"q8_0"``
    takes about half the memory of ``"f16"`` and needs flash attention.
    """

    kind = "context"

    def __init__(self, model, *, n_ctx: int | None = None, n_batch: int = 512, n_ubatch: int | None = None,
                 n_seq_max: int = 1, n_threads: int | None = None, n_threads_batch: int | None = None,
                 embeddings: bool = False, kv_unified: bool = True, pooling: int | None = None,
                 flash_attn: bool | None = None, kv_type: str = "f16"):
        self.model = model
        self.lib = model.lib
        ffi, C = self.lib.ffi, self.lib.C
        if model.vocab_only or model.n_layer == 0:
            raise ContextError(f"{model.path.name} was loaded vocab_only (no weights); it cannot run a context")
        if n_ctx is None:
            n_ctx = min(model.n_ctx_train or 4096, 4096)
        for name, value in (("n_ctx", n_ctx), ("n_batch", n_batch), ("n_seq_max", n_seq_max)):
            if not isinstance(value, int) or value <= 0:
                raise ContextError(f"{name} must be a positive integer, got {value!r}")
        if n_seq_max > C.llama_max_parallel_sequences():
            raise ContextError(f"n_seq_max {n_seq_max} exceeds llama.cpp's limit {C.llama_max_parallel_sequences()}")
        check_kv_type(kv_type, flash_attn)
        kv_bytes = self.estimate_kv_bytes(model, n_ctx, kv_type)
        avail = _available_memory()
        if avail is not None and kv_bytes > avail:
            raise ContextError(f"n_ctx {n_ctx} needs about {kv_bytes >> 20} MiB of KV cache but only "
                               f"{avail >> 20} MiB of memory is free; use a smaller n_ctx")
        p = C.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = n_ubatch or min(n_batch, 512)
        p.n_seq_max = n_seq_max
        p.n_threads = n_threads or default_threads()
        p.n_threads_batch = n_threads_batch or n_threads or (os.cpu_count() or 1)
        p.embeddings = embeddings
        p.kv_unified = kv_unified
        p.no_perf = False
        p.type_k = p.type_v = getattr(C, KV_TYPES[kv_type][0])
        if pooling is not None:
            p.pooling_type = pooling
        if flash_attn is not None:
            p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else C.LLAMA_FLASH_ATTN_TYPE_DISABLED
        with log.capture() as lines:
            ptr = C.llama_init_from_model(model.ptr, p)
        if ptr == ffi.NULL:
            why = "; ".join(t for _, t in lines[-3:]) or "no details logged"
            raise ContextError(f"cannot create a context with n_ctx={n_ctx}, n_batch={n_batch}: {why}")
        # owns the context; pins the model until freed with llama_free
        super().__init__(ptr, C.llama_free, parent=model)
        self.n_ctx = C.llama_n_ctx(ptr)
        self.n_batch = C.llama_n_batch(ptr)
        self.n_seq_max = C.llama_n_seq_max(ptr)
        self.n_vocab = model.vocab.n_tokens
        self.kv_type = kv_type
        self.n_stream = 1 if kv_unified else self.n_seq_max  # KV streams: one per sequence unless unified

    def __repr__(self) -> str:
        return f"<Context n_ctx={self.n_ctx}{' closed' if self.closed else ''}>"

    @staticmethod
    def estimate_kv_bytes(model, n_ctx: int, kv_type: str = "f16") -> int:
        """Rough K+V cache size for n_ctx tokens of the given element type."""
        head_dim = model.n_embd // max(1, model.n_head)
        return int(2 * KV_TYPES[kv_type][1] * n_ctx * model.n_layer * head_dim * max(1, model.n_head_kv))

    @property
    def n_threads(self) -> int:
        return self.lib.C.llama_n_threads(self.ptr)

    def set_threads(self, n_threads: int, n_threads_batch: int | None = None) -> None:
        self.lib.C.llama_set_n_threads(self.ptr, n_threads, n_threads_batch or n_threads)

    def decode(self, batch: "Batch") -> None:
        """Run the model on a batch; a non-zero code raises DecodeError with its meaning."""
        ptr = self.ptr
        if batch.n_tokens == 0:
            return
        code = self.lib.C.llama_decode(ptr, batch.struct)
        if code != 0:
            raise DecodeError(f"llama_decode failed: {decode_error(code)}", code)

    def encode(self, batch: "Batch") -> None:
        code = self.lib.C.llama_encode(self.ptr, batch.struct)
        if code != 0:
            raise DecodeError(f"llama_encode failed with code {code} (memory state restored)", code)

    def logits(self, i: int = -1):
        """Borrowed float* to the logits of output i; valid until the next decode."""
        return self.lib.C.llama_get_logits_ith(self.ptr, i)

    def embeddings_seq(self, seq_id: int):
        """Borrowed float* to the pooled embedding of a sequence (NULL if none)."""
        return self.lib.C.llama_get_embeddings_seq(self.ptr, seq_id)

    def embeddings_ith(self, i: int):
        return self.lib.C.llama_get_embeddings_ith(self.ptr, i)

    # --- sequence state (KV cells of one sequence) ------------------------------
    def seq_state(self, seq_id: int) -> bytes:
        """A copy of one sequence's KV state (llama_state_seq_get_data)."""
        C, ffi = self.lib.C, self.lib.ffi
        size = C.llama_state_seq_get_size(self.ptr, seq_id)
        buf = ffi.new("uint8_t[]", size)
        n = C.llama_state_seq_get_data(self.ptr, buf, size, seq_id)
        return ffi.buffer(buf, n)[:]

    def set_seq_state(self, seq_id: int, state: bytes) -> bool:
        """Load a sequence's KV state; False (and llama.cpp logs why) when it does not fit this context.

        A state taken from a context with another number of KV streams (another
        n_seq_max) is re-laid out for this one first (see restream_seq_state).
        """
        state = restream_seq_state(state, self.n_stream)
        C, ffi = self.lib.C, self.lib.ffi
        return bool(state) and C.llama_state_seq_set_data(self.ptr, ffi.from_buffer(state), len(state), seq_id) == len(state)

    # --- memory (KV cache) ---------------------------------------------------
    def memory_clear(self, data: bool = True) -> None:
        self.lib.C.llama_memory_clear(self.lib.C.llama_get_memory(self.ptr), data)

    def memory_seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        return bool(self.lib.C.llama_memory_seq_rm(self.lib.C.llama_get_memory(self.ptr), seq_id, p0, p1))

    def memory_seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        self.lib.C.llama_memory_seq_cp(self.lib.C.llama_get_memory(self.ptr), src, dst, p0, p1)

    def memory_seq_add(self, seq_id: int, p0: int, p1: int, delta: int) -> None:
        self.lib.C.llama_memory_seq_add(self.lib.C.llama_get_memory(self.ptr), seq_id, p0, p1, delta)

    def memory_seq_pos_max(self, seq_id: int) -> int:
        return self.lib.C.llama_memory_seq_pos_max(self.lib.C.llama_get_memory(self.ptr), seq_id)

    def memory_can_shift(self) -> bool:
        return bool(self.lib.C.llama_memory_can_shift(self.lib.C.llama_get_memory(self.ptr)))


def restream_seq_state(state: bytes, n_stream: int) -> bytes:
    """One sequence's saved KV state re-laid out for a context with ``n_stream`` KV streams.

    The pinned llama.cpp writes a sequence's state as: uint32 magic, int32 sequence
    id, uint32 stream count, then per stream a uint32 cell count followed by that
    stream's cells when the count is not 0.  A sequence's cells are in one stream,
    and reading puts them in the target sequence's own stream whatever their index,
    so the state is the same cells under another stream count.  Returned unchanged
    when the layout is not that one (llama.cpp then refuses it and logs why).
    """
    if len(state) < 16:
        return state
    n_old = int.from_bytes(state[8:12], "little")
    if n_old == n_stream or n_old == 0 or len(state) < 12 + 4 * n_old:
        return state
    counts = [int.from_bytes(state[12 + 4 * i:16 + 4 * i], "little") for i in range(n_old)]
    first = next((i for i, c in enumerate(counts) if c), None)
    head = state[:8] + n_stream.to_bytes(4, "little")
    if first is None:
        return head + bytes(4 * n_stream) if len(state) == 12 + 4 * n_old else state
    tail = 4 * (n_old - first - 1)
    if tail and any(state[-tail:]):
        return state
    body = state[12 + 4 * first:len(state) - tail]  # the cell count and the cells
    return head + body + bytes(4 * (n_stream - 1))


class Batch(NativeObject):
    """A reusable decode batch of up to ``capacity`` tokens.

    Preallocate one and refill it: ``clear()`` then ``add()`` per token.
    """

    kind = "batch"

    def __init__(self, lib, capacity: int, n_seq_max: int = 1):
        if capacity <= 0 or n_seq_max <= 0:
            raise ContextError("a batch needs a positive capacity and n_seq_max")
        self.lib = lib
        # owns the arrays: freed with llama_batch_free (the struct is held by value)
        self.struct = lib.C.llama_batch_init(capacity, 0, n_seq_max)
        super().__init__(self.struct, lib.C.llama_batch_free)
        self.capacity = capacity
        self.n_seq_max = n_seq_max

    @property
    def n_tokens(self) -> int:
        self.ptr
        return self.struct.n_tokens

    def clear(self) -> None:
        self.ptr
        self.struct.n_tokens = 0

    def add(self, token: int, pos: int, seq_ids=(0,), logits: bool = False) -> None:
        """Append one token at position pos for the given sequences."""
        s = self.struct
        i = s.n_tokens
        if self._ptr is None:
            self.ptr  # raises ClosedError
        if i >= self.capacity:
            raise ContextError(f"batch is full ({self.capacity} tokens)")
        if len(seq_ids) > self.n_seq_max:
            raise ContextError(f"a token may belong to at most {self.n_seq_max} sequences in this batch")
        s.token[i] = token
        s.pos[i] = pos
        s.n_seq_id[i] = len(seq_ids)
        row = s.seq_id[i]
        for j, sid in enumerate(seq_ids):
            row[j] = sid
        s.logits[i] = logits
        s.n_tokens = i + 1

    def set_tokens(self, tokens, pos0: int, seq_id: int = 0, logits_last: bool = True, n_vocab: int | None = None) -> None:
        """Fill the batch with consecutive tokens of one sequence."""
        if len(tokens) > self.capacity:
            raise ContextError(f"{len(tokens)} tokens do not fit a batch of {self.capacity}")
        if n_vocab is not None:
            bad = [t for t in tokens if not 0 <= t < n_vocab]
            if bad:
                raise TokenizeError(f"token id {bad[0]} is out of range (vocabulary has {n_vocab} tokens)")
        self.clear()
        for k, t in enumerate(tokens):
            self.add(t, pos0 + k, (seq_id,), False)
        if tokens and logits_last:
            self.struct.logits[len(tokens) - 1] = True
