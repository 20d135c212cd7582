"""Retrieval metrics depend on the retriever and the labelled query, never on the model's
answer: a row whose call failed keeps them, so retriever comparisons pair every query and
retrieval figures do not move with model failures. Answer scores stay unscored there."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import workbench as wb
from workbench.evaluation import stats
from workbench.rag.metrics import metrics_at_k, ranked_documents
from workbench.rag.recommendation import recommend
from workbench.rag.retriever_spec import LABELLED

from .llm_server import Faults
from .test_rag_retrieve import PROMPTS, QUERIES, build

RETRIEVERS = {"bm25-k1": {"index": "kb", "k": 1}, "lsa-k2": {"index": "kb-lsa@v1", "k": 2}}
FAILING = {"q4": "ending a loop early", "q5": "keys mapped to values"}
RETRIEVAL = [*LABELLED, "context_tokens"]


@pytest.fixture
def results(make_experiment, project, llm_server):
    build(project)
    folder = make_experiment("kb", rows=QUERIES, prompts=PROMPTS, retrievers=RETRIEVERS,
                             scorers=[{"type": "contains", "value": "try"}],
                             primary_metric="recall_at_k", baseline="bm25-k1")
    exp = wb.Experiment.from_yaml(folder)
    llm_server.faults = Faults(by_content={q: "context_window" for q in FAILING.values()})
    return exp, exp.run(progress=False, track=False)


def test_a_failed_call_keeps_the_retrieval_scores_of_its_query(results):
    exp, got = results
    frame = got.frame
    failed = frame[frame["error"].notna()]

    assert sorted(set(failed["example_id"])) == sorted(FAILING) and len(failed) == 4
    assert failed["score.contains"].isna().all()
    assert (failed["reason.contains"] == "not scored: the call failed").all()
    for variant in exp.variants:
        k = variant.retriever.spec.k
        rows = frame[frame["variant"] == variant.name].set_index("example_id")
        found = variant.retriever.retrieve(exp.evalset.examples)
        for example, retrieval in zip(exp.evalset.examples, found, strict=True):
            relevant = {"q2": {"lambda": 2}}.get(example.id, example.inputs["relevant"])
            expected = metrics_at_k(ranked_documents(retrieval.hits), relevant, k)
            assert rows.loc[example.id, "score.recall_at_k"] == expected[f"recall@{k}"]
            assert rows.loc[example.id, "score.ndcg_at_k"] == expected[f"ndcg@{k}"]
            assert rows.loc[example.id, "score.context_tokens"] == retrieval.context_tokens
    assert failed[[f"score.{m}" for m in RETRIEVAL]].notna().all().all()


def test_retrievers_are_compared_on_every_query_and_answers_on_the_answered_ones(results):
    _, got = results

    metrics = got.compare("bm25-k1", "lsa-k2").pairs[0].metrics

    assert {m: metrics[m].n_paired for m in RETRIEVAL} == dict.fromkeys(RETRIEVAL, 6)
    assert metrics["contains"].n_paired == 4


def test_retrieval_figures_do_not_move_with_model_failures(results):
    exp, got = results
    summary = got.summary()

    for variant in exp.variants:
        found = variant.retriever.retrieve(exp.evalset.examples)
        recalls = [r.scores["recall_at_k"] for r in found]
        assert summary.loc[variant.name, "recall_at_k"] == pytest.approx(sum(recalls) / 6)
        assert summary.loc[variant.name, "n_errors"] == 2
    assert recommend(got, margin=0.5).evidence["recall_at_k"].to_dict() == pytest.approx(
        {v.name: summary.loc[v.name, "recall_at_k"] for v in exp.variants})


def frame_with_failures() -> pd.DataFrame:
    """A retrieves better than B on e0..e9; B's calls failed on e0..e3, where its rows carry
    their retrieval score as the runner writes them, and no answer score."""
    rows = []
    for variant, recall in (("A", 1.0), ("B", 0.5)):
        for i in range(10):
            failed = variant == "B" and i < 4
            rows.append({"variant": variant, "example_id": f"e{i}", "repeat": 0,
                         "error": "ContextWindowExceeded" if failed else None,
                         "score.recall_at_k": recall,
                         "score.contains": math.nan if failed else float(i % 2)})
    return pd.DataFrame(rows)


def test_the_statistics_count_a_failed_call_by_the_score_it_carries():
    metrics = {"recall_at_k": "continuous", "contains": "binary"}

    pair = stats.compare(frame_with_failures(), "A", "B", metrics,
                         primary="recall_at_k").pairs[0]
    summary = stats.summarize(frame_with_failures(), metrics)

    assert pair.metrics["recall_at_k"].n_paired == 10 and pair.metrics["contains"].n_paired == 6
    assert pair.metrics["recall_at_k"].diff == pytest.approx(-0.5)
    # the failures as outcomes: a carried score is not replaced by the worst score
    assert pair.errors is not None and pair.errors.diff == pytest.approx(-0.5)
    assert summary.loc["B", "recall_at_k"] == 0.5 and summary.loc["B", "n_errors"] == 4


def test_the_gate_threshold_counts_a_failed_calls_retrieval_as_the_comparison_does():
    from workbench.evaluation.gate import _mean

    # B retrieved nothing relevant on the four queries whose calls failed: a threshold
    # reading only the answered rows would see a perfect 1.0
    frame = frame_with_failures()
    frame.loc[(frame["variant"] == "B") & frame["error"].isna(), "score.recall_at_k"] = 1.0
    frame.loc[(frame["variant"] == "B") & frame["error"].notna(), "score.recall_at_k"] = 0.0
    rows = frame[frame["variant"] == "B"]

    assert _mean(rows, "recall_at_k") == pytest.approx(0.6)
    assert _mean(rows, "contains") == pytest.approx(0.5)  # answers: the answered rows only
    summary = stats.summarize(frame, {"recall_at_k": "continuous", "contains": "binary"})
    assert summary.loc["B", "recall_at_k"] == pytest.approx(0.6)
