"""RAG operations: corpora, chunking, embedders, versioned indexes, retrieval metrics,
retrievers as experiment variants, recommendations and freshness. Everything loads on
first use, so ``import workbench`` stays quick."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Corpus": ".corpus",
    "Document": ".corpus",
    "Chunk": ".chunking",
    "ChunkerConfig": ".chunking",
    "chunk_documents": ".chunking",
    "Embedder": ".embedders",
    "BM25Embedder": ".embedders",
    "LSAEmbedder": ".embedders",
    "Index": ".index",
    "Hit": ".index",
    "build_index": ".index",
    "update_index": ".index",
    "load_index": ".index",
    "status": ".freshness",
    "FreshnessStatus": ".freshness",
    "LabelledQuery": ".metrics",
    "load_queries": ".metrics",
    "evaluate": ".metrics",
    "metrics_at_k": ".metrics",
    "RagError": ".errors",
    "Recommendation": ".recommendation",
    "recommend": ".recommendation",
}

__all__ = [
    "BM25Embedder",
    "Chunk",
    "ChunkerConfig",
    "Corpus",
    "Document",
    "Embedder",
    "FreshnessStatus",
    "Hit",
    "Index",
    "LSAEmbedder",
    "LabelledQuery",
    "RagError",
    "Recommendation",
    "build_index",
    "chunk_documents",
    "evaluate",
    "load_index",
    "load_queries",
    "metrics_at_k",
    "recommend",
    "status",
    "update_index",
]

if TYPE_CHECKING:
    from .chunking import Chunk, ChunkerConfig, chunk_documents
    from .corpus import Corpus, Document
    from .embedders import BM25Embedder, Embedder, LSAEmbedder
    from .errors import RagError
    from .freshness import FreshnessStatus, status
    from .index import Hit, Index, build_index, load_index, update_index
    from .metrics import LabelledQuery, evaluate, load_queries, metrics_at_k
    from .recommendation import Recommendation, recommend


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench.rag' has no attribute {name!r}")
