"""host.rag.fusion: safe FTS5 queries (against real SQLite FTS5), RRF, dense top-k, weights."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from host.rag.fusion import (MAX_QUERY_TERMS, dense_top_k, fts_query, normalize_weights, query_terms,
                             reciprocal_rank_fusion)

NASTY = [
    'dragon AND fire', 'NOT dragon', 'a OR', 'NEAR(dragon fire, 2)', '"unbalanced', 'fire*', '^start',
    'text:dragon', '(dragon', 'dragon)', "'; DROP TABLE docs; --", '" OR 1=1 --', '-dragon', '+fire',
    '{text}: dragon', 'drag*on', 'AND', 'OR OR OR', '""', '\\"', 'dragon\x00fire', 'ä ö ü ß', 'dragon;fire',
]


@pytest.fixture
def fts():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE docs USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')")
    rows = ["the red dragon breathes fire", "a quiet fire in the hearth", "start of the NEAR river and NOT far",
            "Straße über Öl", "text about drag on things"]
    db.executemany("INSERT INTO docs(rowid, text) VALUES (?, ?)", list(enumerate(rows, 1)))
    yield db
    db.close()


EXPECTED = {  # rowids each query must match (terms OR-ed, porter stemming, diacritics folded)
    "dragon AND fire": {1, 2, 3}, "NOT dragon": {1, 3}, "text:dragon": {1, 5}, "fire*": {1, 2},
    "'; DROP TABLE docs; --": set(), '" OR 1=1 --': set(), "drag*on": {5}, "(dragon": {1}, "AND": {3},
}


@pytest.mark.parametrize("query", NASTY)
def test_operators_quotes_and_sql_in_queries_are_plain_text(fts, query):
    match = fts_query(query)
    if match is None:
        assert query_terms(query) == []
        return
    rows = {r for (r,) in fts.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (match,))}
    if query in EXPECTED:
        assert rows == EXPECTED[query]
    assert fts.execute("SELECT count(*) FROM docs").fetchone()[0] == 5  # nothing was dropped or changed


def test_operator_words_match_as_words(fts):
    rows = fts.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (fts_query("NEAR NOT"),)).fetchall()
    assert rows == [(3,)]
    rows = fts.execute("SELECT rowid FROM docs WHERE docs MATCH ?", (fts_query("fire*"),)).fetchall()
    assert sorted(rows) == [(1,), (2,)]  # '*' is not a prefix operator here


def test_fts_query_shape():
    assert fts_query('Dragon "fire" dragon') == '"dragon" OR "fire"'
    assert fts_query("  ...  ") is None
    assert len(query_terms(" ".join(f"t{i}" for i in range(500)))) == MAX_QUERY_TERMS


def test_rrf_scores_and_order():
    fused = reciprocal_rank_fusion({"bm25": ["a", "b", "c"], "dense": ["b", "d"]}, k=60)
    scores = dict(fused)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["d"] == pytest.approx(1 / 62)
    assert [x for x, _ in fused] == ["b", "a", "d", "c"]
    weighted = dict(reciprocal_rank_fusion({"bm25": ["a"], "dense": ["b"]}, {"bm25": 2.0, "dense": 1.0}))
    assert weighted["a"] == pytest.approx(2 / 61) and weighted["b"] == pytest.approx(1 / 61)
    assert reciprocal_rank_fusion({"bm25": ["a"], "dense": ["b"]}, {"bm25": 0, "dense": 1}) == [("b", 1 / 61)]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion({"x": ["a"]}, k=0)


def test_rrf_ties_keep_first_seen_order():
    fused = reciprocal_rank_fusion({"bm25": ["a", "b"], "dense": ["b", "a"]})
    assert [x for x, _ in fused] == ["a", "b"]


def test_dense_top_k_is_exact_and_respects_mask():
    rng = np.random.default_rng(3)
    m = rng.standard_normal((200, 16)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    q = m[17] + 0.01
    q /= np.linalg.norm(q)
    top = dense_top_k(m, q, 5)
    brute = np.argsort(-(m @ q))[:5]
    assert [r for r, _ in top] == list(brute) and top[0][0] == 17
    mask = np.ones(200, bool)
    mask[17] = False
    assert 17 not in [r for r, _ in dense_top_k(m, q, 5, mask)]
    assert dense_top_k(m, q, 500, np.zeros(200, bool)) == []
    assert dense_top_k(m[:0], q, 5) == []


@pytest.mark.parametrize("bad", [{"bm25": -1}, {"bm25": float("nan")}, {"other": 1}, {"bm25": "1"},
                                 {"bm25": 0, "dense": 0}, [1, 2], {"dense": True}])
def test_bad_weights_raise(bad):
    with pytest.raises(ValueError):
        normalize_weights(bad, ("bm25", "dense"))


def test_weights_default_to_one():
    assert normalize_weights(None, ("bm25", "dense")) == {"bm25": 1.0, "dense": 1.0}
    assert normalize_weights({"dense": 2}, ("bm25", "dense")) == {"bm25": 1.0, "dense": 2.0}


def test_docstring_examples_run():
    import doctest

    import host.rag.fusion

    result = doctest.testmod(host.rag.fusion)
    assert result.attempted >= 1 and result.failed == 0
