"""Recursive, token-sized chunking with overlap; every chunk keeps its exact offsets.

A document is cut at the coarsest boundary that makes the pieces fit:
paragraphs (blank lines), then lines, then sentences, then words, and as a
last resort characters (a long URL, or CJK text without spaces).  The
pieces are then packed greedily into chunks of at most ``max_tokens`` tokens
(counted with the embedding model's tokenizer), and each chunk after the
first starts with the tail of the previous one, up to ``overlap_tokens``
tokens, snapped to a sentence or at least a word boundary.

Every :class:`Chunk` satisfies ``chunk.text == text[chunk.start:chunk.end]``,
so a hit can always point back into its source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# Each level splits a span into contiguous pieces; the separator stays with the piece before it.
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_LINE = re.compile(r"\n\s*")
_SENTENCE = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|(?<=[\u3002\uff01\uff1f])\s*")
_WORD = re.compile(r"\s+")
_LEVELS = (_PARAGRAPH, _LINE, _SENTENCE, _WORD)
_SENTENCE_END = re.compile(r"(?:[.!?\u2026][\"'\u201d\u2019)\]]*|[\u3002\uff01\uff1f])\s*$")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: ``text == document[start:end]``, ``n_tokens`` content tokens."""

    start: int
    end: int
    text: str
    n_tokens: int


def _pieces(text: str, start: int, end: int, pattern: re.Pattern) -> list[tuple[int, int]]:
    """``text[start:end]`` cut after each separator match (separators kept on the left)."""
    out, cut = [], start
    for m in pattern.finditer(text, start, end):
        if m.end() > cut and m.end() < end:
            out.append((cut, m.end()))
            cut = m.end()
    out.append((cut, end))
    return out


class _Splitter:
    """Holds the text and the token counter while splitting into fitting atoms."""

    def __init__(self, text: str, count: Callable[[str], int], max_tokens: int):
        self.text = text
        self.count = count
        self.max = max_tokens
        self.atoms: list[tuple[int, int, int]] = []  # (start, end, n_tokens), in text order

    def split(self, start: int, end: int, level: int, n: int | None = None):
        """A generator: appends the atoms of ``text[start:end]``, yielding after each token count."""
        if n is None:
            n = self.count(self.text[start:end])
            yield
        if n <= self.max:
            self.atoms.append((start, end, n))
            return
        if level >= len(_LEVELS):
            yield from self._split_chars(start, end)
            return
        pieces = _pieces(self.text, start, end, _LEVELS[level])
        if len(pieces) == 1:
            yield from self.split(start, end, level + 1, n)
            return
        for a, b in pieces:
            yield from self.split(a, b, level + 1)

    def _split_chars(self, start: int, end: int):
        """No boundary left: the longest prefixes that fit, found by bisection."""
        while start < end:
            lo, hi = start + 1, end
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self.count(self.text[start:mid]) <= self.max:
                    lo = mid
                else:
                    hi = mid - 1
                yield
            self.atoms.append((start, lo, self.count(self.text[start:lo])))
            start = lo


def _starts_sentence(text: str, pos: int) -> bool:
    """Does a sentence (or line, or paragraph) start at ``pos``?"""
    before = text[max(0, pos - 8):pos]
    return pos == 0 or "\n" in before[len(before.rstrip()):] or bool(_SENTENCE_END.search(before))


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def chunk_text(text: str, count_tokens: Callable[[str], int], *, max_tokens: int = 200,
               overlap_tokens: int = 32) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens (see the module docstring).

    ``count_tokens(s)`` returns the number of content tokens of ``s`` (the
    embedding model's tokenizer, special tokens excluded).  Whitespace-only
    text gives no chunks.  Every chunk is re-counted after packing, so none
    exceeds ``max_tokens`` even where token counts do not add up exactly.
    """
    steps = chunk_steps(text, count_tokens, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def chunk_steps(text: str, count_tokens: Callable[[str], int], *, max_tokens: int = 200,
                overlap_tokens: int = 32):
    """:func:`chunk_text` as a generator: it yields (None) after each token count and returns the chunks.

    The caller may do other work between two steps (the inference worker
    serves generations while a long document is split); the chunks are the
    same as :func:`chunk_text`'s.
    """
    if max_tokens < 8:
        raise ValueError(f"max_tokens must be at least 8, got {max_tokens}")
    if not 0 <= overlap_tokens <= max_tokens // 2:
        raise ValueError(f"overlap_tokens must be between 0 and max_tokens/2, got {overlap_tokens}")
    start, end = _trim(text, 0, len(text))
    if start == end:
        return []
    splitter = _Splitter(text, count_tokens, max_tokens)
    yield from splitter.split(start, end, 0)
    atoms = splitter.atoms
    chunks: list[Chunk] = []
    i = 0
    overlap_start = None
    while i < len(atoms):
        c_start = atoms[i][0] if overlap_start is None else overlap_start
        used = 0 if overlap_start is None else count_tokens(text[overlap_start:atoms[i][0]])
        j = i
        while j < len(atoms) and (j == i or used + atoms[j][2] <= max_tokens):
            used += atoms[j][2]
            j += 1
        if j < len(atoms):
            j = _best_cut(text, atoms, i, j, used, max_tokens)
        # counts of pieces need not add up exactly (a word cut mid-way): re-count, back off if over
        while True:
            a, b = _trim(text, c_start, atoms[j - 1][1])
            n = count_tokens(text[a:b])
            if n <= max_tokens or j - 1 == i:
                break
            j -= 1
        if n > max_tokens:  # the overlap plus one atom does not fit: drop the overlap
            a, b = _trim(text, atoms[i][0], atoms[i][1])
            n = count_tokens(text[a:b])
        if b > a:
            chunks.append(Chunk(a, b, text[a:b], n))
        yield
        i = j
        overlap_start = None
        if i < len(atoms) and _boundary_strength(text, atoms[i][0]) > 0:  # no overlap across paragraphs
            overlap_start = _overlap_start(text, atoms, i, a, count_tokens, overlap_tokens)
    return chunks


def _boundary_strength(text: str, pos: int) -> int:
    """How strong the boundary before ``pos`` is: 0 paragraph, 1 line, 2 sentence, 3 word or less."""
    j = pos
    while j > 0 and text[j - 1].isspace():
        j -= 1
    gap = text[j:pos]
    if gap.count("\n") >= 2:
        return 0
    if "\n" in gap:
        return 1
    return 2 if _SENTENCE_END.search(text[max(0, j - 8):pos]) else 3


def _best_cut(text: str, atoms, i: int, j: int, used: int, max_tokens: int) -> int:
    """A full chunk of atoms[i:j]: end it at the strongest boundary that keeps it at least half full.

    So a chunk ends with its paragraph (or sentence) instead of running into
    the first words of the next one; ties go to the later cut.
    """
    best, best_key = j, (_boundary_strength(text, atoms[j][0]), 0)
    for m in range(j - 1, i, -1):
        used -= atoms[m][2]  # tokens of atoms[i:m]
        if used < max_tokens // 2:
            break
        key = (_boundary_strength(text, atoms[m][0]), j - m)
        if key < best_key:
            best, best_key = m, key
    return best


def _overlap_start(text: str, atoms, i: int, chunk_start: int, count, overlap_tokens: int) -> int | None:
    """Where the next chunk starts so that it repeats at most ``overlap_tokens`` of this one.

    Prefers whole sentences (atom boundaries); otherwise trailing words.
    Returns None when nothing fits (no overlap).
    """
    if overlap_tokens <= 0:
        return None
    end = atoms[i][0]
    # whole atoms first: the earliest atom boundary whose tail still fits
    best, used = None, 0
    for k in range(i - 1, -1, -1):
        if atoms[k][0] <= chunk_start:  # repeating the whole chunk is not an overlap
            break
        used += atoms[k][2]
        if used > overlap_tokens:
            break
        if _starts_sentence(text, atoms[k][0]):
            best = atoms[k][0]
    if best is not None and best < end:
        return best
    # else trailing words of the last atom
    words = _pieces(text, max(chunk_start, atoms[i - 1][0]), end, _WORD)
    best, used = None, 0
    for a, b in reversed(words):
        used += count(text[a:b])
        if used > overlap_tokens:
            break
        best = a
    if best is None or best >= end or best <= chunk_start:
        return None
    return best
