"""RAG index figures: build time, exact-search latency, incremental refresh, retrieval quality.

    .venv/bin/python benchmarks/rag_index.py [--copies 10] [--searches 300] [--only 1,2,3,4]

1. Build time per 1,000 chunks for each offline embedder (BM25, LSA), median of three
   interleaved builds, with the chunking and fit + embed phases from the manifest (the
   rest is writing the files), on the bundled corpus copied ``--copies`` times (each
   copy's documents carry their copy number, so no two documents are identical; the
   vocabulary stays that of the bundled corpus).
2. Query latency p50/p99 of ``Index.search`` (query embedding + exact scoring + top 10) at
   10,000 and 100,000 chunks: the real chunk vectors of the bundled corpus tiled to size,
   queried with the bundled queries.
3. Incremental refresh with 1 % of documents changed against a full build of the same
   corpus. Target: <= 10 % of the full build's time.
4. Retrieval metrics of the bundled labelled queries per embedder and chunk size.

Nothing is logged to MLflow (``track=False``): the figures are the index's own work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLE = ROOT / "experiments" / "kb-answer"

from workbench.rag import Corpus, Document, build_index, evaluate, load_queries  # noqa: E402
from workbench.rag.index import Index, update_index  # noqa: E402

CHUNKER = {"size": 256, "overlap": 32}


def copies(n: int) -> Corpus:
    base = Corpus.from_folder(EXAMPLE / "docs")
    return Corpus([Document(f"{d.id}~{c}", f"Copy {c}.\n{d.text}") for c in range(n)
                   for d in base])


def build_time(copies_n: int, root: Path, rounds: int = 3) -> list[str]:
    corpus = copies(copies_n)
    rows = [f"| embedder | documents | chunks | build s (median of {rounds}) | "
            "s per 1,000 chunks | chunking s | fit + embed s |", "|---|---|---|---|---|---|---|"]
    runs: dict[str, list[dict]] = {"bm25": [], "lsa": []}
    for embedder in runs:
        build_index(Corpus(list(corpus)[:20]), name=f"warm-{embedder}", embedder=embedder,
                    chunker=CHUNKER, root=root, track=False)  # imports and tokenizer load
    for _ in range(rounds):  # interleaved, so load on the machine hits every arm alike
        for embedder in runs:
            t = time.perf_counter()
            idx = build_index(corpus, name=f"build-{embedder}", embedder=embedder,
                              chunker=CHUNKER, root=root, track=False)
            runs[embedder].append({"total": time.perf_counter() - t, "chunks": len(idx.chunks),
                                   **idx.manifest["build_phases"]})
    for embedder, found in runs.items():
        med = {k: statistics.median(r[k] for r in found)
               for k in ("total", "chunking", "embedding")}
        chunks = found[0]["chunks"]
        rows.append(f"| {embedder} | {len(corpus):,} | {chunks:,} | {med['total']:.2f} | "
                    f"{med['total'] / chunks * 1000:.2f} | {med['chunking']:.2f} | "
                    f"{med['embedding']:.2f} |")
    return rows


def latency(searches: int, root: Path) -> list[str]:
    import numpy as np
    from scipy import sparse

    queries = [q.query for q in load_queries(EXAMPLE / "queries.jsonl")]
    rows = ["| embedder | chunks | vector size | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    for embedder in ("bm25", "lsa"):
        small = build_index(Corpus.from_folder(EXAMPLE / "docs"), name=f"lat-{embedder}",
                            embedder=embedder, chunker=CHUNKER, root=root, track=False)
        for size in (10_000, 100_000):
            reps = -(-size // len(small.chunks))
            chunks = (small.chunks * reps)[:size]
            if hasattr(small.vectors, "tocsr"):
                vectors = sparse.vstack([small.vectors] * reps).tocsr()[:size]
                width = f"{vectors.shape[1]:,} terms (sparse)"
            else:
                vectors = np.tile(small.vectors, (reps, 1))[:size]
                width = f"{vectors.shape[1]} float32"
            big = Index(small.path, small.manifest, chunks, vectors, small.embedder)
            big.search(queries[0], k=10)
            times = []
            for n in range(searches):
                t = time.perf_counter()
                big.search(queries[n % len(queries)], k=10)
                times.append((time.perf_counter() - t) * 1000)
            q = statistics.quantiles(times, n=100)
            rows.append(f"| {embedder} | {size:,} | {width} | {statistics.median(times):.2f} "
                        f"| {q[98]:.2f} |")
    return rows


def refresh(copies_n: int, root: Path, rounds: int = 3) -> list[str]:
    corpus = copies(copies_n)
    changed_ids = {d.id for d in list(corpus)[:: 100]}  # 1 % of documents
    edited = Corpus([Document(d.id, d.text + "\nEdited.") if d.id in changed_ids else d
                     for d in corpus])
    rows = [f"| embedder | documents changed | full build s | incremental s | ratio "
            f"(medians of {rounds}) | chunks re-embedded |", "|---|---|---|---|---|---|"]
    for embedder in ("bm25", "lsa"):
        base = build_index(corpus, name=f"ref-{embedder}", embedder=embedder,
                           chunker=CHUNKER, root=root, track=False)
        full, inc = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            build_index(edited, name=f"full-{embedder}", embedder=embedder, chunker=CHUNKER,
                        root=root, track=False)
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            new = update_index(base, edited, root=root, track=False)
            inc.append(time.perf_counter() - t)
        f, i = statistics.median(full), statistics.median(inc)
        rows.append(f"| {embedder} | {len(changed_ids)} of {len(corpus):,} | {f:.2f} | "
                    f"{i:.2f} | {i / f:.1%} | "
                    f"{new.manifest['incremental']['reembedded_chunks']:,} of "
                    f"{len(new.chunks):,} |")
    return rows


def quality(root: Path) -> list[str]:
    corpus = Corpus.from_folder(EXAMPLE / "docs")
    queries = load_queries(EXAMPLE / "queries.jsonl")
    rows = ["| embedder | chunker | chunks | hit@1 | hit@5 | recall@5 | recall@10 | MRR@10 | "
            "nDCG@10 |", "|---|---|---|---|---|---|---|---|---|"]
    for embedder in ("bm25", "lsa"):
        for chunker in ({"size": 128, "overlap": 16}, CHUNKER, {"size": 512, "overlap": 64},
                        {"strategy": "sentences", "size": 256, "overlap": 32}):
            idx = build_index(corpus, name=f"q-{embedder}", embedder=embedder,
                              chunker=chunker, root=root, track=False)
            m = evaluate(idx, queries).mean(numeric_only=True)
            label = f"{chunker.get('strategy', 'tokens')} {chunker['size']}/{chunker['overlap']}"
            rows.append(f"| {embedder} | {label} | {len(idx.chunks)} | {m['hit@1']:.3f} | "
                        f"{m['hit@5']:.3f} | {m['recall@5']:.3f} | {m['recall@10']:.3f} | "
                        f"{m['mrr@10']:.3f} | {m['ndcg@10']:.3f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--only", default="1,2,3,4")
    args = parser.parse_args()
    items = {int(x) for x in args.only.split(",")}
    print(f"load average at start: {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for item, title, fn in (
                (1, "1. Build time", lambda: build_time(args.copies, root)),
                (2, "2. Exact search latency (k=10)", lambda: latency(args.searches, root)),
                (3, "3. Incremental refresh, 1 % of documents changed",
                 lambda: refresh(args.copies, root)),
                (4, "4. Bundled queries", lambda: quality(root))):
            if item in items:
                started = time.perf_counter()
                print(f"\n### {title}\n")
                print("\n".join(fn()))
                print(f"\n({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
