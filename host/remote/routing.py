"""Several backends behind one Worker-like object: each mod's requests go to its backend's worker.

The providers (llm, rag, grammar) were written against one
:class:`host.worker.Worker`; every frame-thread method of it names the mod
first, so :class:`WorkerRouter` forwards each call to the worker the mod is
mapped to (the default one when unmapped) and pumps them all.  Request and
session ids come from one shared counter, so they never collide across
workers.

    router = WorkerRouter(embedded_worker, {"companion": server_worker})
"""

from __future__ import annotations

from host.worker import pump_until_done


class WorkerRouter:
    """Frame thread only, like the Worker it stands for.

    ``default``: the worker of every mod not in ``by_mod`` (mod id -> worker).
    Every worker given is started and owned: ``shutdown`` stops them all.
    """

    def __init__(self, default, by_mod: dict | None = None):
        self.default = default
        self.by_mod = dict(by_mod or {})
        self.workers = [default] + [w for w in dict.fromkeys(self.by_mod.values()) if w is not default]
        for w in self.workers[1:]:
            w.share_ids(default)

    @property
    def model(self):
        """The default worker's model (the provider's fallback for tokenize/count)."""
        return self.default.model

    @property
    def max_prompt_bytes(self):
        return self.default.max_prompt_bytes

    @property
    def config(self):
        return self.default.config

    @property
    def dead(self):
        return next((w.dead for w in self.workers if w.dead is not None), None)

    def worker_for(self, mod_id: str):
        """The worker that serves ``mod_id``."""
        return self.by_mod.get(mod_id, self.default)

    def model_for(self, mod_id: str):
        """The model (or RemoteModel) that serves ``mod_id``: its tokenizer is the one to count with."""
        return self.worker_for(mod_id).model

    # --- calls naming a mod: forwarded ----------------------------------------------
    def submit(self, mod_id, **kw):
        return self.worker_for(mod_id).submit(mod_id, **kw)

    def call(self, request_type, mod_id, **kw):
        return self.worker_for(mod_id).call(request_type, mod_id, **kw)

    def post(self, request_type, mod_id, **fields):
        return self.worker_for(mod_id).post(request_type, mod_id, **fields)

    def create_session(self, mod_id, **kw):
        return self.worker_for(mod_id).create_session(mod_id, **kw)

    def check_template(self, template=None, mod_id=None):
        return self.worker_for(mod_id or "").check_template(template, mod_id)

    def say(self, mod_id, session_id, text, **kw):
        return self.worker_for(mod_id).say(mod_id, session_id, text, **kw)

    def close_session(self, mod_id, session_id):
        return self.worker_for(mod_id).close_session(mod_id, session_id)

    def cancel(self, mod_id, request_id):
        return self.worker_for(mod_id).cancel(mod_id, request_id)

    def cancel_mod(self, mod_id):
        return self.worker_for(mod_id).cancel_mod(mod_id)

    def focus(self, mod_id, session_id=None):
        """Tell every worker (the focus moving away from a mod on another backend clears it there too)."""
        for w in self.workers:
            w.focus(mod_id if w is self.worker_for(mod_id or "") or mod_id is None else None, session_id)

    def hello(self, mod_id):
        return self.worker_for(mod_id).hello(mod_id)

    def forget_mod(self, mod_id):
        return self.worker_for(mod_id).forget_mod(mod_id)

    def fail(self, mod_id, exc, **kw):
        return self.worker_for(mod_id).fail(mod_id, exc, **kw)

    def pending_bytes(self, mod_id):
        return self.worker_for(mod_id).pending_bytes(mod_id)

    # --- calls over all workers -------------------------------------------------------
    def new_session_id(self) -> int:
        return self.default.new_session_id()  # the counter is shared

    def pending(self, mod_id=None) -> int:
        if mod_id is not None:
            return self.worker_for(mod_id).pending(mod_id)
        return sum(w.pending() for w in self.workers)

    def pump(self, budget_s: float = 0.004, on_error=None) -> int:
        """Deliver every worker's events within ``budget_s`` in all."""
        share = budget_s / len(self.workers)
        return sum(w.pump(share, on_error) for w in self.workers)

    def wait(self, handle, timeout: float = 60.0) -> dict:
        """Pump until ``handle`` is done (scripts and tests)."""
        return pump_until_done(self.pump, handle, timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop every worker (the embedded one's model is its owner's to close)."""
        for w in self.workers:
            w.shutdown(timeout)
        for w in self.workers:
            close = getattr(w.model, "close", None)
            if close is not None and getattr(w.model, "lib", 1) is None:
                close()  # a RemoteModel: its tokenizer
