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
