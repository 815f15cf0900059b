"""host.rag.store.Store against real SQLite, the real libllama and the real embedding model.

Ingest (add, update, delete, incremental re-embedding), retrieval (bm25,
dense, hybrid, filters, provenance), bad inputs, foreign files, migrations,
a change of embedding model, and crash consistency (a killed subprocess).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from host.errors import StoreError
from host.rag import Store, format_context
from host.rag.embed import Embedder
from host.limits import DEFAULT_LIMITS
from host.rag.store import SCHEMA_VERSION

REPO = Path(__file__).resolve().parent.parent

LORE = {
    "guard": "Brann, the city guard, watches the north gate every night. He distrusts strangers and carries a halberd.",
    "smith": "Old Hilda is the blacksmith of Eastwatch. She forges swords and repairs armour for a fair price.",
    "dragon": "A red dragon named Vyrax sleeps under the mountain. Villagers say its hoard of gold is cursed.",
    "inn": "The Prancing Goat inn serves ale, stew and rumours. The innkeeper is called Marta.",
    "ferry": "A ferryman takes travellers across the river for two copper coins, but never after dark.",
}
KINDS = {"guard": "npc", "smith": "npc", "dragon": "lore", "inn": "place", "ferry": "npc"}


@pytest.fixture(scope="module")
def emb(lib):
    from host.setup.embed_model import ensure_embed_model

    e = Embedder(ensure_embed_model(), lib=lib)
    yield e
    e.close()


@pytest.fixture
def store(tmp_path, emb):
    s = Store.open(tmp_path / "lore.db", emb)
    s.add_many((k, v, {"kind": KINDS[k], "level": i}) for i, (k, v) in enumerate(LORE.items()))
    yield s
    s.close()


def check_consistent(path: Path) -> sqlite3.Connection:
    """SQLite and FTS5 integrity, no orphans, one vector of the right size per chunk."""
    db = sqlite3.connect(path, isolation_level=None)  # autocommit: hold no lock after each statement
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")  # raises if out of step
    assert db.execute("SELECT count(*) FROM chunks WHERE doc NOT IN (SELECT id FROM documents)").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM documents WHERE id NOT IN (SELECT doc FROM chunks)").fetchone()[0] == 0
    dim = int(db.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()[0])
    assert db.execute("SELECT count(*) FROM chunks WHERE length(embedding) != ?", (4 * dim,)).fetchone()[0] == 0
    for doc, text in db.execute("SELECT id, text FROM documents"):
        for start, end, chunk in db.execute("SELECT char_start, char_end, text FROM chunks WHERE doc = ?", (doc,)):
            assert text[start:end] == chunk
    return db


# --- add / search / update / delete -------------------------------------------

@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
@pytest.mark.parametrize("query, want", [
    ("who watches the north gate at night", "guard"), ("where can I get my sword repaired", "smith"),
    ("cursed dragon gold", "dragon"), ("crossing the river by boat", "ferry"),
])
def test_each_mode_finds_the_right_document(store, mode, query, want):
    hits = store.search(query, k=3, mode=mode)
    assert hits[0]["id"] == want, [h["id"] for h in hits]


def test_hits_carry_text_score_meta_and_provenance(store):
    hits = store.search("blacksmith swords", k=5, mode="hybrid")
    assert len(hits) == 5
    top = hits[0]
    assert set(top) >= {"id", "doc_id", "chunk", "text", "score", "meta", "start", "end", "ranks"}
    assert top["id"] == top["doc_id"] == "smith" and top["meta"] == {"kind": "npc", "level": 1}
    assert LORE["smith"][top["start"]:top["end"]] == top["text"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    # hybrid scores are exactly the weighted RRF of the two rankings (k=60)
    for h in hits:
        assert h["score"] == pytest.approx(sum(1 / (60 + r) for r in h["ranks"].values() if r is not None))


def test_weights_change_the_fusion(store):
    dense = [h["id"] for h in store.search("travelling over water", k=5, mode="dense")]
    only_dense = [h["id"] for h in store.search("travelling over water", k=5, weights={"bm25": 0, "dense": 1})]
    assert only_dense == dense
    weighted = store.search("travelling over water", k=5, weights={"bm25": 3, "dense": 1})
    for h in weighted:
        assert h["score"] == pytest.approx(sum((3 if name == "bm25" else 1) / (60 + r)
                                               for name, r in h["ranks"].items() if r is not None))


def test_update_replaces_text_and_remove_deletes(store):
    assert store.search("halberd", k=1, mode="bm25")[0]["id"] == "guard"
    r = store.add("guard", "Brann retired and now breeds goats on a farm by the lake.", {"kind": "npc"})
    assert r == {"id": "guard", "status": "updated", "chunks": 1, "embedded": 1}
    assert all(h["id"] != "guard" for h in store.search("halberd", k=5, mode="bm25"))
    assert store.search("goat farm by the lake", k=1, mode="dense")[0]["id"] == "guard"
    assert store.get("guard")["text"].startswith("Brann retired")
    assert store.remove("guard") is True
    assert store.remove("guard") is False
    assert store.get("guard") is None
    assert all(h["id"] != "guard" for mode in ("bm25", "dense", "hybrid")
               for h in store.search("Brann goats farm lake", k=5, mode=mode))
    assert store.stats()["documents"] == len(LORE) - 1
    check_consistent(store.path)


def test_unchanged_text_is_not_reembedded(store):
    assert store.add("inn", LORE["inn"], {"kind": "place", "level": 3})["status"] == "unchanged"
    r = store.add("inn", LORE["inn"], {"kind": "tavern"})
    assert r["status"] == "meta" and r["embedded"] == 0
    assert [h["id"] for h in store.search("ale", mode="bm25", filters={"kind": "tavern"})] == ["inn"]


def test_only_changed_chunks_of_a_long_document_are_reembedded(store):
    paragraphs = [f"Chapter {i}. " + " ".join(f"The {w} of chapter {i} is told here at length." for w in
                                               ("tale", "song", "saga", "legend", "story", "myth")) for i in range(12)]
    first = store.add("book", "\n\n".join(paragraphs))
    assert first["chunks"] >= 3 and first["embedded"] == first["chunks"]
    paragraphs[5] = "Chapter 5 was rewritten: a storm sinks the fleet and the harbour burns."
    second = store.add("book", "\n\n".join(paragraphs))
    assert second["status"] == "updated"
    assert 1 <= second["embedded"] < second["chunks"]
    assert store.search("storm sinks the fleet", k=1, mode="dense")[0]["id"] == "book"
    check_consistent(store.path)


def test_filters_apply_in_every_mode(store):
    for mode in ("bm25", "dense", "hybrid"):
        ids = {h["id"] for h in store.search("the city and the river", k=10, mode=mode, filters={"kind": "npc"})}
        assert ids and ids <= {"guard", "smith", "ferry"}
        ids = {h["id"] for h in store.search("gold", k=10, mode=mode, filters={"kind": ["lore", "place"]})}
        assert ids and ids <= {"dragon", "inn"}
        assert store.search("gold", k=10, mode=mode, filters={"kind": "nobody"}) == []
    assert {h["id"] for h in store.search("the", k=10, mode="dense", filters={"level": 2})} == {"dragon"}
    store.add("note", "A note without any metadata about the river.")
    assert {h["id"] for h in store.search("river", k=10, mode="dense", filters={"kind": None})} == {"note"}


@pytest.mark.parametrize("filters", [{'kind") OR 1=1 --': "x"}, {"": 1}, {"kind": {"nested": 1}}, {"kind": []},
                                     {"kind": float("inf")}, ["kind"], {"k": object()}])
def test_bad_filters_raise(store, filters):
    with pytest.raises(StoreError, match="filter"):
        store.search("river", filters=filters)


# --- queries that look like syntax ----------------------------------------------

@pytest.mark.parametrize("query", [
    'NEAR(gate night)', '"unbalanced quote', "gate AND", "OR", "NOT dragon", "drag*", "^river", "text:gate",
    "'; DROP TABLE chunks; --", '" OR 1=1 --', "(((", "\\", "%_%", "gate\x00night",
])
@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_query_syntax_is_just_text(store, query, mode):
    before = store.stats()
    hits = store.search(query, k=5, mode=mode)
    assert isinstance(hits, list) and len(hits) <= 5
    assert store.stats() == before
    check_consistent(store.path)


def test_operator_words_and_quotes_are_searchable_words(store):
    store.add("sign", 'The sign says "NOT for sale" and points NEAR the mill; AND that is all.')
    assert store.search('"NOT for sale"', k=1, mode="bm25")[0]["id"] == "sign"
    assert store.search("NEAR", k=1, mode="bm25")[0]["id"] == "sign"
    assert store.search("AND", k=1, mode="bm25")[0]["id"] == "sign"


# --- bad inputs -----------------------------------------------------------------

@pytest.mark.parametrize("doc_id, text, meta, message", [
    ("x", "", None, "empty"), ("x", " \n\t", None, "empty"), ("x", b"bad \xff\xfe utf8", None, "not valid UTF-8"),
    ("x", "lone \udc80 surrogate", None, "not valid Unicode"), ("", "text", None, "must not be empty"),
    ("x" * 300, "text", None, "at most 256"), (None, "text", None, "must be a string"),
    ("x", 12, None, "must be a string"), ("x", "text", "meta", "table"), ("x", "text", {1: 2}, "keys"),
    ("x", "text", {"a": float("nan")}, "metadata"), ("x", "text", {"a": {1, 2}}, "metadata"),
    ("x", "text", {"a": "y" * 20000}, "KiB"),
])
def test_bad_documents_are_refused_and_change_nothing(store, doc_id, text, meta, message):
    before = store.stats()
    with pytest.raises(StoreError, match=message):
        store.add(doc_id, text, meta)
    assert store.stats() == before


def test_too_large_document_is_refused(store):
    with pytest.raises(StoreError, match="split it"):
        store.add("huge", "word " * (DEFAULT_LIMITS.rag.max_doc_bytes // 5 + 1))
    assert store.get("huge") is None


def test_a_large_document_is_chunked_without_loss(store, emb):
    text = "\n\n".join(f"Entry {i}: " + "the caravan travels the long road east and trades salt for silk. " * 8
                       for i in range(40))  # about 27 KB, several thousand tokens
    r = store.add("long", text)
    assert r["chunks"] > 10
    db = check_consistent(store.path)
    rows = db.execute("SELECT c.n_tokens, c.char_start, c.char_end FROM chunks c JOIN documents d ON d.id = c.doc "
                      "WHERE d.doc_id = 'long' ORDER BY seq").fetchall()
    assert all(n <= store.chunk_tokens <= emb.max_tokens for n, _, _ in rows)
    covered = set()
    for _, a, b in rows:
        covered.update(range(a, b))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_utf8_bytes_work_like_strings(store):
    r = store.add(b"caf\xc3\xa9", "Caf\xe9 cr\xe8me is served at the inn.".encode("utf-8"))
    assert r["id"] == "café"
    assert store.search("crème".encode("utf-8"), k=1, mode="bm25")[0]["id"] == "café"
    assert store.search("creme", k=1, mode="bm25")[0]["id"] == "café"  # diacritics folded


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k must be"), ({"k": 101}, "k must be"), ({"k": "5"}, "k must be"), ({"mode": "fuzzy"}, "mode"),
    ({"weights": {"bm25": -1}}, "weight"),
])
def test_bad_search_arguments(store, kwargs, message):
    with pytest.raises(StoreError, match=message):
        store.search("river", **kwargs)


def test_empty_query_and_invalid_query_bytes(store):
    assert store.search("") == [] and store.search("   ") == []
    with pytest.raises(StoreError, match="UTF-8"):
        store.search(b"\xff")


def test_a_query_longer_than_the_model_takes_is_embedded_in_pieces(store, emb):
    query = "Who sells swords and repairs armour in Eastwatch? " * 60
    assert emb.count_tokens(query) > emb.max_tokens
    assert store.search(query, k=1, mode="dense")[0]["id"] == "smith"
    with pytest.raises(StoreError, match="limit"):
        store.search("x" * 20000)


def test_add_many_rejects_duplicate_ids_in_one_call(store):
    with pytest.raises(StoreError, match="twice"):
        store.add_many([("a", "one"), ("a", "two")])
    assert store.get("a") is None


# --- files that are not stores ----------------------------------------------------

def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path, emb):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store.open(path, emb)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
    with pytest.raises(StoreError, match="not a regular file"):
        Store.open(tmp_path, emb)
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "missing" / "x.db", emb)


def test_a_foreign_or_newer_sqlite_database_is_refused(tmp_path, emb):
    foreign = tmp_path / "game.db"
    db = sqlite3.connect(foreign)
    with db:
        db.execute("CREATE TABLE saves(slot INTEGER, data BLOB)")
        db.execute("INSERT INTO saves VALUES (1, x'00ff')")
    db.close()
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="not a Relic store"):
        Store.open(foreign, emb)
    assert foreign.read_bytes() == before  # not even its journal mode was changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["game.db"]
    newer = tmp_path / "newer.db"
    Store.open(newer, emb).close()
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        Store.open(newer, emb)


def test_a_damaged_database_is_a_store_error(tmp_path, emb):
    path = tmp_path / "damaged.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    with pytest.raises(StoreError, match="cannot open store"):
        Store.open(path, emb)


def test_schema_is_migrated_once_and_empty_file_becomes_a_store(tmp_path, emb):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with Store.open(path, emb) as s:
        s.add("a", "alpha")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"meta", "documents", "chunks", "chunks_fts"} <= tables
    with Store.open(path, emb) as s:
        assert s.get("a")["text"] == "alpha" and s.stats()["schema_version"] == SCHEMA_VERSION


def test_closed_store_and_other_threads_get_store_errors(tmp_path, emb):
    s = Store.open(tmp_path / "t.db", emb)
    s.add("a", "alpha beta")
    errors = []
    t = threading.Thread(target=lambda: errors.append(_catch(lambda: s.search("alpha"))))
    t.start()
    t.join(10)
    assert not t.is_alive() and "belongs to the thread" in str(errors[0])
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.search("alpha")


def _catch(fn):
    try:
        fn()
    except StoreError as exc:
        return exc
    return None


def test_writes_from_another_connection_are_seen_by_dense_search(tmp_path, emb):
    a = Store.open(tmp_path / "shared.db", emb)
    b = Store.open(tmp_path / "shared.db", emb)
    try:
        a.add("one", "The lighthouse keeper polishes the great lens.")
        assert [h["id"] for h in a.search("lighthouse lens", mode="dense")] == ["one"]  # vectors now cached
        b.add("two", "A lighthouse warns ships away from the rocks.")
        assert {h["id"] for h in a.search("lighthouse", k=5, mode="dense")} == {"one", "two"}
        b.remove("one")
        assert [h["id"] for h in a.search("lighthouse", k=5, mode="dense")] == ["two"]
    finally:
        a.close()
        b.close()


# --- changing the embedding model -------------------------------------------------

def test_changing_the_embedding_model_reembeds_everything(tmp_path, emb, model):
    path = tmp_path / "switch.db"
    with Store.open(path, emb) as s:
        s.add_many(LORE.items())
        minilm_id = s.stats()["embed_model"]
    other = Embedder(model, n_batch=256, n_seq_max=8)  # the chat model, mean-pooled: 576 dimensions
    try:
        with Store.open(path, other) as s:
            st = s.stats()
            assert st["embed_model"] == other.model_id != minilm_id and st["dim"] == 576
            assert st["documents"] == len(LORE)
            assert len(s.search("dragon gold", k=5, mode="dense")) == 5
        db = check_consistent(path)
        assert db.execute("SELECT DISTINCT embed_model FROM documents").fetchall() == [(other.model_id,)]
    finally:
        other.close()
    with Store.open(path, emb) as s:
        assert s.stats()["embed_model"] == minilm_id and s.stats()["dim"] == 384
        assert s.search("who watches the north gate at night", k=1, mode="dense")[0]["id"] == "guard"
    check_consistent(path)


# --- crash consistency --------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys
    from host.config import Config
    from host.rag import Embedder, Store
    from host.startup import prepare
    prepare(Config.load(environ=os.environ, rag=False))  # the library this child loads
    path, how = sys.argv[1], sys.argv[2]
    emb = Embedder(sys.argv[3], n_batch=256, n_seq_max=8)
    store = Store.open(path, emb)
    store.add("keep", "The old version of this document survives the crash.")
    print("ready", flush=True)
    if how == "mid-transaction":
        conn = store._connection
        calls = [0]
        def die():
            # inside the write transaction, after some rows were written: the process dies here
            if conn.in_transaction:
                calls[0] += 1
                if calls[0] > 50:
                    os.kill(os.getpid(), signal.SIGKILL)
            return 0
        conn.set_progress_handler(die, 10)
        docs = [("keep", "The NEW version that must not appear.")]
        docs += [(f"new{i}", f"New document number {i} about ships and storms.") for i in range(30)]
        store.add_many(docs)
        print("not killed", flush=True)
    else:
        i = 0
        while True:
            store.add(f"doc{i}", f"Document {i}: the caravan reached oasis {i} and traded salt.\\n\\n"
                                 + "More words about the long road. " * (i % 7 + 1))
            print("committed", i, flush=True)
            i += 1
""")


def _spawn(path: Path, how: str, model_file: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), how, str(model_file)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_crash_inside_the_write_transaction_leaves_the_old_state(tmp_path, emb):
    path = tmp_path / "crash.db"
    proc = _spawn(path, "mid-transaction", emb.model.path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    assert "ready" in out and "not killed" not in out
    db = check_consistent(path)
    assert db.execute("SELECT doc_id, text FROM documents").fetchall() == [
        ("keep", "The old version of this document survives the crash.")]
    with Store.open(path, emb) as s:
        assert [h["id"] for h in s.search("old version survives", k=5)] == ["keep"]
        assert s.add("new1", "New document number 1 about ships and storms.")["status"] == "added"
    check_consistent(path)


def test_killing_an_ingesting_process_at_any_moment_keeps_the_store_consistent(tmp_path, emb):
    path = tmp_path / "killed.db"
    proc = _spawn(path, "loop", emb.model.path)
    committed = []
    watchdog = threading.Timer(120, proc.kill)  # the read below must not wait forever
    watchdog.start()
    try:
        for line in proc.stdout:
            if line.startswith("committed"):
                committed.append(int(line.split()[1]))
                if len(committed) == 6:
                    break
    finally:
        proc.kill()  # at whatever point of the next add it has reached
        proc.wait(timeout=30)
        watchdog.cancel()
    assert len(committed) == 6, proc.stderr.read()
    db = check_consistent(path)
    ids = {r[0] for r in db.execute("SELECT doc_id FROM documents")}
    done = {f"doc{i}" for i in committed}
    assert done | {"keep"} <= ids <= done | {"keep", f"doc{max(committed) + 1}"}
    with Store.open(path, emb) as s:
        assert s.search("caravan oasis 3", k=1, mode="bm25")[0]["id"] == "doc3"


# --- prompts ------------------------------------------------------------------------

def test_format_context_respects_the_token_budget(store, model):
    count = model.vocab.count
    hits = store.search("who lives in the city", k=5)
    full = format_context(hits, 10_000, count)
    assert full.startswith("Relevant notes from memory:") and full.count("\n[") == 5
    for h in hits:
        assert h["text"] in full and f"({h['id']})" in full
    for budget in range(10, 150, 7):
        text = format_context(hits, budget, count)
        assert count(text) <= budget
    assert format_context([], 100, count) == "" and format_context(hits, 3, count) == ""
    # a repeated chunk is shown once
    assert format_context(hits[:1] * 3, 10_000, count).count("\n[") == 1


def test_format_context_cuts_the_hit_that_does_not_fit_at_a_word(model):
    count = model.vocab.count
    long_hit = {"id": "saga", "text": " ".join(f"word{i}" for i in range(200)), "start": 0, "end": 1}
    small_hit = {"id": "note", "text": "a short note", "start": 0, "end": 12}
    text = format_context([small_hit, long_hit, small_hit | {"id": "after"}], 60, count)
    assert count(text) <= 60
    lines = text.split("\n")
    assert lines[1] == "[1] (note) a short note"
    assert lines[2].startswith("[2] (saga) word0 word1") and lines[2].endswith(" ...") and len(lines) == 3
    assert format_context([long_hit], 60, count, min_piece_tokens=100) == ""
