"""Query drift: are the queries being served still like the ones the index was evaluated on?

Two signals per time window, each against the labelled (eval-set) queries:

* **centroid distance**: 1 - cosine between the mean of the window's query vectors and the
  mean of the reference queries' vectors (in the index's own embedding space);
* **top-1 similarity**: the median score of the best chunk each query retrieved, against
  the reference queries' median; a drop means users ask about what the corpus lacks.

The thresholds come from the reference queries themselves: random halves of them give the
spread that sampling alone produces, and a window beyond ``factor`` times that spread is a
shift. An alert is a ``DriftAlert``, returned by ``check`` and delivered once per window
and signal through the observability layer (the log, the ledger's alert table with source
``rag``, ``webhook``), so ``observe.alerts()`` lists it as ``query_drift``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import RagError

if TYPE_CHECKING:
    from .index import Index

log = logging.getLogger("workbench.rag")


@dataclass(frozen=True)
class DriftAlert:
    """One window whose served queries moved away from the reference queries."""

    index: str
    window_start: float
    queries: int
    signal: str  # "centroid" or "top1"
    observed: float
    threshold: float

    @property
    def measure(self) -> str:
        return ("centroid distance" if self.signal == "centroid"
                else "drop in median top-1 similarity")

    def __str__(self) -> str:
        return (f"query drift on {self.index}: {self.measure} {self.observed:.3f} over "
                f"{self.queries} queries, above the {self.threshold:.3f} that sampling alone "
                "reaches")


class QueryDrift:
    """Served queries in time windows, compared with the reference queries of an index."""

    def __init__(self, index: Index, reference: Sequence[str], *, window_s: float = 3600.0,
                 min_queries: int = 20, factor: float = 2.0, seed: int = 0,
                 keep: int = 100_000, webhook: str | None = None) -> None:
        if len(reference) < 10:
            raise RagError(f"query drift needs at least 10 reference queries, got "
                           f"{len(reference)}; pass the labelled queries of the index")
        self.index, self.window_s, self.min_queries = index, window_s, min_queries
        self.webhook = webhook
        vectors = _dense(index.embedder.embed_queries(list(reference)))
        self.centroid = _unit(vectors.mean(axis=0))
        top1 = np.array([h[0].score if h else 0.0 for h in index.search_many(reference, k=1)])
        self.top1 = float(np.median(top1))
        self.thresholds = _thresholds(vectors, top1, factor, seed)
        self._served: deque[tuple[float, str, float]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def observe(self, query: str, top1: float, at: float | None = None) -> None:
        """Record one served query and its best chunk's score (cheap: no embedding here)."""
        with self._lock:
            self._served.append((time.time() if at is None else at, query, float(top1)))

    def windows(self) -> list[tuple[float, float, float, int]]:
        """Per window: start, centroid distance, drop in median top-1, number of queries."""
        with self._lock:
            served = list(self._served)
        by_window: dict[float, list[tuple[str, float]]] = {}
        for at, query, top1 in served:
            by_window.setdefault(at - at % self.window_s, []).append((query, top1))
        out = []
        for start, items in sorted(by_window.items()):
            vectors = _dense(self.index.embedder.embed_queries([q for q, _ in items]))
            distance = 1.0 - float(_unit(vectors.mean(axis=0)) @ self.centroid)
            drop = self.top1 - float(np.median([s for _, s in items]))
            out.append((start, distance, drop, len(items)))
        return out

    def check(self) -> list[DriftAlert]:
        """Windows with enough queries whose centroid moved, or whose top-1 fell, past the
        thresholds; each is delivered once (log, ledger, ``webhook``) on the first check
        that finds it."""
        alerts = []
        for start, distance, drop, n in self.windows():
            if n < self.min_queries:
                continue
            for signal, observed in (("centroid", distance), ("top1", drop)):
                if observed > self.thresholds[signal]:
                    alerts.append(DriftAlert(self.index.ref, start, n, signal, observed,
                                             self.thresholds[signal]))
        if alerts:
            self._deliver(alerts)
        return alerts

    def _deliver(self, alerts: list[DriftAlert]) -> None:
        from ..observe.alerting import deliver
        from ..observe.anomalies import Alert
        from ..observe.hook import default_ledger

        found = [Alert(kind="query_drift", key=f"index={a.index} signal={a.signal}",
                       start=a.window_start, end=a.window_start + self.window_s,
                       expected=a.threshold, observed=a.observed, unit=a.measure,
                       detail=f"over {a.queries} served queries; expected is the threshold "
                              "that sampling alone stays under") for a in alerts]
        try:
            deliver(found, default_ledger().store(), webhook=self.webhook, source="rag")
        except Exception as exc:  # the caller still gets the alerts; the log keeps them
            for alert in alerts:
                log.error("query drift alert not delivered (%s): %s", exc, alert)


def _thresholds(vectors: np.ndarray, top1: np.ndarray, factor: float, seed: int
                ) -> dict[str, float]:
    """``factor`` times the 95th percentile of each signal between random halves of the
    reference queries: what sampling alone produces."""
    rng = np.random.default_rng(seed)
    n = len(vectors)
    masks = np.argsort(rng.random((200, n)), axis=1) < n // 2
    half_a = masks @ vectors / masks.sum(axis=1, keepdims=True)
    half_b = ~masks @ vectors / (~masks).sum(axis=1, keepdims=True)
    cosine = np.sum(_unit(half_a) * _unit(half_b), axis=1)
    drops = np.abs(np.array([np.median(top1[m]) - np.median(top1[~m]) for m in masks]))
    return {"centroid": factor * float(np.percentile(1 - cosine, 95)),
            "top1": factor * float(np.percentile(drops, 95))}


def _dense(vectors: object) -> np.ndarray:
    dense = vectors.toarray() if hasattr(vectors, "toarray") else vectors
    return np.asarray(dense, dtype=np.float64)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
