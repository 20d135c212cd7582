"""Errors of the RAG layer: each names the file or document and says what to do."""

from __future__ import annotations

from ..errors import WorkbenchError


class RagError(WorkbenchError):
    """Base of every error the RAG layer raises on purpose."""


class CorpusError(RagError):
    """A corpus source cannot be read or has unusable documents."""


class ChunkingError(RagError):
    """A chunker configuration is invalid."""


class IndexIntegrityError(RagError):
    """An index version on disk is missing files, corrupted, or unreadable."""


class FingerprintMismatch(RagError):
    """The embedder rebuilt from an index no longer produces the vectors it was built with."""


class LabelError(RagError):
    """Relevance labels name documents the index does not contain."""
