"""Sessions with the real model: prefix reuse, overflow policies, concurrency, save/restore."""

from __future__ import annotations

import pytest

from host.engine.session import SessionError
from host.messages import (SessionInfoRequest, SessionLoadRequest, SessionResetRequest, SessionSaveRequest,
                           StatsRequest)
from host.worker import Worker, WorkerConfig

SYSTEM = "You are Mara, a ferry pilot. Answer in one short sentence."
TURNS = ["Hello! Who are you?", "What do you carry on your ferry?", "Is the river calm today?"]


def make_worker(model, **cfg):
    base = dict(n_ctx=2048, n_batch=128, n_seq_max=6)
    base.update(cfg)
    return Worker(model, WorkerConfig(**base)).start()


@pytest.fixture
def worker(model, no_thread_left):
    w = make_worker(model)
    yield w
    w.shutdown()


def chat(worker, sid, texts, mod="m", max_tokens=24, **opts):
    return [worker.wait(worker.say(mod, sid, t, max_tokens=max_tokens, **opts), 60) for t in texts]


def state(worker, sid, mod="m"):
    return worker.wait(worker.call(SessionInfoRequest, mod, session_id=sid), 10)["value"]


def test_each_turn_reuses_the_cached_prefix(worker):
    sid = worker.create_session("m", system=SYSTEM)
    results = chat(worker, sid, TURNS)
    assert all(r["finish_reason"] in ("stop", "length") for r in results), results
    first, second, third = (r["usage"] for r in results)
    assert first["cached_tokens"] == 0
    # turn 2 re-decodes only what came after turn 1's prompt and reply
    assert second["cached_tokens"] >= first["prompt_tokens"]
    assert third["cached_tokens"] >= second["prompt_tokens"]
    assert second["prompt_tokens"] - second["cached_tokens"] < 40
    st = state(worker, sid)
    assert [m["role"] for m in st.messages] == ["user", "assistant"] * 3


def test_cached_tokens_are_exactly_the_rendered_conversation(worker, model):
    """What the sequence holds is a prefix of the next turn's rendered prompt (the reuse is valid)."""
    sid = worker.create_session("m", system=SYSTEM)
    chat(worker, sid, TURNS[:2])
    st = state(worker, sid)
    nxt = model.apply_chat_template(st.all_messages([{"role": "user", "content": "next"}]))
    tokens = model.vocab.tokenize(nxt, parse_special=True)
    assert st.kv_tokens and tokens[:len(st.kv_tokens) - 1] == st.kv_tokens[:-1]


def test_reset_forgets_the_conversation(worker):
    sid = worker.create_session("m", system=SYSTEM)
    chat(worker, sid, TURNS[:2])
    r = worker.wait(worker.call(SessionResetRequest, "m", session_id=sid), 10)
    assert r["error"] is None
    st = state(worker, sid)
    assert st.messages == [] and st.system == SYSTEM


LONG = "Tell me everything about the cargo: " + "crates of rope, barrels of tar, lamps and nets. " * 12


def test_overflow_drop_oldest_keeps_the_system_prompt(model, no_thread_left):
    w = make_worker(model, n_ctx=512)
    try:
        sid = w.create_session("m", system=SYSTEM, overflow="drop_oldest")
        results = chat(w, sid, [LONG] * 5, max_tokens=48)
        assert all(r["finish_reason"] in ("stop", "length") for r in results), results
        st = state(w, sid)
        assert st.system == SYSTEM
        assert len(st.messages) < 10, "old exchanges were dropped"
        assert st.messages[-2]["content"] == LONG
    finally:
        w.shutdown()


def test_overflow_error_fails_the_turn_clearly(model, no_thread_left):
    w = make_worker(model, n_ctx=512)
    try:
        sid = w.create_session("m", system=SYSTEM, overflow="error")
        results = chat(w, sid, [LONG] * 5, max_tokens=48)
        errors = [r for r in results if r["finish_reason"] == "error"]
        assert errors and "overflow='error'" in errors[0]["error"]
        assert state(w, sid).system == SYSTEM
    finally:
        w.shutdown()


def test_overflow_shift_keeps_going_and_reuses_the_kv(model, no_thread_left):
    w = make_worker(model, n_ctx=512)
    try:
        sid = w.create_session("m", system=SYSTEM, overflow="shift")
        results = chat(w, sid, [LONG] * 6, max_tokens=48)
        assert all(r["finish_reason"] in ("stop", "length") for r in results), results
        st = state(w, sid)
        assert st.dropped > 0, "the context was shifted"
        assert len(st.messages) == 12, "shift keeps the whole conversation"
        assert all(r["usage"]["prompt_tokens"] + 48 <= 512 for r in results)
    finally:
        w.shutdown()


def test_message_too_long_for_any_policy(model, no_thread_left):
    w = make_worker(model, n_ctx=256)
    try:
        sid = w.create_session("m", system=SYSTEM)
        r = chat(w, sid, [LONG * 3], max_tokens=16)[0]
        assert r["finish_reason"] == "error" and "system prompt and this message" in r["error"]
    finally:
        w.shutdown()


def test_bad_session_settings_raise_at_creation(worker):
    with pytest.raises(SessionError, match="overflow"):
        worker.create_session("m", overflow="sideways")
    with pytest.raises(Exception, match="no_such"):
        worker.create_session("m", sampler={"no_such": 1})
    r = worker.wait(worker.say("m", 987654, "hi"), 10)
    assert r["finish_reason"] == "error" and "unknown session" in r["error"]


def test_four_concurrent_sessions_match_sequential(model, no_thread_left):
    """Four sessions answering in one batch give the greedy text each gives alone."""
    prompts = ["Name a fish.", "Name a bird.", "Name a tree.", "Name a river."]
    w = make_worker(model)
    try:
        seq_out = []
        for p in prompts:
            sid = w.create_session("m", system=SYSTEM)
            seq_out.append(chat(w, sid, [p], max_tokens=20)[0]["text"])
            w.close_session("m", sid)
    finally:
        w.shutdown()
    w = make_worker(model)
    try:
        sids = [w.create_session("m", system=SYSTEM) for _ in prompts]
        handles = [w.say("m", s, p, max_tokens=20) for s, p in zip(sids, prompts)]
        par_out = [w.wait(h, 60)["text"] for h in handles]
        steps = w.wait(w.call(StatsRequest, "m"), 10)["value"]["decode_calls"]
    finally:
        w.shutdown()
    assert par_out == seq_out
    assert steps < 4 * 20, "the four sessions advanced together, not one after another"


def test_save_and_restore_continue_exactly(worker, model, tmp_path):
    path = tmp_path / "mara.session"
    sid = worker.create_session("m", system=SYSTEM)
    chat(worker, sid, TURNS[:2])
    saved = worker.wait(worker.call(SessionSaveRequest, "m", session_id=sid, path=path), 10)
    assert saved["error"] is None and path.stat().st_size > 1000
    expected = chat(worker, sid, TURNS[2:])[0]["text"]

    w2 = make_worker(model)
    try:
        sid2 = w2.new_session_id()
        loaded = w2.wait(w2.call(SessionLoadRequest, "m", session_id=sid2, path=path), 10)
        assert loaded["error"] is None and loaded["value"]["messages"] == 4
        assert loaded["value"]["cached_tokens"] > 0
        r = chat(w2, sid2, TURNS[2:])[0]
        assert r["text"] == expected
        assert r["usage"]["cached_tokens"] > 0, "the KV state was restored, not recomputed"
    finally:
        w2.shutdown()


def test_corrupt_session_file_is_a_clear_error(worker, tmp_path):
    bad = tmp_path / "bad.session"
    bad.write_bytes(b"not json\n\x00\x01")
    r = worker.wait(worker.call(SessionLoadRequest, "m", session_id=worker.new_session_id(), path=bad), 10)
    assert r["finish_reason"] == "error" and "not a saved session" in r["error"]
    r = worker.wait(worker.call(SessionLoadRequest, "m", session_id=worker.new_session_id(),
                                   path=tmp_path / "none"), 10)
    assert "no saved session" in r["error"]
