"""Named samplers, presets and a sound default order, built into llama.cpp chains.

A sampler configuration is a plain dict (a Lua table from a mod)::

    {"preset": "balanced", "temperature": 0.7, "top_k": 40, "top_p": 0.95,
     "min_p": 0.05, "typical": 1.0, "top_n_sigma": -1,
     "xtc": {"probability": 0.1, "threshold": 0.1},
     "dynatemp": {"range": 0.5, "exponent": 1.0},
     "mirostat": {"version": 2, "tau": 5.0, "eta": 0.1},
     "penalties": {"last_n": 64, "repeat": 1.1, "frequency": 0.0, "presence": 0.0},
     "dry": {"multiplier": 0.8, "base": 1.75, "allowed_length": 2, "last_n": -1,
             "breakers": ["\\n", ":"]},
     "logit_bias": {token_id: bias},
     "order": ["penalties", "dry", "top_k", ...],
     "greedy": False, "seed": 42}

Filters run before the final pick: logit_bias, penalties, DRY, top_n_sigma,
top_k, typical, top_p, min_p, XTC, temperature, then ``dist`` (seeded), or
mirostat, or greedy when the temperature is 0.  A grammar, when given, runs
first in effect: it checks the token the chain picks and, only when it rejects
it, filters the logits and the chain picks again (``GrammarChain``, as
llama.cpp's common sampler does).  Unknown names and out-of-range values raise
SamplerError.
"""

from __future__ import annotations

import math

from host.errors import SamplerError
from host.llama.sampler import GrammarChain, SamplerChain

DEFAULT_ORDER = ("logit_bias", "penalties", "dry", "top_n_sigma", "top_k", "typical", "top_p", "min_p",
                 "xtc", "temperature")

PRESETS = {
    "precise": {"temperature": 0.2, "top_k": 20, "top_p": 0.9, "min_p": 0.1,
                "penalties": {"last_n": 64, "repeat": 1.05}},
    "balanced": {"temperature": 0.7, "top_k": 40, "top_p": 0.95, "min_p": 0.05,
                 "penalties": {"last_n": 64, "repeat": 1.1}},
    "creative": {"temperature": 1.0, "top_k": 0, "top_p": 0.98, "min_p": 0.02,
                 "xtc": {"probability": 0.3, "threshold": 0.1},
                 "dry": {"multiplier": 0.8, "base": 1.75, "allowed_length": 2, "last_n": 256}},
}

_KEYS = set(DEFAULT_ORDER) | {"preset", "mirostat", "dynatemp", "order", "greedy", "seed"}
_SUB = {
    "xtc": {"probability", "threshold", "min_keep"},
    "dynatemp": {"range", "exponent"},
    "mirostat": {"version", "tau", "eta", "m"},
    "penalties": {"last_n", "repeat", "frequency", "presence"},
    "dry": {"multiplier", "base", "allowed_length", "last_n", "breakers"},
}


def _num(cfg: dict, key: str, lo: float = -math.inf, hi: float = math.inf, integer: bool = False):
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise SamplerError(f"sampler option {key!r} must be {'an integer' if integer else 'a number'}, got {v!r}")
    if not (lo <= v <= hi) or (isinstance(v, float) and math.isnan(v)):
        raise SamplerError(f"sampler option {key!r} = {v} is out of range [{lo}, {hi}]")
    return int(v) if integer else float(v)


def _sub(cfg: dict, name: str) -> dict:
    v = cfg[name]
    if not isinstance(v, dict):
        raise SamplerError(f"sampler option {name!r} must be a table, got {type(v).__name__}")
    unknown = set(v) - _SUB[name]
    if unknown:
        raise SamplerError(f"unknown {name} option(s) {sorted(map(str, unknown))}; known: {sorted(_SUB[name])}")
    return v


def resolve(config: dict | None, *, temperature=None, seed=None) -> dict:
    """Merge preset, config and per-request shortcuts; validate every value."""
    config = dict(config or {})
    unknown = set(config) - _KEYS
    if unknown:
        raise SamplerError(f"unknown sampler(s) {sorted(map(str, unknown))}; known: {sorted(_KEYS)}")
    preset = config.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise SamplerError(f"unknown sampler preset {preset!r}; known: {sorted(PRESETS)}")
    cfg = {**PRESETS.get(preset, {}), **config}
    if temperature is not None:
        cfg["temperature"] = temperature
    if seed is not None:
        cfg["seed"] = seed
    # validation (raises on the first bad value)
    for key, lo, hi, integer in (("temperature", 0, 100, False), ("top_k", 0, 1 << 30, True),
                                 ("top_p", 0, 1, False), ("min_p", 0, 1, False), ("typical", 0, 1, False),
                                 ("top_n_sigma", -1, 100, False), ("seed", 0, 2**32 - 1, True)):
        if key in cfg:
            cfg[key] = _num(cfg, key, lo, hi, integer)
    for name in _SUB:
        if name in cfg:
            cfg[name] = sub = dict(_sub(cfg, name))
            ranges = {
                "xtc": {"probability": (0, 1, False), "threshold": (0, 1, False), "min_keep": (0, 1 << 20, True)},
                "dynatemp": {"range": (0, 100, False), "exponent": (0, 100, False)},
                "mirostat": {"version": (1, 2, True), "tau": (0, 100, False), "eta": (0, 10, False),
                             "m": (1, 1 << 20, True)},
                "penalties": {"last_n": (-1, 1 << 20, True), "repeat": (1e-6, 100, False),
                              "frequency": (-100, 100, False), "presence": (-100, 100, False)},
                "dry": {"multiplier": (0, 100, False), "base": (1, 100, False),
                        "allowed_length": (0, 1 << 20, True), "last_n": (-1, 1 << 20, True)},
            }[name]
            for k, (lo, hi, integer) in ranges.items():
                if k in sub:
                    sub[k] = _num(sub, k, lo, hi, integer)
            if name == "dry" and "breakers" in sub:
                b = sub["breakers"]
                if isinstance(b, dict):  # a Lua array arrives as {1: .., 2: ..}
                    b = [b[k] for k in sorted(b)]
                if not isinstance(b, (list, tuple)) or not all(isinstance(s, str) and s for s in b):
                    raise SamplerError("dry.breakers must be a list of non-empty strings")
                sub["breakers"] = list(b)
    if "logit_bias" in cfg:
        lb = cfg["logit_bias"]
        if not isinstance(lb, dict):
            raise SamplerError("logit_bias must be a table {token_id = bias}")
        clean = {}
        for tok, bias in lb.items():
            if isinstance(tok, str) and tok.isdigit():  # a saved session's sampler came back through JSON
                tok = int(tok)
            if isinstance(tok, bool) or not isinstance(tok, (int, float)) or not float(tok).is_integer():
                raise SamplerError(f"logit_bias key {tok!r} must be a token id")
            if isinstance(bias, bool) or not isinstance(bias, (int, float)) or math.isnan(bias):
                raise SamplerError(f"logit_bias for token {tok} must be a number")
            clean[int(tok)] = float(bias)
        cfg["logit_bias"] = clean
    if "order" in cfg:
        order = cfg["order"]
        if isinstance(order, dict):
            order = [order[k] for k in sorted(order)]
        if not isinstance(order, (list, tuple)) or not all(isinstance(n, str) for n in order):
            raise SamplerError("order must be a list of sampler names")
        bad = [n for n in order if n not in DEFAULT_ORDER]
        if bad:
            raise SamplerError(f"unknown sampler(s) in order: {bad}; known: {list(DEFAULT_ORDER)}")
        cfg["order"] = tuple(order)
    if "greedy" in cfg and not isinstance(cfg["greedy"], bool):
        raise SamplerError("greedy must be true or false")
    return cfg


def build(lib, vocab, cfg: dict, *, grammar=None) -> SamplerChain | GrammarChain:
    """A SamplerChain for a resolved config; with ``grammar`` (a llama_sampler pointer) a GrammarChain.

    Takes ownership of the grammar sampler (freed with the returned object, also on error).
    """
    if grammar is not None:
        try:
            chain = build(lib, vocab, cfg)
        except BaseException:
            if grammar != lib.ffi.NULL:
                lib.C.llama_sampler_free(grammar)
            raise
        # a greedy pick over candidates kept best-first (typical keeps others) lets a rejected
        # pick be followed by the next best ones before the whole-vocabulary pass
        greedy = (cfg.get("greedy", False) or (cfg.get("temperature", 0.0) <= 0 and "mirostat" not in cfg)) \
            and not cfg.get("typical", 1.0) < 1
        return GrammarChain(lib, chain, grammar, vocab.n_tokens, greedy=greedy)
    C, ffi = lib.C, lib.ffi
    n_vocab = vocab.n_tokens
    seed = cfg.get("seed", C.LLAMA_DEFAULT_SEED)
    temp = cfg.get("temperature", 0.0)
    greedy = cfg.get("greedy", False) or (temp <= 0 and "mirostat" not in cfg)
    chain = SamplerChain(lib)
    try:
        for name in cfg.get("order", DEFAULT_ORDER):
            if name not in cfg:
                continue
            if greedy and name in ("temperature", "xtc"):
                continue  # no randomness before a greedy pick
            v = cfg[name]
            if name == "logit_bias":
                if not v:
                    continue
                bad = [t for t in v if not 0 <= t < n_vocab]
                if bad:
                    raise SamplerError(f"logit_bias token id {bad[0]} is out of range (vocabulary has {n_vocab})")
                arr = ffi.new("llama_logit_bias[]", len(v))
                for i, (tok, bias) in enumerate(v.items()):
                    arr[i].token, arr[i].bias = tok, bias
                chain.add(C.llama_sampler_init_logit_bias(n_vocab, len(v), arr))
            elif name == "penalties":
                chain.add(C.llama_sampler_init_penalties(n_vocab, v.get("last_n", 64), v.get("repeat", 1.0),
                                                         v.get("frequency", 0.0), v.get("presence", 0.0)))
            elif name == "dry":
                breakers = v.get("breakers", ["\n", ":", '"', "*"])
                keep = [ffi.new("char[]", b.encode()) for b in breakers]
                arr = ffi.new("const char *[]", keep) if keep else ffi.NULL
                chain.add(C.llama_sampler_init_dry(vocab.ptr, v.get("multiplier", 0.8), v.get("base", 1.75),
                                                   v.get("allowed_length", 2), v.get("last_n", -1), arr, len(keep)))
            elif name == "top_n_sigma":
                if v > 0:
                    chain.add(C.llama_sampler_init_top_n_sigma(v))
            elif name == "top_k":
                if v > 0:
                    chain.add(C.llama_sampler_init_top_k(v))
            elif name == "typical":
                if v < 1:
                    chain.add(C.llama_sampler_init_typical(v, 1))
            elif name == "top_p":
                if v < 1:
                    chain.add(C.llama_sampler_init_top_p(v, 1))
            elif name == "min_p":
                if v > 0:
                    chain.add(C.llama_sampler_init_min_p(v, 1))
            elif name == "xtc":
                chain.add(C.llama_sampler_init_xtc(v.get("probability", 0.0), v.get("threshold", 0.1),
                                                   v.get("min_keep", 1), seed))
            elif name == "temperature":
                dyn = cfg.get("dynatemp")
                if dyn and dyn.get("range", 0) > 0:
                    chain.add(C.llama_sampler_init_temp_ext(v, dyn["range"], dyn.get("exponent", 1.0)))
                elif "mirostat" not in cfg or v > 0:
                    chain.add(C.llama_sampler_init_temp(v))
        if greedy:
            chain.add(C.llama_sampler_init_greedy())
        elif "mirostat" in cfg:
            m = cfg["mirostat"]
            if m.get("version", 2) == 1:
                chain.add(C.llama_sampler_init_mirostat(n_vocab, seed, m.get("tau", 5.0), m.get("eta", 0.1),
                                                        m.get("m", 100)))
            else:
                chain.add(C.llama_sampler_init_mirostat_v2(seed, m.get("tau", 5.0), m.get("eta", 0.1)))
        else:
            chain.add(C.llama_sampler_init_dist(seed))
    except BaseException:
        chain.close()
        raise
    return chain


def chain_for(lib, vocab, config: dict | None = None, *, temperature=None, seed=None,
              grammar=None) -> SamplerChain | GrammarChain:
    """resolve() then build(): the one call the engine makes per request."""
    return build(lib, vocab, resolve(config, temperature=temperature, seed=seed), grammar=grammar)
