"""Versioned indexes: build, load with integrity checks, search exactly, update incrementally.

Search is exact (a matrix product over every chunk): ``benchmarks/RESULTS.md`` has the
latencies that show where that stays fast enough. An incremental update re-chunks only
the documents that changed, were added or were removed; what it re-embeds depends on the
embedder (see ``update_index``).
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import store
from .chunking import Chunk, ChunkerConfig, chunk_documents
from .corpus import Corpus
from .durations import parse_duration
from .embedders import Embedder, load_embedder, make_embedder, same_vectors
from .errors import FingerprintMismatch, IndexIntegrityError, RagError


class Keep:
    """An update's setting left as its parent had it."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, with the span of its document it covers."""

    doc_id: str
    start: int
    end: int
    score: float
    text: str


class Index:
    """One index version: its chunks, their vectors, the embedder and the manifest."""

    def __init__(self, path: Path, manifest: dict[str, Any], chunks: list[Chunk],
                 vectors: Any, embedder: Embedder) -> None:
        self.path, self.manifest, self.chunks = path, manifest, chunks
        # sparse (BM25) scores are sums of the query terms' columns: CSC slices them fast
        self.vectors = vectors.tocsc() if hasattr(vectors, "tocsc") else vectors
        self.embedder = embedder

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def doc_ids(self) -> set[str]:
        return set(self.manifest["corpus"]["documents"])

    def __repr__(self) -> str:
        m = self.manifest
        return (f"Index({self.ref!r}, {m['counts']['documents']} documents, "
                f"{m['counts']['chunks']} chunks, embedder={m['embedder']['kind']}, "
                f"built {m['built_at']})")

    def search(self, query: str, k: int = 5) -> list[Hit]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int = 5) -> list[list[Hit]]:
        """The ``k`` best chunks per query by exact cosine (dense) or BM25 score (sparse)."""
        if k < 1:
            raise RagError(f"k must be at least 1, got {k}")
        scores = _scores(self.embedder.embed_queries(list(queries)), self.vectors)
        k = min(k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out = []
        for row, candidates in zip(scores, top, strict=True):
            ranked = candidates[np.lexsort((candidates, -row[candidates]))]
            out.append([Hit(self.chunks[i].doc_id, self.chunks[i].start, self.chunks[i].end,
                            float(row[i]), self.chunks[i].text) for i in ranked])
        return out


def _scores(queries: Any, vectors: Any) -> np.ndarray:
    if not hasattr(vectors, "tocsr"):
        if queries.shape[0] > 8:
            return np.asarray(queries @ vectors.T, dtype=np.float32)
        # a few queries are memory-bound: BLAS threads would only add synchronisation
        with _blas().limit(limits=1, user_api="blas"):
            return np.asarray(queries @ vectors.T, dtype=np.float32)
    queries = queries.tocsr()
    out = np.zeros((queries.shape[0], vectors.shape[0]), dtype=np.float32)
    for row in range(queries.shape[0]):
        span = slice(queries.indptr[row], queries.indptr[row + 1])
        if span.start != span.stop:
            out[row] = vectors[:, queries.indices[span]] @ queries.data[span]
    return out


@lru_cache(maxsize=1)
def _blas() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def build_index(corpus: Corpus, *, name: str = "kb",
                chunker: ChunkerConfig | Mapping[str, Any] | None = None,
                embedder: str | Mapping[str, Any] | Embedder = "local",
                freshness_sla: str | None = None, root: str | Path | None = None,
                track: bool = True, uri: str | None = None) -> Index:
    """Chunk, fit the embedder on the chunks, embed, and write a new version of ``name``.

    With ``track`` the version is logged to MLflow as a run with the index as artifacts.
    """
    started = time.perf_counter()
    config = ChunkerConfig.parse(chunker)
    if freshness_sla is not None:
        parse_duration(freshness_sla)
    model = make_embedder(embedder)
    chunks = chunk_documents(corpus, config)
    if not chunks:
        raise RagError(f"corpus {corpus.describe()}: every document is empty; nothing to index")
    chunked = time.perf_counter()
    texts = [c.text for c in chunks]
    model.fit(texts)
    vectors = model.embed(texts)
    root = Path(root) if root else store.default_root()
    parent = store.versions(root, name)
    extra = {"parent": parent[-1] if parent else None, "freshness_sla": freshness_sla,
             "incremental": None,
             "phases": {"chunking": chunked - started,
                        "embedding": time.perf_counter() - chunked}}
    return _write(root, name, corpus, config, model, chunks, vectors, extra, started,
                  track=track, uri=uri)


def update_index(parent: Index | str, corpus: Corpus | None = None, *,
                 root: str | Path | None = None, track: bool = True,
                 uri: str | None = None, freshness_sla: str | None | Keep = KEEP) -> Index:
    """A new version from ``parent`` that re-chunks only changed, added and removed documents.

    ``freshness_sla`` replaces the parent's (``None`` removes it); a new SLA makes a new
    version even when no document changed, since a version's SLA is part of its manifest.

    LSA keeps the parent's fitted model and embeds only the new chunks, so the version
    shares the parent's fingerprint; its vocabulary does not learn new words until a full
    ``build_index``. BM25 keeps the term counts of reused chunks and tokenizes only new
    ones, but recomputes every weight, since they depend on all chunks: its scores equal a
    full build's. With nothing changed the parent is returned as it is.
    """
    started = time.perf_counter()
    root = Path(root) if root else store.default_root()
    base = parent if isinstance(parent, Index) else load_index(parent, root=root)
    corpus = corpus or Corpus.from_source(base.manifest["corpus"]["source"])
    old = base.manifest["corpus"]["documents"]
    new = corpus.hashes
    sla = base.manifest.get("freshness_sla") if isinstance(freshness_sla, Keep) else freshness_sla
    if sla is not None:
        parse_duration(sla)
    if old == new and sla == base.manifest.get("freshness_sla"):
        return base
    ordered = _reuse_unchanged(base, corpus)
    chunks = [c for c, _ in ordered]
    chunked = time.perf_counter()
    model, vectors, reembedded = _embed_update(base, ordered)
    phases = {"chunking": chunked - started, "embedding": time.perf_counter() - chunked}
    changes = {"changed": sorted(d for d in new if d in old and old[d] != new[d]),
               "added": sorted(set(new) - set(old)), "removed": sorted(set(old) - set(new))}
    extra = {"parent": base.version, "freshness_sla": sla, "phases": phases,
             "incremental": {**changes, "reembedded_chunks": reembedded,
                             "reused_chunks": sum(i is not None for _, i in ordered),
                             "model_fitted_in": base.manifest["embedder"].get("fitted_in")
                             if model is base.embedder else None}}
    config = ChunkerConfig.parse(base.manifest["chunker"])
    return _write(root, base.name, corpus, config, model, chunks, vectors, extra, started,
                  track=track, uri=uri)


def _reuse_unchanged(base: Index, corpus: Corpus) -> list[tuple[Chunk, int | None]]:
    """Chunks in corpus order: the parent's (with their row) for unchanged documents, new
    ones (row ``None``) for changed and added documents."""
    old, new = base.manifest["corpus"]["documents"], corpus.hashes
    config = ChunkerConfig.parse(base.manifest["chunker"])
    by_doc: dict[str, list[tuple[Chunk, int | None]]] = {}
    for row, chunk in enumerate(base.chunks):
        if new.get(chunk.doc_id) == old.get(chunk.doc_id):
            by_doc.setdefault(chunk.doc_id, []).append((chunk, row))
    fresh_docs = [d for d in corpus if old.get(d.id) != new[d.id]]
    for chunk in chunk_documents(fresh_docs, config):
        by_doc.setdefault(chunk.doc_id, []).append((chunk, None))
    return [pair for doc in corpus for pair in by_doc.get(doc.id, [])]


def _embed_update(base: Index, ordered: list[tuple[Chunk, int | None]]
                  ) -> tuple[Embedder, Any, int]:
    """Dense: the parent's model embeds only new chunks. BM25: term counts of reused chunks
    are kept, new chunks are tokenized, and every weight is recomputed (they are global)."""
    texts = [c.text for c, _ in ordered]
    if hasattr(base.vectors, "tocsr"):
        model = copy.copy(base.embedder)
        model.refit(texts, [row for _, row in ordered])
        return model, model.embed(texts), sum(row is None for _, row in ordered)
    vectors = np.empty((len(ordered), base.vectors.shape[1]), dtype=np.float32)
    old_rows = [(row, i) for row, (_, i) in enumerate(ordered) if i is not None]
    new_rows = [row for row, (_, i) in enumerate(ordered) if i is None]
    if old_rows:
        dst, src = zip(*old_rows, strict=True)
        vectors[list(dst)] = base.vectors[list(src)]
    if new_rows:
        vectors[new_rows] = base.embedder.embed([texts[r] for r in new_rows])
    return base.embedder, vectors, len(new_rows)


def _write(root: Path, name: str, corpus: Corpus, config: ChunkerConfig, model: Embedder,
           chunks: list[Chunk], vectors: Any, extra: dict[str, Any], started: float, *,
           track: bool, uri: str | None) -> Index:
    version, staging = store.new_version_dir(root, name)
    try:
        store.write_chunks(staging, chunks)
        vectors_file = store.write_vectors(staging, vectors)
        probes_file = store.write_vectors(staging, model.probe_vectors(), stem="probes")
        model.save(staging)
        incremental = extra.get("incremental") or {}
        manifest = {
            "format": store.FORMAT, "name": name, "version": version,
            "parent": extra["parent"], "freshness_sla": extra["freshness_sla"],
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 3),
            # the rest of build_seconds is writing chunks, vectors and embedder state
            "build_phases": {k: round(v, 3) for k, v in extra["phases"].items()},
            "corpus": {"hash": corpus.hash, "source": corpus.source,
                       "documents": corpus.hashes},
            "chunker": config.as_dict(),
            "embedder": {"kind": model.kind, "params": model.params(),
                         "fingerprint": model.fingerprint(), "fitted_on": model.fitted_on,
                         "fitted_in": incremental.get("model_fitted_in") or version},
            "vectors": vectors_file, "probes": probes_file,
            "counts": {"documents": len(corpus), "chunks": len(chunks)},
            "incremental": extra["incremental"],
            "files": store.hash_files(staging),
        }
        run = None
        if track:
            from .tracking import start_index_run

            run = start_index_run(manifest, uri=uri)
            manifest["mlflow_run_id"] = run.run_id
        store.write_manifest(staging, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final = root / name / version
    try:
        store.publish(staging, final)
    except RagError:
        if run is not None:
            run.client.set_terminated(run.run_id, "FAILED")
        raise
    if run is not None:
        run.finish(final)
    return Index(final, manifest, chunks, vectors, model)


def load_index(ref: str | Path, *, root: str | Path | None = None, verify: bool = True
               ) -> Index:
    """An index version by ``name`` (latest), ``name@v3``, or folder path.

    With ``verify`` (the default) every file is checked against its hash in the manifest
    and the embedder's fingerprint is recomputed, so a corrupted file or a changed model
    is an error here rather than wrong results later.
    """
    root = Path(root) if root else store.default_root()
    folder = store.resolve(ref, root)
    manifest = store.read_manifest(folder)
    if verify:
        store.verify_files(folder, manifest)
    spec = manifest["embedder"]
    model = load_embedder(folder, spec["kind"], spec["params"], spec["fitted_on"])
    chunks = store.read_chunks(folder)
    vectors = store.read_vectors(folder, manifest["vectors"])
    if len(chunks) != manifest["counts"]["chunks"] or vectors.shape[0] != len(chunks):
        raise IndexIntegrityError(f"{folder}: {len(chunks)} chunks and {vectors.shape[0]} "
                                  f"vectors, the manifest says {manifest['counts']['chunks']};"
                                  " rebuild the index")
    if verify and not same_vectors(model.probe_vectors(),
                                   store.read_vectors(folder, manifest["probes"])):
        raise FingerprintMismatch(
            f"{folder}: the {spec['kind']} embedder rebuilt from this index has fingerprint "
            f"{model.fingerprint()[:12]}, but the index was built with "
            f"{spec['fingerprint'][:12]}: the embedding model or its library changed since "
            "the build, so query vectors would not match the stored ones; rebuild with "
            "build_index(...)")
    return Index(folder, manifest, chunks, vectors, model)
