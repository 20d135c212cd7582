"""recommend(): the retriever with the fewest context tokens that is non-inferior on recall."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.rag.errors import RagError
from workbench.rag.recommendation import recommend
from workbench.results import Results

METRICS = {"recall_at_k": "continuous", "context_tokens": "continuous"}


def results(variants: dict[str, tuple[np.ndarray, float]]) -> Results:
    rows = []
    for name, (recall, tokens) in variants.items():
        for i, value in enumerate(recall):
            rows.append({"variant": name, "prompt": "p", "model": "m", "example_id": f"e{i}",
                         "repeat": 0, "output": "x", "error": None, "error_type": None,
                         "prompt_tokens": 1, "completion_tokens": 1, "cost": 0.0,
                         "latency_s": 0.1, "cached": False, "answered_by": "m", "retries": 0,
                         "fallback": False, "warning": None,
                         "score.recall_at_k": float(value), "reason.recall_at_k": "",
                         "score.context_tokens": tokens + i % 7, "reason.context_tokens": ""})
    return Results.from_rows(rows, metrics=METRICS, primary="recall_at_k",
                             lower_is_better=["context_tokens"])


RNG = np.random.default_rng(7)
BEST = RNG.choice([0.0, 0.5, 1.0], size=80, p=[0.1, 0.2, 0.7])
CLOSE = BEST.copy()
CLOSE[:3] = np.maximum(CLOSE[:3] - 0.5, 0)  # loses a little on three examples
POOR = np.where(np.arange(80) % 2 == 0, 0.0, BEST)  # loses half the examples


def test_the_cheapest_variant_within_the_margin_is_recommended_with_its_evidence():
    rec = recommend(results({"k5": (BEST, 800.0), "k3": (CLOSE, 450.0), "k1": (POOR, 150.0)}),
                    margin=0.1)

    assert (rec.best, rec.variant) == ("k5", "k3")
    assert list(rec.evidence.index) == ["k1", "k3", "k5"]  # fewest context tokens first
    assert not rec.evidence.loc["k1", "non_inferior"] and rec.evidence.loc["k3", "non_inferior"]
    assert rec.evidence.loc["k3", "bound"] > -0.1 > rec.evidence.loc["k1", "bound"]
    assert "k3: 453 context tokens per example (44% fewer than k5)" in str(rec)


def test_with_nothing_cheaper_non_inferior_the_best_is_recommended():
    rec = recommend(results({"k5": (BEST, 800.0), "k1": (POOR, 150.0)}), margin=0.05)
    assert rec.variant == rec.best == "k5"
    assert str(rec).startswith("k5: no variant with fewer context tokens")


def test_a_narrower_margin_can_refuse_the_cheaper_variant():
    rec = recommend(results({"k5": (BEST, 800.0), "k3": (CLOSE, 450.0)}), margin=0.02)
    assert rec.variant == "k5"


def test_results_without_retrieval_scores_are_refused():
    plain = results({"a": (BEST, 1.0), "b": (BEST, 1.0)})
    plain.frame = plain.frame.drop(columns=["score.context_tokens"])
    with pytest.raises(RagError, match="no 'context_tokens' scores"):
        recommend(plain)
