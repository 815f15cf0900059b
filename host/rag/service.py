"""The worker-thread side of mod stores: one embedder and the open stores.

Created by :class:`host.engine.service.Engine` on the worker thread at the
first store call (the embedding model loads only then) and closed with it;
one thread owns the embedder, every store connection and their native
objects.
"""

from __future__ import annotations

import logging
from pathlib import Path

from host.errors import EmbeddingError, StoreError

log = logging.getLogger("relic.rag")

MEMORY_BUDGET_TOKENS = 96  # retrieved text per turn, in chat-model tokens (each costs prompt time)
MEMORY_HEADER = "Things you know that may help:"
MEMORY_HITS = 4
SEARCH_OPTIONS = ("k", "mode", "filters", "weights")


def plain_hits(hits: list) -> list:
    """Search hits reduced to what a mod sees: id, text, score, meta, doc_id, start, end."""
    keep = ("id", "text", "score", "meta", "doc_id", "start", "end")
    return [{k: h[k] for k in keep if k in h} for h in hits]


class RagService:
    """Worker-thread side: the embedder and open stores (one thread owns them all).

    ``embed_model``: a GGUF path that set-up resolved (host.prepare); loading
    it is the only work done here, never a fetch or a conversion.
    """

    def __init__(self, embed_model, limits=None):
        from host.limits import DEFAULT_LIMITS
        from host.rag.embed import Embedder

        self.embedder = Embedder(embed_model)
        self.limits = limits or DEFAULT_LIMITS.rag  # the `rag` group of the host's limits
        self.stores: dict[Path, object] = {}

    def store(self, path: Path):
        """The open store at ``path`` (opened, and created if needed, on first use)."""
        from host.rag.store import Store

        st = self.stores.get(path)
        if st is None:
            st = self.stores[path] = Store.open(path, self.embedder, limits=self.limits)
        return st

    def add(self, path: Path, doc_id, text, meta=None, cancelled=None) -> dict:
        """store:add: ``{"value": {id, status, chunks, embedded}}``."""
        return {"value": self.store(path).add(doc_id, text, meta, cancelled=cancelled)}

    def add_steps(self, path: Path, doc_id, text, meta=None, cancelled=None):
        """:meth:`add` as a generator of bounded steps (host.rag.store.Store.add_steps); returns its dict."""
        return {"value": (yield from self.store(path).add_steps(doc_id, text, meta, cancelled=cancelled))}

    def remove(self, path: Path, doc_id) -> dict:
        """store:remove: ``{"value": true}`` when the document existed."""
        return {"value": self.store(path).remove(doc_id)}

    def search(self, path: Path, query, options: dict) -> dict:
        """store:search: ``{"hits": [...]}``."""
        return {"hits": plain_hits(self.store(path).search(query, **options))}

    def note(self, path: Path, text: str, count_tokens) -> str:
        """The store's best hits for the user's text, as a note for this turn only ("" when none)."""
        from host.rag.prompt import format_context

        try:
            hits = self.store(path).search(text, k=MEMORY_HITS, mode="hybrid")
        except (StoreError, EmbeddingError) as exc:  # memory is a help, never a reason to fail a turn
            log.warning("memory search in %s skipped: %s", path.name, exc)
            return ""
        return format_context(hits, MEMORY_BUDGET_TOKENS, count_tokens, header=MEMORY_HEADER, show_ids=False)

    def close(self) -> None:
        """Close every store and the embedder."""
        for st in self.stores.values():
            st.close()
        self.stores.clear()
        self.embedder.close()
