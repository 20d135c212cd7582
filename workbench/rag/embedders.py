"""Offline embedders behind one small interface, each with a fingerprint.

Both defaults learn from the corpus they index (BM25 its term statistics, LSA its
vocabulary and topic space), so ``fit`` comes before ``embed`` and the fingerprint covers
what was fitted on. The fingerprint is a hash of the vectors of fixed probe sentences: if
a library upgrade changes tokenization or the stored model is swapped, the index refuses
to load instead of silently mixing two vector spaces.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from .._optional import optional_import
from .errors import IndexIntegrityError, RagError
from .probes import PROBES, _fingerprint, same_vectors  # noqa: F401  (re-exported)


class Embedder(Protocol):
    """What an index needs from an embedder.

    ``embed`` returns one row per text: a dense ``float32`` array with unit rows (scored
    by cosine) or a ``scipy.sparse`` matrix (scored by dot product, e.g. BM25 weights).
    """

    kind: str

    def fit(self, texts: Sequence[str]) -> None: ...
    def embed(self, texts: Sequence[str]) -> Any: ...
    def embed_queries(self, texts: Sequence[str]) -> Any: ...
    def params(self) -> dict[str, Any]: ...
    def fingerprint(self) -> str: ...
    def probe_vectors(self) -> Any: ...
    def save(self, folder: Path) -> None: ...


def texts_hash(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


class BM25Embedder:
    """Lexical BM25 (``bm25s``'s tokenizer and scoring): a chunk's vector holds its BM25
    weight for each term, a query's vector marks its distinct terms, and their dot product
    is the BM25 score.

    The term counts of every fitted chunk are kept, so ``refit`` after a corpus change
    tokenizes only new chunks; the weights (which depend on every chunk) are recomputed.
    """

    kind: ClassVar[str] = "bm25"

    def __init__(self, *, k1: float = 1.5, b: float = 0.75, stem: bool = True) -> None:
        self.k1, self.b, self.stem = float(k1), float(b), bool(stem)
        self.vocab: dict[str, int] | None = None
        self.counts: Any = None  # chunks x terms, term counts of the fitted texts
        self.fitted_on = ""
        self._weights: Any = None

    def params(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "stem": self.stem}

    def _tokenizer(self) -> Any:
        Tokenizer = optional_import("bm25s.tokenization", "rag", "BM25").Tokenizer

        stemmer = _snowball() if self.stem else None
        return Tokenizer(lower=True, stopwords="english", stemmer=stemmer)

    def _terms(self, texts: Sequence[str]) -> list[list[str]]:
        # a fresh vocabulary per call: the tokenizer then returns stemmed terms to look up
        return self._tokenizer().tokenize(list(texts), update_vocab=True, return_as="string",
                                          show_progress=False)

    def fit(self, texts: Sequence[str]) -> None:
        self.refit(texts, [None] * len(texts))

    def refit(self, texts: Sequence[str], reuse: Sequence[int | None]) -> None:
        """Fit on ``texts``; ``reuse[i]`` is the row of this model's counts that holds the
        terms of ``texts[i]`` (unchanged since the last fit), or ``None`` to tokenize it."""
        from scipy import sparse

        vocab = dict(self.vocab or {})
        fresh = [i for i, row in enumerate(reuse) if row is None]
        kept = [i for i, row in enumerate(reuse) if row is not None]
        rows: list[int] = []
        cols: list[int] = []
        for i, words in zip(fresh, self._terms([texts[i] for i in fresh]), strict=True):
            rows.extend([i] * len(words))
            cols.extend(vocab.setdefault(w, len(vocab)) for w in words)
        parts = [(np.asarray(rows, np.int64), np.asarray(cols, np.int64),
                  np.ones(len(rows), np.float32))]
        if kept:
            old = self.counts[[reuse[i] for i in kept]].tocoo()
            parts.append((np.asarray(kept, np.int64)[old.row], old.col.astype(np.int64),
                          old.data.astype(np.float32)))
        r, c, v = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        self.vocab = vocab
        self.counts = sparse.csr_matrix((v, (r, c)), shape=(len(texts), max(len(vocab), 1)))
        self.counts.sum_duplicates()
        self._weights = self._bm25(self.counts)
        self.fitted_on = texts_hash(texts)

    def _bm25(self, counts: Any) -> Any:
        """bm25s's "lucene" weights, from term counts: idf(t) * tf / (tf + k1 * (1 - b + b *
        length / mean length)); ``tests/test_rag_embedders.py`` checks them against bm25s."""
        n = counts.shape[0]
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        norm = self.k1 * (1 - self.b + self.b * lengths / max(lengths.mean(), 1e-9))
        weights = counts.copy().astype(np.float32)
        tf = weights.data
        row_norm = np.repeat(norm, np.diff(weights.indptr))
        weights.data = (idf[weights.indices] * tf / (tf + row_norm)).astype(np.float32)
        return weights

    def embed(self, texts: Sequence[str]) -> Any:
        """BM25 weights of the texts the model was fitted on (term statistics are global)."""
        self._require_fit()
        if self._weights is None or texts_hash(texts) != self.fitted_on:
            raise RagError("BM25 weights depend on the whole collection: embed exactly the "
                           "texts given to fit (refit to index different texts)")
        return self._weights

    def embed_queries(self, texts: Sequence[str]) -> Any:
        from scipy import sparse

        self._require_fit()
        rows, cols = [], []
        for row, words in enumerate(self._terms(texts)):
            for term in set(words):
                if term in self.vocab:
                    rows.append(row)
                    cols.append(self.vocab[term])
        data = np.ones(len(rows), dtype=np.float32)
        return sparse.csr_matrix((data, (rows, cols)), shape=(len(texts), self.counts.shape[1]))

    def probe_vectors(self) -> Any:
        return self.embed_queries(PROBES)

    def fingerprint(self) -> str:
        self._require_fit()
        return _fingerprint(self.kind, self.params(), self.fitted_on, self.probe_vectors())

    def save(self, folder: Path) -> None:
        from scipy import sparse

        self._require_fit()
        (folder / "bm25_vocab.json").write_text(json.dumps(self.vocab, sort_keys=True))
        sparse.save_npz(folder / "bm25_counts.npz", self.counts, compressed=False)

    @classmethod
    def load(cls, folder: Path, params: Mapping[str, Any], fitted_on: str) -> BM25Embedder:
        from scipy import sparse

        model = cls(**params)
        model.vocab = _read_json(folder / "bm25_vocab.json")
        try:
            model.counts = sparse.load_npz(folder / "bm25_counts.npz").tocsr()
        except (OSError, ValueError) as exc:
            raise IndexIntegrityError(f"{folder / 'bm25_counts.npz'}: unreadable ({exc}); "
                                      "rebuild the index") from exc
        model.fitted_on = fitted_on
        return model

    def _require_fit(self) -> None:
        if self.vocab is None:
            raise RagError("the BM25 embedder is not fitted; call fit(texts) first")


class LSAEmbedder:
    """A local dense embedder: TF-IDF (scikit-learn) reduced by truncated SVD to
    ``dimensions`` topic axes (latent semantic analysis), unit-normalised for cosine.

    Stored as plain arrays (vocabulary, idf, components), never as a pickle, so loading a
    shared index cannot run code.
    """

    kind: ClassVar[str] = "lsa"

    def __init__(self, *, dimensions: int = 256, seed: int = 0) -> None:
        self.dimensions, self.seed = int(dimensions), int(seed)
        self.vocab: dict[str, int] | None = None
        self.idf: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.fitted_on = ""
        self._counter: Any = None

    def params(self) -> dict[str, Any]:
        return {"dimensions": self.dimensions, "seed": self.seed}

    def _vectorizer_options(self) -> dict[str, Any]:
        return {"lowercase": True, "stop_words": "english", "ngram_range": (1, 2),
                "min_df": 1, "dtype": np.float32}

    def fit(self, texts: Sequence[str]) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        tfidf = TfidfVectorizer(sublinear_tf=True, **self._vectorizer_options())
        weights = tfidf.fit_transform(texts)
        dims = max(1, min(self.dimensions, weights.shape[0] - 1, weights.shape[1] - 1))
        svd = TruncatedSVD(n_components=dims, random_state=self.seed, algorithm="randomized")
        svd.fit(weights)
        self.vocab = {term: int(i) for term, i in tfidf.vocabulary_.items()}
        self.idf = tfidf.idf_.astype(np.float32)
        self.components = svd.components_.astype(np.float32)
        self.fitted_on = texts_hash(texts)
        self._counter = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        self._require_fit()
        if self._counter is None:  # validating a large vocabulary costs more than a query
            self._counter = CountVectorizer(vocabulary=self.vocab, **self._vectorizer_options())
        tf = self._counter.transform(texts).astype(np.float32)
        tf.data = np.log(tf.data) + 1.0  # sublinear tf, as TfidfVectorizer computes it
        weights = normalize(tf.multiply(self.idf).tocsr())
        vectors = np.asarray(weights @ self.components.T, dtype=np.float32)
        return normalize(vectors).astype(np.float32)

    embed_queries = embed

    def probe_vectors(self) -> np.ndarray:
        return self.embed(PROBES)

    def fingerprint(self) -> str:
        return _fingerprint(self.kind, self.params(), self.fitted_on, self.probe_vectors())

    def save(self, folder: Path) -> None:
        self._require_fit()
        (folder / "lsa_vocab.json").write_text(json.dumps(self.vocab, sort_keys=True))
        np.save(folder / "lsa_idf.npy", self.idf)
        np.save(folder / "lsa_components.npy", self.components)

    @classmethod
    def load(cls, folder: Path, params: Mapping[str, Any], fitted_on: str) -> LSAEmbedder:
        model = cls(**params)
        model.vocab = _read_json(folder / "lsa_vocab.json")
        model.idf = _read_npy(folder / "lsa_idf.npy")
        model.components = _read_npy(folder / "lsa_components.npy")
        model.fitted_on = fitted_on
        return model

    def _require_fit(self) -> None:
        if self.vocab is None:
            raise RagError("the LSA embedder is not fitted; call fit(texts) first")


EMBEDDERS: dict[str, type] = {"bm25": BM25Embedder, "lsa": LSAEmbedder}
ALIASES = {"lexical": "bm25", "local": "lsa"}


def make_embedder(spec: str | Mapping[str, Any] | Embedder) -> Embedder:
    """An embedder from a name (``bm25``/``lexical``, ``lsa``/``local``), a litellm model
    (``openai/text-embedding-3-small`` or ``{"model": ..., "api_key_env": ...}``), a mapping
    ``{"kind": ..., **params}``, or an embedder object."""
    if not isinstance(spec, str | Mapping):
        return spec
    from .litellm_embedder import from_spec  # it imports this module

    hosted = from_spec(spec)
    if hosted is not None:
        return hosted
    options = {"kind": spec} if isinstance(spec, str) else dict(spec)
    kind = ALIASES.get(options.get("kind", ""), options.pop("kind", ""))
    options.pop("kind", None)
    if kind not in EMBEDDERS:
        raise RagError(f"embedder {spec!r} is unknown; use one of "
                       f"{', '.join([*EMBEDDERS, *ALIASES])} or a litellm model "
                       "(provider/model, e.g. openai/text-embedding-3-small)")
    try:
        return EMBEDDERS[kind](**options)
    except TypeError as exc:
        raise RagError(f"embedder {kind!r}: {exc}") from exc


def load_embedder(folder: Path, kind: str, params: Mapping[str, Any], fitted_on: str
                  ) -> Embedder:
    if kind == "litellm":
        from .litellm_embedder import LiteLLMEmbedder

        return LiteLLMEmbedder.load(folder, params, fitted_on)
    if kind not in EMBEDDERS:
        raise IndexIntegrityError(f"{folder}: embedder kind {kind!r} is unknown to this "
                                  "version of the workbench; rebuild the index")
    return EMBEDDERS[kind].load(folder, params, fitted_on)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IndexIntegrityError(f"{path}: unreadable ({exc}); rebuild the index") from exc


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexIntegrityError(f"{path}: unreadable ({exc}); rebuild the index") from exc


def _snowball() -> Any:
    SnowballStemmer = optional_import("nltk.stem.snowball", "rag", "BM25's stemmer").SnowballStemmer

    stem = SnowballStemmer("english").stem
    cache: dict[str, str] = {}

    def cached(word: str) -> str:
        if word not in cache:
            cache[word] = stem(word)
        return cache[word]

    return cached
