"""The store host calls of an engine: add, remove, search, and session-memory notes.

Both engines (the embedded one in host.engine.service and the server-backed
one in host.remote.engine) hold one :class:`StoreCalls`: stores embed with the
embedded embedding model either way.  Everything here runs on the worker
thread; the :class:`host.rag.service.RagService` (and so the embedding model)
is created at the first store call and closed with the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from host.errors import OptionError
from host.messages import HostCall, StoreAddRequest, StoreRemoveRequest, StoreSearchRequest


class StoreCalls:
    """Store requests for an engine's handler table, and store ingest as bounded steps.

    ``model``: the embedding model (a GGUF path or a callable returning one);
    None: this host has no stores.  ``limits``: the `rag` group of the host's
    limits (host.limits).
    """

    def __init__(self, model=None, limits=None):
        self._model = model
        self._limits = limits
        self._service = None

    def service(self):
        """The RagService (created on first use, on this thread)."""
        if self._service is None:
            if self._model is None:
                raise OptionError("this host has no embedding model, so no stores")
            from host.rag.service import RagService

            self._service = RagService(self._model, self._limits)
        return self._service

    def handlers(self) -> dict[type, Callable]:
        """Request type -> ``handler(request, cancelled)`` returning the Result fields it sets."""
        return {
            StoreAddRequest: lambda r, c: self.service().add(r.path, r.doc_id, r.text, r.meta, cancelled=c),
            StoreRemoveRequest: lambda r, _c: self.service().remove(r.path, r.doc_id),
            StoreSearchRequest: lambda r, _c: self.service().search(r.path, r.query, dict(r.options)),
        }

    def job(self, call: HostCall, cancelled: Callable[[], bool]):
        """A store ingest as a generator of bounded steps (host.rag.store.Store.add_steps) whose return
        value is the call's Result fields; None for every other call."""
        if type(call) is StoreAddRequest:
            return self._add_steps(call, cancelled)
        return None

    def _add_steps(self, r: StoreAddRequest, cancelled):
        rag = self.service()  # loads the embedding model at the first store call (one step)
        yield
        return (yield from rag.add_steps(r.path, r.doc_id, r.text, r.meta, cancelled=cancelled))

    def note(self, path: Path, text: str, count: Callable[[str], int]) -> str:
        """What the memory at ``path`` recalls for ``text`` (``count``: the chat model's token counter)."""
        return self.service().note(path, text, count)

    def close(self) -> None:
        """Close the stores and the embedder (on the thread that used them)."""
        if self._service is not None:
            service, self._service = self._service, None
            service.close()
