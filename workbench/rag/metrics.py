"""Labelled retrieval metrics per query: precision@k, recall@k, hit@k, MRR and nDCG@k.

Definitions follow trec_eval (so they equal ``ir-measures`` to 1e-9): precision divides by
``k`` even when fewer were retrieved; MRR is the reciprocal rank of the first relevant
item within the top ``k``; nDCG uses the graded relevance as a linear gain. Rankings are
of documents: the chunks a query retrieved count once per document, at the rank of its
best chunk. Labels may instead be spans of documents; a chunk then counts when it overlaps
a labelled span not already covered by a better-ranked chunk.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LabelError

if TYPE_CHECKING:
    import pandas as pd

    from .index import Hit, Index

Relevance = Mapping[str, float] | Collection[str]


def _graded(relevant: Relevance) -> dict[str, float]:
    if isinstance(relevant, Mapping):
        return {str(k): float(v) for k, v in relevant.items() if v > 0}
    return {str(d): 1.0 for d in relevant}


def precision_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    rel = _graded(relevant)
    return sum(1 for d in ranked[:k] if d in rel) / k


def recall_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    rel = _graded(relevant)
    return sum(1 for d in ranked[:k] if d in rel) / len(rel) if rel else 0.0


def hit_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    rel = _graded(relevant)
    return float(any(d in rel for d in ranked[:k]))


def reciprocal_rank(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    rel = _graded(relevant)
    return next((1.0 / rank for rank, d in enumerate(ranked[:k], 1) if d in rel), 0.0)


def ndcg_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    rel = _graded(relevant)
    dcg = sum(rel.get(d, 0.0) / math.log2(rank + 1) for rank, d in enumerate(ranked[:k], 1))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))
    return dcg / idcg if idcg else 0.0


METRICS = {"precision": precision_at_k, "recall": recall_at_k, "hit": hit_at_k,
           "mrr": reciprocal_rank, "ndcg": ndcg_at_k}


def metrics_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> dict[str, float]:
    """Every metric at ``k``, named ``<metric>@<k>``."""
    return {f"{name}@{k}": fn(ranked, relevant, k) for name, fn in METRICS.items()}


def ranked_documents(hits: Sequence[Hit]) -> list[str]:
    """Document ids in the order of their best-ranked chunk."""
    return list(dict.fromkeys(h.doc_id for h in hits))


def ranked_spans(hits: Sequence[Hit], spans: Sequence[tuple[str, int, int]]) -> list[str]:
    """Hits as span ids: a hit takes the first labelled span it overlaps that no earlier
    hit covered; other hits get a unique non-relevant id, so they still take a rank."""
    covered: set[int] = set()
    out = []
    for rank, hit in enumerate(hits):
        match = next((n for n, (doc, start, end) in enumerate(spans) if n not in covered
                      and doc == hit.doc_id and hit.start < end and start < hit.end), None)
        if match is None:
            out.append(f"\0miss{rank}")
        else:
            covered.add(match)
            out.append(f"span{match}")
    return out


@dataclass(frozen=True)
class LabelledQuery:
    """A query and what should be retrieved: document ids (optionally graded) or spans."""

    id: str
    query: str
    relevant: Mapping[str, float] = field(default_factory=dict)
    spans: tuple[tuple[str, int, int], ...] = ()

    def documents(self) -> set[str]:
        return set(self.relevant) | {doc for doc, _, _ in self.spans}


def load_queries(path: str | Path) -> list[LabelledQuery]:
    """Queries from jsonl rows ``{"id", "query", "relevant": [ids] | {id: grade}}``
    (or ``"spans": [[doc_id, start, end], ...]``)."""
    path = Path(path)
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            relevant = row.get("relevant", [])
            out.append(LabelledQuery(
                str(row.get("id", line_no)), row["query"], _graded(relevant),
                tuple((str(d), int(s), int(e)) for d, s, e in row.get("spans", []))))
        except (ValueError, KeyError, TypeError) as exc:
            raise LabelError(f"{path}:{line_no}: not a labelled query ({exc}); write "
                             '{"id": ..., "query": ..., "relevant": [doc ids]}') from exc
        if not out[-1].documents():
            raise LabelError(f"{path}:{line_no}: query {out[-1].id!r} has no relevant "
                             "documents or spans")
    return out


def check_labels(queries: Sequence[LabelledQuery], index: Index) -> None:
    """Refuse labels that name documents the index does not hold: they would score as
    misses forever and drag every variant's recall down alike."""
    known = index.doc_ids
    removed = set((index.manifest.get("incremental") or {}).get("removed", []))
    missing = {q.id: sorted(q.documents() - known) for q in queries if q.documents() - known}
    if missing:
        def name(doc: str) -> str:
            return f"{doc} (removed from the corpus by {index.ref})" if doc in removed else doc

        listed = "; ".join(f"{qid}: {', '.join(map(name, docs))}"
                           for qid, docs in list(missing.items())[:5])
        more = f" (and {len(missing) - 5} more queries)" if len(missing) > 5 else ""
        raise LabelError(f"labels name documents that are not in index {index.ref}: {listed}"
                         f"{more}; fix the labels, or rebuild the index from a corpus that "
                         "has these documents")


def evaluate(index: Index, queries: Sequence[LabelledQuery], *, ks: Sequence[int] = (1, 3, 5, 10)
             ) -> pd.DataFrame:
    """One row per query with every metric at every k (means: ``frame.mean(numeric_only=True)``)."""
    import pandas as pd

    check_labels(queries, index)
    depth = max(ks)
    # enough chunks to fill ``depth`` distinct documents in the usual case
    hits_per_query = index.search_many([q.query for q in queries], k=depth * 8)
    rows: list[dict[str, Any]] = []
    for q, hits in zip(queries, hits_per_query, strict=True):
        row: dict[str, Any] = {"id": q.id, "query": q.query}
        if q.spans:
            ranked, relevant = ranked_spans(hits, q.spans), [f"span{n}" for n in
                                                             range(len(q.spans))]
        else:
            ranked, relevant = ranked_documents(hits), q.relevant
        for k in ks:
            row.update(metrics_at_k(ranked, relevant, k))
        row["retrieved"] = ranked_documents(hits)[:depth]
        rows.append(row)
    return pd.DataFrame(rows)
