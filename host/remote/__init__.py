"""Remote backends: the same worker and `llm` API on a llama-server or an OpenAI-compatible server.

- :mod:`host.remote.client` - HTTP and SSE streams (httpx), errors mapped to RelicErrors;
- :mod:`host.remote.dialect`, :mod:`host.remote.llama_server`, :mod:`host.remote.openai` -
  request bodies out, stream chunks in, per server kind;
- :mod:`host.remote.engine` - the engine the worker thread drives (reader threads per request);
- :mod:`host.remote.backend` - :class:`ServerConfig` and :func:`start_remote_worker` for the entry point;
- :mod:`host.remote.routing` - one worker per backend behind one Worker-like object for the providers.
"""
