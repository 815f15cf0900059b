"""host.rag.chunking: recursive token-sized chunks with overlap and exact offsets."""

from __future__ import annotations

import pytest

from host.rag.chunking import chunk_text


def words(s: str) -> int:
    return len(s.split())


STORY = (
    "The harbour wakes before dawn. Fishermen mend their nets and argue about the weather.\n\n"
    "Old Mara sells smoked eel from a cart. She knows every captain by name! Does anyone pay on time? "
    "Rarely, she says, and laughs.\n"
    "The lighthouse keeper never comes down.\n\n"
    + " ".join(f"w{i}" for i in range(70)) + "\n\n"
    "The end."
)


def check_invariants(text, chunks, count, max_tokens):
    assert chunks, "non-empty text gives at least one chunk"
    for c in chunks:
        assert c.text == text[c.start:c.end]
        assert c.text == c.text.strip() and c.text
        assert c.n_tokens == count(c.text) <= max_tokens
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    # together the chunks cover every non-space character of the text
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


@pytest.mark.parametrize("max_tokens, overlap", [(8, 0), (10, 3), (16, 5), (40, 8), (500, 32)])
def test_chunks_fit_cover_and_point_into_the_text(max_tokens, overlap):
    chunks = chunk_text(STORY, words, max_tokens=max_tokens, overlap_tokens=overlap)
    check_invariants(STORY, chunks, words, max_tokens)
    if max_tokens == 500:
        assert len(chunks) == 1


def test_chunks_end_at_paragraphs_and_sentences_where_they_can():
    chunks = [c.text for c in chunk_text(STORY, words, max_tokens=40, overlap_tokens=8)]
    paragraphs = [p.strip() for p in STORY.split("\n\n")]
    # two short paragraphs do not fit together: each is its own chunk, not cut, no overlap across them
    assert chunks[:2] == paragraphs[:2]
    # the 70-word run has no sentence boundary: it is cut between words, with overlap
    assert chunks[2].split() == [f"w{i}" for i in range(40)]
    assert chunks[3].split()[0] in {f"w{i}" for i in range(32, 40)}
    assert chunks[-1].endswith("w69\n\nThe end.")
    small = [c.text for c in chunk_text(STORY, words, max_tokens=12, overlap_tokens=0)]
    assert small[:3] == ["The harbour wakes before dawn.", "Fishermen mend their nets and argue about the weather.",
                         "Old Mara sells smoked eel from a cart."]


def test_overlap_repeats_the_tail_of_the_previous_chunk():
    chunks = chunk_text(STORY, words, max_tokens=16, overlap_tokens=5)
    overlapping = [(a, b) for a, b in zip(chunks, chunks[1:]) if b.start < a.end]
    assert overlapping, "consecutive chunks share text"
    for a, b in overlapping:
        shared = STORY[b.start:a.end]
        assert words(shared) <= 5
        assert a.text.endswith(shared.strip())


def test_no_overlap_when_zero():
    chunks = chunk_text(STORY, words, max_tokens=12, overlap_tokens=0)
    assert all(b.start >= a.end for a, b in zip(chunks, chunks[1:]))


def test_text_without_spaces_is_cut_by_characters():
    count = len  # one token per character, like CJK in a WordPiece vocabulary
    text = "天地玄黄宇宙洪荒日月盈昃辰宿列张" * 5
    chunks = chunk_text(text, count, max_tokens=12, overlap_tokens=2)
    check_invariants(text, chunks, count, 12)


def test_cjk_sentences_split_on_full_stops():
    count = len
    text = "我们出发了。天气很好！你来吗？" * 3
    chunks = chunk_text(text, count, max_tokens=10, overlap_tokens=0)
    check_invariants(text, chunks, count, 10)
    assert all(c.text.endswith(("。", "！", "？")) for c in chunks)


def test_whitespace_only_gives_no_chunks_and_bad_sizes_raise():
    assert chunk_text(" \n\t ", words) == []
    with pytest.raises(ValueError):
        chunk_text("x", words, max_tokens=4)
    with pytest.raises(ValueError):
        chunk_text("x", words, max_tokens=20, overlap_tokens=11)


def test_real_tokenizer_counts_hold(lib):
    """With the embedding model's own tokenizer, where piece counts need not add up exactly."""
    from host.rag.embed import Embedder
    from host.setup.embed_model import ensure_embed_model

    text = ("Hyphen-ated words, URLs like https://example.org/a/b?c=d&e=f, numbers 3.14159 and "
            "don't-split contractions; ") * 20 + "\n\n" + "supercalifragilistic" * 30
    with Embedder(ensure_embed_model(), lib=lib, n_batch=128, n_seq_max=2) as emb:
        chunks = chunk_text(text, emb.count_tokens, max_tokens=40, overlap_tokens=8)
        check_invariants(text, chunks, emb.count_tokens, 40)
        assert len(chunks) > 5


def test_random_texts_keep_the_invariants():
    """Many random mixes of paragraphs, lines, sentences, long words and odd spacing."""
    import random

    rng = random.Random(5)
    pieces = ["word", "a", "longwordwithoutanybreaks" * 3, ".", "!", "?", " ", "  ", "\n", "\n\n", "\n \n",
              "\t", "é", "城市", "。", "Mr.", "e.g.", '"quoted."', "(aside)"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) + rng.choice(["", " ", " ", "\n"]) for _ in range(rng.randint(0, 120)))
        max_tokens = rng.randint(8, 40)
        overlap = rng.randint(0, max_tokens // 2)
        count = rng.choice([words, len])
        chunks = chunk_text(text, count, max_tokens=max_tokens, overlap_tokens=overlap)
        if not text.strip():
            assert chunks == []
            continue
        check_invariants(text, chunks, count, max_tokens)
