"""The host half of the mod-facing `rag` module (the Lua half is host/runtime/lua/rag.lua).

Stores and the embedding model live on the worker thread
(:class:`host.rag.service.RagService`, created there on first use); the frame
thread only validates names, counts them against the mod's quota and queues
typed requests (host/messages.py).  A store is the file
``mods/<id>/<name>.rag.sqlite3``.  Sessions made with ``memory = store``
search it for every user turn and put the hits into that turn only (never
into the saved conversation), bounded by a token budget (:meth:`RagService.note`).
"""

from __future__ import annotations

import re
from pathlib import Path

from host.errors import StoreError
from host.messages import StoreAddRequest, StoreRemoveRequest, StoreSearchRequest
from host.rag.service import SEARCH_OPTIONS

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")


def store_path(mod, name) -> Path:
    """mods/<id>/<name>.rag.sqlite3; names cannot leave the mod's folder."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise StoreError(f"store name {name!r} must match [A-Za-z0-9_.-]{{1,64}} and not start with '.'")
    return Path(mod.folder) / f"{name}.rag.sqlite3"


def memory_store(ledger, mod, value) -> Path:
    """For llm.session{ memory = store }: the store's path (searched on the worker each turn).

    ``ledger`` counts the store against the mod's quota, as rag.open does;
    the llm provider is given ``functools.partial(memory_store, ledger)``.
    """
    name = value.get("__relic_store") if isinstance(value, dict) else None
    if name is None:
        raise StoreError("memory= must be a store from rag.open(name)")
    store_path(mod, name)
    ledger.open_store(mod.id, name)
    return store_path(mod, name)


def _size(value) -> int:
    return len(value) if isinstance(value, (str, bytes)) else 0


class RagProvider:
    """Installs `rag` into every mod; store calls go to the worker as typed requests."""

    def __init__(self, worker, llm_provider):
        self.worker = worker
        self.llm = llm_provider  # its track() routes results to the mod's Lua handles
        self.ledger = llm_provider.ledger

    def install(self, mod) -> None:
        factory = mod.load_lib("rag")
        new_handle = self.llm.new_handle_fn(mod)  # handles share the llm module's delivery
        bridge = mod.table({
            "check_name": lambda name: self._open(mod, name),
            "call": lambda name, op, *args: self._call(mod, name, op, *args),
        })
        mod.expose("rag", factory(bridge, new_handle))

    def _open(self, mod, name) -> None:
        store_path(mod, name)
        self.ledger.open_store(mod.id, name)

    def _call(self, mod, name, op, *args) -> int:
        path = store_path(mod, name)
        self.ledger.open_store(mod.id, name)
        args = [mod.from_lua(a) for a in args]
        if op == "add":
            req = StoreAddRequest
            fields = {"doc_id": args[0] if args else None, "text": args[1] if len(args) > 1 else None,
                      "meta": args[2] if len(args) > 2 else None}
            size = _size(fields["text"])
            cap = mod.host.limits.rag.max_doc_bytes
            if size > cap:  # refused by size before it is queued (characters <= bytes)
                exc = StoreError(f"document {fields['doc_id']!r} has more than {cap} bytes; the limit is "
                                 f"{cap} (split it into several documents)")
                return self.llm.track(mod, lambda _t, on_done: self.worker.fail(mod.id, exc, on_done=on_done))
        elif op == "remove":
            req, fields, size = StoreRemoveRequest, {"doc_id": args[0] if args else None}, 0
        elif op == "search":
            query = args[0] if args else None
            opts = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
            unknown = sorted(str(k) for k in opts if k not in SEARCH_OPTIONS)
            if unknown:
                raise StoreError(f"unknown search option(s) {unknown}; known: {', '.join(SEARCH_OPTIONS)}")
            options = tuple((k, opts[k]) for k in SEARCH_OPTIONS if k in opts)
            req, fields, size = StoreSearchRequest, {"query": query, "options": options}, _size(query)
        else:
            raise StoreError(f"unknown store operation {op!r}")
        return self.llm.track(mod, lambda _t, on_done: self.worker.call(req, mod.id, on_done=on_done, size=size,
                                                                       path=path, **fields))
