"""Assemble a host: the mod runtime, the model, the inference worker and the mod APIs.

    from host.app import build_host
    host = build_host("mods")          # loads the default model, starts the worker, loads mods
    while running:
        host.update(dt); host.draw()
    host.shutdown()                    # onShutdown, then the worker and the model
"""

from __future__ import annotations

from pathlib import Path

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


ENV_TEMPLATE = "RELIC_TEMPLATE"


def set_template(model, template=None) -> str | None:
    """Use the llama.cpp chat template ``template`` (or $RELIC_TEMPLATE) for every chat of ``model``.

    An unknown name raises TemplateError here, at start.  Returns a one-line
    warning when the model has no chat template of its own and none was given
    (chats would fail: it is probably a base model), else None.
    """
    import os

    from host.llama.model import builtin_templates

    template = template or os.environ.get(ENV_TEMPLATE) or None
    if template:
        model.apply_chat_template([{"role": "user", "content": "x"}], template=template)  # checks the name
        model.template_override = template
        return None
    if model.chat_template() is None:
        return (f"no chat template in {model.path.name} - is it a base model? pass --template NAME "
                f"(or {ENV_TEMPLATE}=NAME), one of: {', '.join(builtin_templates(model.lib))}")
    return None


def load_model(model_path=None, template=None):
    """The model to serve: an explicit path, else $RELIC_MODEL, else the default (fetched if needed).

    A bad path raises ModelLoadError here, at start, naming the file; ``template``
    (or $RELIC_TEMPLATE) names the chat template to use (see :func:`set_template`).
    """
    from host.llama import Model
    from host.setup.model_fetch import model_path as resolve

    model = Model(Path(model_path) if model_path else resolve())
    try:
        set_template(model, template)
    except BaseException:
        model.close()
        raise
    return model


def build_host(mods_dir, *, model=None, model_path=None, llm: bool = True, rag: bool = True,
               worker_config=None, load: bool = True, template: str | None = None, server=None,
               backends: dict | None = None, **host_kwargs) -> Host:
    """A Host with `llm` (and the trusted `llama`) wired to a started worker.

    ``model``: an open Model to share (not closed by the host); otherwise one is
    loaded from ``model_path`` / $RELIC_MODEL / the default and closed at shutdown.
    ``llm=False`` gives a host without a model (mods still load; `llm` is absent).
    ``rag=False`` leaves out the `rag` module (its embedding model loads on first use).
    ``template``: a llama.cpp chat template name for a model without one (else $RELIC_TEMPLATE);
    a model with no template and none given gets one clear line on the console.
    ``server``: a host.remote.backend.ServerConfig: `llm` runs on that server instead of the embedded
    model (which is then not loaded unless a mod is mapped to it).  ``backends``: mod id ->
    "embedded" or a ServerConfig, for mods that run elsewhere than the default (one worker each).
    """
    host = Host(mods_dir, **host_kwargs)
    if llm and (server is not None or backends):
        _add_llm_routed(host, server, backends or {}, model=model, model_path=model_path, rag=rag,
                        worker_config=worker_config, template=template)
    elif llm:
        from host.api.grammar import GrammarProvider
        from host.api.llm import LLMProvider
        from host.api.quotas import QuotaLedger
        from host.api.rag import RagProvider
        from host.worker import Worker, WorkerConfig

        owned = model is None
        if owned:
            model = load_model(model_path, template)
        elif template:
            set_template(model, template)
        warning = set_template(model) if not model.template_override else None
        if warning:
            host.host_log(warning)
        try:
            worker = Worker(model, worker_config or WorkerConfig.from_env(),
                            on_dead=lambda message: host.console(f"[relic] {message}")).start()
        except BaseException:
            if owned:
                model.close()
            raise
        ledger = QuotaLedger()  # per-mod host-side objects, shared by the three providers
        grammars = GrammarProvider(model, ledger=ledger)
        llm_provider = LLMProvider(worker, grammar_from=grammars.resolve, ledger=ledger)
        memory = RagProvider(worker, llm_provider) if rag else None
        llm_provider.memory_for = memory.memory_for if memory else None
        host.add_provider(grammars)
        host.add_provider(llm_provider)
        if memory is not None:
            host.add_provider(memory)
        if owned:
            host.add_provider(ModelOwner(model))
    if load:
        host.load()
    return host


def _add_llm_routed(host, server, backends: dict, *, model, model_path, rag, worker_config, template) -> None:
    """The llm/grammar/rag providers over one worker per backend (host.remote.routing)."""
    from host.api.grammar import GrammarProvider
    from host.api.llm import LLMProvider
    from host.api.quotas import QuotaLedger
    from host.api.rag import RagProvider
    from host.remote.backend import start_remote_worker
    from host.remote.routing import WorkerRouter
    from host.worker import Worker, WorkerConfig

    config = worker_config or WorkerConfig.from_env()
    on_dead = lambda message: host.console(f"[relic] {message}")  # noqa: E731
    say = host.console
    workers: dict = {}  # backend key -> started worker
    owned_model = None

    def worker_for(backend):
        nonlocal model, owned_model
        key = "embedded" if backend in (None, "embedded") else backend
        if key in workers:
            return workers[key]
        if key == "embedded":
            if model is None:
                model = owned_model = load_model(model_path, template)
            workers[key] = Worker(model, config, on_dead=on_dead).start()
        else:
            workers[key] = start_remote_worker(key, worker_config=config, on_dead=on_dead, say=say)
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
    ledger = QuotaLedger()
    grammars = GrammarProvider(router.model, ledger=ledger)
    llm_provider = LLMProvider(router, grammar_from=grammars.resolve, ledger=ledger)
    memory = RagProvider(router, llm_provider) if rag else None
    llm_provider.memory_for = memory.memory_for if memory else None
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
