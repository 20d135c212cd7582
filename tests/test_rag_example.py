"""The bundled knowledge base: Python's language reference topics and hand-labelled
queries whose relevant topics all exist."""

from __future__ import annotations

from pathlib import Path

from workbench.rag import Corpus, build_index, evaluate, load_queries

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "kb-answer"


def test_every_label_names_a_bundled_topic():
    corpus = Corpus.from_folder(EXAMPLE / "docs")
    queries = load_queries(EXAMPLE / "queries.jsonl")

    assert len(corpus) == 79 and len(queries) >= 60
    assert len({q.id for q in queries}) == len(queries)
    assert all(q.documents() <= {d.id for d in corpus} for q in queries)
    assert corpus["try"].text.startswith('The "try" statement')


def test_bm25_finds_a_relevant_topic_in_the_top_ten_for_most_queries(tmp_path):
    """A floor, not the figure (benchmarks/RESULTS.md has those): a broken chunker or
    scorer drops far below it."""
    idx = build_index(Corpus.from_folder(EXAMPLE / "docs"), name="kb", embedder="bm25",
                      root=tmp_path, track=False)
    means = evaluate(idx, load_queries(EXAMPLE / "queries.jsonl")).mean(numeric_only=True)
    assert means["hit@10"] >= 0.9 and means["mrr@10"] >= 0.6
