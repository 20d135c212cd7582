"""The RAG panel as an object: index versions with freshness, recall by cutoff with CIs,
missed relevant documents per query, and the recommendation."""

from __future__ import annotations

import pytest

import workbench as wb

from .test_rag_retrieve import rag_experiment  # noqa: F401  (the fixture)

pytest.importorskip("workbench.ui")


def test_the_panel_shows_indexes_curves_misses_and_the_recommendation(rag_experiment):  # noqa: F811
    from workbench.ui.rag import RagPanel, recall_curves

    exp = wb.Experiment.from_yaml(rag_experiment())
    panel = RagPanel(exp, exp.run(progress=False, track=False), margin=0.5)

    assert panel.status.value == ""
    assert "kb@v1" in panel.indexes.value and "kb-lsa@v1" in panel.indexes.value
    assert "unknown" in panel.indexes.value  # built from records: no corpus to re-read
    curves = recall_curves(exp)
    assert list(curves.index) == [("bm25-k1", 1), ("lsa-k2", 1), ("lsa-k2", 2),
                                  ("hybrid", 1), ("hybrid", 2)]
    assert (curves["ci_low"] <= curves["recall"]).all()
    assert (curves["recall"] <= curves["ci_high"]).all()
    assert panel.chart.value.startswith("<svg") and "var(--jp-" in panel.chart.value
    # the 2-chunk curve ends where the run's recall_at_k mean is
    frame = panel.results.frame
    run_mean = frame[frame["variant"] == "lsa-k2"]["score.recall_at_k"].mean()
    assert curves.loc[("lsa-k2", 2), "recall"] == pytest.approx(run_mean)
    panel.variant.value = "bm25-k1"
    assert "q5" in panel.misses.value  # two relevant topics cannot both fit in one chunk
    assert "context tokens per example" in panel.recommendation.value or \
        "no variant with fewer context tokens" in panel.recommendation.value
