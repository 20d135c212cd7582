"""The retrievers of experiments/kb-answer compared on all 78 labelled queries, and the cost
of retrieval on the serving path.

Retrieval metrics do not depend on the model's answer, so this scores every retriever
variant without model calls: the same per-query scores a run records, through the same
``Results.compare`` and ``wb.rag.recommend``.
Run: ``.venv/bin/python benchmarks/rag_retrievers.py``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "experiments" / "kb-answer"
METRICS = {"recall_at_k": "continuous", "precision_at_k": "continuous",
           "hit_at_k": "binary", "mrr": "continuous", "ndcg_at_k": "continuous",
           "context_tokens": "continuous"}


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    (home / "mlruns").mkdir()
    os.environ["WORKBENCH_HOME"] = str(home)
    import workbench as wb
    from workbench.evaluation.evalsets import EvalSet
    from workbench.rag.retrieve import prepare
    from workbench.results import Results
    from workbench.serving.retrieval import ServedIndex
    from workbench.spec import load_spec

    kb = wb.rag.Corpus.from_folder(EXAMPLE / "docs")
    for name, embedder in (("kb-bm25", "bm25"), ("kb-lsa", "lsa")):
        wb.rag.build_index(kb, name=name, chunker={"size": 128, "overlap": 16},
                           embedder=embedder, track=False)
    spec = load_spec(EXAMPLE)
    evalset = EvalSet.from_file(EXAMPLE / "queries.jsonl")
    started = time.perf_counter()
    retrievers = prepare(spec, evalset)
    print(f"prepare (load and verify 2 indexes, retrieve 3 x 78): "
          f"{time.perf_counter() - started:.2f} s")
    rows = []
    for name, retriever in retrievers.items():
        for example, found in zip(evalset.examples, retriever.retrieve(evalset.examples),
                                  strict=True):
            rows.append({"variant": name, "example_id": example.id, "error": None,
                         "cached": False, **{f"score.{m}": v for m, v in found.scores.items()}})
    results = Results.from_rows(rows, metrics=METRICS, primary="recall_at_k",
                                lower_is_better=["context_tokens"])
    summary = results.summary()
    print("\n| retriever | recall_at_k (95% CI) | hit_at_k | mrr | ndcg_at_k | context tokens |")
    print("|---|---|---|---|---|---|")
    for variant, r in summary.iterrows():
        print(f"| {variant} | {r['recall_at_k']:.3f} [{r['recall_at_k_ci_low']:.3f}, "
              f"{r['recall_at_k_ci_high']:.3f}] | {r['hit_at_k']:.3f} | {r['mrr']:.3f} | "
              f"{r['ndcg_at_k']:.3f} | {r['context_tokens']:.0f} |")
    report = results.compare("bm25-k4")
    print("\n| vs bm25-k4 | recall_at_k diff (95% CI) | p (Holm) |\n|---|---|---|")
    for pair in report.pairs:
        found = pair.metrics["recall_at_k"]
        print(f"| {pair.b} | {found.diff:+.3f} [{found.ci_low:+.3f}, {found.ci_high:+.3f}] | "
              f"{found.p_adj:.2g} |")
    for margin in (0.05, 0.1, 0.2):
        print(f"\nrecommend(margin={margin}): {wb.rag.recommend(results, margin=margin)}")
    served = ServedIndex("kb-bm25", k=4)
    queries = [e.inputs["query"] for e in evalset.examples] * 10
    seconds = [served.fill({"query": q}).seconds for q in queries]
    cuts = statistics.quantiles(seconds, n=100)
    print(f"\nserving retrieve step (bm25, k=4, {len(seconds)} requests): "
          f"p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms")


if __name__ == "__main__":
    main()
