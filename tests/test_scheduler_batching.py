"""The scheduler's step planning and memory, with the real model.

- a newcomer's prompt is read in small chunks alongside the tokens of sequences
  already generating (every step while it reads also advances them);
- the context grows from one sequence to n_seq_max on demand and the sequences
  in use go on exactly where they were;
- the KV cache type is a setting, checked up front.
"""

from __future__ import annotations

import pytest

from host.engine.scheduler import Scheduler
from host.engine.service import Engine
from host.engine.step_builder import MIN_CHUNK
from host.errors import ContextError
from host.llama import Context
from host.messages import (DoneEvent, GenerateRequest, SessionInfoRequest, SessionLoadRequest, SessionSaveRequest,
                           StatsRequest)
from host.worker import Worker, WorkerConfig

SYSTEM = "You are Mara, a ferry pilot. Answer in one short sentence."
LONG_SYSTEM = ("You are the keeper of the lighthouse on the north cape. You have kept the light for thirty years, "
               "you know every ship that passes and every rock under the water, and you tell travelers about the "
               "storms, the wrecks and the smugglers who still land at night in the cove below the cliffs. ") * 2


def _events():
    out = []
    return out, out.append


def _req(i, text, system=SYSTEM, max_tokens=24, **kw):
    msgs = ({"role": "system", "content": system}, {"role": "user", "content": text})
    return GenerateRequest(id=i, mod_id="m", messages=msgs, max_tokens=max_tokens, temperature=0.0, **kw)


def test_newcomer_prompt_is_read_alongside_generating_sequences(model):
    sched = Scheduler(model, n_ctx=1024, n_batch=128, n_seq_max=4, n_threads=1)
    try:
        events, emit = _events()
        no_eog = {"logit_bias": {t: float("-inf") for t in range(model.vocab.n_tokens) if model.vocab.is_eog(t)}}
        for i, q in enumerate(("Name a fish.", "Name a bird.", "Name a tree.")):
            sched.submit(_req(i, q, max_tokens=200, sampler=no_eog), emit)
        for _ in range(200):  # until all three generate
            sched.step(emit)
            if all(s.next_token is not None for s in sched.slots) and len(sched.slots) == 3:
                break
        writers = list(sched.slots)
        assert len(writers) == 3
        for _ in range(3):  # steady generation: the running estimates exist
            sched.step(emit)
        newcomer = _req(9, "Tell me about the cove.", system=LONG_SYSTEM, max_tokens=4)
        sched.submit(newcomer, emit)
        reads = []
        while True:
            before = [w.n_gen for w in writers]
            sched.step(emit)
            slot = next((s for s in sched.slots if s.req is newcomer), None)
            assert [w.n_gen for w in writers] == [b + 1 for b in before], "every step advances those generating"
            if slot is None or slot.n_gen > 0:
                break
            reads.append(slot.n_prompt_done)
        chunks = [b - a for a, b in zip([0] + reads, reads)]
        assert len(chunks) >= 2, f"the {reads[-1]}-token prompt was read in one step while others generated"
        assert max(chunks) < 128, chunks
        assert sched.costs.chunk_tokens(3) >= MIN_CHUNK
    finally:
        sched.cancel_all(lambda ev: None)
        sched.close()


def test_context_grows_on_demand_and_sequences_continue_exactly(model, no_thread_left):
    """A session that answered with one sequence in the context keeps its cache and its answers
    after three more sessions made the context grow to four sequences."""
    prompts = ["Name a fish.", "Name a bird.", "Name a tree.", "Name a river."]

    def run(n_seq_start):
        w = Worker(model, WorkerConfig(n_ctx=1024, n_batch=128, n_seq_max=4),
                   engine_factory=lambda: Engine(Scheduler(model, n_ctx=1024, n_batch=128, n_seq_max=4,
                                                           n_seq_start=n_seq_start))).start()
        try:
            first = w.create_session("m", system=SYSTEM)
            a = w.wait(w.say("m", first, "Hello! Who are you?", max_tokens=16), 120)
            sizes = [w.wait(w.call(StatsRequest, "m"), 10)["value"]["n_seq_max"]]
            others = [w.create_session("m", system=SYSTEM) for _ in prompts[1:]]
            hs = [w.say("m", s, p, max_tokens=16) for s, p in zip(others, prompts[1:])]
            hs.append(w.say("m", first, prompts[0], max_tokens=16))
            rs = [w.wait(h, 120) for h in hs]
            sizes.append(w.wait(w.call(StatsRequest, "m"), 10)["value"]["n_seq_max"])
            return a, rs, sizes
        finally:
            w.shutdown()

    a1, rs1, sizes1 = run(1)
    a4, rs4, sizes4 = run(4)
    assert sizes1 == [1, 4] and sizes4 == [4, 4]
    assert a1["text"] == a4["text"]
    assert [r["text"] for r in rs1] == [r["text"] for r in rs4]
    assert all(r["error"] is None for r in rs1)
    assert rs1[-1]["usage"]["cached_tokens"] > 20, "the first session's cache survived the growth"


def test_kv_type_is_a_checked_setting(model):
    with pytest.raises(ContextError, match="unknown KV cache type 'q3'"):
        Context(model, n_ctx=256, kv_type="q3")
    with pytest.raises(ContextError, match="needs flash attention"):
        Context(model, n_ctx=256, kv_type="q8_0", flash_attn=False)
    with pytest.raises(ContextError, match="unknown KV cache type"):
        Scheduler(model, n_ctx=256, kv_type="int7")
    q8 = Context.estimate_kv_bytes(model, 1024, "q8_0")
    f16 = Context.estimate_kv_bytes(model, 1024, "f16")
    assert 0.5 < q8 / f16 < 0.55
    sched = Scheduler(model, n_ctx=512, n_batch=64, n_seq_max=2, n_threads=1, kv_type="f16")
    try:
        events, emit = _events()
        sched.submit(_req(1, "Name a fish.", max_tokens=8), emit)
        for _ in range(100):
            if not sched.busy:
                break
            sched.step(emit)
        done = [e for e in events if isinstance(e, DoneEvent)]
        assert done and done[0].result["error"] is None and done[0].result["text"]
        assert sched.ctx.kv_type == "f16" and sched.model_id.endswith(str(model.size_bytes))
    finally:
        sched.close()


def test_saved_session_restores_into_a_context_of_another_size(model, tmp_path, no_thread_left):
    """KV state saved from sequence 3 of a four-sequence context loads into a one-sequence one."""
    path = tmp_path / "s.session"

    def worker(n_seq_start):
        return Worker(model, WorkerConfig(n_ctx=1024, n_batch=128, n_seq_max=4),
                      engine_factory=lambda: Engine(Scheduler(model, n_ctx=1024, n_batch=128, n_seq_max=4,
                                                              n_seq_start=n_seq_start))).start()

    w = worker(4)
    try:
        sids = [w.create_session("m", system=SYSTEM) for _ in range(4)]
        rs = [w.wait(w.say("m", s, "Hello! Who are you?", max_tokens=8), 120) for s in sids]
        assert all(r["error"] is None for r in rs)
        seqs = [w.wait(w.call(SessionInfoRequest, "m", session_id=s), 10)["value"].seq for s in sids]
        assert sorted(seqs) == [0, 1, 2, 3]
        last = sids[seqs.index(3)]
        assert w.wait(w.call(SessionSaveRequest, "m", session_id=last, path=path), 10)["error"] is None
    finally:
        w.shutdown()
    w = worker(1)
    try:
        sid = w.new_session_id()
        loaded = w.wait(w.call(SessionLoadRequest, "m", session_id=sid, path=path), 10)
        assert loaded["error"] is None and loaded["value"]["cached_tokens"] > 20
        r = w.wait(w.say("m", sid, "Where do you live?", max_tokens=8), 120)
        assert r["error"] is None and r["usage"]["cached_tokens"] > 20
    finally:
        w.shutdown()
