"""Retrieval for a served prompt: ``PromptService(..., index="kb@production")``.

The index version is resolved (an alias through the index registry) and loaded, with its
files and embedder fingerprint verified, when the service starts, so a request never waits
for the registry or a disk read. Each request searches the index for its query variable,
fills ``{{context}}`` with the passages, and answers with the documents it used. With a
``drift`` monitor, every served query is also recorded for the query-drift check.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TemplateError

if TYPE_CHECKING:
    from ..rag.drift import QueryDrift
    from ..rag.index import Index

CONTEXT = "context"


@dataclass(frozen=True)
class Retrieved:
    """What one request retrieved: the variables with ``context`` filled, the sources, the
    seconds the search took."""

    variables: dict[str, Any]
    sources: tuple[str, ...]
    seconds: float


class ServedIndex:
    """One index version searched on the request path; ``reload()`` re-resolves its alias."""

    def __init__(self, ref: str, *, k: int = 5, query_variable: str = "query",
                 root: str | Path | None = None, drift: QueryDrift | None = None) -> None:
        self.ref, self.k, self.query_variable = ref, k, query_variable
        self.root, self.drift = root, drift
        self.index: Index = self._load()

    def _load(self) -> Index:
        from ..rag.aliases import resolve_alias
        from ..rag.index import load_index

        return load_index(resolve_alias(self.ref, root=self.root), root=self.root)

    def reload(self) -> str:
        """Load the version the reference names now (after an alias move); returns its ref."""
        self.index = self._load()
        return self.index.ref

    def fill(self, variables: Mapping[str, Any]) -> Retrieved:
        """Search for the query variable and put the passages into ``context``."""
        from ..rag.retrieve import format_context

        started = time.perf_counter()
        query = variables.get(self.query_variable)
        if not isinstance(query, str) or not query.strip():
            raise TemplateError(f"index {self.ref}: the request needs the text to search for "
                                f"in the variable {self.query_variable!r}")
        if CONTEXT in variables:
            raise TemplateError(f"index {self.ref}: 'context' is filled by retrieval; do not "
                                "pass it as a variable")
        index = self.index  # a reload meanwhile does not mix two versions in one request
        hits = index.search(query, k=self.k)
        if self.drift is not None:
            self.drift.observe(query, hits[0].score if hits else 0.0)
        return Retrieved({**variables, CONTEXT: format_context(hits)},
                         tuple(dict.fromkeys(h.doc_id for h in hits)),
                         time.perf_counter() - started)

    def __repr__(self) -> str:
        return f"ServedIndex({self.ref!r} -> {self.index.ref}, k={self.k})"


def retrieve(served: ServedIndex | None, variables: Mapping[str, Any]) -> Retrieved:
    """The request's variables unchanged when the service has no index."""
    if served is None:
        return Retrieved(dict(variables), (), 0.0)
    return served.fill(variables)


def served_index(index: str | ServedIndex | None, **options: Any) -> ServedIndex | None:
    if index is None or isinstance(index, ServedIndex):
        return index
    return ServedIndex(index, **options)
