"""The host half of the mod-facing `rag` module (the Lua half is lua/rag.lua).

Stores and the embedding model live on the worker thread (:class:`RagService`,
created there on first use); the frame thread only validates names and queues
calls.  A store is the file ``mods/<id>/<name>.rag.sqlite3``.  Sessions made
with ``memory = store`` search it for every user turn and put the hits into
that turn only (never into the saved conversation), bounded by a token budget
(:meth:`RagService.note`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from host.errors import EmbeddingError, StoreError

log = logging.getLogger("relic.rag")

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
MEMORY_BUDGET_TOKENS = 128  # retrieved text per turn, in chat-model tokens (each costs prompt time)
MEMORY_HEADER = "Things you know that may help:"
MEMORY_HITS = 4


def store_path(mod, name) -> Path:
    """mods/<id>/<name>.rag.sqlite3; names cannot leave the mod's folder."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise StoreError(f"store name {name!r} must match [A-Za-z0-9_.-]{{1,64}} and not start with '.'")
    return Path(mod.folder) / f"{name}.rag.sqlite3"


class RagService:
    """Worker-thread side: the embedder and open stores (one thread owns them all)."""

    def __init__(self):
        from host.rag.embed import Embedder

        self.embedder = Embedder()
        self.stores: dict[Path, object] = {}

    def store(self, path: Path):
        from host.rag.store import Store

        st = self.stores.get(path)
        if st is None:
            st = self.stores[path] = Store.open(path, self.embedder)
        return st

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
        for st in self.stores.values():
            st.close()
        self.stores.clear()
        self.embedder.close()


def rag_service(engine) -> RagService:
    """The engine's RagService, created on the worker thread at first use."""
    svc = engine.services.get("rag")
    if svc is None:
        svc = engine.services["rag"] = RagService()
    return svc


def _plain_hits(hits: list) -> list:
    keep = ("id", "text", "score", "meta", "doc_id", "start", "end")
    return [{k: h[k] for k in keep if k in h} for h in hits]


class RagProvider:
    """Installs `rag` into every mod; store calls go to the worker as CallRequests."""

    def __init__(self, worker, llm_provider):
        self.worker = worker
        self.llm = llm_provider  # its track() routes results to the mod's Lua handles

    def install(self, mod) -> None:
        factory = mod.load_lib("rag")
        new_handle = self.llm.new_handle_fn(mod)  # handles share the llm module's delivery
        bridge = mod.table({
            "check_name": lambda name: (store_path(mod, name), None)[1],
            "call": lambda name, op, *args: self._call(mod, name, op, *args),
        })
        mod.expose("rag", factory(bridge, new_handle))

    def memory_for(self, mod, value):
        """For llm.session{ memory = store }: augment(scheduler, text), run on the worker each turn."""
        name = value.get("__relic_store") if isinstance(value, dict) else None
        if name is None:
            raise StoreError("memory= must be a store from rag.open(name)")
        path = store_path(mod, name)
        return lambda engine, text: rag_service(engine).note(path, text, engine.vocab.count)

    def _call(self, mod, name, op, *args) -> int:
        path = store_path(mod, name)
        args = [mod.from_lua(a) for a in args]
        if op == "add":
            doc_id, text = args[0], args[1]
            meta = args[2] if len(args) > 2 else None
            fn = lambda e: rag_service(e).store(path).add(doc_id, text, meta)  # noqa: E731
        elif op == "remove":
            doc_id = args[0]
            fn = lambda e: rag_service(e).store(path).remove(doc_id)  # noqa: E731
        elif op == "search":
            query, opts = args[0], args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
            unknown = sorted(str(k) for k in opts if k not in ("k", "mode", "filters", "weights"))
            if unknown:
                raise StoreError(f"unknown search option(s) {unknown}; known: k, mode, filters, weights")
            kw = {k: opts[k] for k in ("k", "mode", "filters", "weights") if k in opts}

            def fn(e):
                return {"hits": _plain_hits(rag_service(e).store(path).search(query, **kw))}
        else:
            raise StoreError(f"unknown store operation {op!r}")
        return self.llm.track(mod, lambda _t, on_done: self.worker.call(mod.id, fn, on_done=on_done,
                                                                         merge=op == "search"))
