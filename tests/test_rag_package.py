"""The RAG surface: small, lazily loaded, reachable as ``wb.rag``."""

from __future__ import annotations

import subprocess
import sys

import workbench as wb

HEAVY = ("numpy", "pandas", "chonkie", "sklearn", "bm25s", "mlflow", "datasets")


def test_importing_the_rag_package_loads_no_heavy_library():
    code = ("import sys, workbench, workbench.rag; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""


def test_the_public_names():
    assert wb.rag.__all__ == [
        "BM25Embedder", "Chunk", "ChunkerConfig", "Corpus", "Document", "Embedder",
        "FreshnessStatus", "Hit", "Index", "LSAEmbedder", "LabelledQuery", "RagError",
        "Recommendation", "build_index", "chunk_documents", "evaluate", "load_index",
        "load_queries", "metrics_at_k", "recommend", "status", "update_index"]
    for name in wb.rag.__all__:
        assert getattr(wb.rag, name) is not None
    assert issubclass(wb.rag.RagError, wb.WorkbenchError)


def test_every_public_function_stays_callable_after_its_module_is_imported():
    """A submodule named like a public function would replace it on the package."""
    import importlib

    for name in wb.rag.__all__:
        importlib.import_module(wb.rag._LAZY[name], "workbench.rag")
        assert not isinstance(getattr(wb.rag, name), type(importlib)), name
