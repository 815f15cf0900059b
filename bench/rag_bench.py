"""host.rag benchmark: ingest throughput (chunks/s, embedding included) and query latency at 10,000 chunks.

Texts are real: every docstring of the running interpreter's standard
library (parsed, not imported) and the long descriptions of the installed
Debian packages, ingested in file order with ``Store.add_many`` until the
store holds ``--chunks`` chunks.  Then ``--queries`` queries (docstring
summaries, so most have a real answer) are timed per mode after a warm-up.

    python bench/rag_bench.py [--chunks 10000] [--queries 300] [--store PATH] [--json OUT]

With ``--store`` the file is kept; a second run skips everything already
embedded (incremental ingest) and only measures what it adds and the queries.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rag_eval import debian_items, docstring_nodes, node_id  # noqa: E402  (bench scripts share the corpus readers)


def docstrings(root: str | None = None, min_chars: int = 60):
    """(id, docstring) for every docstring of at least ``min_chars`` under ``root`` (default: the stdlib)."""
    for rel, node, doc in docstring_nodes(root):
        if len(doc) >= min_chars:
            yield node_id(rel, node), doc


def texts():
    """Unique (id, text) pairs: Debian descriptions, stdlib docstrings, then installed packages' docstrings."""
    seen = set()
    for doc_id, _, body in debian_items():
        if body not in seen:
            seen.add(body)
            yield doc_id, body
    roots = [None, sysconfig.get_paths()["purelib"]]  # the stdlib, then site-packages (numpy, pip, ...)
    for n, root in enumerate(roots):
        for doc_id, doc in docstrings(root):
            if doc not in seen:
                seen.add(doc)
                yield f"{n}:{doc_id}", doc


def percentile(sorted_values, q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=10_000, help="fill the store to this many chunks")
    ap.add_argument("--queries", type=int, default=300, help="queries timed per mode")
    ap.add_argument("--store", type=Path, default=None, help="store file to (re)use; default: a temp file")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    from host.rag import Embedder, Store
    from bench.benchsetup import embed_model_path

    tmp = None
    if args.store is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-bench-")
        args.store = Path(tmp.name) / "bench.db"
    embedder = Embedder(embed_model_path())
    store = Store.open(args.store, embedder)
    out = {"threads": embedder.ctx.n_threads, "cpu_count": os.cpu_count()}
    try:
        # --- ingest ---------------------------------------------------------
        source = texts()
        new_chunks = embedded = tokens = 0
        ingest_s = 0.0
        last_report = time.monotonic()
        while store.stats()["chunks"] < args.chunks:
            group = [item for _, item in zip(range(32), source)]
            if not group:
                print("ran out of texts before reaching the chunk target", file=sys.stderr)
                break
            t0 = time.perf_counter()
            results = store.add_many(group)
            ingest_s += time.perf_counter() - t0
            new = sum(r["chunks"] for r in results if r["status"] != "unchanged")
            new_chunks += new
            embedded += sum(r["embedded"] for r in results)
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                print(f"  ... {store.stats()['chunks']} chunks, {new_chunks / max(ingest_s, 1e-9):.1f} chunks/s",
                      flush=True)
        st = store.stats()
        tokens = sum(r[0] for r in store._conn.execute("SELECT n_tokens FROM chunks"))
        out["store"] = {"documents": st["documents"], "chunks": st["chunks"], "tokens": tokens,
                        "file_mb": round(args.store.stat().st_size / 1e6, 1)}
        out["ingest"] = {"new_chunks": new_chunks, "embedded": embedded, "seconds": round(ingest_s, 2),
                         "chunks_per_s": round(new_chunks / ingest_s, 1) if ingest_s else None}
        print(f"store: {st['documents']} documents, {st['chunks']} chunks, {tokens} tokens, "
              f"{out['store']['file_mb']} MB")
        if new_chunks:
            print(f"ingest: {new_chunks} chunks ({embedded} embedded) in {ingest_s:.1f} s = "
                  f"{new_chunks / ingest_s:.1f} chunks/s (embedding included, {out['threads']} thread(s))")
        else:
            print("ingest: nothing new (the store was already full); throughput not measured this run")

        # --- queries --------------------------------------------------------
        rng = random.Random(11)
        queries = [" ".join(doc.split("\n\n")[0].split()[:12]) for _, doc in docstrings()]
        queries = rng.sample(queries, min(args.queries, len(queries)))
        out["queries"] = {}
        print(f"\n{'mode':8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}   ({len(queries)} queries, k=5)")
        for mode in ("bm25", "dense", "hybrid"):
            for q in queries[:10]:
                store.search(q, k=5, mode=mode)  # warm-up: vector cache, SQLite pages
            times = []
            for q in queries:
                t0 = time.perf_counter()
                store.search(q, k=5, mode=mode)
                times.append(1000 * (time.perf_counter() - t0))
            times.sort()
            r = {"p50_ms": round(percentile(times, 0.5), 2), "p99_ms": round(percentile(times, 0.99), 2),
                 "mean_ms": round(sum(times) / len(times), 2)}
            out["queries"][mode] = r
            print(f"{mode:8} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['mean_ms']:8.2f}")
        t0 = time.perf_counter()
        for q in queries[:100]:
            embedder.embed_one(q)
        out["query_embedding_ms"] = round(1000 * (time.perf_counter() - t0) / min(100, len(queries)), 2)
        print(f"(of which embedding one query: {out['query_embedding_ms']:.2f} ms on average)")
    finally:
        store.close()
        embedder.close()
        if tmp is not None:
            tmp.cleanup()
    try:
        out["load_average"] = os.getloadavg()
    except OSError:  # pragma: no cover - not on Linux
        pass
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
