"""The GBNF checker: useful messages for bad grammars, agreement with llama.cpp's own parser."""

from __future__ import annotations

import random
import re

import pytest

from host.engine.gbnf import check_gbnf, gbnf_literal, gbnf_regex, join_sequence
from host.errors import GrammarError
from host.setup import llama_build

# (grammar, words the message must contain, line, column)
INVALID = [
    ('root ::= "a" foo', ["'foo'", "never defined"], 1, 14),
    ('root ::= ("a" | "b"', ["unclosed '('"], 1, 10),
    ('root ::= "a")', ["unbalanced ')'"], 1, 13),
    ('root ::= "a"\nitem ::= "\\q"', ["unknown escape", "\\q", "'item'"], 2, 11),
    ('rot ::= "a"', ["no 'root' rule"], 1, 1),
    ('root ::= "abc', ["unterminated string"], 1, 10),
    ('root ::= [a-', ["unterminated character class"], 1, 10),
    ('root ::= [z-a]', ["out of order"], 1, 12),
    ('root ::= root "a"', ["left recursion", "root -> root"], 1, 10),
    ('root ::= x\nx ::= "a"? root', ["left recursion", "root -> x -> root"], 2, 12),
    ('root ::= ("a"?)*', ["empty string"], 1, 16),
    ('root ::= "a"{5,2}', ["maximum below its minimum"], 1, 13),
    ('root ::= "a"{0,5000}', ["above 2000"], 1, 13),
    ('root ::= *', ["needs something before it"], 1, 10),
    ('root ::= "a" x\nx ::= "b" x', ["'x' can never finish"], 2, 1),
    ('root ::= "a"\nroot ::= "b"', ["defined twice", "line 1"], 2, 1),
    ('root ::= "\\x00"', ["U+0000"], 1, 11),
    ('root ::= []', ["empty character class"], 1, 10),
    ('root ::= "a" ::= "b"', ["unexpected ':'"], 1, 14),
    ("", ["empty"], 1, 1),
    ('root ::= "\\uD800"', ["not a Unicode scalar value"], 1, 11),
    ('root ::= "\\x4"', ["2 hex digits"], 1, 11),
    ('root ::= "a" !x', ["expecting '<'"], 1, 14),
    ('root ::= <[12]', ["<[123]>"], 1, 10),
    ('root ::= "a"{,3}', ["expecting a number"], 1, 14),
    ('root ::= "a"{2', ["expecting ',' or '}'"], 1, 15),
    ('root ::= "x"\n  ::= "y"', ["expecting a rule name"], 2, 3),
    ('root ::= ("a" "b" "c" "d" x y z){0,1000}\nx ::= "x"\ny ::= "y"\nz ::= "z"', ["4000 rules"], 1, 33),
]


@pytest.mark.parametrize("text,words,line,column", INVALID)
def test_invalid_grammar_names_the_problem_and_position(text, words, line, column):
    with pytest.raises(GrammarError) as info:
        check_gbnf(text)
    msg = str(info.value)
    for w in words:
        assert w in msg, msg
    assert f"line {line}, column {column}" in msg, msg
    assert (info.value.line, info.value.column) == (line, column)


def test_error_names_the_rule():
    with pytest.raises(GrammarError) as info:
        check_gbnf('root ::= greeting\ngreeting ::= "hi" | "yo" ) ')
    assert info.value.rule == "greeting"


def test_custom_root_and_bad_root_names():
    check_gbnf('start ::= "x"', root="start")
    with pytest.raises(GrammarError, match="no 'root' rule"):
        check_gbnf('start ::= "x"')
    with pytest.raises(GrammarError, match="root rule name"):
        check_gbnf('root ::= "x"', root="bad name")
    with pytest.raises(GrammarError, match="must be a string"):
        check_gbnf(b'root ::= "x"')


def test_nul_in_text_is_refused():
    # the C string would end at the NUL: llama.cpp would see a different grammar
    with pytest.raises(GrammarError, match="NUL"):
        check_gbnf('root ::= "a"\x00 junk')


def test_llama_cpp_example_grammars_pass():
    src = llama_build.source_dir() / "grammars"
    files = sorted(src.glob("*.gbnf"))
    assert len(files) >= 8
    for f in files:
        info = check_gbnf(f.read_text())
        assert "root" in info.rules, f.name


def test_info_lists_rules_and_tokens():
    info = check_gbnf('root ::= <[7]> think "x"\nthink ::= !<[9]>* <think>')
    assert info.rules == ("root", "think")
    assert info.token_ids == {7, 9}
    assert info.token_texts == {"<think>"}


def test_comments_newlines_and_crlf_are_accepted():
    check_gbnf('# top\r\nroot ::= "a" | # c\r\n  "b"\r\n\r\nx ::= (\n "y"\n | "z"\n)\n')
    # as in llama.cpp, a '|' that starts a line does not continue the rule above
    with pytest.raises(GrammarError, match="line 2"):
        check_gbnf('root ::= "a"\n  | "b"')


@pytest.mark.parametrize("text", ["plain", 'quote " and \\ back', "tab\tnl\ncr\r", "ctl\x01\x7f", "é ü 漢字 🎲",
                                  "[brackets] - ^caret", "\u2028\u00a0"])
def test_literal_round_trip(text):
    lit = gbnf_literal(text)
    check_gbnf(f"root ::= {lit}")
    assert re.fullmatch(gbnf_regex(f"root ::= {lit}"), text)


def test_join_sequence_merges_adjacent_literals_only():
    assert join_sequence(['"a"', '"b"', "[c]", '"d"', "", '"e"*']) == '"ab" [c] "d" "e"*'


def test_gbnf_regex_follows_the_grammar():
    rx = gbnf_regex('root ::= "1. " move (" " move)? "\\n"\nmove ::= [a-h] [1-8] | "O-O"')
    assert re.fullmatch(rx, "1. e4 e5\n")
    assert re.fullmatch(rx, "1. O-O\n")
    assert not re.fullmatch(rx, "1. i9\n")
    with pytest.raises(GrammarError, match="recursive"):
        gbnf_regex('root ::= "(" root ")" | "x"')


# --- agreement with llama.cpp ----------------------------------------------------------

_ALPHABET = list('"[]()|*+?{}.,:=-^\\#\n abcxyz0129') + ["::=", "root", "\\x", "\\u", ' x ::= "q"\n']


def _mutants(seed_texts, n, rnd):
    for _ in range(n):
        g = rnd.choice(seed_texts)
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(g) + 1)
            g = g[:i] + g[i + rnd.randint(1, 3):] if rnd.random() < 0.4 else g[:i] + rnd.choice(_ALPHABET) + g[i:]
        yield g


def test_whatever_we_accept_llama_cpp_accepts(lib, model):
    """Fuzzed grammars: the checker never lets through one llama.cpp would refuse."""
    from host.engine.grammar import _llama_init

    seeds = [f.read_text() for f in sorted((llama_build.source_dir() / "grammars").glob("*.gbnf"))]
    seeds += ['root ::= "a" | "b"', 'root ::= ( "x" | y ){2,4}\ny ::= [0-9]+\n']
    rnd = random.Random(1234)
    accepted = 0
    for g in _mutants(seeds, 1500, rnd):
        try:
            check_gbnf(g)
        except GrammarError:
            continue
        accepted += 1
        ptr = _llama_init(lib, model.vocab, g, "root")  # raises GrammarError if llama.cpp refuses
        lib.C.llama_sampler_free(ptr)
    assert accepted > 100  # the fuzzing reached the interesting side


# --- hostile input: every bad grammar gets a message naming the problem ----------

def test_deep_nesting_is_named_not_a_recursion_error():
    with pytest.raises(GrammarError, match="parentheses nested more than 64 deep"):
        check_gbnf("root ::= " + "(" * 200 + '"a"' + ")" * 200)
    check_gbnf("root ::= " + "(" * 60 + '"a"' + ")" * 60)   # deep but allowed


def test_chains_of_thousands_of_rules_check_in_linear_time():
    """A 3,000-rule chain used to hit RecursionError (left) or take ~20 s (right, a quadratic fixpoint)."""
    import time
    right = "root ::= r0\n" + "".join(f'r{i} ::= "a" r{i + 1}\n' for i in range(3000)) + 'r3000 ::= "z"\n'
    left = "root ::= r0\n" + "".join(f"r{i} ::= r{i + 1}\n" for i in range(3000)) + 'r3000 ::= "z"\n'
    t0 = time.perf_counter()
    assert len(check_gbnf(right).rules) == 3002
    assert len(check_gbnf(left).rules) == 3002
    with pytest.raises(GrammarError, match=r"left recursion: r0 -> r1 -> r2 -> r3 -> \.\.\. 2995 more"):
        check_gbnf(left.replace('r3000 ::= "z"', "r3000 ::= r0"))
    with pytest.raises(GrammarError, match="can never finish"):
        check_gbnf(right.replace('r3000 ::= "z"', 'r3000 ::= "a" r0'))
    assert time.perf_counter() - t0 < 30   # "did not hang"; was minutes


def test_stacked_repetitions_and_alternative_caps():
    with pytest.raises(GrammarError, match="repetition operators in a row"):
        check_gbnf('root ::= "a"' + "*" * 1000)
    alts = " | ".join(f'"o{i}"' for i in range(50))
    with pytest.raises(GrammarError, match="more than 10 alternatives in one rule"):
        check_gbnf(f"root ::= {alts}", max_alternatives=10)
    with pytest.raises(GrammarError, match="more than 10 alternatives in one group"):
        check_gbnf(f'root ::= "x" ( {alts} )', max_alternatives=10)
    with pytest.raises(GrammarError, match="more than 60 alternatives in the whole grammar"):
        check_gbnf(f"root ::= a | b\na ::= {alts}\nb ::= {alts}", max_total_alternatives=60)
    check_gbnf(f"root ::= {alts}", max_alternatives=50, max_total_alternatives=50)


def test_a_deadline_stops_the_check_with_a_budget_error():
    import time

    from host.errors import BudgetExceeded
    text = "root ::= " + " | ".join(f'"o{i}"' for i in range(20000))
    t0 = time.perf_counter()
    with pytest.raises(BudgetExceeded, match="too large to check within the time left"):
        check_gbnf(text, deadline=time.monotonic() + 0.002)
    assert time.perf_counter() - t0 < 1.0
