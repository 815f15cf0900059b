"""host.rag: memory for mods — SQLite FTS5 (BM25) + dense embeddings through llama.cpp, fused by RRF.

Typical use, all on the inference worker thread::

    embedder = Embedder(embed_model_path())    # all-MiniLM-L6-v2 (or $RELIC_EMBED_MODEL), from host.setup
    store = Store.open(path, embedder)         # one SQLite file per store
    store.add("npc:guard", "The guard ...", {"kind": "npc"})
    hits = store.search("who guards the gate?", k=5, mode="hybrid")
    text = format_context(hits, 300, chat_model.vocab.count)
"""

from host.rag.chunking import Chunk, chunk_text
from host.rag.embed import Embedder
from host.rag.fusion import fts_query, reciprocal_rank_fusion
from host.rag.prompt import format_context
from host.rag.store import MODES, Store

__all__ = ["MODES", "Chunk", "Embedder", "Store", "chunk_text", "format_context", "fts_query",
           "reciprocal_rank_fusion"]
