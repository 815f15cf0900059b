"""The RAG store on the inference worker, through typed requests (host/messages.py).

This is the path the Lua ``rag`` module takes: the frame thread never touches
the Embedder or the Store; it queues StoreAdd/Remove/SearchRequests and
receives plain results, with ``error_type`` on failures.
"""

from __future__ import annotations

import time

import pytest

from host.messages import StoreAddRequest, StoreRemoveRequest, StoreSearchRequest
from host.worker import Worker, WorkerConfig


@pytest.fixture
def worker(model, no_thread_left):
    from host.setup.embed_model import ensure_embed_model

    w = Worker(model, WorkerConfig(n_ctx=512, n_batch=64, n_seq_max=2, embed_model=ensure_embed_model())).start()
    yield w
    w.shutdown()


def test_store_requests_on_the_worker(worker, tmp_path):
    path = tmp_path / "npc.rag.sqlite3"
    r = worker.wait(worker.call(StoreAddRequest, "npc", path=path, doc_id="gate",
                                text="The gate closes at sunset; only the captain holds the key.",
                                meta={"kind": "lore"}), 120)
    assert r["error"] is None and r["value"] == {"id": "gate", "status": "added", "chunks": 1, "embedded": 1}

    r = worker.wait(worker.call(StoreSearchRequest, "npc", path=path, query="who has the key?",
                                options=(("k", 3),)), 60)
    assert [h["id"] for h in r["hits"]] == ["gate"] and r["hits"][0]["meta"] == {"kind": "lore"}

    # errors travel back as error results with their type; the worker keeps serving
    r = worker.wait(worker.call(StoreAddRequest, "npc", path=path, doc_id="empty", text="   "), 60)
    assert r["finish_reason"] == "error" and "is empty" in r["error"] and r["error_type"] == "store"
    r = worker.wait(worker.call(StoreRemoveRequest, "npc", path=path, doc_id="gate"), 60)
    assert r["value"] is True


def test_a_long_ingest_is_cancelled_within_a_batch(worker, tmp_path):
    """A ~1 MiB store:add stops at its cancel flag instead of running for a minute."""
    path = tmp_path / "big.rag.sqlite3"
    words = ("harbor lantern rope tide ferry captain market barrel salt net ").split()
    text = " ".join(f"{words[i % len(words)]} {i}" + ("." if i % 17 == 0 else "") for i in range(150_000))[: 1 << 20]
    h = worker.call(StoreAddRequest, "npc", path=path, doc_id="big", text=text)
    time.sleep(1.5)  # the embedder is loaded and the ingest has started
    t0 = time.perf_counter()
    h.cancel()
    r = worker.wait(h, 60)
    took = time.perf_counter() - t0
    assert r["finish_reason"] == "cancelled" and r["error_type"] == "cancelled", r
    assert took < 10, f"cancel took {took:.1f} s"  # a generous did-not-hang bound; the figure is in bench/
    r = worker.wait(worker.call(StoreSearchRequest, "npc", path=path, query="harbor"), 60)
    assert r["hits"] == [], "a cancelled ingest leaves the store unchanged"
