"""Split documents into chunks that remember where they came from.

Chunking is done by ``chonkie`` (token windows, sentence packing, recursive splitting at
Markdown headings), which reports exact character offsets; every chunk keeps
``(doc_id, start, end)`` so that relevance labels given per document or per span still
apply after the corpus is chunked differently.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from .._optional import optional_import
from .corpus import Document
from .errors import ChunkingError

Strategy = Literal["tokens", "sentences", "markdown"]
STRATEGIES = ("tokens", "sentences", "markdown")
# chonkie's "word" tokenizer drifts: its offsets lose the spaces between words
_PLAIN_TOKENIZERS = ("character",)


@dataclass(frozen=True)
class Chunk:
    """A span ``text == document.text[start:end]`` of one document."""

    doc_id: str
    start: int
    end: int
    text: str
    tokens: int

    @property
    def id(self) -> str:
        return f"{self.doc_id}:{self.start}-{self.end}"


@dataclass(frozen=True)
class ChunkerConfig:
    """How to chunk: ``size`` and ``overlap`` count tokens of ``tokenizer``.

    ``tokenizer`` is a tiktoken encoding (``cl100k_base``, counted as most chat models
    count context) or ``character``. Markdown sections do not overlap: they are cut
    at headings first, then paragraphs and sentences, and packed up to ``size``.
    """

    strategy: Strategy = "tokens"
    size: int = 256
    overlap: int = 32
    tokenizer: str = "cl100k_base"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ChunkingError(f"chunker strategy {self.strategy!r} is unknown; use one of "
                                f"{', '.join(STRATEGIES)}")
        if not isinstance(self.size, int) or self.size < 8:
            raise ChunkingError(f"chunker size {self.size!r} is too small; use at least 8 "
                                "tokens")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.size:
            raise ChunkingError(f"chunker overlap {self.overlap!r} must be at least 0 and "
                                f"below size ({self.size})")
        if self.strategy == "markdown" and self.overlap:
            raise ChunkingError("markdown sections do not overlap; set overlap to 0 or use "
                                "strategy 'tokens' or 'sentences'")

    @classmethod
    def parse(cls, value: ChunkerConfig | Mapping[str, Any] | None) -> ChunkerConfig:
        if isinstance(value, ChunkerConfig):
            return value
        value = dict(value or {})
        unknown = sorted(set(value) - {"strategy", "size", "overlap", "tokenizer"})
        if unknown:
            raise ChunkingError(f"unknown chunker option(s) {unknown}; the options are "
                                "strategy, size, overlap, tokenizer")
        if value.get("strategy") == "markdown":
            value.setdefault("overlap", 0)
        return cls(**value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def chunk_documents(documents: Iterable[Document], config: ChunkerConfig | Mapping[str, Any]
                    | None = None) -> list[Chunk]:
    """Chunks of every document, in document order; empty documents give none."""
    config = ChunkerConfig.parse(config)
    chunker = _chunker(config)
    out: list[Chunk] = []
    for doc in documents:
        if not doc.text.strip():
            continue
        for piece in chunker.chunk(doc.text):
            out.append(Chunk(doc.id, piece.start_index, piece.end_index,
                             doc.text[piece.start_index:piece.end_index], piece.token_count))
    return out


@lru_cache(maxsize=16)
def _chunker(config: ChunkerConfig) -> Any:
    chonkie = optional_import("chonkie", "rag", "chunking")
    RecursiveChunker, SentenceChunker, TokenChunker = (
        chonkie.RecursiveChunker, chonkie.SentenceChunker, chonkie.TokenChunker)

    tokenizer = _tokenizer(config.tokenizer)
    if config.strategy == "tokens":
        return TokenChunker(tokenizer=tokenizer, chunk_size=config.size,
                            chunk_overlap=config.overlap)
    if config.strategy == "sentences":
        return SentenceChunker(tokenizer=tokenizer, chunk_size=config.size,
                               chunk_overlap=config.overlap)
    return RecursiveChunker(tokenizer=tokenizer, chunk_size=config.size, rules=_markdown_rules())


def _markdown_rules() -> Any:
    from chonkie.types.recursive import RecursiveLevel, RecursiveRules

    headings = [f"\n{'#' * n} " for n in range(1, 7)]
    return RecursiveRules(levels=[
        RecursiveLevel(delimiters=headings, include_delim="next"),
        RecursiveLevel(delimiters=["\n\n", "\n"]),
        RecursiveLevel(delimiters=[". ", "! ", "? "]),
        RecursiveLevel(whitespace=True),
        RecursiveLevel(),
    ])


def _tokenizer(name: str) -> Any:
    if name in _PLAIN_TOKENIZERS:
        return name
    import tiktoken

    _use_bundled_tiktoken_files()
    try:
        return tiktoken.get_encoding(name)
    except ValueError as exc:
        raise ChunkingError(f"tokenizer {name!r} is unknown; use a tiktoken encoding such as "
                            f"cl100k_base, or one of {', '.join(_PLAIN_TOKENIZERS)}") from exc
    except Exception as exc:  # tiktoken downloads encodings it has not cached
        raise ChunkingError(f"tokenizer {name!r} is not available offline ({exc}); use "
                            "cl100k_base or 'character'") from exc


def _use_bundled_tiktoken_files() -> None:
    """Point tiktoken at the encodings litellm ships, as litellm itself does on import,
    without importing litellm (seconds)."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    spec = importlib.util.find_spec("litellm")
    if spec and spec.submodule_search_locations:
        bundled = Path(spec.submodule_search_locations[0]) / "litellm_core_utils" / "tokenizers"
        if bundled.is_dir():
            os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)
