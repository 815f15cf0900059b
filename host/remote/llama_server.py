"""llama.cpp's llama-server, spoken natively: prompt cache and slots, GBNF, its samplers, /tokenize.

- ``llm.generate`` -> ``POST /completion`` with the prompt as token ids
  (tokenized by the server's ``/tokenize`` with Relic's rules: BOS added,
  special-token text parsed only with ``special = true``).
- ``llm.chat`` and session turns -> ``POST /v1/chat/completions``: the
  server applies its own chat template.  A session always goes to the same
  slot (``id_slot``) with ``cache_prompt``, so each turn re-reads only what
  is new; the server's ``timings`` say how much came from the cache
  (``usage.cached_tokens``).
- Grammars are Relic's own GBNF (a schema compiled by host.engine.json_schema,
  the same grammar the embedded model gets), sent as ``grammar``; the result
  is still decoded and validated by Relic, failing closed.
- Samplers map onto the server's parameters one to one; the filters a
  request does not name are switched off, as in the embedded chain.
"""

from __future__ import annotations

import re

from host.errors import GrammarError
from host.remote.dialect import Chunk, ServerInfo, finish_reason, unsupported

NAME = "llama-server"

# Relic's sampler names -> the server's names in its "samplers" order
_ORDER = {"penalties": "penalties", "dry": "dry", "top_n_sigma": "top_n_sigma", "top_k": "top_k",
          "typical": "typ_p", "top_p": "top_p", "min_p": "min_p", "xtc": "xtc", "temperature": "temperature"}


def sampling(cfg: dict) -> dict:
    """Server parameters for a resolved sampler config (host.engine.sampling.resolve)."""
    greedy = cfg.get("greedy", False) or (cfg.get("temperature", 0.0) <= 0 and "mirostat" not in cfg)
    pen = cfg.get("penalties", {})
    dry = cfg.get("dry", {})
    xtc = cfg.get("xtc", {})
    dyn = cfg.get("dynatemp", {})
    out = {
        # a greedy pick: temperature 0 (the server then takes the most likely token)
        "temperature": 0.0 if greedy else cfg.get("temperature", 0.0),
        "top_k": cfg.get("top_k", 0), "top_p": cfg.get("top_p", 1.0), "min_p": cfg.get("min_p", 0.0),
        "typical_p": cfg.get("typical", 1.0), "top_n_sigma": cfg.get("top_n_sigma", -1.0),
        "repeat_last_n": pen.get("last_n", 64), "repeat_penalty": pen.get("repeat", 1.0),
        "frequency_penalty": pen.get("frequency", 0.0), "presence_penalty": pen.get("presence", 0.0),
        "dry_multiplier": dry.get("multiplier", 0.0) if dry else 0.0,
        "xtc_probability": xtc.get("probability", 0.0) if not greedy else 0.0,
        "xtc_threshold": xtc.get("threshold", 0.1),
        "dynatemp_range": dyn.get("range", 0.0), "dynatemp_exponent": dyn.get("exponent", 1.0),
    }
    if dry:
        out.update(dry_base=dry.get("base", 1.75), dry_allowed_length=dry.get("allowed_length", 2),
                   dry_penalty_last_n=dry.get("last_n", -1),
                   dry_sequence_breakers=list(dry.get("breakers", ["\n", ":", '"', "*"])))
    if "mirostat" in cfg and not cfg.get("greedy"):
        m = cfg["mirostat"]
        out.update(mirostat=m.get("version", 2), mirostat_tau=m.get("tau", 5.0), mirostat_eta=m.get("eta", 0.1))
    if "seed" in cfg:
        out["seed"] = cfg["seed"]
    if cfg.get("logit_bias"):
        out["logit_bias"] = [[tok, bias] for tok, bias in cfg["logit_bias"].items()]
    if "order" in cfg:
        out["samplers"] = [_ORDER[n] for n in cfg["order"] if n in _ORDER]
    return out


def grammar_fields(grammar) -> dict:
    """``{"grammar": gbnf}`` for a Relic grammar; lazy grammars are not expressible here."""
    if grammar is None:
        return {}
    if grammar.is_lazy:
        raise unsupported(NAME, "a lazy grammar (grammar.lazy trigger words)",
                          "use a grammar that applies from the first token")
    text = grammar.gbnf
    if grammar.root != "root":
        if "root" in grammar.rules:
            raise GrammarError(f"this grammar starts at {grammar.root!r} and also has a rule named 'root'; "
                               "a server always starts at 'root': rename that rule")
        text = f"root ::= {grammar.root}\n{text}"
    return {"grammar": text}


def probe(client) -> ServerInfo:
    """Ask the server what it serves (GET /props)."""
    props = client.get_json("/props")
    gen = props.get("default_generation_settings") or {}
    path = props.get("model_path") or ""
    info = ServerInfo(url=client.url, dialect=NAME, model=(re.split(r"[\\/]", path)[-1] or props.get("model_alias")
                                                           or "?"),
                      n_ctx=gen.get("n_ctx") or props.get("n_ctx"), slots=props.get("total_slots"),
                      template=props.get("chat_template") or None, model_path=path or None)
    info.features = {"chat": True, "generate": True, "prompt cache per session": True, "gbnf": True,
                     "json_schema": True, "tokenize": True, "embeddings": _has_embeddings(client),
                     "chat template": bool(info.template)}
    return info


def _has_embeddings(client) -> bool:
    try:
        client.post_json("/embedding", {"content": "x"}, timeout=10)
        return True
    except Exception:  # a chat server started without --embeddings answers with an error
        return False


def tokenize(client, text: str, *, add_special: bool = False, parse_special: bool = False, abort=None) -> list[int]:
    """Token ids of ``text`` by the server's vocabulary (POST /tokenize; ``abort``: a
    host.remote.client.StreamAbort that can end the call from another thread)."""
    data = client.post_json("/tokenize", {"content": text, "add_special": add_special,
                                          "parse_special": parse_special}, abort=abort)
    return [int(t) for t in data.get("tokens", [])]


def embed(client, texts: list[str]) -> list[list[float]]:
    """One vector per text (POST /embedding; the server needs an embedding model and --embeddings)."""
    out = []
    for text in texts:
        data = client.post_json("/embedding", {"content": text})
        item = data[0] if isinstance(data, list) else data
        vec = item.get("embedding")
        if vec and isinstance(vec[0], list):  # one vector per token without pooling: take the pooled row
            vec = vec[-1]
        out.append([float(x) for x in vec])
    return out


def generate_call(client, req, cfg: dict, slot: int | None, abort=None) -> tuple[str, dict]:
    """(path, body) for a raw prompt; tokenizes it on the server first (runs on a reader thread)."""
    tokens = tokenize(client, req.prompt, add_special=True, parse_special=req.parse_special, abort=abort)
    body = {"prompt": tokens, "n_predict": req.max_tokens, "stream": True, "cache_prompt": True,
            "stop": list(req.stop), **sampling(cfg), **grammar_fields(req.grammar)}
    if slot is not None:
        body["id_slot"] = slot
    return "/completion", body


def chat_call(req, messages: list, cfg: dict, slot: int | None, model: str | None = None) -> tuple[str, dict]:
    """(path, body) for chat messages (the server renders its template)."""
    body = {"messages": messages, "max_tokens": req.max_tokens, "stream": True, "cache_prompt": True,
            "stop": list(req.stop), **sampling(cfg), **grammar_fields(req.grammar)}
    if slot is not None:
        body["id_slot"] = slot
    return "/v1/chat/completions", body


def parse(data: dict) -> Chunk:
    """A /completion or /v1/chat/completions stream event."""
    chunk = Chunk()
    if "choices" in data:  # the chat endpoint
        choice = (data.get("choices") or [{}])[0]
        chunk.text = (choice.get("delta") or {}).get("content") or ""
        chunk.finish = finish_reason(choice.get("finish_reason"))
    else:
        chunk.text = data.get("content") or ""
        if data.get("stop"):
            chunk.finish = "length" if data.get("stop_type") == "limit" else "stop"
    timings = data.get("timings")
    if timings:  # prompt_n: tokens read now; cache_n: tokens reused from the slot's cache
        chunk.timings = timings
        read, cached = int(timings.get("prompt_n", 0)), max(0, int(timings.get("cache_n", 0)))
        chunk.prompt_tokens, chunk.cached_tokens = read + cached, cached
        chunk.completion_tokens = int(timings.get("predicted_n", 0))
    return chunk
