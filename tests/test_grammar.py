"""Grammar objects with the real model: constrained output parses and validates, errors are clear.

The validity sweep runs several schemas x seeds at temperature 0.9 through the
worker; every output must decode and validate (the rate is printed; run with
-s to see it).  bench/grammar_overhead.py --validity N runs a longer sweep.
"""

from __future__ import annotations

import json
import re

import pytest

from host.engine.gbnf import gbnf_regex
from host.engine.grammar import Grammar
from host.engine.schema_validate import validate
from host.errors import GrammarError
from host.llama import SamplerChain
from host.worker import Worker, WorkerConfig

WAIT = 240  # seconds; a loose guard against a hang, never a timing assertion


@pytest.fixture(scope="module")
def worker(model):
    # one decode thread: on a busy 2-core machine a second ggml thread spin-waits at every barrier and
    # multi-slot steps get several times slower (bench/grammar_overhead.py measures single-slot speed)
    cfg = WorkerConfig(n_ctx=4096, n_batch=128, n_seq_max=8, n_threads=1, n_threads_batch=1, max_pending_per_mod=32)
    w = Worker(model, cfg).start()
    yield w
    w.shutdown()


def _chat(text):
    return ({"role": "user", "content": text},)


SCHEMAS = {
    "npc_line": ({"type": "object", "properties": {
        "speaker": {"type": "string", "minLength": 1, "maxLength": 20},
        "emotion": {"enum": ["happy", "sad", "angry", "afraid"]},
        "line": {"type": "string", "minLength": 1, "maxLength": 40}},
        "required": ["speaker", "emotion", "line"], "additionalProperties": False},
        "Write one line of dialogue for a village guard as JSON with speaker, emotion and line."),
    "quest": ({"type": "object", "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 30},
        "level": {"type": "integer", "minimum": 1, "maximum": 10},
        "reward": {"type": "object", "properties": {
            "gold": {"type": "integer", "minimum": 0, "maximum": 500},
            "item": {"type": "string", "maxLength": 16}}, "required": ["gold"]},
        "hostile": {"type": "boolean"}},
        "required": ["title", "reward"]},
        "Describe a quest as JSON: title, optional level, reward (gold and an optional item), optional hostile."),
    "inventory": ({"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 16},
        "count": {"type": "integer", "minimum": 1, "maximum": 99}},
        "required": ["name", "count"], "additionalProperties": False}, "minItems": 1, "maxItems": 4},
        "List a merchant's goods as a JSON array of objects with name and count."),
    "action": ({"$defs": {
        "move": {"type": "object", "properties": {"action": {"const": "move"},
                                                  "dir": {"enum": ["north", "south", "east", "west"]}},
                 "required": ["action", "dir"], "additionalProperties": False},
        "say": {"type": "object", "properties": {"action": {"const": "say"},
                                                 "text": {"type": "string", "minLength": 1, "maxLength": 40}},
                "required": ["action", "text"], "additionalProperties": False}},
        "anyOf": [{"$ref": "#/$defs/move"}, {"$ref": "#/$defs/say"}]},
        "You are a game character. Reply with a JSON action: move in a direction, or say something."),
}
SEEDS = range(8)


def test_every_output_parses_and_validates(worker):
    jobs = []
    for name, (schema, prompt) in SCHEMAS.items():
        g = Grammar.from_schema(schema)
        for seed in SEEDS:
            h = worker.submit("m", messages=_chat(prompt), grammar=g, max_tokens=256, temperature=0.9, seed=seed)
            jobs.append((name, seed, schema, h))
    valid, failures, texts = 0, [], {}
    for name, seed, schema, h in jobs:
        r = worker.wait(h, WAIT)
        texts.setdefault(name, set()).add(r["text"])
        ok = (r["finish_reason"] == "stop" and r["error"] is None and r["value"] is not None
              and json.loads(r["text"]) == r["value"] and validate(r["value"], schema) == [])
        valid += ok
        if not ok:
            failures.append((name, seed, r["finish_reason"], r["error"], r["text"]))
    print(f"\nvalidity: {valid}/{len(jobs)} = {valid / len(jobs):.1%} "
          f"({len(SCHEMAS)} schemas x {len(SEEDS)} seeds, temperature 0.9)")
    assert not failures, failures
    # different seeds really sampled different outputs (the sweep is not one output repeated)
    assert all(len(t) > 1 for t in texts.values()), texts


def test_streaming_deltas_join_to_the_text_and_value(worker):
    g = Grammar.from_schema(SCHEMAS["npc_line"][0])
    deltas = []
    h = worker.submit("m", messages=_chat(SCHEMAS["npc_line"][1]), grammar=g, max_tokens=256, temperature=0.7,
                      seed=11, on_token=deltas.append)
    r = worker.wait(h, WAIT)
    assert len(deltas) > 3 and "".join(deltas) == r["text"]
    assert r["value"] == json.loads(r["text"])


def test_grammar_with_stop_strings(worker):
    g = Grammar.from_gbnf('root ::= "Name: " [A-Z] [a-z]{1,10} "\\n" "Mood: " ("calm" | "angry") "\\n"')
    rx = re.compile(gbnf_regex(g.gbnf))
    h = worker.submit("m", messages=_chat("Introduce a guard."), grammar=g, stop=["\nMood"], max_tokens=64,
                      temperature=0.8, seed=3)
    r = worker.wait(h, WAIT)
    assert r["finish_reason"] == "stop" and r["error"] is None
    assert re.fullmatch(r"Name: [A-Z][a-z]{1,10}", r["text"]), r["text"]
    # without the stop string the whole grammar comes out
    h = worker.submit("m", messages=_chat("Introduce a guard."), grammar=g, max_tokens=64, temperature=0.8, seed=3)
    full = worker.wait(h, WAIT)
    assert rx.fullmatch(full["text"]) and full["text"].startswith(r["text"])


def test_stop_string_inside_json_keeps_text_and_reports_the_parse_error(worker):
    schema, prompt = SCHEMAS["npc_line"]
    h = worker.submit("m", messages=_chat(prompt), grammar=Grammar.from_schema(schema), stop=['"emotion"'],
                      max_tokens=256, temperature=0.5, seed=1)
    r = worker.wait(h, WAIT)
    assert r["finish_reason"] == "stop"
    assert r["text"].lstrip().startswith('{') and '"emotion"' not in r["text"]
    assert r["value"] is None and "not valid JSON" in r["error"]


def test_max_tokens_cut_reports_an_error_not_a_crash(worker):
    h = worker.submit("m", messages=_chat(SCHEMAS["quest"][1]), grammar=Grammar.from_schema(SCHEMAS["quest"][0]),
                      max_tokens=5, temperature=0.5, seed=2)
    r = worker.wait(h, WAIT)
    assert r["finish_reason"] == "length" and r["value"] is None and "max_tokens" in r["error"]


def test_choice_returns_one_of_the_options(worker):
    options = ["attack", "defend", "flee", "talk"]
    g = Grammar.choice(options)
    handles = [worker.submit("m", messages=_chat("An orc blocks the road. What do you do?"), grammar=g,
                             max_tokens=16, temperature=1.0, seed=s) for s in range(4)]
    for h in handles:
        r = worker.wait(h, WAIT)
        assert r["finish_reason"] == "stop" and r["text"] in options and r["value"] == r["text"]


def test_tool_call(worker):
    tools = [{"name": "attack", "parameters": {"type": "object", "properties": {
                 "target": {"type": "string", "minLength": 1, "maxLength": 20}}, "required": ["target"]}},
             {"type": "function", "function": {"name": "heal", "parameters": {"type": "object", "properties": {
                 "amount": {"type": "integer", "minimum": 1, "maximum": 50}}, "required": ["amount"]}}},
             {"name": "wait"}]
    g = Grammar.tool_call(tools)
    handles = [worker.submit("m", messages=_chat("You are hurt and an orc attacks. Call a tool."), grammar=g,
                             max_tokens=96, temperature=0.9, seed=seed) for seed in range(3)]
    for h in handles:
        r = worker.wait(h, WAIT)
        assert r["error"] is None, r
        assert r["value"]["name"] in ("attack", "heal", "wait") and isinstance(r["value"]["arguments"], dict)
    assert g.parse_result('{"name": "wait", "arguments": {}}') == ({"name": "wait", "arguments": {}}, None)
    value, err = g.parse_result('{"name": "heal", "arguments": {"amount": 99}}')
    assert value["arguments"]["amount"] == 99 and "maximum 50" in err
    with pytest.raises(GrammarError, match="used twice"):
        Grammar.tool_call([{"name": "a"}, {"name": "a"}])


# --- lazy grammars ------------------------------------------------------------------------

def test_lazy_word_trigger_with_token_tails_does_not_crash(worker, model):
    """A word that tokens often end inside ("th" in " the", " north"): llama.cpp replays the rest of
    that token into the grammar and aborts the process if the grammar rejects it."""
    g = Grammar.lazy(Grammar.choice([" END"]), words=["th"])
    pieces = [model.vocab.piece(t) for t in range(model.vocab.n_tokens)]
    handles = [worker.submit("m", messages=_chat("Tell me about the weather in the north."), grammar=g,
                             max_tokens=60, temperature=0.8, seed=seed) for seed in range(3)]
    for h in handles:
        r = worker.wait(h, WAIT)
        text = r["text"]
        assert r["finish_reason"] == "stop" and "th" in text and text.endswith(" END"), text
        assert r["value"] == " END" and r["error"] is None
        # between the trigger and the inner grammar there is only the rest of one token
        tail = text[text.index("th") + 2:-len(" END")]
        assert any(p.endswith(b"th" + tail.encode()) or p.startswith(b"h" + tail.encode()) for p in pieces), tail


def test_lazy_pattern_trigger_constrains_what_follows(worker):
    g = Grammar.lazy(Grammar.from_schema({"type": "integer", "minimum": 18, "maximum": 30}), patterns=[r"Age:"])
    prompt = "Name: Bob\nAge: 40\nName: Ann\nAge: 31\nName:"
    r = worker.wait(worker.submit("m", prompt=prompt, grammar=g, max_tokens=40, temperature=0.0), WAIT)
    assert r["finish_reason"] == "stop" and "Age:" in r["text"], r["text"]
    assert r["error"] is None and 18 <= r["value"] <= 30, r


def test_lazy_trigger_that_never_appears_leaves_text_free(worker):
    g = Grammar.lazy(Grammar.from_schema({"type": "boolean"}), words=["<<never>>"])
    r = worker.wait(worker.submit("m", messages=_chat("Say hello."), grammar=g, max_tokens=12, temperature=0.0),
                    WAIT)
    assert r["text"] and r["value"] is None and r["error"] is None


def test_lazy_construction_rules(lib, model):
    inner = Grammar.choice(["x"])
    with pytest.raises(GrammarError, match="at least one trigger"):
        Grammar.lazy(inner)
    with pytest.raises(GrammarError, match="already lazy"):
        Grammar.lazy(Grammar.lazy(inner, words=["a"]), words=["b"])
    with pytest.raises(GrammarError, match="empty string"):
        Grammar.lazy(inner, patterns=["a*"])
    with pytest.raises(GrammarError, match="ASCII"):
        Grammar.lazy(inner, patterns=["a."])
    with pytest.raises(GrammarError, match="anchors"):
        Grammar.lazy(inner, patterns=["^a"])
    with pytest.raises(GrammarError, match="look like <name>"):
        Grammar.lazy(inner, tokens=["plain text"])
    g = Grammar.lazy(inner, tokens=["<|im_start|>", 2], words=["ÜBER"], patterns=[r"[Aa]ct(ion)?:"])
    assert g.is_lazy and g.trigger_words == ("ÜBER",)
    ptr = g.sampler(lib, model.vocab)
    SamplerChain(lib).add(ptr).close()
    with pytest.raises(GrammarError, match="not one"):
        Grammar.lazy(inner, tokens=["<notatoken>"]).sampler(lib, model.vocab)
    with pytest.raises(GrammarError, match="token id 1000000"):
        Grammar.lazy(inner, tokens=[10 ** 6]).sampler(lib, model.vocab)


# --- construction and errors ------------------------------------------------------------

def test_sampler_is_a_fresh_owned_pointer(lib, model):
    g = Grammar.from_schema(SCHEMAS["action"][0])
    chain = SamplerChain(lib).add(g.sampler(lib, model.vocab)).add(g.sampler(lib, model.vocab))
    assert chain.names() == ["grammar", "grammar"]
    chain.close()


def test_grammar_is_immutable_and_keeps_a_copy_of_the_schema():
    schema = {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]}
    g = Grammar.from_schema(schema)
    schema["required"] = []
    assert g.schema["required"] == ["a"]
    g.schema["required"].append("zzz")
    assert g.schema["required"] == ["a"]
    with pytest.raises(AttributeError):
        g.gbnf = "root ::= \"x\""
    assert g.kind == "schema" and g.returns_value and not g.is_lazy and g.root == "root"
    assert Grammar.from_gbnf('root ::= "x"').returns_value is False


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(GrammarError, match=r"line 2, column 15 \(rule 'item'\).*'colour'"):
        Grammar.from_gbnf('root ::= item+\nitem ::= "- " colour "\\n"')
    with pytest.raises(GrammarError, match="allOf"):
        Grammar.from_schema({"allOf": [{}]})
    with pytest.raises(GrammarError, match="keys must be strings"):
        Grammar.from_schema({"type": "object", "properties": {1: {}}})
    with pytest.raises(GrammarError, match="non-empty list"):
        Grammar.choice([])
    with pytest.raises(GrammarError, match="non-empty strings"):
        Grammar.choice(["a", ""])
    with pytest.raises(GrammarError, match="tool"):
        Grammar.tool_call([{"parameters": {}}])


def test_llama_cpp_parser_confirms_with_the_given_model(lib, model):
    # token texts depend on the model: checked when a model is given, or when the sampler is made
    g = Grammar.from_gbnf("root ::= <notatoken> \"x\"")
    with pytest.raises(GrammarError, match="llama.cpp rejected the grammar"):
        Grammar.from_gbnf("root ::= <notatoken> \"x\"", model=model)
    with pytest.raises(GrammarError, match="llama.cpp rejected the grammar"):
        g.sampler(lib, model.vocab)
    Grammar.from_gbnf('root ::= <|im_start|> "x"', model=model)
    with pytest.raises(GrammarError, match="token id 99999"):
        Grammar.from_gbnf("root ::= <[99999]>").sampler(lib, model.vocab)


def test_a_grammar_the_model_cannot_use_fails_only_that_request(worker):
    bad = Grammar.from_gbnf("root ::= <notatoken> \"x\"")
    r = worker.wait(worker.submit("m", prompt="hi", grammar=bad, max_tokens=4), WAIT)
    assert r["finish_reason"] == "error" and "llama.cpp rejected the grammar" in r["error"]
    r = worker.wait(worker.submit("m", prompt="hi", grammar=Grammar.choice(["ok"]), max_tokens=4), WAIT)
    assert r["text"] == "ok" and r["value"] == "ok"


def test_parse_result_edge_cases():
    g = Grammar.from_schema({"type": "array", "items": {"type": "integer"}, "maxItems": 2})
    assert g.parse_result("[1, 2]") == ([1, 2], None)
    value, err = g.parse_result("[1, 2, 3]")
    assert value == [1, 2, 3] and "more than maxItems 2" in err
    value, err = g.parse_result("[1,")
    assert value is None and "not valid JSON" in err
    c = Grammar.choice(["yes", "no"])
    assert c.parse_result("no") == ("no", None)
    assert c.parse_result("maybe")[0] is None
    lazy = Grammar.lazy(Grammar.from_schema({"type": "object", "properties": {"a": {"type": "integer"}}}),
                        words=["CALL"])
    assert lazy.parse_result('thinking... CALL {"a": 3}') == ({"a": 3}, None)
    assert lazy.parse_result("no call here") == (None, None)


TRIGGER_PATTERNS = [r"[Aa]ct(ion)?:", r"CALL\(", r"x{2,5}y", r"(ab|cd)+!", r"\d{3}-\d{2}", r"[\]\-\\]z", r"a\.b\*c",
                    r"<tool_call>", r"\x41\u0042", r"[ -~]{3,}END", r"q(?:r|s)?t", r"\s+GO\w"]


@pytest.mark.parametrize("source", TRIGGER_PATTERNS)
def test_trigger_pattern_grammar_accepts_every_match(lib, model, source):
    """llama.cpp replays the matched text into the grammar (and aborts if it is refused)."""
    import random

    from host.engine.pattern import Pattern

    g = Grammar.lazy(Grammar.choice(["x"]), patterns=[source])
    SamplerChain(lib).add(g.sampler(lib, model.vocab)).close()  # std::regex compiles the ECMAScript form
    trigger = re.compile(gbnf_regex(g.gbnf, root="lazy-trigger"))
    py = re.compile(Pattern(source).python())
    rnd = random.Random(source)
    alphabet = list("AaCLct()ionx:yb!d0123456789-]\\z.*<>_l GOqrs\tEND")
    hits = 0
    for _ in range(3000):
        s = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 8)))
        if py.fullmatch(s):
            hits += 1
            assert trigger.fullmatch(s), (source, s)
    for s in ("Act:", "action:", "CALL(", "xxy", "abcd!", "555-12", "]z", "a.b*c", "<tool_call>", "AB", "   END",
              "qt", " \tGOx"):
        if py.fullmatch(s):
            hits += 1
            assert trigger.fullmatch(s), (source, s)
    assert hits
