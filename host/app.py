"""Assemble a host: the mod runtime, the model, the inference worker and the mod APIs.

    config = Config.load(args=..., environ=os.environ)   # the entry point reads settings
    prepared = prepare(config)                           # set-up: builds, downloads, probes
    host = build_host(config=config, prepared=prepared)  # loads the model, starts the worker, loads mods
    while running:
        host.update(dt); host.draw()
    host.shutdown()                    # onShutdown, then the worker and the model
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

from host.config import Config
from host.startup import Prepared, prepare
from host.runtime.host import Host


class ModelOwner:
    """A provider that closes the model after every other provider has shut down.

    If the worker thread outlived its shutdown, frees are held
    (host.llama.hold_frees) and close() leaves the model allocated.
    """

    def __init__(self, model):
        self.model = model

    def shutdown(self) -> None:
        self.model.close()


def set_template(model, template=None) -> str | None:
    """Use the llama.cpp chat template ``template`` for every chat of ``model``.

    An unknown name raises TemplateError here, at start.  Returns a one-line
    warning when the model has no chat template of its own and none was given
    (chats would fail: it is probably a base model), else None.
    """
    from host.llama.model import builtin_templates

    if template:
        model.apply_chat_template([{"role": "user", "content": "x"}], template=template)  # checks the name
        model.template_override = template
        return None
    if model.chat_template() is None:
        return (f"no chat template in {model.path.name} - is it a base model? pass --template NAME "
                f"(or RELIC_TEMPLATE=NAME), one of: {', '.join(builtin_templates(model.lib))}")
    return None


def load_model(config: Config, prepared: Prepared):
    """The chat model of ``prepared``, on the library set-up chose, with the configured offload.

    RPC servers named by the configuration become devices first (checked, so a
    dead or wrong peer is a clear error, not an abort).  A bad path raises
    ModelLoadError here, at start, naming the file; a bad template name raises
    TemplateError.
    """
    from host.llama import Model, load
    from host.llama.devices import add_rpc_servers

    lib = load(prepared.library)
    if config.rpc:
        add_rpc_servers(lib, config.rpc)
    model = Model(prepared.model, lib=lib, offload=config.offload())
    try:
        set_template(model, config.template)
    except BaseException:
        model.close()
        raise
    return model


def build_host(mods_dir=None, *, config: Config | None = None, prepared: Prepared | None = None,
               model=None, model_path=None, llm: bool = True, rag: bool = True,
               worker_config=None, load: bool = True, template: str | None = None, server=None,
               backends: dict | None = None, **host_kwargs) -> Host:
    """A Host with `llm` (and the trusted `llama`) wired to a started worker.

    ``config``: the process's Config (else one with ``mods_dir``, ``model_path``,
    ``template`` and ``rag`` and every other setting at its default);
    ``prepared``: what ``host.prepare(config)`` returned (prepared here when
    missing: builds and downloads happen before the host exists, never later).
    ``model``: an open Model to share (not closed by the host); otherwise the
    prepared model is loaded and closed at shutdown.
    ``llm=False`` gives a host without a model (mods still load; `llm` is absent).
    ``rag=False`` leaves out the `rag` module.
    A model with no template and none configured gets one clear line on the console.
    ``host_kwargs`` go to Host (console, limits, grants...); grants add to the config's; ``limits`` replaces
    the config's for the host and its worker alike.
    ``server`` / ``backends`` (default: the config's ``server`` and ``backends``): a
    host.remote.backend.ServerConfig that runs `llm` instead of the embedded model, and mod id ->
    "embedded" or a ServerConfig for mods that run elsewhere (one worker per backend, host.remote).
    """
    if config is None:
        config = Config(mods_dir=Path(mods_dir) if mods_dir is not None else Path("mods"),
                        model=Path(model_path).expanduser().absolute() if model_path else None,
                        template=template, rag=rag)
    else:
        if template:
            config = replace(config, template=template)
        if not rag:
            config = replace(config, rag=False)
    mods_dir = Path(mods_dir) if mods_dir is not None else config.mods_dir
    host_kwargs["grants"] = {**config.mod_grants(), **(host_kwargs.get("grants") or {})}
    if host_kwargs.get("limits") is not None:  # one tree for the host and the worker alike
        config = replace(config, limits=host_kwargs["limits"])
    host_kwargs["limits"] = config.limits
    if llm and server is None and backends is None:
        from host.remote.backend import from_config

        server, backends = from_config(config)
    if llm and (server is not None or backends):
        host = Host(mods_dir, **host_kwargs)
        _add_llm_routed(host, config, prepared, server, backends or {}, model=model, worker_config=worker_config)
    elif not llm:
        host = Host(mods_dir, **host_kwargs)
    else:
        from host.api.grammar import GrammarProvider
        from host.api.llm import LLMProvider
        from host.api.quotas import QuotaLedger
        from host.api.rag import RagProvider, memory_store
        from host.worker import Worker

        owned = model is None
        if owned or config.rag:
            prepared = prepared or prepare(config)
        if owned:
            model = load_model(config, prepared)
        elif config.template:
            set_template(model, config.template)
        host = Host(mods_dir, model=model, **host_kwargs)
        warning = set_template(model) if not model.template_override else None
        if warning:
            host.host_log(warning)
        wcfg = worker_config or config.worker_config()
        if config.rag and wcfg.embed_model is None:
            wcfg = replace(wcfg, embed_model=prepared.embed_model)
        try:
            worker = Worker(model, wcfg,
                            on_dead=lambda message: host.console(f"[relic] {message}")).start()
        except BaseException:
            if owned:
                model.close()
            raise
        ledger = QuotaLedger(host.limits)  # per-mod host-side objects, shared by the three providers
        grammars = GrammarProvider(model, ledger=ledger)
        llm_provider = LLMProvider(worker, grammar_from=grammars.resolve, ledger=ledger,
                                   memory_for=partial(memory_store, ledger) if config.rag else None)
        memory = RagProvider(worker, llm_provider) if config.rag else None
        host.add_provider(grammars)
        host.add_provider(llm_provider)
        if memory is not None:
            host.add_provider(memory)
        if owned:
            host.add_provider(ModelOwner(model))
    if load:
        host.load()
    return host


def create_host(config: Config, prepared: Prepared | None = None, **host_kwargs) -> Host:
    """The host a game embeds, not yet loaded: ``build_host(config=config, prepared=prepared, load=False)``.

    Publish the game's API on it (expose, expose_per_mod, declare_event,
    hookable), then call ``load()``.  ``host_kwargs``: ``console``, ``ui``,
    ``grants`` and the other Host arguments; ``llm=False`` leaves out the model.
    """
    return build_host(config=config, prepared=prepared, load=False, **host_kwargs)


def _add_llm_routed(host, config, prepared, server, backends: dict, *, model, worker_config) -> None:
    """The llm/grammar/rag providers over one worker per backend (host.remote.routing)."""
    from host.api.grammar import GrammarProvider
    from host.api.llm import LLMProvider
    from host.api.quotas import QuotaLedger
    from host.api.rag import RagProvider, memory_store
    from host.remote.backend import start_remote_worker
    from host.remote.routing import WorkerRouter
    from host.worker import Worker

    wcfg = worker_config or config.worker_config()
    embedded_needed = server is None or "embedded" in backends.values()
    if embedded_needed and model is None or config.rag:
        prepared = prepared or prepare(config)
    if config.rag and wcfg.embed_model is None:
        wcfg = replace(wcfg, embed_model=prepared.embed_model)
    on_dead = lambda message: host.console(f"[relic] {message}")  # noqa: E731
    workers: dict = {}  # backend key -> started worker
    owned_model = None

    def worker_for(backend):
        nonlocal model, owned_model
        key = "embedded" if backend in (None, "embedded") else backend
        if key in workers:
            return workers[key]
        if key == "embedded":
            if model is None:
                model = owned_model = load_model(config, prepared)
            workers[key] = Worker(model, wcfg, on_dead=on_dead).start()
        else:
            workers[key] = start_remote_worker(key, worker_config=wcfg, on_dead=on_dead, say=host.console)
        return workers[key]

    try:
        default = worker_for(server)
        router = WorkerRouter(default, {mod_id: worker_for(b) for mod_id, b in backends.items()})
    except BaseException:
        for w in workers.values():
            w.shutdown()
        if owned_model is not None:
            owned_model.close()
        raise
    host.model = router.model  # the default backend's (a host.remote.backend.RemoteModel on a server)
    ledger = QuotaLedger(host.limits)
    grammars = GrammarProvider(router.model, ledger=ledger)
    llm_provider = LLMProvider(router, grammar_from=grammars.resolve, ledger=ledger,
                               memory_for=partial(memory_store, ledger) if config.rag else None)
    memory = RagProvider(router, llm_provider) if config.rag else None
    host.add_provider(grammars)
    host.add_provider(llm_provider)
    if memory is not None:
        host.add_provider(memory)
    if owned_model is not None:
        host.add_provider(ModelOwner(owned_model))


def host_with_mod(mods_dir, mod_id: str, **build_kwargs):
    """build_host(), then the loaded mod ``mod_id``: ``(host, mod)``.

    Raises RelicError (ModelLoadError, ModError, ...) with a message for the
    user when the model cannot load or the mod did not; the host is shut down then.
    """
    from host.errors import ModError

    host = build_host(mods_dir, **build_kwargs)
    mod = host.mods.get(mod_id)
    if mod is None or mod.state != "loaded":
        host.shutdown()
        reason = getattr(mod, "reason", None) or f"no folder {mod_id}/ in {mods_dir}"
        raise ModError(f"the {mod_id} mod did not load: {reason} (see {mods_dir}/{mod_id}/{mod_id}.log)")
    return host, mod
