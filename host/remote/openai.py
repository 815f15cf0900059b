"""Any OpenAI-compatible server (vLLM, Ollama, LM Studio, hosted APIs, llama-server's /v1).

- ``llm.chat`` and session turns -> ``POST /v1/chat/completions`` (streamed);
  ``llm.generate`` -> ``POST /v1/completions`` (the legacy text endpoint
  that most such servers keep).
- ``schema =`` (and the tool turns, which are schema grammars) ->
  ``response_format = {type = "json_schema", strict = true}``; the result is
  still decoded and validated by Relic, failing closed.
- Samplers: temperature, top_p, seed, presence/frequency penalties and
  logit_bias are OpenAI fields; top_k, min_p and the repeat penalty go as the
  extra fields vLLM, llama-server and LM Studio read.  Everything else, raw
  GBNF, choice and lazy grammars, ``special = true`` prompts, tokenize and
  named chat templates fail with ``error_type = "unsupported"`` naming the
  feature, before anything is sent.
"""

from __future__ import annotations

from host.remote.dialect import Chunk, ServerInfo, finish_reason, unsupported

NAME = "an OpenAI-compatible server"

_EXTRA_OK = {"temperature", "top_p", "seed", "top_k", "min_p", "penalties", "logit_bias", "greedy"}


def sampling(cfg: dict) -> dict:
    """OpenAI fields for a resolved sampler config; UnsupportedError for what has none."""
    bad = sorted(k for k in cfg if k not in _EXTRA_OK)
    if bad:
        raise unsupported(NAME, f"the sampler setting(s) {bad}", "use temperature, top_p, top_k, min_p, seed, "
                          "penalties or logit_bias")
    greedy = cfg.get("greedy", False) or cfg.get("temperature", 0.0) <= 0
    out = {"temperature": 0.0 if greedy else cfg.get("temperature", 0.0)}
    if "top_p" in cfg:
        out["top_p"] = cfg["top_p"]
    if "top_k" in cfg:
        out["top_k"] = cfg["top_k"]
    if "min_p" in cfg:
        out["min_p"] = cfg["min_p"]
    if "seed" in cfg:
        out["seed"] = cfg["seed"]
    pen = cfg.get("penalties") or {}
    if "repeat" in pen:
        out["repeat_penalty"] = pen["repeat"]
    if "frequency" in pen:
        out["frequency_penalty"] = pen["frequency"]
    if "presence" in pen:
        out["presence_penalty"] = pen["presence"]
    if cfg.get("logit_bias"):
        out["logit_bias"] = {str(t): b for t, b in cfg["logit_bias"].items()}
    return out


def response_format(grammar) -> dict:
    """``{"response_format": ...}`` for a schema grammar; other grammars are unsupported."""
    if grammar is None:
        return {}
    if grammar.is_lazy:
        raise unsupported(NAME, "a lazy grammar (grammar.lazy)")
    if grammar.kind != "schema" or grammar.schema is None:
        what = {"gbnf": "a raw GBNF grammar (grammar.gbnf)", "choice": "a choice grammar (grammar.choice)",
                "tool_call": "a tool-call grammar (grammar.tool_call)"}.get(grammar.kind, f"a {grammar.kind} grammar")
        raise unsupported(NAME, what, "use schema = {...}, which such servers constrain with response_format")
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": "relic_output", "strict": True, "schema": grammar.schema}}}


def probe(client, model: str | None = None) -> ServerInfo:
    """Ask the server which models it serves (GET /v1/models)."""
    data = client.get_json("/v1/models")
    ids = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)]
    info = ServerInfo(url=client.url, dialect="openai", model=model or (ids[0] if ids else "?"))
    meta = next((m.get("meta") for m in data.get("data", []) if isinstance(m, dict) and m.get("meta")), None)
    if isinstance(meta, dict) and meta.get("n_ctx_train"):
        info.n_ctx = int(meta["n_ctx_train"])
    info.features = {"chat": True, "generate": True, "prompt cache per session": False,
                     "gbnf": False, "json_schema": True, "tokenize": False,
                     "embeddings": _has_embeddings(client, info.model), "chat template": True}
    return info


def _has_embeddings(client, model) -> bool:
    try:
        embed(client, ["x"], model)
        return True
    except Exception:  # a chat-only server answers with an error
        return False


def embed(client, texts: list[str], model: str | None = None) -> list[list[float]]:
    """One vector per text (POST /v1/embeddings)."""
    data = client.post_json("/v1/embeddings", {"input": list(texts), **({"model": model} if model else {})})
    rows = sorted(data.get("data", []), key=lambda r: r.get("index", 0))
    return [[float(x) for x in r["embedding"]] for r in rows]


def generate_call(req, cfg: dict, model: str | None) -> tuple[str, dict]:
    """(path, body) for a raw prompt (/v1/completions)."""
    if req.parse_special:
        raise unsupported(NAME, "special = true (special-token text in a raw prompt)")
    body = {"prompt": req.prompt, "max_tokens": req.max_tokens, "stream": True,
            "stream_options": {"include_usage": True}, **sampling(cfg), **response_format(req.grammar)}
    if req.stop:
        body["stop"] = list(req.stop)
    if model:
        body["model"] = model
    return "/v1/completions", body


def chat_messages(messages: list) -> list:
    """Messages as any such server takes them: a tool's result (Relic's ``tool`` message, which answers
    no OpenAI ``tool_calls`` id) goes as a ``user`` message; its text already names the tool."""
    return [{"role": "user", "content": m["content"]} if m["role"] == "tool" else m for m in messages]


def chat_call(req, messages: list, cfg: dict, model: str | None) -> tuple[str, dict]:
    """(path, body) for chat messages (/v1/chat/completions)."""
    body = {"messages": chat_messages(messages), "max_tokens": req.max_tokens, "stream": True,
            "stream_options": {"include_usage": True}, **sampling(cfg), **response_format(req.grammar)}
    if req.stop:
        body["stop"] = list(req.stop)
    if model:
        body["model"] = model
    return "/v1/chat/completions", body


def parse(data: dict) -> Chunk:
    """A /v1/chat/completions or /v1/completions stream event."""
    chunk = Chunk()
    choices = data.get("choices") or []
    if choices:
        choice = choices[0]
        delta = choice.get("delta")
        chunk.text = (delta.get("content") if isinstance(delta, dict) else choice.get("text")) or ""
        chunk.finish = finish_reason(choice.get("finish_reason"))
    usage = data.get("usage")
    if isinstance(usage, dict):
        chunk.prompt_tokens = usage.get("prompt_tokens")
        chunk.completion_tokens = usage.get("completion_tokens")
        details = usage.get("prompt_tokens_details") or {}
        chunk.cached_tokens = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return chunk
