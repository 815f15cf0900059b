"""Samplers, presets, stop strings and streaming through the engine, with the real model."""

from __future__ import annotations

import pytest

from host.engine import sampling
from host.engine.stop import StopMatcher
from host.errors import SamplerError
from host.worker import Worker, WorkerConfig

EVERY_SAMPLER = {
    "temperature": 0.8, "top_k": 30, "top_p": 0.9, "min_p": 0.05, "typical": 0.95, "top_n_sigma": 2.0,
    "xtc": {"probability": 0.5, "threshold": 0.1}, "dynatemp": {"range": 0.3, "exponent": 1.2},
    "penalties": {"last_n": 32, "repeat": 1.1, "frequency": 0.1, "presence": 0.1},
    "dry": {"multiplier": 0.8, "base": 1.75, "allowed_length": 2, "last_n": 64, "breakers": ["\n", "."]},
    "logit_bias": {17: -5.0, 42: 2.0}, "seed": 5,
}


@pytest.fixture(scope="module")
def worker(model):
    w = Worker(model, WorkerConfig(n_ctx=1024, n_seq_max=4)).start()
    yield w
    w.shutdown()


def gen(worker, **opts):
    opts.setdefault("messages", ({"role": "user", "content": "Describe the sea in a few words."},))
    opts.setdefault("max_tokens", 24)
    return worker.wait(worker.submit("t", **opts), 60)


def test_every_sampler_builds_into_a_chain(model):
    chain = sampling.chain_for(model.lib, model.vocab, EVERY_SAMPLER)
    names = chain.names()
    chain.close()
    for expected in ("logit-bias", "penalties", "dry", "top-n-sigma", "top-k", "typical", "top-p", "min-p",
                     "xtc", "temp-ext", "dist"):
        assert expected in names, names
    assert names.index("penalties") < names.index("top-k") < names.index("dist"), "filters before the pick"


@pytest.mark.parametrize("mirostat", [{"version": 1, "tau": 5.0, "eta": 0.1}, {"version": 2}])
def test_mirostat_is_the_final_pick(model, mirostat):
    chain = sampling.chain_for(model.lib, model.vocab, {"temperature": 0.7, "mirostat": mirostat})
    assert chain.names()[-1].startswith("mirostat")
    chain.close()


def test_configurable_order(model):
    chain = sampling.chain_for(model.lib, model.vocab, {"temperature": 0.5, "top_k": 10, "min_p": 0.1,
                                                        "order": ["min_p", "temperature", "top_k"]})
    assert chain.names() == ["min-p", "temp", "top-k", "dist"]
    chain.close()


@pytest.mark.parametrize("preset", sorted(sampling.PRESETS))
def test_presets_generate(worker, preset):
    r = gen(worker, sampler={"preset": preset}, seed=3)
    assert r["finish_reason"] in ("stop", "length") and r["text"]


@pytest.mark.parametrize("bad,needle", [
    ({"top_q": 1}, "top_q"), ({"preset": "wild"}, "wild"), ({"temperature": -1}, "temperature"),
    ({"top_p": 1.5}, "top_p"), ({"top_k": 2.5}, "integer"), ({"xtc": {"prob": 1}}, "prob"),
    ({"mirostat": {"version": 3}}, "version"), ({"penalties": {"repeat": 0}}, "repeat"),
    ({"dry": {"breakers": [1]}}, "breakers"), ({"order": ["top_k", "magic"]}, "magic"),
    ({"logit_bias": {"x": 1}}, "logit_bias"), ({"temperature": float("nan")}, "temperature"),
    ({"greedy": "yes"}, "greedy"),
])
def test_bad_sampler_configs_are_clear_errors(bad, needle):
    with pytest.raises(SamplerError, match=needle):
        sampling.resolve(bad)


def test_logit_bias_token_out_of_range(model):
    with pytest.raises(SamplerError, match="out of range"):
        sampling.chain_for(model.lib, model.vocab, {"logit_bias": {10**7: 1.0}})


def test_seed_makes_sampling_reproducible(worker):
    a = gen(worker, sampler=EVERY_SAMPLER, seed=11)
    b = gen(worker, sampler=EVERY_SAMPLER, seed=11)
    c = gen(worker, sampler=EVERY_SAMPLER, seed=12)
    assert a["text"] == b["text"]
    assert a["text"] != c["text"] or a["text"] == ""


# --- stop strings --------------------------------------------------------------

def test_stop_matcher_holds_back_partial_matches():
    m = StopMatcher(["END"])
    assert m.push("abc E") == "abc "
    assert m.push("N") == ""
    assert m.push("X more") == "ENX more"
    assert m.push("... EN") == "... "
    assert m.push("D tail") == "" and m.stopped


def test_stop_matcher_earliest_of_several():
    m = StopMatcher(["\n\n", "User:"])
    out = m.push("Hi there.\nUser: no") + m.flush()
    assert out == "Hi there.\n" and m.stopped


def test_stop_string_across_a_token_boundary_never_leaks(worker, model):
    base = gen(worker, max_tokens=40)
    text = base["text"]
    # a stop string that straddles two tokens of the greedy output
    pieces = []
    tokens = model.vocab.tokenize(text, add_special=False)
    for t in tokens:
        pieces.append(model.vocab.piece(t, False).decode("utf-8", "replace"))
    at = next(i for i in range(1, len(pieces)) if len(pieces[i - 1]) >= 2 and len(pieces[i]) >= 2)
    prefix = "".join(pieces[:at])
    stop = pieces[at - 1][-2:] + pieces[at][:2]
    assert stop in text
    deltas = []
    r = worker.wait(worker.submit("t", messages=({"role": "user", "content": "Describe the sea in a few words."},),
                                  max_tokens=40, stop=(stop,), on_token=deltas.append), 60)
    assert r["finish_reason"] == "stop"
    assert r["text"] == text[:text.index(stop)]
    assert stop not in "".join(deltas) and "".join(deltas) == r["text"]
    assert prefix.startswith(r["text"]) or r["text"].startswith(prefix[:len(r["text"])])


def test_utf8_streaming_of_multibyte_output(worker):
    deltas = []
    r = worker.wait(worker.submit("t", prompt="Emoji: 🦊🐟🌊 and 日本語のテキスト. Again: 🦊🐟🌊 日本語",
                                  max_tokens=40, on_token=deltas.append), 60)
    assert "".join(deltas) == r["text"]
    for d in deltas:
        assert d.encode("utf-8").decode("utf-8") == d  # every delta stands alone
        assert "\ufffd" not in d


def test_usage_and_timings(worker):
    r = gen(worker, max_tokens=8)
    u = r["usage"]
    assert u["prompt_tokens"] > 5 and 1 <= u["completion_tokens"] <= 8 and u["cached_tokens"] == 0
    assert r["timings"]["tokens_per_second"] > 0 and r["timings"]["prompt_ms"] > 0
