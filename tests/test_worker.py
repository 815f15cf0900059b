"""The inference worker with the real model: routing, cancellation, limits, errors, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from host.messages import SessionResetRequest
from host.worker import Worker, WorkerConfig

LONG = "Tell me about the harbor. " + "The tide rolls in over the old piers and rusted cranes. " * 150


@pytest.fixture
def worker(model, no_thread_left):
    w = Worker(model, WorkerConfig(n_ctx=4096, n_batch=64, n_seq_max=4, max_pending_per_mod=8)).start()
    yield w
    w.shutdown()


def _msgs(text):
    return ({"role": "user", "content": text},)


def test_twenty_requests_from_three_mods_reach_the_right_mod(worker):
    got: dict[str, list] = {"a": [], "b": [], "c": []}
    calls = []
    handles = []
    for i in range(20):
        mod = "abc"[i % 3]
        h = worker.submit(mod, messages=_msgs(f"Say the number {i}."), max_tokens=8,
                          on_done=lambda r, mod=mod, i=i: (got[mod].append(i), calls.append(i)))
        handles.append(h)
    deadline = time.monotonic() + 120
    while any(not h.done() for h in handles) and time.monotonic() < deadline:
        worker.pump(0.01)
        time.sleep(0.001)
    assert all(h.done() for h in handles)
    assert sorted(calls) == list(range(20)), "on_done must run exactly once per request"
    for mod, ids in got.items():
        assert ids and all("abc"[i % 3] == mod for i in ids)
    for h in handles:
        assert h.result["finish_reason"] in ("stop", "length"), h.result
        assert h.result["usage"]["completion_tokens"] >= 1


def test_streamed_tokens_join_to_the_result_text(worker):
    deltas = []
    h = worker.submit("m", messages=_msgs("Name a colour."), max_tokens=24, on_token=deltas.append)
    result = worker.wait(h, 60)
    assert deltas and "".join(deltas) == result["text"]


def test_cancel_during_prompt_processing(worker):
    h = worker.submit("m", prompt=LONG, max_tokens=16)
    assert worker.model.vocab.count(LONG) > 1000  # many 64-token chunks
    time.sleep(0.05)
    t0 = time.perf_counter()
    h.cancel()
    result = worker.wait(h, 30)
    assert result["finish_reason"] == "cancelled"
    assert result["usage"]["completion_tokens"] == 0
    # loose sanity bound only; the measured latency lives in bench/
    assert time.perf_counter() - t0 < 5


def test_cancel_during_generation(worker):
    seen = []

    def on_token(text):
        seen.append(text)
        if len(seen) == 2:
            h.cancel()

    h = worker.submit("m", messages=_msgs("Count from one to fifty in words."), max_tokens=200,
                      on_token=on_token)
    result = worker.wait(h, 60)
    assert result["finish_reason"] == "cancelled"
    # cancellation is seen within one decode step of the cancel() call
    assert result["usage"]["completion_tokens"] < 10


def test_queue_limit_gives_error_results(model, no_thread_left):
    w = Worker(model, WorkerConfig(n_ctx=1024, max_pending_per_mod=2)).start()
    try:
        hs = [w.submit("greedy_mod", messages=_msgs("hi"), max_tokens=4) for _ in range(5)]
        other = w.submit("polite_mod", messages=_msgs("hi"), max_tokens=4)
        results = [w.wait(h, 60) for h in hs + [other]]
        errors = [r for r in results[:5] if r["finish_reason"] == "error"]
        assert len(errors) == 3 and all(r["error_type"] == "queue_full" and "in flight" in r["error"] for r in errors)
        assert results[5]["finish_reason"] != "error", "another mod's quota is its own"
    finally:
        w.shutdown()


def test_prompt_limits(model, no_thread_left):
    w = Worker(model, WorkerConfig(n_ctx=1024, max_prompt_tokens=100)).start()
    try:
        r = w.wait(w.submit("m", prompt=LONG, max_tokens=4), 30)
        assert r["finish_reason"] == "error" and "limit is 100" in r["error"]
        assert r["error_type"] == "prompt_too_long"
        r = w.wait(w.submit("m", prompt=LONG[:1000], max_tokens=4), 30)  # few bytes, but over 100 tokens
        assert r["error_type"] == "prompt_too_long" and "tokens; the limit is 100" in r["error"], r
        r = w.wait(w.submit("m", prompt="short", max_tokens=5000), 30)
        assert r["finish_reason"] == "error" and "exceeds the context size" in r["error"]
        r = w.wait(w.submit("m", prompt="", max_tokens=5), 30)
        assert r["finish_reason"] == "error"
    finally:
        w.shutdown()


def test_a_worker_error_does_not_stop_the_next_request(worker):
    class BrokenGrammar:
        def sampler(self, lib, vocab):
            raise RuntimeError("grammar exploded")

    bad = worker.wait(worker.submit("m", prompt="x", grammar=BrokenGrammar(), max_tokens=4), 30)
    assert bad["finish_reason"] == "error" and "grammar exploded" in bad["error"]
    bad2 = worker.wait(worker.submit("m", prompt="x", sampler={"no_such_sampler": 1}, max_tokens=4), 30)
    assert bad2["finish_reason"] == "error" and "no_such_sampler" in bad2["error"]
    boom = worker.wait(worker.call(SessionResetRequest, "m", session_id=424242), 30)
    assert boom["finish_reason"] == "error" and "unknown session" in boom["error"]
    assert boom["error_type"] == "session"
    good = worker.wait(worker.submit("m", messages=_msgs("Say hello."), max_tokens=8), 60)
    assert good["finish_reason"] in ("stop", "length") and good["error"] is None
    assert worker.alive


def test_shutdown_during_generation_is_prompt(model, no_thread_left):
    w = Worker(model, WorkerConfig(n_ctx=4096, n_batch=64)).start()
    done = []
    h1 = w.submit("m", prompt=LONG, max_tokens=500, on_done=done.append)
    h2 = w.submit("m", messages=_msgs("Write a long story."), max_tokens=500, on_done=done.append)
    time.sleep(0.2)
    t0 = time.perf_counter()
    w.shutdown(timeout=10)
    assert time.perf_counter() - t0 < 5  # loose; measured in bench/
    assert not w.alive
    w.pump(1.0)  # the cancelled results are still delivered, once each
    assert h1.done() and h2.done() and len(done) == 2
    assert {r["finish_reason"] for r in done} <= {"cancelled", "length", "stop"}
    late = w.submit("m", prompt="x")
    w.pump(0.1)
    assert late.done() and "shut down" in late.result["error"]


def test_worker_thread_is_the_only_one_touching_the_context(model, no_thread_left):
    """The engine is created on the worker thread (ownership rule)."""
    seen = {}

    def factory():
        from host.engine.scheduler import Scheduler
        from host.engine.service import Engine

        seen["thread"] = threading.current_thread().name
        return Engine(Scheduler(model, n_ctx=512))

    w = Worker(model, engine_factory=factory).start()
    w.shutdown()
    assert seen["thread"] == "relic-worker"
