"""Retrieval metrics per query equal trec_eval's (through ir-measures), and labels that
name documents the index lacks are refused."""

from __future__ import annotations

import json
import random

import pytest

from workbench.rag import Corpus, Document, build_index
from workbench.rag.errors import LabelError
from workbench.rag.index import Hit
from workbench.rag.metrics import (
    LabelledQuery,
    check_labels,
    evaluate,
    load_queries,
    metrics_at_k,
    ranked_documents,
    ranked_spans,
)


def random_cases(n: int, seed: int = 17):
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(40)]
    for q in range(n):
        relevant = {d: rng.choice([1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 6))}
        ranked = rng.sample(docs, rng.randint(0, 25))
        yield f"q{q}", ranked, relevant


@pytest.mark.parametrize("k", [1, 3, 5, 10, 20])
def test_metrics_equal_trec_eval_to_1e_9(k):
    import ir_measures
    from ir_measures import RR, Success, nDCG
    from ir_measures import P as Precision
    from ir_measures import R as Recall

    cases = list(random_cases(200))
    qrels = [ir_measures.Qrel(q, d, g) for q, _, rel in cases for d, g in rel.items()]
    run = [ir_measures.ScoredDoc(q, d, float(len(ranked) - i))
           for q, ranked, _ in cases for i, d in enumerate(ranked)]
    names = {Precision @ k: "precision", Recall @ k: "recall", Success @ k: "hit",
             RR @ k: "mrr", nDCG @ k: "ndcg"}
    reference = {(m.query_id, names[m.measure]): m.value
                 for m in ir_measures.iter_calc(list(names), qrels, run)}

    compared = 0
    for q, ranked, relevant in cases:
        ours = metrics_at_k(ranked, relevant, k)
        for name in names.values():
            expected = reference.get((q, name), 0.0)  # queries that retrieved nothing
            assert ours[f"{name}@{k}"] == pytest.approx(expected, abs=1e-9), (q, name)
            compared += 1
    assert compared == 1000


def test_chunks_count_once_per_document_at_their_best_rank():
    hits = [Hit("a", 0, 5, 0.9, ""), Hit("a", 5, 9, 0.8, ""), Hit("b", 0, 3, 0.7, "")]
    assert ranked_documents(hits) == ["a", "b"]
    assert metrics_at_k(ranked_documents(hits), ["b"], 2)["mrr@2"] == 0.5


def test_span_labels_count_a_chunk_when_it_overlaps_a_span_not_yet_covered():
    spans = [("a", 100, 200), ("b", 0, 50)]
    hits = [Hit("a", 0, 90, 0.9, ""),      # same document, outside the span: a miss
            Hit("a", 150, 260, 0.8, ""),   # overlaps span 0
            Hit("a", 180, 300, 0.7, ""),   # span 0 again: no new credit
            Hit("b", 40, 90, 0.6, "")]     # overlaps span 1
    ranked = ranked_spans(hits, spans)
    metrics = metrics_at_k(ranked, ["span0", "span1"], 4)
    assert metrics["recall@4"] == 1.0 and metrics["precision@4"] == 0.5
    assert metrics["mrr@4"] == 0.5


def test_span_labels_survive_rechunking(tmp_path):
    """The same span label scores chunks of any size: it is in characters, not chunks."""
    intro = "Loops repeat work. " * 30
    text = intro + "The else clause of a loop runs when no break happened. " + intro
    start = text.index("The else clause")
    query = LabelledQuery("q1", "loop else clause break", spans=(("loops", start, start + 55),))
    corpus = Corpus([Document("loops", text), Document("try", "The try statement. " * 20)])
    for size in (64, 16):
        idx = build_index(corpus, name=f"kb{size}", chunker={"size": size, "overlap": 0},
                          embedder="bm25", root=tmp_path, track=False)
        row = evaluate(idx, [query], ks=(1,)).iloc[0]
        assert row["hit@1"] == 1.0 and row["recall@1"] == 1.0
    # the right document but the wrong part of it is a miss for a span label
    elsewhere = LabelledQuery("q2", "loops repeat work", spans=query.spans)
    assert evaluate(idx, [elsewhere], ks=(1,)).iloc[0]["hit@1"] == 0.0


def test_labels_for_documents_that_no_longer_exist_are_refused(tmp_path):
    idx = build_index(Corpus([Document("try", "The try statement catches exceptions."),
                              Document("for", "The for loop iterates.")]),
                      name="kb", chunker={"size": 16, "overlap": 0}, embedder="bm25",
                      root=tmp_path, track=False)
    queries = [LabelledQuery("q1", "catch", {"try": 1.0}),
               LabelledQuery("q2", "loop", {"for": 1.0, "while": 1.0})]
    with pytest.raises(LabelError, match=r"not in index kb@v1: q2: while; fix the labels"):
        check_labels(queries, idx)

    frame = evaluate(idx, queries[:1], ks=(1, 2))
    assert frame.loc[0, "hit@1"] == 1.0 and frame.loc[0, "retrieved"] == ["try", "for"]


def test_labels_for_a_document_deleted_from_the_corpus_say_which_version_removed_it(tmp_path):
    from workbench.rag import update_index

    docs = [Document("try", "The try statement catches exceptions."),
            Document("for", "The for loop iterates.")]
    build_index(Corpus(docs), name="kb", chunker={"size": 16, "overlap": 0}, embedder="bm25",
                root=tmp_path, track=False)
    idx = update_index("kb", Corpus(docs[:1]), root=tmp_path, track=False)
    with pytest.raises(LabelError, match=r"q2: for \(removed from the corpus by kb@v2\)"):
        check_labels([LabelledQuery("q2", "loop", {"for": 1.0})], idx)


def test_a_queries_file_is_read_and_bad_lines_are_named(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text(json.dumps({"id": "q1", "query": "x", "relevant": ["a"]}) + "\n\n"
                    + json.dumps({"id": "q2", "query": "y", "relevant": {"a": 2, "b": 0}})
                    + "\n")
    queries = load_queries(path)
    assert [(q.id, dict(q.relevant)) for q in queries] == [("q1", {"a": 1.0}),
                                                           ("q2", {"a": 2.0})]
    path.write_text(json.dumps({"id": "q1", "relevant": ["a"]}) + "\n")
    with pytest.raises(LabelError, match=r"queries.jsonl:1: not a labelled query"):
        load_queries(path)
    path.write_text(json.dumps({"id": "q1", "query": "x", "relevant": []}) + "\n")
    with pytest.raises(LabelError, match="'q1' has no relevant documents"):
        load_queries(path)
