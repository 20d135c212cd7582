"""Retrievers as experiment variants: the matrix, the context sent, the labelled scores,
paired comparisons between retrievers, and the mistakes refused when the experiment loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import workbench as wb
from workbench.errors import SpecError
from workbench.rag import Corpus, Document, build_index, update_index
from workbench.rag.index import Hit
from workbench.rag.metrics import metrics_at_k, ranked_documents
from workbench.rag.retrieve import fuse

from .rag_topics import TOPICS

QUERIES = [
    {"id": "q1", "query": "which clause catches exceptions", "relevant": ["try"]},
    {"id": "q2", "query": "anonymous functions", "relevant": {"lambda": 2, "dict": None}},
    {"id": "q3", "query": "closing files automatically", "relevant": ["with"]},
    {"id": "q4", "query": "ending a loop early", "relevant": ["for"]},
    {"id": "q5", "query": "keys mapped to values", "relevant": ["dict", "for"]},
    {"id": "q6", "query": "exception handlers and finally", "relevant": ["try"]},
]
CHUNKER = {"size": 16, "overlap": 0}
PROMPTS = {"rag": {"messages": [{"role": "system", "content": "Use the passages."},
                                {"role": "user", "content": "{{context}}\n\nQ: {{query}}"}]}}
RETRIEVERS = {"bm25-k1": {"index": "kb", "k": 1}, "lsa-k2": {"index": "kb-lsa@v1", "k": 2},
              "hybrid": {"index": ["kb", "kb-lsa"], "k": 2}}


def build(project: Path, topics: dict[str, str] = TOPICS) -> None:
    root = project / ".workbench" / "indexes"
    kb = Corpus([Document(k, v) for k, v in topics.items()])
    build_index(kb, name="kb", chunker=CHUNKER, embedder="bm25", root=root, track=False)
    build_index(kb, name="kb-lsa", chunker=CHUNKER, embedder="lsa", root=root, track=False)


@pytest.fixture
def rag_experiment(make_experiment, project):
    build(project)

    def make(**overrides):
        spec = {"retrievers": RETRIEVERS, "scorers": [{"type": "contains", "value": "try"}],
                "primary_metric": "recall_at_k", "baseline": "bm25-k1", **overrides}
        return make_experiment("kb", rows=QUERIES, prompts=PROMPTS, **spec)

    return make


def test_the_matrix_is_retrievers_by_prompts_by_models(rag_experiment):
    exp = wb.Experiment.from_yaml(rag_experiment())

    assert [v.name for v in exp.variants] == ["bm25-k1", "lsa-k2", "hybrid"]
    assert [v.retriever.refs for v in exp.variants] == [["kb@v1"], ["kb-lsa@v1"],
                                                       ["kb@v1", "kb-lsa@v1"]]
    sent = exp.preview("bm25-k1", "q1")[1]["content"]
    assert sent.startswith("[1] (try) ") and sent.endswith("Q: which clause catches exceptions")


def test_one_retriever_keeps_the_names_of_prompt_and_model_variants(rag_experiment):
    exp = wb.Experiment.from_yaml(rag_experiment(retrievers={"only": {"index": "kb"}},
                                                 baseline=None))
    assert [v.name for v in exp.variants] == ["rag"]


def test_a_run_sends_the_context_and_scores_each_retrieval(rag_experiment, llm_server):
    exp = wb.Experiment.from_yaml(rag_experiment())
    results = exp.run(progress=False, track=False)
    frame = results.frame

    assert len(frame) == 18 and frame["error"].isna().all()
    sent = [json.dumps(body["messages"]) for body in llm_server.requests]
    assert any("(lambda) Lambda expressions" in s for s in sent)
    for variant in exp.variants:
        retrieved = variant.retriever.retrieve(exp.evalset.examples)
        rows = frame[frame["variant"] == variant.name].set_index("example_id")
        for example, found in zip(exp.evalset.examples, retrieved, strict=True):
            relevant = {"q2": {"lambda": 2}}.get(example.id, example.inputs["relevant"])
            k = variant.retriever.spec.k
            expected = metrics_at_k(ranked_documents(found.hits), relevant, k)
            assert rows.loc[example.id, "score.recall_at_k"] == expected[f"recall@{k}"]
            assert rows.loc[example.id, "score.ndcg_at_k"] == expected[f"ndcg@{k}"]
            assert rows.loc[example.id, "score.mrr"] == expected[f"mrr@{k}"]
            assert rows.loc[example.id, "score.context_tokens"] == sum(
                c.tokens for c in variant.retriever.indexes[0].chunks
                if (c.doc_id, c.start) in {(h.doc_id, h.start) for h in found.hits})


def test_retrievers_are_compared_paired_with_context_tokens_lower_is_better(rag_experiment):
    results = wb.Experiment.from_yaml(rag_experiment()).run(progress=False, track=False)
    report = results.compare("bm25-k1", "lsa-k2")
    rows = report.pairs[0].metrics

    assert {"recall_at_k", "precision_at_k", "hit_at_k", "mrr", "ndcg_at_k",
            "context_tokens"} <= set(rows)
    assert rows["recall_at_k"].n_paired == 6 and rows["hit_at_k"].kind == "binary"
    assert not rows["context_tokens"].higher_is_better and rows["recall_at_k"].higher_is_better


def test_scorers_receive_the_retrieved_context(rag_experiment):
    seen = {}

    @wb.scorer
    def grounded(output, inputs):
        seen.setdefault(inputs["id"], []).append(inputs["context"])
        return True

    exp = wb.Experiment(wb.Experiment.from_yaml(rag_experiment()).spec, extra_scorers=[grounded])
    exp.run(progress=False, track=False)

    assert seen["q1"][0].startswith("[1] (try)") and len(seen["q1"]) == 3


def test_a_judge_reads_the_retrieved_context_field(rag_experiment, llm_server):
    judge = {"type": "faithfulness", "question": "query",
             "model": {"model": "openai/judge", "api_base": llm_server.base_url}}
    exp = wb.Experiment.from_yaml(rag_experiment(scorers=[judge]))
    exp.run(progress=False, track=False, limit=1)

    asked = [json.dumps(b["messages"]) for b in llm_server.requests if b["model"] == "judge"]
    assert len(asked) == 3 and all("<context>\\n[1] (try)" in a for a in asked)


def test_each_example_is_retrieved_once_per_retriever(rag_experiment, monkeypatch):
    exp = wb.Experiment.from_yaml(rag_experiment())
    calls = []
    retriever = exp.retrievers["lsa-k2"]
    original = retriever.search_many
    monkeypatch.setattr(retriever, "search_many", lambda qs: calls.append(qs) or original(qs))
    exp.run(progress=False, track=False)
    exp.preview("lsa-k2", "q3")
    assert calls == []  # every example was retrieved when the experiment loaded


@pytest.mark.parametrize(("changes", "field", "text"), [
    ({"retrievers": {"a": {"index": "nope"}}}, "retrievers.a.index", "no index named 'nope'"),
    ({"retrievers": {"a": {"index": "kb@v7"}}}, "retrievers.a.index", "has no version 'v7'"),
    ({"retrievers": {"a": {"index": "kb", "kk": 3}}}, "retrievers.a.kk", "did you mean `k`"),
    ({"retrievers": {"a": {"index": "kb", "k": 0}}}, "retrievers.a.k", "greater than"),
    ({"retrievers": {"a": {"index": "kb", "query_field": "question"}}},
     "retrievers.a.query_field", "'question' is not a field"),
    ({"retrievers": {"a": {"index": "kb", "relevant_field": "gold"}}},
     "retrievers.a.relevant_field", "relevant_field: null"),
    ({"retrievers": {"a": {"index": ["kb", "kb-lsa"], "weights": [1]}}},
     "retrievers.a.weights", "1 weights for 2 indexes"),
    ({"retrievers": {}, "primary_metric": "contains"}, "prompts.rag", "no retrievers"),
    ({"retrievers": {}}, "primary_metric", "'recall_at_k' is not a scorer"),
])
def test_mistakes_are_refused_when_the_experiment_loads(rag_experiment, changes, field, text):
    with pytest.raises(SpecError, match=text) as caught:
        wb.Experiment.from_yaml(rag_experiment(**{"baseline": None, **changes}))
    assert caught.value.field == field


def test_a_prompt_without_context_is_refused_when_retrievers_are_given(make_experiment,
                                                                       project):
    build(project)
    folder = make_experiment("kb", rows=QUERIES, retrievers={"a": {"index": "kb"}},
                             prompts={"p": {"template": "Q: {{query}}"}}, baseline=None,
                             scorers=[{"type": "contains", "value": "x"}],
                             primary_metric="contains")
    with pytest.raises(SpecError, match="no prompt uses"):
        wb.Experiment.from_yaml(folder)


def test_labels_for_a_document_removed_from_the_index_are_refused(rag_experiment, project):
    folder = rag_experiment(retrievers={"a": {"index": "kb"}}, baseline=None)
    update_index("kb", Corpus([Document(k, v) for k, v in TOPICS.items() if k != "with"]),
                 root=project / ".workbench" / "indexes", track=False)

    with pytest.raises(SpecError, match=r"q3: with \(removed from the corpus by kb@v2\)"):
        wb.Experiment.from_yaml(folder)


def test_an_example_without_labels_is_refused(rag_experiment, make_experiment):
    folder = rag_experiment(retrievers={"a": {"index": "kb"}}, baseline=None)
    rows = [*QUERIES, {"id": "q7", "query": "loops", "relevant": []}]
    (folder / "data" / "tickets.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(SpecError, match="1 example.s. have no relevant ids.*q7"):
        wb.Experiment.from_yaml(folder)


def hits(*docs: str) -> list[Hit]:
    return [Hit(d, 0, 1, float(10 - n), d) for n, d in enumerate(docs)]


def test_reciprocal_rank_fusion_favours_documents_both_lists_rank_well():
    fused = fuse([hits("a", "b", "c"), hits("d", "b", "c")], [1.0, 1.0], "rrf", 3)
    assert [h.doc_id for h in fused] == ["b", "c", "a"]
    assert fused[0].score == pytest.approx(2 / 62)


def test_minmax_fusion_weights_the_scaled_scores():
    first = [Hit("a", 0, 1, 9.0, ""), Hit("b", 0, 1, 5.0, ""), Hit("c", 0, 1, 1.0, "")]
    second = [Hit("c", 0, 1, 0.9, ""), Hit("a", 0, 1, 0.1, "")]
    fused = fuse([first, second], [0.3, 0.7], "minmax", 2)
    assert [(h.doc_id, round(h.score, 6)) for h in fused] == [("c", 0.7), ("a", 0.3)]


def test_an_eval_set_context_column_conflicts_with_retrievers_but_serves_without(
        make_experiment, project):
    build(project)
    rows = [{**q, "context": "given"} for q in QUERIES]
    with pytest.raises(SpecError, match="has a 'context' field"):
        wb.Experiment.from_yaml(make_experiment(
            "kb", rows=rows, prompts=PROMPTS, retrievers={"a": {"index": "kb"}}, baseline=None,
            scorers=[{"type": "contains", "value": "x"}], primary_metric="contains"))
    plain = wb.Experiment.from_yaml(make_experiment(
        "kb2", rows=rows, prompts=PROMPTS, baseline=None,
        scorers=[{"type": "contains", "value": "x"}], primary_metric="contains"))
    assert plain.preview("rag", "q1")[1]["content"].startswith("given")
