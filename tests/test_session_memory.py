"""Overflow without re-reading the history (splice), overflow="summarize", memory notes for one turn only."""

from __future__ import annotations

import time

from host.engine.session import SessionState, common_prefix, with_note
from host.messages import SessionInfoRequest, StoreAddRequest
from host.worker import Worker, WorkerConfig

SYSTEM = "You are Mara, a ferry pilot. Answer in one short sentence."
LONG = ("Tell me about the river, the boats, the weather and the people who live along the banks, "
        "in as much detail as you can manage. ") * 3
TOPICS = ["the salt barges", "the old lighthouse", "the eel traps", "the ferry bell", "the flood of last year",
          "the fish market", "the customs house", "the night crossings"]


def asks(n):
    return [f"Question {i + 1}, about {TOPICS[i % len(TOPICS)]}. {LONG}" for i in range(n)]


def make_worker(model, **cfg):
    base = dict(n_ctx=512, n_batch=128, n_seq_max=4)
    base.update(cfg)
    return Worker(model, WorkerConfig(**base)).start()


def chat(worker, sid, texts, max_tokens=40):
    return [worker.wait(worker.say("m", sid, t, max_tokens=max_tokens), 120) for t in texts]


def state(worker, sid):
    return worker.wait(worker.call(SessionInfoRequest, "m", session_id=sid), 10)["value"]


def test_drop_oldest_overflow_reuses_the_kept_history(model, no_thread_left):
    """An overflow turn re-read the whole history (126 of 1,741 tokens reused); now it is spliced."""
    w = make_worker(model)
    try:
        sid = w.create_session("m", system=SYSTEM, overflow="drop_oldest")
        results = chat(w, sid, asks(7))
        assert all(r["finish_reason"] in ("stop", "length") for r in results), results
        st = state(w, sid)
        assert len(st.messages) < 14, "no overflow happened: the test needs a longer chat"
        for r in results[1:]:  # the kept exchanges came from the cache, only the new turn was read
            u = r["usage"]
            assert u["prompt_tokens"] - u["cached_tokens"] < 130, [r["usage"] for r in results]
    finally:
        w.shutdown()


def test_summarize_keeps_a_running_summary_after_the_system_prompt(model, no_thread_left):
    w = make_worker(model)
    try:
        sid = w.create_session("m", system=SYSTEM, overflow="summarize")
        results = chat(w, sid, ["My name is Ilse and I carry salt to the delta. " + LONG] + asks(7))
        assert all(r["finish_reason"] in ("stop", "length") for r in results), results
        deadline = time.monotonic() + 120  # the summary is written when no turn is running
        while not state(w, sid).summary and time.monotonic() < deadline:
            time.sleep(0.2)
        st = state(w, sid)
        assert st.summary, "no summary was written for the dropped turns"
        after = chat(w, sid, ["And now?"])[0]  # the new summary is spliced in, the history is not re-read
        assert after["finish_reason"] in ("stop", "length")
        assert after["usage"]["prompt_tokens"] - after["usage"]["cached_tokens"] < 250, after["usage"]
        assert st.system == SYSTEM and st.all_messages()[0]["content"].startswith(SYSTEM)
        assert st.summary in st.all_messages()[0]["content"]
    finally:
        w.shutdown()


def test_the_memory_note_is_shown_in_its_turn_only(model, no_thread_left, tmp_path):
    """Retrieved memory stayed in the history (the prompt grew ~300 tokens a turn)."""
    from host.setup.embed_model import ensure_embed_model

    w = make_worker(model, n_ctx=1024, embed_model=ensure_embed_model())
    store = tmp_path / "lore.rag.sqlite3"
    asked = ["What is your ferry called?", "And where do you sail?", "Thanks!"]
    try:
        r = w.wait(w.call(StoreAddRequest, "m", path=store, doc_id="ferry",
                          text="The ferry is called the Grey Heron."), 120)
        assert r["error"] is None, r
        sid = w.create_session("m", system=SYSTEM, memory=store)
        results = chat(w, sid, asked)
        assert all(r["finish_reason"] in ("stop", "length") for r in results), results
        assert results[0]["usage"]["prompt_tokens"] > 40, "the note was in the first turn's prompt"
        st = state(w, sid)
        assert all("Grey Heron" not in m["content"] or m["role"] == "assistant" for m in st.messages)
        assert [m["content"] for m in st.messages if m["role"] == "user"] == asked
        # the previous note was cut out of the cache, not re-read with everything after it
        third = results[2]["usage"]
        assert third["prompt_tokens"] - third["cached_tokens"] < 80, third
    finally:
        w.shutdown()


def test_with_note_and_common_prefix():
    msgs = [{"role": "user", "content": "hi"}]
    assert with_note(msgs, None) is msgs
    assert with_note(msgs, "N")[-1]["content"] == "N\n\nhi" and msgs[0]["content"] == "hi"
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    se = SessionState(1, "m", system="S")
    se.summary = "they met"
    assert se.all_messages()[0]["content"] == "S\n\nEarlier in this conversation: they met"
