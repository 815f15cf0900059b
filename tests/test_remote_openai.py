"""The OpenAI-compatible dialect, against llama-server's own /v1 endpoints (a real server on 127.0.0.1)."""

from __future__ import annotations

import pytest

from remote_util import check_tool_mod, remote_worker, start_server

KEY = "relic-test-key-7f3a"


@pytest.fixture(scope="module")
def keyed_server(model_path, tmp_path_factory):
    """A llama-server that wants an API key."""
    srv = start_server(model_path, tmp_path_factory, api_key=KEY)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def oworker(keyed_server):
    w = remote_worker(keyed_server.url + "/v1", api_key=KEY)
    yield w
    w.shutdown()


def test_chat_streams_through_chat_completions(oworker):
    assert oworker.start_lines[0].startswith("relic: openai server")
    pieces = []
    r = oworker.wait(oworker.submit("m", messages=({"role": "user", "content": "Name a colour."},), max_tokens=12,
                                    on_token=pieces.append), 120)
    assert r["error"] is None and "".join(pieces) == r["text"] and len(pieces) > 1
    assert r["usage"]["prompt_tokens"] > 0 and r["usage"]["completion_tokens"] > 0


def test_generate_uses_completions(oworker):
    r = oworker.wait(oworker.submit("m", prompt="Once upon a time", max_tokens=8), 120)
    assert r["error"] is None and r["text"] and r["finish_reason"] in ("stop", "length")


def test_session_turns_keep_the_conversation(oworker):
    sid = oworker.create_session("m", system="You are a sailor.")
    for text in ("Ahoy!", "Where are we sailing?"):
        r = oworker.wait(oworker.say("m", sid, text, max_tokens=8), 120)
        assert r["error"] is None, r
    assert r["usage"]["prompt_tokens"] > 20


def test_schema_goes_as_response_format_and_is_validated(oworker):
    from host.engine.grammar import Grammar

    g = Grammar.from_schema({"type": "object", "properties": {"mood": {"enum": ["happy", "sad", "angry"]}},
                             "required": ["mood"]}, confirm=False)
    r = oworker.wait(oworker.submit("m", messages=({"role": "user", "content": "How do you feel?"},),
                                    max_tokens=30, grammar=g), 120)
    assert r["error"] is None, r
    assert r["value"]["mood"] in ("happy", "sad", "angry")


@pytest.mark.parametrize("make, feature", [
    (lambda G: G.from_gbnf('root ::= "a"', confirm=False), "raw GBNF"),
    (lambda G: G.choice(["yes", "no"], confirm=False), "choice grammar"),
])
def test_what_it_cannot_express_is_unsupported_not_unconstrained(oworker, make, feature):
    from host.engine.grammar import Grammar

    r = oworker.wait(oworker.submit("m", prompt="x", max_tokens=4, grammar=make(Grammar)), 30)
    assert r["finish_reason"] == "error" and r["error_type"] == "unsupported" and feature in r["error"], r


def test_unsupported_sampler_and_special_prompt(oworker):
    r = oworker.wait(oworker.submit("m", prompt="x", max_tokens=4, sampler={"mirostat": {"version": 2}}), 30)
    assert r["error_type"] == "unsupported" and "mirostat" in r["error"]
    r = oworker.wait(oworker.submit("m", prompt="<|im_start|>x", max_tokens=4, parse_special=True), 30)
    assert r["error_type"] == "unsupported" and "special" in r["error"]


def test_an_unchanged_tool_mod_calls_its_tool(keyed_server, tmp_path):
    """Tool turns are schema steps: response_format constrains them on an OpenAI-compatible server."""
    from host.remote.backend import ServerConfig

    check_tool_mod(ServerConfig(keyed_server.url + "/v1", api_key=KEY), tmp_path)


def test_tokenize_is_unsupported_without_a_local_tokenizer(oworker):
    from host.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="tokenize"):
        oworker.model.vocab.count("hello")


def test_a_wrong_key_is_one_clear_line_and_a_backend_error(keyed_server):
    w = remote_worker(keyed_server.url + "/v1", api_key="wrong")
    try:
        assert len(w.start_lines) == 1 and "API key" in w.start_lines[0]
        r = w.wait(w.submit("m", prompt="x", max_tokens=2), 30)
        assert r["error_type"] == "backend" and "API key" in r["error"], r
    finally:
        w.shutdown()


def test_embeddings_both_apis(tmp_path_factory):
    """An embedding model on its own server (--embeddings): /v1/embeddings and /embedding agree."""
    from host.remote import llama_server, openai
    from host.remote.client import ServerClient
    from host.setup.embed_model import embed_model_path

    srv = start_server(embed_model_path(), tmp_path_factory, parallel=1, ctx=512, extra=["--embeddings"])
    c = ServerClient(srv.url)
    try:
        a = openai.embed(c, ["a red apple", "a green pear"])
        b = llama_server.embed(c, ["a red apple"])
        assert len(a) == 2 and len(a[0]) == len(b[0]) == 384
        assert a[0] != a[1]
        dot = sum(x * y for x, y in zip(a[0], b[0]))
        norm = (sum(x * x for x in a[0]) * sum(y * y for y in b[0])) ** 0.5
        assert dot / norm > 0.999  # the same direction by either API
    finally:
        c.close()
        srv.stop()


def test_doctor_reports_an_openai_server(keyed_server, capsys):
    from host.remote.backend import ServerConfig
    from host.setup.doctor import doctor_server

    assert doctor_server(ServerConfig(keyed_server.url + "/v1", api_key=KEY)) == 0
    out = capsys.readouterr().out
    assert "openai API, with an API key" in out and "status: all well" in out
    assert any(l.split() == ["gbnf", "no", "(requests", "that", "need", "it", "fail", "with", "error_type",
                             '"unsupported")'] for l in out.splitlines()), out
    assert doctor_server(ServerConfig(keyed_server.url + "/v1", api_key="wrong")) == 1
    assert "API key" in capsys.readouterr().out
