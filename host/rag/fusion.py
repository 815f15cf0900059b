"""Query-side helpers: safe FTS5 queries, Reciprocal Rank Fusion, dense top-k.

User text never reaches FTS5 query syntax as syntax.  :func:`fts_query`
keeps only the word characters FTS5's ``unicode61`` tokenizer would index
anyway and wraps each term in double quotes (a quoted FTS5 string is always
a plain phrase), joined with ``OR`` so BM25 ranks by how many and how rare
the matching terms are.  Quotes, ``AND``/``OR``/``NOT``/``NEAR``, ``*``,
``^``, ``:``, ``-``, ``+`` and parentheses in a query are therefore just
text; the result is still passed to SQLite as a bound parameter.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

import numpy as np

RRF_K = 60
MAX_QUERY_TERMS = 64  # bounds the work one query can cause (the search's own bound; extra terms are ignored)

# What unicode61 treats as token characters: letters, digits (and marks inside words).
_TERM = re.compile(r"[^\W_]+(?:[\u0300-\u036f]+[^\W_]*)*")


def query_terms(text: str) -> list[str]:
    """The distinct search terms of ``text``, in order, lower-cased, at most MAX_QUERY_TERMS."""
    seen: dict[str, None] = {}
    for m in _TERM.finditer(text):
        term = m.group(0).lower()
        if term not in seen:
            seen[term] = None
            if len(seen) == MAX_QUERY_TERMS:
                break
    return list(seen)


def fts_query(text: str) -> str | None:
    """A safe FTS5 MATCH expression for free text, or None when it has no terms.

    >>> fts_query('dragon AND "ice" NEAR(fire*) col:x')
    '"dragon" OR "and" OR "ice" OR "near" OR "fire" OR "col" OR "x"'
    """
    terms = query_terms(text)
    if not terms:
        return None
    # the terms hold no quote character, but doubling any keeps this safe if _TERM ever changes
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence], weights: Mapping[str, float] | None = None,
                           k: int = RRF_K) -> list[tuple[object, float]]:
    """Fuse ranked lists of ids: score(id) = sum over lists of weight / (k + rank), rank from 1.

    Returns ``[(id, score), ...]`` best first; ties keep the order in which
    the ids were first seen (the first list wins), so results are stable.
    """
    if k <= 0:
        raise ValueError(f"the RRF constant k must be positive, got {k}")
    scores: dict[object, float] = {}
    for name, ranked in rankings.items():
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        if w == 0:
            continue
        for rank, item in enumerate(ranked, start=1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def dense_top_k(matrix: np.ndarray, query: np.ndarray, k: int,
                allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
    """Exact cosine top-k over L2-normalized rows: ``[(row, score), ...]`` best first.

    ``allowed`` is an optional boolean mask over rows (metadata filters).
    """
    if matrix.shape[0] == 0 or k <= 0:
        return []
    # einsum, not `matrix @ query`: the BLAS matrix-vector product wakes a thread pool that spins
    # against llama.cpp's threads on the same cores (measured: ~10x slower on 2 busy cores)
    scores = np.einsum("ij,j->i", matrix, query)
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    k = min(k, scores.shape[0])
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(r), float(scores[r])) for r in top if np.isfinite(scores[r])]


def normalize_weights(weights: Mapping[str, float] | None, names: Iterable[str]) -> dict[str, float]:
    """Validate fusion weights: known names, finite, non-negative, not all zero (ValueError otherwise)."""
    names = list(names)
    out = {n: 1.0 for n in names}
    if weights is None:
        return out
    if not isinstance(weights, Mapping):
        raise ValueError(f"weights must be a table like {{bm25=1, dense=1}}, not {type(weights).__name__}")
    for name, value in weights.items():
        if name not in out:
            raise ValueError(f"unknown weight {name!r}; expected one of {names}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"weight {name!r} must be a non-negative number, got {value!r}")
        out[name] = float(value)
    if not any(out.values()):
        raise ValueError("at least one fusion weight must be positive")
    return out
