"""The RAG store on the inference worker: created, used and closed there through Worker.call.

This is the pattern the Lua ``rag`` module follows: the frame thread never
touches the Embedder or the Store; it only receives plain results.
"""

from __future__ import annotations

import threading

import pytest

from host.errors import StoreError
from host.rag import Embedder, Store
from host.worker import Worker, WorkerConfig


@pytest.fixture
def worker(model, no_thread_left):
    w = Worker(model, WorkerConfig(n_ctx=512, n_batch=64, n_seq_max=2)).start()
    yield w
    w.shutdown()


def test_store_lives_on_the_worker_thread(worker, tmp_path, lib):
    from host.setup.embed_model import ensure_embed_model

    model_file = ensure_embed_model()
    state = {}

    def open_store(engine):
        state["emb"] = Embedder(model_file, lib=lib)
        state["store"] = Store.open(tmp_path / "npc.db", state["emb"])
        return threading.get_ident()

    r = worker.wait(worker.call("npc", open_store), 60)
    assert r["error"] is None and r["value"] != threading.get_ident()

    r = worker.wait(worker.call("npc", lambda e: state["store"].add(
        "gate", "The gate closes at sunset; only the captain holds the key.", {"kind": "lore"})), 60)
    assert r["value"] == {"id": "gate", "status": "added", "chunks": 1, "embedded": 1}

    r = worker.wait(worker.call("npc", lambda e: state["store"].search("who has the key?", k=3)), 60)
    hits = r["value"]
    assert [h["id"] for h in hits] == ["gate"] and hits[0]["meta"] == {"kind": "lore"}

    # errors travel back as error results; the worker keeps serving
    r = worker.wait(worker.call("npc", lambda e: state["store"].add("empty", "   ")), 60)
    assert r["finish_reason"] == "error" and "is empty" in r["error"]

    # the frame thread cannot use the store directly
    with pytest.raises(StoreError, match="belongs to the thread"):
        state["store"].search("key")

    def close(engine):
        state["store"].close()
        state["emb"].close()
        return True

    assert worker.wait(worker.call("npc", close), 60)["value"] is True
