"""Offline embedders: BM25 scores as bm25s computes them, LSA as scikit-learn computes it,
and a fingerprint that follows the model, not the object."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.rag.embedders import BM25Embedder, LSAEmbedder, make_embedder
from workbench.rag.errors import RagError

TEXTS = [
    "The try statement specifies exception handlers and cleanup code.",
    "A for loop iterates over the items of any sequence, in order.",
    "The with statement wraps a block with methods of a context manager.",
    "Lambda expressions create small anonymous functions.",
    "Exceptions raised in the try clause are caught by an except clause.",
    "Dictionaries map hashable keys to arbitrary values.",
]
QUERIES = ["catching exceptions in try", "anonymous function", "iterate over a sequence"]


def test_bm25_scores_equal_bm25s_retrieval():
    import bm25s

    model = BM25Embedder()
    model.fit(TEXTS)
    ours = (model.embed_queries(QUERIES) @ model.embed(TEXTS).T).toarray()

    tokenizer = model._tokenizer()
    ids = tokenizer.tokenize(TEXTS, return_as="ids", show_progress=False)
    reference = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    reference.index(bm25s.tokenization.Tokenized(ids=ids, vocab=tokenizer.get_vocab_dict()),
                    show_progress=False)
    query_ids = tokenizer.tokenize(QUERIES, update_vocab=False, return_as="ids",
                                   show_progress=False)
    for row, ids_of_query in enumerate(query_ids):
        np.testing.assert_allclose(ours[row], reference.get_scores(ids_of_query), rtol=1e-5)
    docs, _ = reference.retrieve(query_ids, k=1, show_progress=False)
    assert ours.argmax(axis=1).tolist() == docs[:, 0].tolist() == [4, 3, 1]


def test_lsa_vectors_equal_scikit_learns_tfidf_and_svd():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    model = LSAEmbedder(dimensions=4)
    model.fit(TEXTS)
    tfidf = TfidfVectorizer(sublinear_tf=True, **model._vectorizer_options()).fit(TEXTS)
    expected = normalize(tfidf.transform(QUERIES) @ model.components.T)

    np.testing.assert_allclose(model.embed_queries(QUERIES), expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(model.embed(TEXTS), axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", ["bm25", "lsa"])
def test_the_fingerprint_survives_save_and_load_but_not_a_different_corpus(tmp_path, kind):
    model = make_embedder(kind)
    model.fit(TEXTS)
    model.save(tmp_path)
    again = type(model).load(tmp_path, model.params(), model.fitted_on)

    other = make_embedder(kind)
    other.fit(TEXTS[:-1])
    assert again.fingerprint() == model.fingerprint()
    assert other.fingerprint() != model.fingerprint()


def test_the_fingerprint_changes_with_the_parameters():
    a, b = BM25Embedder(k1=1.2), BM25Embedder(k1=1.5)
    a.fit(TEXTS)
    b.fit(TEXTS)
    assert a.fingerprint() != b.fingerprint()


def test_names_aliases_and_mistakes():
    assert isinstance(make_embedder("local"), LSAEmbedder)
    assert isinstance(make_embedder("lexical"), BM25Embedder)
    assert make_embedder({"kind": "lsa", "dimensions": 8}).dimensions == 8
    with pytest.raises(RagError, match="embedder 'openai' is unknown; use one of bm25, lsa"):
        make_embedder("openai")
    with pytest.raises(RagError, match="not fitted"):
        LSAEmbedder().embed(["x"])
    model = BM25Embedder()
    model.fit(TEXTS)
    with pytest.raises(RagError, match="embed exactly the texts given to fit"):
        model.embed(TEXTS[:2])
