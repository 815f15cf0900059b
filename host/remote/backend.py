"""Starting a worker whose engine is a server: what the entry point calls with the configuration.

    worker = start_remote_worker(ServerConfig("http://127.0.0.1:8080"), say=print)

The worker is the ordinary host.worker.Worker (queues, quotas, handles,
cancel) with a :class:`host.remote.engine.RemoteEngine` inside and a
:class:`RemoteModel` where the embedded worker has its Model.  A server that
is down or refuses the key at start costs one line (``say``); the worker
starts anyway, its requests fail with ``backend_down`` (or ``backend``) until
the server answers, and the first one after that works.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from host.errors import BackendDownError, BackendError, RelicError, UnsupportedError

# as in host.remote.client (not imported here: httpx loads only when a server is used)
DEFAULT_CONNECT_S = 3.0
DEFAULT_STALL_S = 30.0


@dataclass(frozen=True)
class ServerConfig:
    """One server backend.

    ``url``: the server's base URL; one ending in ``/v1`` is spoken to as an
    OpenAI-compatible server (``dialect="openai"``), anything else as a
    llama-server, unless ``dialect`` says.  ``api_key``: sent as a bearer
    token (the entry point reads it from the environment).  ``model``: the
    model name an OpenAI-compatible server should use (default: its first).
    ``tokenizer``: a local GGUF of the server's model, loaded vocabulary-only
    for ``llm.tokenize``/``llm.count`` (default: the file llama-server says it
    loaded, when that path exists here).
    """

    url: str
    dialect: str | None = None
    api_key: str | None = None
    model: str | None = None
    tokenizer: str | None = None
    connect_s: float = DEFAULT_CONNECT_S
    stall_s: float = DEFAULT_STALL_S
    request_timeout_s: float = 300.0
    max_streams: int | None = None

    def resolved(self) -> tuple[str, str]:
        """(base URL, dialect)."""
        url = self.url.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", url):
            raise BackendError(f"the server URL {self.url!r} is not an http:// or https:// URL "
                               "(e.g. http://127.0.0.1:8080, or http://host:11434/v1 for an OpenAI-compatible one)")
        dialect = self.dialect
        if url.endswith("/v1"):
            url = url[:-3]
            dialect = dialect or "openai"
        return url, dialect or "llama-server"


class _NoVocab:
    """llm.tokenize/count on a server whose tokenizer is not known here."""

    def __init__(self, url: str):
        self.url = url

    def _fail(self, *_a, **_k):
        raise UnsupportedError(f"llm.tokenize and llm.count are not supported on the server at {self.url}: "
                               "Relic has no local copy of its model's tokenizer (give it as the server's "
                               "tokenizer GGUF; llm.generate results still count tokens in usage)")

    tokenize = count = _fail


class RemoteModel:
    """What the worker and the llm provider use of a model, for a server.

    ``placement`` names the server (results' ``device``); ``vocab`` is a local
    vocabulary-only load of the same GGUF when one is known, else every
    tokenize/count fails as unsupported; there is no raw binding (``lib``).
    """

    lib = None
    template_override = None

    def __init__(self, url: str, info=None, tokenizer=None):
        self.url = url
        self.info = info
        self.placement = f"server {url}"
        self.path = Path(info.model if info is not None else url)
        self._tokenizer = tokenizer  # a vocab-only host.llama.Model, owned here
        self.vocab = tokenizer.vocab if tokenizer is not None else _NoVocab(url)

    def apply_chat_template(self, messages, template=None, **_kw):
        """Named templates are the server's business: refused (the server applies its own)."""
        if template is not None:
            raise UnsupportedError("template= is not supported on a server: it applies its own chat template")
        raise UnsupportedError("chat templates are applied by the server")

    def chat_template(self):
        """The server's template when it said; a server applies its own either way."""
        return (self.info.template if self.info is not None else None) or "(the server's own)"

    def close(self) -> None:
        if self._tokenizer is not None:
            self._tokenizer.close()
            self._tokenizer = None


def probe(server: ServerConfig, client=None):
    """(ServerInfo, None) from the server, or (None, one line saying why not)."""
    from host.remote import llama_server, openai
    from host.remote.client import ServerClient

    url, dialect = server.resolved()
    own = client is None
    client = client or ServerClient(url, api_key=server.api_key, connect_s=server.connect_s, stall_s=server.stall_s)
    try:
        info = llama_server.probe(client) if dialect == "llama-server" else openai.probe(client, server.model)
        return info, None
    except BackendDownError as exc:
        return None, f"{exc}; requests to it fail with error_type \"backend_down\" until it answers"
    except RelicError as exc:
        return None, str(exc)
    finally:
        if own:
            client.close()


def _tokenizer(server: ServerConfig, info):
    path = server.tokenizer or (info.model_path if info is not None else None)
    if not path or not Path(path).is_file():
        return None
    from host.llama import Model

    return Model(Path(path), vocab_only=True)


def start_remote_worker(server: ServerConfig, *, worker_config=None, embed_model=None, on_dead=None, say=print):
    """A started Worker whose engine talks to ``server`` (see the module docstring)."""
    from dataclasses import replace

    from host.engine.chat_tokens import special_pattern
    from host.remote.client import ServerClient
    from host.remote.engine import RemoteEngine
    from host.worker import Worker, WorkerConfig

    url, dialect = server.resolved()
    client = ServerClient(url, api_key=server.api_key, connect_s=server.connect_s, stall_s=server.stall_s)
    info, problem = probe(server, client)
    say(f"relic: {info.line()}" if info is not None else f"relic: {problem}")
    tokenizer = _tokenizer(server, info)
    model = RemoteModel(url, info, tokenizer)
    config = worker_config or WorkerConfig()
    n_ctx = (info.n_ctx if info is not None and info.n_ctx else config.n_ctx)
    # the early refusal by size: no text longer than this fits any context the server can have
    config = replace(config, n_ctx=n_ctx, max_prompt_bytes=config.max_prompt_bytes or n_ctx * 64)
    pattern = special_pattern(tokenizer) if tokenizer is not None else None
    # stores use the embedded embedding model that set-up resolved (None: no stores)
    rag_model = embed_model or config.embed_model

    def factory():
        return RemoteEngine(client, dialect, info=info, model=server.model, max_streams=server.max_streams,
                            request_timeout_s=server.request_timeout_s, rag_model=rag_model,
                            special_pattern=pattern, rag_limits=config.limits.rag)

    worker = Worker(model, config, engine_factory=factory, on_dead=on_dead)
    try:
        return worker.start()
    except BaseException:
        model.close()
        client.close()
        raise


def from_config(config) -> tuple[ServerConfig | None, dict]:
    """(the default server or None, {mod id: "embedded" | ServerConfig}) from a host.config.Config
    (its ``server``, ``api_key``, ``server_timeout`` and ``backends``)."""
    key = getattr(config, "api_key", None)
    stall = getattr(config, "server_timeout", None) or DEFAULT_STALL_S

    def make(url: str) -> ServerConfig:
        return ServerConfig(url, api_key=key, stall_s=stall)

    url = getattr(config, "server", None)
    backends = {mod_id: ("embedded" if where == "embedded" else make(where))
                for mod_id, where in dict(getattr(config, "backends", None) or {}).items()}
    return (make(url) if url else None), backends
