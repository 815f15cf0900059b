"""A RAG store: one SQLite file with documents, chunks, an FTS5 index and float32 vectors.

Schema (see ``_MIGRATIONS``; ``PRAGMA user_version`` is the schema version)::

    meta(key, value)                  embedding model id, vector dimension, chunking
    documents(id, doc_id, text, meta JSON, hash, embed_model, chunking, created, updated)
    chunks(id, doc -> documents.id, seq, char_start, char_end, text, hash, n_tokens, embedding BLOB)
    chunks_fts                        FTS5 over chunks.text (external content, kept by triggers)

Ingest is incremental and transactional.  ``add`` chunks and embeds
*outside* any transaction (the slow part), then replaces the document's rows
in one short ``BEGIN IMMEDIATE`` transaction: a crash at any point leaves
either the old or the new version of every document, never a mix.  Text
that did not change (same sha256, same model, same chunking) is not
re-embedded; a changed document reuses the vectors of chunks whose text did
not change.  Opening a store with a different embedding model re-chunks
and re-embeds every document (in resumable batches).

Retrieval (``search``): BM25 top-k from FTS5, exact-cosine top-k over the
vectors (numpy), or both fused by Reciprocal Rank Fusion (``hybrid``).

Threading: a Store and its Embedder belong to the thread that opened them
(the inference worker); sqlite3 enforces this for the connection.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from host.errors import CancelledError, EmbeddingError, StoreError
from host.limits import DEFAULT_LIMITS, RagLimits
from host.rag.chunking import chunk_steps, chunk_text
from host.rag.fusion import RRF_K, dense_top_k, fts_query, normalize_weights, reciprocal_rank_fusion

MODES = ("hybrid", "bm25", "dense")
DEFAULT_CHUNK_TOKENS = 200  # all-MiniLM-L6-v2 was tuned on inputs up to 256 word pieces
DEFAULT_OVERLAP_TOKENS = 32
_INGEST_GROUP_CHUNKS = 256  # chunks embedded and committed together by add_many

_SQLITE_MAGIC = b"SQLite format 3\x00"

# Numbered migrations; each runs in one transaction together with its user_version bump.
_MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE documents(
        id INTEGER PRIMARY KEY,
        doc_id TEXT NOT NULL UNIQUE,
        text TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        hash TEXT NOT NULL,
        embed_model TEXT NOT NULL,
        chunking TEXT NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE chunks(
        id INTEGER PRIMARY KEY,
        doc INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        char_start INTEGER NOT NULL,
        char_end INTEGER NOT NULL,
        text TEXT NOT NULL,
        hash TEXT NOT NULL,
        n_tokens INTEGER NOT NULL,
        embedding BLOB NOT NULL,
        UNIQUE(doc, seq)
    );
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, content='chunks', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER chunks_au AFTER UPDATE OF text ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END;
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


def _finish(steps):
    """Run a generator of steps to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text_arg(value, what: str) -> str:
    """A str from str or UTF-8 bytes (Lua strings arrive as bytes); StoreError otherwise."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreError(f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                             "store text as UTF-8") from None
    if not isinstance(value, str):
        raise StoreError(f"{what} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StoreError(f"{what} is not valid Unicode ({exc.reason} at character {exc.start})") from None
    return value


def _doc_id_arg(doc_id, max_chars: int) -> str:
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, bytes, bytearray, int)):
        raise StoreError(f"a document id must be a string, not {type(doc_id).__name__}")
    doc_id = str(doc_id) if isinstance(doc_id, int) else _text_arg(doc_id, "the document id")
    if not doc_id.strip():
        raise StoreError("a document id must not be empty")
    if len(doc_id) > max_chars:
        raise StoreError(f"a document id may have at most {max_chars} characters, got {len(doc_id)}")
    return doc_id


def _meta_arg(meta, max_bytes: int) -> str:
    """Metadata as canonical JSON (sorted keys): a table of string keys to JSON values."""
    if meta is None:
        return "{}"
    if not isinstance(meta, Mapping):
        raise StoreError(f"metadata must be a table with string keys, not {type(meta).__name__}")
    if not all(isinstance(k, str) for k in meta):
        raise StoreError("metadata keys must be strings")
    try:
        text = json.dumps(dict(meta), sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"metadata must hold only strings, numbers, booleans, lists and tables: {exc}") from None
    if len(text.encode("utf-8")) > max_bytes:
        size = f"{max_bytes >> 10} KiB" if max_bytes % 1024 == 0 else f"{max_bytes} bytes"
        raise StoreError(f"metadata is larger than {size} as JSON")
    return text


def _check_sqlite_file(path: Path) -> None:
    """Refuse a path that exists but is not a SQLite database, before SQLite touches it."""
    if not path.exists():
        return
    if not path.is_file():
        raise StoreError(f"cannot open store {path}: it is not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise StoreError(f"cannot open store {path}: {exc.strerror}") from None
    if head and head != _SQLITE_MAGIC:
        raise StoreError(f"cannot open store {path}: it is not a SQLite database (it starts with {head[:8]!r}); "
                         "move it away or use another store name")


class _Vectors:
    """The in-memory copy of every chunk vector for exact search (ids aligned with rows)."""

    def __init__(self, ids: np.ndarray, matrix: np.ndarray):
        self.ids = ids
        self.matrix = matrix

    def update(self, removed: Iterable[int], added_ids: list[int], added: np.ndarray | None) -> None:
        removed = np.fromiter(removed, dtype=np.int64)
        if removed.size:
            keep = ~np.isin(self.ids, removed)
            self.ids, self.matrix = self.ids[keep], self.matrix[keep]
        if added_ids:
            self.ids = np.concatenate([self.ids, np.asarray(added_ids, dtype=np.int64)])
            self.matrix = np.concatenate([self.matrix, added.astype(np.float32, copy=False)])


class Store:
    """One RAG store (a SQLite file); open with :meth:`Store.open`, see the module docstring."""

    def __init__(self, path: Path, conn: sqlite3.Connection, embedder, chunk_tokens: int, overlap_tokens: int,
                 limits: RagLimits):
        self.path = path
        self._connection: sqlite3.Connection | None = conn
        self._owner = threading.get_ident()  # the only thread that may use this store
        self.embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.limits = limits  # the `rag` group of the host's limits (host.limits)
        self.max_doc_bytes = limits.max_doc_bytes
        self.chunking = f"{chunk_tokens}/{overlap_tokens}"
        self._vectors: _Vectors | None = None
        self._data_version = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError(f"store {self.path} is closed; open it again")
        if threading.get_ident() != self._owner:
            raise StoreError(f"store {self.path} belongs to the thread that opened it (the worker); "
                             "run store calls there")
        return self._connection

    # --- opening and schema -------------------------------------------------
    @classmethod
    def open(cls, path, embedder, *, chunk_tokens: int | None = None, overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
             limits: RagLimits = DEFAULT_LIMITS.rag) -> "Store":
        """Open (creating if needed) the store at ``path`` for ``embedder`` (a :class:`host.rag.embed.Embedder`).

        Migrates an older schema, and re-embeds every document if the store was
        built with another embedding model or chunking.  Raises StoreError for a
        file that is not SQLite or not a Relic store, or one from a newer Relic.
        """
        path = Path(path)
        chunk_tokens = min(chunk_tokens or DEFAULT_CHUNK_TOKENS, embedder.max_tokens)
        overlap_tokens = max(0, min(overlap_tokens, chunk_tokens // 2))
        _check_sqlite_file(path)
        if not path.parent.is_dir():
            raise StoreError(f"cannot create store {path}: folder {path.parent} does not exist")
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each write is exactly one transaction
            conn = sqlite3.connect(os.fspath(path), isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from exc
        store = cls(path, conn, embedder, chunk_tokens, overlap_tokens, limits)
        try:
            version = store._schema_version()  # read-only: a foreign database is refused untouched
            conn.execute("PRAGMA foreign_keys = ON")
            # WAL: readers never block on the writer and a killed writer leaves nothing half-applied;
            # synchronous=NORMAL loses at most the last commits on power loss, never consistency.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            store._migrate(version)
            store._sync_model()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"cannot open store {path}: {exc} (is it a damaged or foreign database?)") from exc
        except BaseException:
            conn.close()
            raise
        return store

    def _schema_version(self) -> int:
        """The store's schema version; StoreError for a newer store or a database that is not a store."""
        conn = self._conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"store {self.path} has schema version {version}, newer than this Relic "
                             f"({SCHEMA_VERSION}); update Relic or use another store")
        if version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise StoreError(f"{self.path} is a SQLite database but not a Relic store; use another name")
        return version

    def _migrate(self, version: int) -> None:
        """Apply migrations version+1.. in order, each in one transaction with its user_version bump."""
        conn = self._conn
        for number in range(version + 1, SCHEMA_VERSION + 1):
            try:
                conn.executescript(f"BEGIN IMMEDIATE;\n{_MIGRATIONS[number - 1]}\n"
                                   f"PRAGMA user_version = {number};\nCOMMIT;")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"migration {number} of store {self.path} failed: {exc}") from exc

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _sync_model(self) -> None:
        """Record the embedder in meta; re-embed documents made with another model or chunking."""
        model = self.embedder.model_id
        if self._meta("embed_model") != model or self._meta("chunking") != self.chunking:
            with self._transaction():
                self._conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                       [("embed_model", model), ("dim", str(self.embedder.dim)),
                                        ("chunking", self.chunking)])
        self.reembed()

    def reembed(self) -> int:
        """Re-chunk and re-embed documents not made with the current model and chunking; returns how many.

        Runs in batches, each its own transaction, so an interrupted run
        resumes where it stopped on the next open.
        """
        done = 0
        while True:
            rows = self._conn.execute(
                "SELECT doc_id, text, meta FROM documents WHERE embed_model != ? OR chunking != ? LIMIT 64",
                (self.embedder.model_id, self.chunking)).fetchall()
            if not rows:
                return done
            self._ingest([(doc_id, text, json.loads(meta)) for doc_id, text, meta in rows], force=True)
            done += len(rows)

    # --- transactions -------------------------------------------------------
    class _Tx:
        def __init__(self, store: "Store"):
            self.store = store

        def __enter__(self):
            try:
                self.store._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.store.path} is busy or read-only: {exc}") from exc
            return self.store._conn

        def __exit__(self, exc_type, exc, tb):
            conn = self.store._conn
            if exc_type is None:
                try:
                    conn.execute("COMMIT")
                    return False
                except sqlite3.Error as err:
                    conn.execute("ROLLBACK")
                    raise StoreError(f"could not commit to store {self.store.path}: {err}") from err
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.store._vectors = None  # the cache may have been updated for rows that were rolled back
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"write to store {self.store.path} failed (nothing was changed): {exc}") from exc
            return False

    def _transaction(self) -> "Store._Tx":
        return Store._Tx(self)

    # --- ingest -------------------------------------------------------------
    def add(self, doc_id, text, meta=None, *, cancelled=None) -> dict:
        """Add or replace one document; returns ``{id, status, chunks, embedded}``.

        ``status`` is "added", "updated", "meta" (only metadata changed) or
        "unchanged"; ``embedded`` counts the chunks that had to be embedded.
        Raises StoreError (empty, too large or non-UTF-8 text, bad id or
        metadata) or EmbeddingError; on any error the store is unchanged.
        ``cancelled()`` (optional) is checked while chunking and between
        embedding batches: when it returns True, CancelledError is raised and
        the store is unchanged (the worker passes its cancel/shutdown flag).
        """
        return _finish(self.add_steps(doc_id, text, meta, cancelled=cancelled))

    def add_steps(self, doc_id, text, meta=None, *, cancelled=None):
        """:meth:`add` as a generator: yields (None) between bounded pieces of its work, returns its result.

        A piece is one token count while splitting, one text tokenized or one
        batch embedded; the final write is one short transaction.  Between two
        steps the caller may use this store and its embedder for other calls
        (the inference worker serves generations and searches meanwhile):
        nothing is written before the last step, so they see the store as it
        was.  Errors, ``cancelled`` and the result are :meth:`add`'s.
        """
        return (yield from self._ingest_steps([(doc_id, text, meta)], cancelled=cancelled))[0]

    def add_many(self, docs: Iterable) -> list[dict]:
        """Add or replace many documents (``(id, text[, meta])`` tuples or ``{id, text, meta}`` tables).

        Embeds across documents in large batches; commits in groups (each group
        one transaction), so a failure keeps the groups before it.
        """
        items = []
        for d in docs:
            if isinstance(d, Mapping):
                items.append((d.get("id"), d.get("text"), d.get("meta")))
            elif isinstance(d, (tuple, list)) and len(d) in (2, 3):
                items.append((d[0], d[1], d[2] if len(d) == 3 else None))
            else:
                raise StoreError("add_many takes (id, text[, meta]) tuples or {id=, text=, meta=} tables")
        results, group, n_chunks = [], [], 0
        for item in items:
            group.append(item)
            size = len(item[1]) if isinstance(item[1], (str, bytes)) else 0
            n_chunks += 1 + size // 600  # a rough chunk estimate to size the groups
            if n_chunks >= _INGEST_GROUP_CHUNKS:
                results += self._ingest(group)
                group, n_chunks = [], 0
        if group:
            results += self._ingest(group)
        return results

    def _validate(self, doc_id, text, meta, force: bool = False) -> tuple[str, str, str]:
        doc_id = _doc_id_arg(doc_id, self.limits.max_doc_id_chars)
        text = _text_arg(text, f"the text of document {doc_id!r}")
        if not text.strip():
            raise StoreError(f"document {doc_id!r} is empty; use remove() to delete a document")
        size = len(text.encode("utf-8"))
        if size > self.max_doc_bytes and not force:  # re-embedding keeps what was once accepted
            raise StoreError(f"document {doc_id!r} has {size} bytes; the limit is {self.max_doc_bytes} "
                             "(split it into several documents)")
        return doc_id, text, _meta_arg(meta, self.limits.max_meta_bytes)

    def _ingest(self, items: list, force: bool = False, cancelled=None) -> list[dict]:
        """Validate, chunk and embed ``items`` outside a transaction, then write them in one."""
        return _finish(self._ingest_steps(items, force, cancelled))

    def _ingest_steps(self, items: list, force: bool = False, cancelled=None):
        """:meth:`_ingest` as a generator (see :meth:`add_steps`)."""
        count = self.embedder.count_tokens
        if cancelled is not None:
            def count(text, _count=count):
                if cancelled():
                    raise CancelledError("cancelled while splitting a document")
                return _count(text)
        checked = [self._validate(*item, force=force) for item in items]
        ids = [c[0] for c in checked]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise StoreError(f"document id {dup!r} appears twice in one call")
        model = self.embedder.model_id
        plans, to_embed, reuse = [], {}, {}
        for doc_id, text, meta in checked:
            old = self._conn.execute("SELECT id, hash, meta, embed_model, chunking FROM documents WHERE doc_id = ?",
                                     (doc_id,)).fetchone()
            digest = _sha(text)
            same_vectors = old is not None and old[3] == model and old[4] == self.chunking
            if old is not None and not force and same_vectors and old[1] == digest:
                plans.append((doc_id, text, meta, digest, old, None, "unchanged" if old[2] == meta else "meta"))
                continue
            if same_vectors:  # vectors of unchanged chunks of this document can be kept
                for h, blob in self._conn.execute("SELECT hash, embedding FROM chunks WHERE doc = ?", (old[0],)):
                    reuse[h] = blob
            try:
                chunks = yield from chunk_steps(text, count, max_tokens=self.chunk_tokens,
                                                overlap_tokens=self.overlap_tokens)
            except EmbeddingError as exc:
                raise StoreError(f"document {doc_id!r} cannot be split into chunks: {exc}") from exc
            if not chunks:
                raise StoreError(f"document {doc_id!r} has no text to index")
            hashes = [_sha(c.text) for c in chunks]
            for c, h in zip(chunks, hashes):
                if h not in reuse:
                    to_embed.setdefault(h, c.text)
            plans.append((doc_id, text, meta, digest, old, list(zip(chunks, hashes)),
                          "added" if old is None else "updated"))
        if to_embed:
            vectors = yield from self.embedder.embed_steps(list(to_embed.values()), cancelled=cancelled)
            for h, vec in zip(to_embed, vectors):
                reuse[h] = vec.astype(np.float32).tobytes()
        return self._write(plans, reuse, set(to_embed))

    def _write(self, plans, blobs: dict, embedded: set) -> list[dict]:
        model, now = self.embedder.model_id, time.time()
        results, removed, added_ids, added_vecs = [], [], [], []
        with self._transaction() as conn:
            for doc_id, text, meta, digest, old, chunks, status in plans:
                if chunks is None:
                    if status == "meta":
                        conn.execute("UPDATE documents SET meta = ?, updated = ? WHERE id = ?", (meta, now, old[0]))
                    n = conn.execute("SELECT count(*) FROM chunks WHERE doc = ?", (old[0],)).fetchone()[0]
                    results.append({"id": doc_id, "status": status, "chunks": n, "embedded": 0})
                    continue
                if old is None:
                    rowid = conn.execute(
                        "INSERT INTO documents(doc_id, text, meta, hash, embed_model, chunking, created, updated) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (doc_id, text, meta, digest, model, self.chunking, now, now)).lastrowid
                else:
                    rowid = old[0]
                    removed += [r[0] for r in conn.execute("SELECT id FROM chunks WHERE doc = ?", (rowid,))]
                    conn.execute("DELETE FROM chunks WHERE doc = ?", (rowid,))
                    conn.execute("UPDATE documents SET text = ?, meta = ?, hash = ?, embed_model = ?, chunking = ?, "
                                 "updated = ? WHERE id = ?", (text, meta, digest, model, self.chunking, now, rowid))
                n_new = 0
                for seq, (c, h) in enumerate(chunks):
                    cid = conn.execute(
                        "INSERT INTO chunks(doc, seq, char_start, char_end, text, hash, n_tokens, embedding) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (rowid, seq, c.start, c.end, c.text, h, c.n_tokens, blobs[h])).lastrowid
                    added_ids.append(cid)
                    added_vecs.append(blobs[h])
                    n_new += h in embedded
                results.append({"id": doc_id, "status": status, "chunks": len(chunks), "embedded": n_new})
        self._after_write(removed, added_ids, added_vecs)
        return results

    def _after_write(self, removed, added_ids, added_vecs) -> None:
        """Keep the vector cache in step with our own commit (cheaper than reloading it)."""
        if self._vectors is None:
            return
        if self._conn.execute("PRAGMA data_version").fetchone()[0] != self._data_version:
            self._vectors = None  # another connection wrote too: reload on the next search
            return
        dim = self.embedder.dim
        if added_vecs and self._vectors.matrix.shape[1:] != (dim,):
            self._vectors = None
            return
        added = np.frombuffer(b"".join(added_vecs), dtype=np.float32).reshape(-1, dim) if added_vecs else None
        self._vectors.update(removed, added_ids, added)

    def remove(self, doc_id) -> bool:
        """Delete a document and its chunks; False if there was no such document."""
        doc_id = _doc_id_arg(doc_id, self.limits.max_doc_id_chars)
        with self._transaction() as conn:
            row = conn.execute("SELECT id FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                return False
            removed = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE doc = ?", (row[0],))]
            conn.execute("DELETE FROM chunks WHERE doc = ?", (row[0],))
            conn.execute("DELETE FROM documents WHERE id = ?", (row[0],))
        self._after_write(removed, [], [])
        return True

    def get(self, doc_id) -> dict | None:
        """A stored document ``{id, text, meta, chunks}``, or None."""
        row = self._conn.execute(
            "SELECT d.text, d.meta, (SELECT count(*) FROM chunks c WHERE c.doc = d.id) FROM documents d "
            "WHERE d.doc_id = ?", (_doc_id_arg(doc_id, self.limits.max_doc_id_chars),)).fetchone()
        if row is None:
            return None
        return {"id": _doc_id_arg(doc_id, self.limits.max_doc_id_chars), "text": row[0],
                "meta": json.loads(row[1]), "chunks": row[2]}

    def stats(self) -> dict:
        """Counts and identity: documents, chunks, embedding model, dimension, schema version, path."""
        docs = self._conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = self._conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return {"documents": docs, "chunks": chunks, "embed_model": self._meta("embed_model"),
                "dim": self.embedder.dim, "chunking": self.chunking, "schema_version": SCHEMA_VERSION,
                "path": str(self.path)}

    # --- search -------------------------------------------------------------
    def search(self, query, k: int = 5, mode: str = "hybrid", filters=None, weights=None,
               rrf_k: int = RRF_K) -> list[dict]:
        """The ``k`` best chunks for ``query``: ``[{id, doc_id, chunk, text, score, meta, start, end, ranks}]``.

        ``mode``: "bm25" (score = BM25, higher is better), "dense" (score =
        cosine) or "hybrid" (score = weighted RRF of both rankings; ``weights``
        like ``{"bm25": 1, "dense": 1}``).  ``filters`` ``{key: value}`` or
        ``{key: [values]}`` keep chunks whose document metadata matches every
        key.  ``id``/``doc_id`` is the document id given to :meth:`add`;
        ``start``/``end`` are the chunk's character offsets in that document.
        An empty query gives no hits; a query longer than the embedding model
        takes is embedded in pieces whose vectors are averaged (never cut).
        """
        query = _text_arg(query, "the query")
        limits = self.limits
        if len(query) > limits.max_query_chars:
            raise StoreError(f"the query has {len(query)} characters; the limit is {limits.max_query_chars}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limits.max_k:
            raise StoreError(f"k must be an integer from 1 to {limits.max_k}, got {k!r}")
        if mode not in MODES:
            raise StoreError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        try:
            w = normalize_weights(weights, ("bm25", "dense"))
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        where, params = self._filter_sql(filters)
        if not query.strip():
            return []
        depth = k if mode != "hybrid" else max(50, 5 * k)
        lists, scores = {}, {}
        if mode in ("bm25", "hybrid") and w["bm25"] > 0:
            ranked = self._bm25(query, depth, where, params)
            lists["bm25"] = [cid for cid, _ in ranked]
            scores["bm25"] = dict(ranked)
        if mode in ("dense", "hybrid") and w["dense"] > 0:
            ranked = self._dense(query, depth, where, params)
            lists["dense"] = [cid for cid, _ in ranked]
            scores["dense"] = dict(ranked)
        if mode == "hybrid":
            fused = reciprocal_rank_fusion(lists, w, rrf_k)[:k]
        else:
            fused = [(cid, scores[mode][cid]) for cid in lists.get(mode, [])[:k]]
        ranks = {name: {cid: r for r, cid in enumerate(ids, start=1)} for name, ids in lists.items()}
        return self._hits(fused, ranks)

    def _filter_sql(self, filters) -> tuple[str, list]:
        """SQL conditions on ``d.meta`` for metadata filters; keys and values are bound, never pasted."""
        if filters is None:
            return "", []
        if not isinstance(filters, Mapping):
            raise StoreError(f"filters must be a table like {{kind='lore'}}, not {type(filters).__name__}")
        if len(filters) > self.limits.max_filter_keys:
            raise StoreError(f"at most {self.limits.max_filter_keys} filter keys are allowed")
        conds, params = [], []
        for key, value in filters.items():
            if not isinstance(key, str) or not key or len(key) > 64 or '"' in key or "\\" in key:
                raise StoreError(f"filter key {key!r} must be a non-empty string of at most 64 characters "
                                 "without quotes or backslashes")
            path = f'$."{key}"'
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if not values or len(values) > 64:
                raise StoreError(f"filter {key!r} must have 1 to 64 values")
            for v in values:
                if v is not None and not isinstance(v, (str, int, float, bool)):
                    raise StoreError(f"filter {key!r}: values must be strings, numbers, booleans or nil")
                if isinstance(v, float) and not math.isfinite(v):
                    raise StoreError(f"filter {key!r}: values must be finite numbers")
            non_null = [v for v in values if v is not None]
            parts = []
            if non_null:
                parts.append(f"json_extract(d.meta, ?) IN ({', '.join('?' * len(non_null))})")
                params += [path, *non_null]
            if len(non_null) < len(values):
                parts.append("json_extract(d.meta, ?) IS NULL")
                params.append(path)
            conds.append("(" + " OR ".join(parts) + ")")
        return " AND ".join(conds), params

    def _bm25(self, query: str, depth: int, where: str, params: list) -> list[tuple[int, float]]:
        match = fts_query(query)
        if match is None:
            return []
        if where:  # `where` is _filter_sql's fixed fragments with ? placeholders: no user text
            sql = ("SELECT c.id, bm25(chunks_fts) FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
                   f"JOIN documents d ON d.id = c.doc WHERE chunks_fts MATCH ? AND {where} "
                   "ORDER BY bm25(chunks_fts) LIMIT ?")
        else:  # the FTS index alone: joining first makes SQLite sort every match (2-3x slower)
            sql = ("SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
                   "ORDER BY bm25(chunks_fts) LIMIT ?")
        try:
            rows = self._conn.execute(sql, [match, *params, depth]).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"keyword search failed: {exc}") from exc
        return [(cid, -score) for cid, score in rows]  # SQLite's bm25() is lower-is-better

    def _load_vectors(self) -> _Vectors:
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if self._vectors is not None and version == self._data_version:
            return self._vectors
        # first use, or another connection committed since: reload
        dim = self.embedder.dim
        rows = self._conn.execute("SELECT id, embedding FROM chunks ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        blob = b"".join(r[1] for r in rows)
        if len(blob) != len(rows) * dim * 4:
            raise StoreError(f"store {self.path} holds vectors of another size than the model's {dim}; "
                             "reopen it to re-embed")
        self._vectors = _Vectors(ids, np.frombuffer(blob, dtype=np.float32).reshape(len(rows), dim).copy())
        self._data_version = version
        return self._vectors

    def _dense(self, query: str, depth: int, where: str, params: list) -> list[tuple[int, float]]:
        vectors = self._load_vectors()
        qvec = self._query_vector(query)
        allowed = None
        if where:
            ok = [r[0] for r in self._conn.execute(
                f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc WHERE {where}", params)]
            allowed = np.isin(vectors.ids, np.asarray(ok, dtype=np.int64))
        return [(int(vectors.ids[row]), score) for row, score in dense_top_k(vectors.matrix, qvec, depth, allowed)]

    def _query_vector(self, query: str) -> np.ndarray:
        """The query's embedding; a query longer than the model takes is chunked and its vectors averaged."""
        if self.embedder.count_tokens(query) <= self.embedder.max_tokens:
            return self.embedder.embed_one(query)
        parts = chunk_text(query, self.embedder.count_tokens, max_tokens=self.embedder.max_tokens, overlap_tokens=0)
        mean = self.embedder.embed([c.text for c in parts]).mean(axis=0)
        return mean / np.linalg.norm(mean)

    def _hits(self, fused: list[tuple[int, float]], ranks: dict) -> list[dict]:
        if not fused:
            return []
        ids = [cid for cid, _ in fused]
        rows = {r[0]: r for r in self._conn.execute(
            "SELECT c.id, d.doc_id, c.seq, c.text, c.char_start, c.char_end, d.meta FROM chunks c "
            f"JOIN documents d ON d.id = c.doc WHERE c.id IN ({', '.join('?' * len(ids))})", ids)}
        hits = []
        for cid, score in fused:
            r = rows.get(cid)
            if r is None:  # pragma: no cover - removed between the two reads (same thread: cannot happen)
                continue
            hits.append({"id": r[1], "doc_id": r[1], "chunk": r[2], "text": r[3], "score": float(score),
                         "meta": json.loads(r[6]), "start": r[4], "end": r[5],
                         "ranks": {name: ranks[name].get(cid) for name in ranks}})
        return hits

    # --- lifetime -------------------------------------------------------------
    def close(self) -> None:
        """Close the database (the embedder is not closed: it is shared). Idempotent."""
        if self._connection is not None:
            self._conn  # only the owner thread may close it
            self._connection.close()
            self._connection = None
            self._vectors = None

    @property
    def closed(self) -> bool:
        return self._connection is None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.path}{' closed' if self._connection is None else ''}>"
