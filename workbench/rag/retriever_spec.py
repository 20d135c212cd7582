"""The ``retrievers:`` entries of ``experiment.yaml`` and the scores they add.

Kept apart from :mod:`workbench.rag.retrieve` so the experiment spec can validate them
without importing retrieval (which in turn reads the spec).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

# metric name -> (name in metrics_at_k, kind); '@' is not allowed in MLflow metric names
LABELLED = {"precision_at_k": ("precision", "continuous"), "recall_at_k": ("recall", "continuous"),
            "hit_at_k": ("hit", "binary"), "mrr": ("mrr", "continuous"),
            "ndcg_at_k": ("ndcg", "continuous")}
CONTEXT_TOKENS = "context_tokens"


class RetrieverSpec(BaseModel):
    """One ``retrievers:`` entry: which index version(s), how many chunks, how to fuse."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # "name", "name@v3" or "name@latest"; a list of indexes is hybrid retrieval (fused)
    index: str | list[str]
    k: int = Field(default=5, ge=1, le=200)
    # rrf: reciprocal rank fusion; minmax: per-query min-max scaled scores, weighted
    fusion: Literal["rrf", "minmax"] = "rrf"
    weights: list[float] | None = None
    query_field: str = "query"
    # the eval-set field with the relevant document ids (a list, or {id: grade});
    # null runs without labelled metrics
    relevant_field: str | None = "relevant"

    @field_validator("index")
    @classmethod
    def _some_index(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("give an index name, or a list of indexes to fuse")
        return value

    @property
    def indexes(self) -> list[str]:
        return [self.index] if isinstance(self.index, str) else list(self.index)

    @property
    def method(self) -> str:
        return f"hybrid-{self.fusion}" if len(self.indexes) > 1 else "search"


class WithRetrievers(Protocol):
    """What :func:`metric_names` reads of an ``ExperimentSpec``."""

    @property
    def retrievers(self) -> Mapping[str, RetrieverSpec]: ...


def metric_names(spec: WithRetrievers) -> list[str]:
    """The scores retrievers add: labelled metrics when every retriever has labels."""
    if not spec.retrievers:
        return []
    labelled = all(r.relevant_field is not None for r in spec.retrievers.values())
    return [*(LABELLED if labelled else ()), CONTEXT_TOKENS]
