"""Known-item retrieval evaluation of host.rag: recall@5 and MRR for bm25, dense and hybrid.

Corpus: real documents nobody in this project wrote, found on the machine:

* the long descriptions of the Debian packages installed here
  (``/var/lib/dpkg/status``), each queried by the package's one-line summary;
* docstrings of the Python standard library of the running interpreter,
  each queried by its first paragraph (the summary), the document being the
  rest of the docstring (the summary is removed, so it is not a copy).

Documents or queries that occur twice are dropped (they would have two right
answers).  Each query has exactly one relevant document; a hit counts when
its document id is that document.  MRR is computed over the top 10 documents.

    python bench/rag_eval.py [--limit N] [--store PATH] [--json OUT]

Re-running with the same ``--store`` skips embedding (unchanged documents
are not re-embedded), so only the queries are timed again.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DPKG_STATUS = Path("/var/lib/dpkg/status")
_SKIP_DIRS = re.compile(r"/(test|tests|idlelib|lib2to3|site-packages|dist-packages|turtledemo|ensurepip)(/|$)")


def debian_items(path: Path = DPKG_STATUS) -> list[tuple[str, str, str]]:
    """(id, summary, long description) of each installed package that has a long description."""
    if not path.is_file():
        return []
    items = []
    for block in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        name = re.search(r"^Package: (.+)$", block, re.M)
        desc = re.search(r"^Description: (.*)\n((?:[ \t].*\n?)*)", block, re.M)
        if not name or not desc:
            continue
        lines = []
        for line in desc.group(2).splitlines():
            line = line[1:] if line.startswith(" ") else line.strip()
            lines.append("" if line.strip() == "." else line)  # " ." marks a blank line in dpkg
        body = "\n".join(lines).strip()
        if body:
            items.append((f"deb:{name.group(1).strip()}", desc.group(1).strip(), body))
    return items


def docstring_nodes(root: str | None = None):
    """(relative path, node, docstring) for every module/class/function docstring under ``root``.

    ``root`` defaults to the standard library; files are parsed, never imported; tests are skipped.
    """
    root = root or sysconfig.get_paths()["stdlib"]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if _SKIP_DIRS.search("/" + os.path.relpath(dirpath, root)) or "__pycache__" in dirpath:
            continue
        for fname in sorted(filenames):
            if not fname.endswith(".py"):
                continue
            path = os.path.join(dirpath, fname)
            try:
                with open(path, encoding="utf-8") as fh:
                    tree = ast.parse(fh.read())
            except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
                continue
            rel = os.path.relpath(path, root)
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        yield rel, node, doc


def node_id(rel: str, node) -> str:
    return f"py:{rel}:{getattr(node, 'name', '<module>')}:{getattr(node, 'lineno', 0)}"


def stdlib_items(root: str | None = None) -> list[tuple[str, str, str]]:
    """(id, summary, rest of docstring) for stdlib modules, classes and functions."""
    items = []
    for rel, node, doc in docstring_nodes(root):
        if "\n\n" not in doc:
            continue
        head, body = doc.split("\n\n", 1)
        summary, body = " ".join(head.split()), body.strip()
        if len(summary.split()) < 4 or len(body) < 80:
            continue
        items.append((node_id(rel, node), summary, body))
    return items


def corpus(limit: int | None = None, seed: int = 7) -> list[tuple[str, str, str]]:
    """The evaluation corpus: unique documents with unique summaries, shuffled deterministically."""
    items = debian_items() + stdlib_items()
    by_body, by_summary = {}, {}
    for item in items:
        by_body.setdefault(item[2], []).append(item)
        by_summary.setdefault(item[1].lower(), []).append(item)
    unique = [it for it in items if len(by_body[it[2]]) == 1 and len(by_summary[it[1].lower()]) == 1]
    random.Random(seed).shuffle(unique)
    return unique[:limit] if limit else unique


def evaluate(store, items, modes=("bm25", "dense", "hybrid"), k_recall: int = 5, depth: int = 10,
             weights=None) -> dict:
    """recall@k_recall, MRR@depth and query latency per mode over known-item queries."""
    out = {}
    for mode in modes:
        found, rr, times = 0, 0.0, []
        for doc_id, summary, _ in items:
            t0 = time.perf_counter()
            hits = store.search(summary, k=depth, mode=mode, weights=weights)
            times.append(time.perf_counter() - t0)
            docs = list(dict.fromkeys(h["id"] for h in hits))  # chunks -> documents, best first
            if doc_id in docs:
                rank = docs.index(doc_id) + 1
                rr += 1.0 / rank
                found += rank <= k_recall
        times.sort()
        n = len(items)
        out[mode] = {f"recall@{k_recall}": found / n, f"mrr@{depth}": rr / n,
                     "p50_ms": 1000 * times[n // 2], "p99_ms": 1000 * times[min(n - 1, int(n * 0.99))]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="use at most N documents (default: all)")
    ap.add_argument("--store", type=Path, default=None, help="store file to (re)use; default: a temp file")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    ap.add_argument("--weights", type=str, default=None, help='hybrid weights as JSON, e.g. {"bm25":1,"dense":1}')
    args = ap.parse_args(argv)

    from host.rag import Embedder, Store
    from bench.benchsetup import embed_model_path

    items = corpus(args.limit)
    n_deb = sum(1 for it in items if it[0].startswith("deb:"))
    print(f"corpus: {len(items)} documents ({n_deb} Debian package descriptions, "
          f"{len(items) - n_deb} Python stdlib docstrings)", flush=True)
    tmp = None
    if args.store is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-eval-")
        args.store = Path(tmp.name) / "eval.db"
    embedder = Embedder(embed_model_path())
    store = Store.open(args.store, embedder)
    try:
        t0 = time.perf_counter()
        added = store.add_many((doc_id, body, {"source": doc_id.split(":")[0]}) for doc_id, _, body in items)
        ingest_s = time.perf_counter() - t0
        embedded = sum(r["embedded"] for r in added)
        stats = store.stats()
        print(f"ingest: {stats['documents']} documents, {stats['chunks']} chunks, {embedded} embedded "
              f"in {ingest_s:.1f} s", flush=True)
        weights = json.loads(args.weights) if args.weights else None
        results = evaluate(store, items, weights=weights)
    finally:
        store.close()
        embedder.close()
        if tmp is not None:
            tmp.cleanup()
    print(f"\n{'mode':8} {'recall@5':>9} {'MRR@10':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for mode, r in results.items():
        print(f"{mode:8} {r['recall@5']:9.3f} {r['mrr@10']:8.3f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}")
    best_single = max(results["bm25"]["mrr@10"], results["dense"]["mrr@10"])
    verdict = "beats" if results["hybrid"]["mrr@10"] > best_single else "does NOT beat"
    print(f"\nhybrid {verdict} the best single mode on MRR@10 "
          f"({results['hybrid']['mrr@10']:.3f} vs {best_single:.3f})")
    if args.json:
        args.json.write_text(json.dumps({"documents": len(items), "chunks": stats["chunks"],
                                         "ingest_s": ingest_s, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
