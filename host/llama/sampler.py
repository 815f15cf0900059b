"""SamplerChain: llama.cpp's sampler chain (the full named-sampler layer is host.engine)."""

from __future__ import annotations

from host.errors import SamplerError
from host.llama._native import NativeObject


class SamplerChain(NativeObject):
    """A chain of samplers; the last one picks the token (greedy, dist, mirostat).

    ``add`` takes ownership of a sampler: it is freed with the chain.
    """

    kind = "sampler chain"

    def __init__(self, lib, *, no_perf: bool = True):
        self.lib = lib
        params = lib.C.llama_sampler_chain_default_params()
        params.no_perf = no_perf
        # owns the chain and every sampler added to it; freed with llama_sampler_free
        super().__init__(lib.C.llama_sampler_chain_init(params), lib.C.llama_sampler_free)

    def add(self, sampler) -> "SamplerChain":
        """Append a sampler pointer (from llama_sampler_init_*); the chain takes ownership."""
        if sampler == self.lib.ffi.NULL:
            raise SamplerError("sampler could not be created (llama.cpp returned NULL)")
        self.lib.C.llama_sampler_chain_add(self.ptr, sampler)
        return self

    def __len__(self) -> int:
        return self.lib.C.llama_sampler_chain_n(self.ptr)

    def names(self) -> list[str]:
        C, ffi = self.lib.C, self.lib.ffi
        return [ffi.string(C.llama_sampler_name(C.llama_sampler_chain_get(self.ptr, i))).decode()
                for i in range(len(self))]

    def sample(self, ctx, idx: int = -1) -> int:
        """Sample and accept a token from output idx of the last decode."""
        return self.lib.C.llama_sampler_sample(self.ptr, ctx.ptr, idx)

    def accept(self, token: int) -> None:
        self.lib.C.llama_sampler_accept(self.ptr, token)

    def reset(self) -> None:
        self.lib.C.llama_sampler_reset(self.ptr)

    @classmethod
    def greedy(cls, lib) -> "SamplerChain":
        return cls(lib).add(lib.C.llama_sampler_init_greedy())

    @classmethod
    def temperature(cls, lib, temperature: float, seed: int | None = None, top_k: int = 40,
                    top_p: float = 0.95) -> "SamplerChain":
        """top-k, top-p, temperature, then a seeded random pick."""
        if temperature <= 0:
            return cls.greedy(lib)
        C = lib.C
        chain = cls(lib)
        chain.add(C.llama_sampler_init_top_k(top_k))
        chain.add(C.llama_sampler_init_top_p(top_p, 1))
        chain.add(C.llama_sampler_init_temp(temperature))
        chain.add(C.llama_sampler_init_dist(C.LLAMA_DEFAULT_SEED if seed is None else seed & 0xFFFFFFFF))
        return chain


class GrammarChain:
    """A sampler chain plus a grammar, run sample-then-check (llama.cpp's common sampler does the same).

    Filtering the whole vocabulary through the grammar costs more than the rest of
    sampling together, so each step samples with the plain chain first and asks the
    grammar about the picked token only.  Only when the grammar rejects it are the
    logits filtered by the grammar and sampled again.  Every token returned is one
    the grammar allows; with a greedy chain the tokens are exactly those of
    grammar-first sampling (the best allowed token either way).  With a random pick
    the first draw consumes the seeded RNG, so a fixed seed still gives the same
    text, but not the same text as grammar-first sampling.

    ``greedy=True`` says the chain ends in a greedy pick and keeps, of any candidates,
    the best by logit (no ``typical``): then a rejected pick is followed by the next
    best ones (each previous one banned), checked one at a time, up to RETRIES,
    before the whole-vocabulary pass; the best allowed token is the same either way.

    Takes ownership of ``chain`` and of the ``grammar`` sampler pointer; both are
    freed by close().  Owned by one thread (the worker).
    """

    kind = "grammar sampler chain"

    RETRIES = 8  # greedy chains: next-best picks checked one by one before the whole-vocabulary pass

    def __init__(self, lib, chain: SamplerChain, grammar, n_vocab: int, *, greedy: bool = False):
        import numpy as np

        if grammar == lib.ffi.NULL:
            chain.close()
            raise SamplerError("grammar sampler could not be created (llama.cpp returned NULL)")
        self.lib = lib
        self.chain = chain
        # owns the grammar sampler: freed with llama_sampler_free in close()
        self.grammar = NativeObject(grammar, lib.C.llama_sampler_free)
        self.n_vocab = n_vocab
        ffi = lib.ffi
        dtype = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
        assert dtype.itemsize == ffi.sizeof("llama_token_data")
        self._fresh = np.zeros(n_vocab, dtype)  # ids 0..n-1, p = 0: copied over the work array each step
        self._fresh["id"] = np.arange(n_vocab, dtype="<i4")
        self._cur = self._fresh.copy()
        self._fresh_bytes, self._cur_bytes = self._fresh.view(np.uint8), self._cur.view(np.uint8)
        self._logits = self._cur["logit"]
        self._np = np
        self._cur_p = ffi.new("llama_token_data_array *")
        self._cur_data = ffi.cast("llama_token_data *", ffi.from_buffer(self._cur))
        self._one = ffi.new("llama_token_data *")
        self._one_p = ffi.new("llama_token_data_array *")
        self._one_p.data, self._one_p.size = self._one, 1
        self.greedy = greedy
        self.resampled = 0  # how many picks the grammar rejected (then sampled again)
        self.picks = 0

    def _load(self, ctx, idx: int) -> None:
        ffi = self.lib.ffi
        logits = self.lib.C.llama_get_logits_ith(ctx.ptr, idx)
        if logits == ffi.NULL:
            raise SamplerError(f"no logits at output {idx} of the last decode")
        self._np.copyto(self._cur_bytes, self._fresh_bytes)  # a byte copy: a structured copy is 30x slower
        self._logits[...] = self._np.frombuffer(ffi.buffer(logits, 4 * self.n_vocab), dtype="<f4")
        p = self._cur_p
        p.data, p.size, p.selected, p.sorted = self._cur_data, self.n_vocab, -1, False

    def _pick(self) -> int:
        p = self._cur_p
        if not 0 <= p.selected < p.size:
            raise SamplerError("the sampler chain selected no token")
        return p.data[p.selected].id

    def sample(self, ctx, idx: int = -1) -> int:
        """Sample a token the grammar allows from output idx of the last decode, and accept it."""
        C = self.lib.C
        chain, grammar = self.chain.ptr, self.grammar.ptr
        self._load(ctx, idx)
        C.llama_sampler_apply(chain, self._cur_p)
        token = self._pick()
        self.picks += 1
        if not self._allowed(token):
            self.resampled += 1
            banned, token = [token], None
            if self.greedy:  # the next best, one at a time
                for _ in range(self.RETRIES):
                    self._load(ctx, idx)
                    self._logits[banned] = float("-inf")
                    C.llama_sampler_apply(chain, self._cur_p)
                    pick = self._pick()
                    if self._allowed(pick):
                        token = pick
                        break
                    banned.append(pick)
            if token is None:  # grammar first over the whole vocabulary
                self._load(ctx, idx)
                C.llama_sampler_apply(grammar, self._cur_p)
                C.llama_sampler_apply(chain, self._cur_p)
                token = self._pick()
        C.llama_sampler_accept(grammar, token)
        C.llama_sampler_accept(chain, token)
        return token

    def _allowed(self, token: int) -> bool:
        """Whether the grammar accepts ``token`` next (it checks one candidate, not the vocabulary)."""
        one = self._one
        one.id, one.logit, one.p = token, 1.0, 0.0
        self._one_p.selected, self._one_p.sorted = -1, False
        self.lib.C.llama_sampler_apply(self.grammar.ptr, self._one_p)
        return one.logit != float("-inf")

    def accept(self, token: int) -> None:
        self.lib.C.llama_sampler_accept(self.grammar.ptr, token)
        self.chain.accept(token)

    def reset(self) -> None:
        self.lib.C.llama_sampler_reset(self.grammar.ptr)
        self.chain.reset()

    def names(self) -> list[str]:
        return ["grammar (checked)"] + self.chain.names()

    def __len__(self) -> int:
        return 1 + len(self.chain)

    @property
    def closed(self) -> bool:
        return self.chain.closed

    def close(self) -> None:
        """Free the chain and the grammar sampler. Idempotent."""
        self.chain.close()
        self.grammar.close()
