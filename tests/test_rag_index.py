"""Index versions: built into folders with a manifest, verified on load, updated
incrementally, and logged to MLflow."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.rag import Corpus, Document, build_index, load_index, update_index
from workbench.rag.errors import FingerprintMismatch, IndexIntegrityError, RagError

from .rag_topics import TOPICS

CHUNKER = {"size": 16, "overlap": 0}


def corpus(**changes: str | None) -> Corpus:
    texts = {**TOPICS, **changes}
    return Corpus([Document(k, v) for k, v in texts.items() if v is not None])


@pytest.fixture
def root(tmp_path):
    return tmp_path / "indexes"


@pytest.mark.parametrize("embedder", ["bm25", "lsa"])
def test_a_built_index_finds_the_document_that_answers(root, embedder):
    idx = build_index(corpus(), name="kb", chunker=CHUNKER, embedder=embedder, root=root,
                      track=False)
    loaded = load_index("kb", root=root)

    assert loaded.ref == "kb@v1" and len(loaded.chunks) == len(idx.chunks) > len(TOPICS)
    assert loaded.search("which clause catches exceptions", k=1)[0].doc_id == "try"
    assert loaded.search("anonymous functions", k=1)[0].doc_id == "lambda"
    hit = loaded.search("closing files automatically", k=3)[0]
    assert TOPICS[hit.doc_id][hit.start:hit.end] == hit.text


def test_the_manifest_records_what_the_version_was_built_from(root):
    kb = corpus()
    idx = build_index(kb, name="kb", chunker=CHUNKER, embedder="lsa", freshness_sla="24h",
                      root=root, track=False)
    manifest = json.loads((idx.path / "manifest.json").read_text())

    assert manifest["corpus"]["hash"] == kb.hash
    assert manifest["corpus"]["documents"] == kb.hashes
    assert manifest["chunker"] == {"strategy": "tokens", "size": 16, "overlap": 0,
                                   "tokenizer": "cl100k_base"}
    assert manifest["embedder"]["kind"] == "lsa"
    assert manifest["embedder"]["fingerprint"] == idx.embedder.fingerprint()
    assert manifest["parent"] is None and manifest["freshness_sla"] == "24h"
    phases = manifest["build_phases"]
    assert set(phases) == {"chunking", "embedding"}
    assert 0 < phases["chunking"] + phases["embedding"] <= manifest["build_seconds"]
    assert set(manifest["files"]) == {"chunks.parquet", "vectors.npy", "probes.npy",
                                      "lsa_vocab.json", "lsa_idf.npy", "lsa_components.npy"}
    second = build_index(kb, name="kb", chunker=CHUNKER, embedder="lsa", root=root,
                         track=False)
    assert (second.version, second.manifest["parent"]) == ("v2", "v1")
    assert load_index("kb@v1", root=root).version == "v1"
    assert load_index(second.path).version == "v2"


def test_a_corrupted_file_is_named_with_the_fix(root):
    idx = build_index(corpus(), name="kb", chunker=CHUNKER, embedder="lsa", root=root,
                      track=False)
    vectors = np.load(idx.path / "vectors.npy")
    vectors[0, 0] += 1.0
    np.save(idx.path / "vectors.npy", vectors)

    with pytest.raises(IndexIntegrityError, match=r"vectors.npy is corrupted.*rebuild"):
        load_index("kb", root=root)


def test_a_missing_file_or_manifest_is_named(root):
    idx = build_index(corpus(), name="kb", chunker=CHUNKER, embedder="bm25", root=root,
                      track=False)
    (idx.path / "chunks.parquet").unlink()
    with pytest.raises(IndexIntegrityError, match=r"chunks.parquet is missing from index "
                                                  r"version kb@v1"):
        load_index("kb", root=root)
    (idx.path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexIntegrityError, match="manifest.json is not valid JSON"):
        load_index("kb", root=root)


def test_an_embedder_whose_fingerprint_changed_is_refused(root):
    """A swapped model (here: another corpus's LSA state, with consistent file hashes)
    would put queries and chunks in different vector spaces."""
    from workbench.rag.embedders import LSAEmbedder
    from workbench.rag.store import hash_files, write_manifest

    idx = build_index(corpus(), name="kb", chunker=CHUNKER, embedder="lsa", root=root,
                      track=False)
    other = LSAEmbedder(**idx.embedder.params())
    other.fit(list(TOPICS.values())[:3])
    other.save(idx.path)
    idx.manifest["files"] = hash_files(idx.path)
    write_manifest(idx.path, idx.manifest)

    with pytest.raises(FingerprintMismatch, match=r"the lsa embedder rebuilt from this index "
                                                  r"has fingerprint .* rebuild"):
        load_index("kb", root=root)


def test_last_bit_differences_in_the_model_do_not_refuse_a_good_index(root):
    """Another CPU may round the last bits of the same model differently."""
    from workbench.rag.store import hash_files, write_manifest

    idx = build_index(corpus(), name="kb", chunker=CHUNKER, embedder="lsa", root=root,
                      track=False)
    components = np.load(idx.path / "lsa_components.npy")
    jitter = np.random.default_rng(0).normal(0, 1e-6, components.shape).astype(np.float32)
    np.save(idx.path / "lsa_components.npy", components + jitter)
    idx.manifest["files"] = hash_files(idx.path)
    write_manifest(idx.path, idx.manifest)

    loaded = load_index("kb", root=root)
    assert not np.array_equal(loaded.embedder.probe_vectors(), np.load(idx.path / "probes.npy"))
    assert loaded.search("anonymous functions", k=1)[0].doc_id == "lambda"


def test_a_version_another_build_created_meanwhile_is_not_overwritten(root, monkeypatch):
    from workbench.rag import store

    build_index(corpus(), name="kb", chunker=CHUNKER, embedder="bm25", root=root, track=False)
    monkeypatch.setattr(store, "versions", lambda root, name: [])  # as if v1 were not there yet
    with pytest.raises(RagError, match=r"kb/v1 was created by another build meanwhile"):
        build_index(corpus(), name="kb", chunker=CHUNKER, embedder="bm25", root=root,
                    track=False)
    assert [p.name for p in (root / "kb").iterdir()] == ["v1"]


def test_unknown_names_and_versions_say_what_exists(root):
    build_index(corpus(), name="kb", chunker=CHUNKER, embedder="bm25", root=root, track=False)
    with pytest.raises(RagError, match="no index named 'docs'"):
        load_index("docs", root=root)
    with pytest.raises(RagError, match="has no version 'v9'; it has v1"):
        load_index("kb@v9", root=root)


def test_an_lsa_update_embeds_only_the_chunks_of_changed_and_added_documents(root):
    base = build_index(corpus(), name="kb", chunker=CHUNKER, embedder="lsa", root=root,
                       track=False)
    edited = corpus(**{"dict": "A mapping object maps keys to values; get returns a default.",
                       "lambda": None, "extra": "The pass statement does nothing."})
    new = update_index(base, edited, root=root, track=False)

    inc = new.manifest["incremental"]
    assert (inc["changed"], inc["added"], inc["removed"]) == (["dict"], ["extra"], ["lambda"])
    fresh = [c for c in new.chunks if c.doc_id in ("dict", "extra")]
    assert inc["reembedded_chunks"] == len(fresh)
    assert new.manifest["embedder"]["fingerprint"] == base.manifest["embedder"]["fingerprint"]
    assert new.manifest["embedder"]["fitted_in"] == "v1" and new.manifest["parent"] == "v1"
    old_rows = {c.id: v for c, v in zip(base.chunks, base.vectors, strict=True)}
    for chunk, vector in zip(new.chunks, new.vectors, strict=True):
        if chunk.doc_id in ("try", "for", "with"):
            np.testing.assert_array_equal(vector, old_rows[chunk.id])
    assert all(h.doc_id != "lambda" for h in new.search("anonymous functions lambda", k=20))
    assert load_index("kb", root=root).version == "v2"


def test_a_bm25_update_tokenizes_only_new_chunks_and_scores_like_a_full_build(root):
    base = build_index(corpus(), name="kb", chunker=CHUNKER, embedder="bm25", root=root,
                       track=False)
    changed = corpus(**{"dict": "A mapping maps keys to values; zebra.", "lambda": None})
    updated = update_index("kb", changed, root=root, track=False)
    full = build_index(changed, name="full", chunker=CHUNKER, embedder="bm25", root=root,
                       track=False)

    assert [c.id for c in updated.chunks] == [c.id for c in full.chunks]
    inc = updated.manifest["incremental"]
    assert inc["reembedded_chunks"] == len([c for c in full.chunks if c.doc_id == "dict"])
    assert inc["reused_chunks"] == len([c for c in base.chunks
                                        if c.doc_id not in ("dict", "lambda")])
    for query in ("which clause catches exceptions", "zebra keys", "closing files"):
        ours, theirs = updated.search(query, k=10), full.search(query, k=10)
        assert [(h.doc_id, h.start) for h in ours] == [(h.doc_id, h.start) for h in theirs]
        assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], rel=1e-5)
    assert load_index("kb", root=root).search("zebra", k=1)[0].doc_id == "dict"


def test_an_update_with_nothing_changed_makes_no_new_version(root):
    base = build_index(corpus(), name="kb", chunker=CHUNKER, embedder="lsa", root=root,
                       track=False)
    assert update_index("kb", corpus(), root=root, track=False).version == base.version


def test_a_version_is_logged_to_mlflow_with_its_files(project):
    from mlflow import MlflowClient

    from workbench.settings import tracking_uri

    idx = build_index(corpus(), name="kb", chunker=CHUNKER, embedder="bm25")
    run = MlflowClient(tracking_uri()).get_run(idx.manifest["mlflow_run_id"])

    assert idx.path.is_relative_to(project)
    assert run.info.status == "FINISHED" and run.info.run_name == "kb@v1"
    assert run.data.params["embedder_fingerprint"] == idx.manifest["embedder"]["fingerprint"][:16]
    assert run.data.params["chunker.size"] == "16"
    assert run.data.metrics["chunks"] == len(idx.chunks)
    logged = {f.path for f in MlflowClient(tracking_uri()).list_artifacts(run.info.run_id,
                                                                           "index")}
    assert {"index/manifest.json", "index/vectors.npz", "index/chunks.parquet"} <= logged
