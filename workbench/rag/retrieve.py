"""Retrieval as an experiment variant: ``retrievers:`` in ``experiment.yaml``.

A retriever is an index version (or several, fused: hybrid), a ``k`` and a fusion
method. Each example is retrieved for once per retriever, when the experiment loads, so
that a label naming a document the index lacks is an error before any call, and every
later render of the example reuses the same context. The retrieved chunks fill
``{{context}}``; the labelled metrics of the example (``relevant`` ids in the eval set)
become scores, so paired comparisons between retrievers use the ordinary statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..evaluation.evalsets import Example
from .retriever_spec import CONTEXT_TOKENS, LABELLED, RetrieverSpec, metric_names

if TYPE_CHECKING:
    from ..evaluation.evalsets import EvalSet
    from ..evaluation.scorers.base import MetricKind, Score
    from ..spec import ExperimentSpec
    from .index import Hit, Index

CONTEXT = "context"
RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al. 2009)


@dataclass(frozen=True)
class Retrieval:
    """What one retriever found for one example, and how good it was."""

    retriever: str
    hits: tuple[Hit, ...]
    context: str
    context_tokens: int
    scores: Mapping[str, float] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        """Document ids in the order of their best chunk."""
        return list(dict.fromkeys(h.doc_id for h in self.hits))


@dataclass(frozen=True)
class RetrievedExample(Example):
    """An example as a retrieving variant sees it: ``inputs`` include ``context``."""

    retrieval: Retrieval | None = None


class Retriever:
    """Loaded index versions, a ``k`` and a fusion, with each example's retrieval cached."""

    def __init__(self, name: str, spec: RetrieverSpec, indexes: Sequence[Index]) -> None:
        self.name, self.spec, self.indexes = name, spec, list(indexes)
        self._tokens = [{(c.doc_id, c.start, c.end): c.tokens for c in idx.chunks}
                        for idx in self.indexes]
        self._cache: dict[str, Retrieval] = {}

    def __repr__(self) -> str:
        refs = " + ".join(i.ref for i in self.indexes)
        return f"Retriever({self.name!r}, {refs}, k={self.spec.k}, {self.spec.method})"

    @property
    def refs(self) -> list[str]:
        return [i.ref for i in self.indexes]

    def search_many(self, queries: Sequence[str]) -> list[list[Hit]]:
        """The ``k`` best chunks per query; several indexes are fused."""
        k = self.spec.k
        if len(self.indexes) == 1:
            return self.indexes[0].search_many(queries, k=k)
        pool = max(4 * k, 20)  # candidates per index, so fusion can promote a lower rank
        lists = [idx.search_many(queries, k=pool) for idx in self.indexes]
        weights = self.spec.weights or [1.0] * len(self.indexes)
        return [fuse([per_index[q] for per_index in lists], weights, self.spec.fusion, k)
                for q in range(len(queries))]

    def retrieve(self, examples: Sequence[Example]) -> list[Retrieval]:
        """Each example's retrieval, computed once (in one batch) and then cached."""
        todo = [e for e in examples if e.id not in self._cache]
        if todo:
            queries = [_query(e, self.spec.query_field, self.name) for e in todo]
            for example, hits in zip(todo, self.search_many(queries), strict=True):
                self._cache[example.id] = self._retrieval(example, hits)
        return [self._cache[e.id] for e in examples]

    def augment(self, example: Example) -> RetrievedExample:
        """The example with ``context`` filled and its retrieval attached."""
        retrieval = self.retrieve([example])[0]
        return RetrievedExample(example.id, {**example.inputs, CONTEXT: retrieval.context},
                                retrieval)

    def _retrieval(self, example: Example, hits: list[Hit]) -> Retrieval:
        from .metrics import metrics_at_k, ranked_documents

        tokens = sum(self._chunk_tokens(h) for h in hits)
        scores: dict[str, float] = {CONTEXT_TOKENS: float(tokens)}
        field_name = self.spec.relevant_field
        if field_name is not None:
            found = metrics_at_k(ranked_documents(hits), relevance(example.inputs.get(
                field_name)), self.spec.k)
            for metric, (short, _) in LABELLED.items():
                scores[metric] = found[f"{short}@{self.spec.k}"]
        return Retrieval(self.name, tuple(hits), format_context(hits), tokens, scores)

    def _chunk_tokens(self, hit: Hit) -> int:
        key = (hit.doc_id, hit.start, hit.end)
        return next((t[key] for t in self._tokens if key in t), 0)


def format_context(hits: Sequence[Hit]) -> str:
    """Chunks as numbered passages naming their document, so an answer can cite them."""
    return "\n\n".join(f"[{n}] ({h.doc_id}) {h.text.strip()}" for n, h in enumerate(hits, 1))


def fuse(lists: Sequence[Sequence[Hit]], weights: Sequence[float], fusion: str, k: int
         ) -> list[Hit]:
    """Hybrid retrieval: one ranking from several, chunks matched by their document span."""
    from .index import Hit

    fused: dict[tuple[str, int, int], float] = {}
    first: dict[tuple[str, int, int], Hit] = {}
    for hits, weight in zip(lists, weights, strict=True):
        if fusion == "rrf":
            parts = [weight / (RRF_K + rank) for rank in range(1, len(hits) + 1)]
        else:
            scores = [h.score for h in hits]
            low, span = (min(scores), max(scores) - min(scores)) if scores else (0.0, 0.0)
            parts = [weight * ((s - low) / span if span > 0 else 1.0) for s in scores]
        for hit, part in zip(hits, parts, strict=True):
            key = (hit.doc_id, hit.start, hit.end)
            fused[key] = fused.get(key, 0.0) + part
            first.setdefault(key, hit)
    ranked = sorted(fused, key=lambda key: (-fused[key], key))[:k]
    return [Hit(key[0], key[1], key[2], fused[key], first[key].text) for key in ranked]


def relevance(value: Any) -> dict[str, float]:
    """Relevant ids from an eval-set cell: a list of ids, one id, or ``{id: grade}`` (a
    table reader fills the grades a row lacks with None)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(d): float(g) for d, g in value.items() if g is not None and g > 0}
    if isinstance(value, str):
        return {value: 1.0}
    return {str(d): 1.0 for d in value}


def _query(example: Example, field_name: str, retriever: str) -> str:
    text = example.inputs.get(field_name)
    if not isinstance(text, str) or not text.strip():
        raise SpecError("retrievers", f"{retriever}.query_field", f"example {example.id!r} has "
                        f"no text in {field_name!r} to retrieve for",
                        f"give every row a {field_name!r}, or set query_field to the column "
                        "holding the question")
    return text


class RetrievalScorer:
    """One labelled retrieval metric (or the context's size) as a scorer, read from the
    retrieval attached to the example; a variant without a retriever has no score.

    It never reads the model's answer, so a row whose call failed is scored too: the
    retrieval happened, and dropping the row would pair retrievers on fewer queries.
    """

    reads_output = False

    def __init__(self, name: str, kind: MetricKind) -> None:
        self.name, self.kind = name, kind
        self.lower_is_better = name == CONTEXT_TOKENS

    def __call__(self, output: str, example: Example) -> Score:
        from ..evaluation.scorers.base import Score

        retrieval = getattr(example, "retrieval", None)
        if retrieval is None or self.name not in retrieval.scores:
            return Score(None, "no retrieval for this variant")
        value = retrieval.scores[self.name]
        return Score(value, f"{self.name} = {value:g} with {retrieval.retriever} "
                     f"(retrieved {', '.join(retrieval.sources) or 'nothing'})")

    def __repr__(self) -> str:
        return f"RetrievalScorer({self.name!r})"


def retrieval_scorers(spec: ExperimentSpec) -> list[RetrievalScorer]:
    kinds: dict[str, MetricKind] = {m: k for m, (_, k) in LABELLED.items()}  # type: ignore[misc]
    return [RetrievalScorer(m, kinds.get(m, "continuous")) for m in metric_names(spec)]


def prepare(spec: ExperimentSpec, evalset: EvalSet, *, root: str | Path | None = None
            ) -> dict[str, Retriever]:
    """Load every retriever's indexes and retrieve for every example, or raise a
    ``SpecError`` naming the place: an unknown index or version, ``{{context}}`` with no
    retriever, a missing query or label field, labels for documents the index lacks."""
    where = spec.path or spec.name
    uses = sorted(n for n, t in spec.templates.items() if CONTEXT in t.variables)
    if not spec.retrievers:
        if uses and CONTEXT not in evalset.columns:
            raise SpecError(where, f"prompts.{uses[0]}", "the template uses {{context}} but "
                            "the experiment has no retrievers and the eval set no 'context' "
                            "field", "add a `retrievers:` section (e.g. `retrievers: {bm25: "
                            "{index: kb, k: 5}}`), or a context column to the eval set")
        return {}
    if CONTEXT in evalset.columns:
        raise SpecError(where, "retrievers", f"the eval set {evalset.source} has a 'context' "
                        "field, which the retrieved context would replace",
                        "rename that column, or remove the retrievers")
    if not uses:
        raise SpecError(where, "prompts", "retrievers are given but no prompt uses "
                        "{{context}}, so the retrieved text would never be sent",
                        "put {{context}} in the prompts")
    from ..settings import project_root

    root = Path(root) if root else project_root(spec.directory) / ".workbench" / "indexes"
    loaded: dict[str, Index] = {}
    out = {}
    for name, rspec in spec.retrievers.items():
        place = f"retrievers.{name}"
        _check_fields(where, place, rspec, evalset)
        indexes = [_load(where, place, ref, root, loaded) for ref in rspec.indexes]
        if rspec.weights is not None and len(rspec.weights) != len(indexes):
            raise SpecError(where, f"{place}.weights", f"{len(rspec.weights)} weights for "
                            f"{len(indexes)} indexes", "give one weight per index")
        if rspec.relevant_field is not None:
            _check_labels(where, place, rspec.relevant_field, evalset, indexes)
        retriever = Retriever(name, rspec, indexes)
        retriever.retrieve(evalset.examples)
        out[name] = retriever
    return out


def _check_fields(where: Any, place: str, rspec: RetrieverSpec, evalset: EvalSet) -> None:
    for option in ("query_field", "relevant_field"):
        column = getattr(rspec, option)
        if column is not None and column not in evalset.columns:
            extra = (" (or relevant_field: null to run without labelled metrics)"
                     if option == "relevant_field" else "")
            raise SpecError(where, f"{place}.{option}", f"{column!r} is not a field of the "
                            f"eval set {evalset.source}",
                            f"use one of {sorted(evalset.columns)}{extra}")


def _load(where: Any, place: str, ref: str, root: Path, loaded: dict[str, Index]) -> Index:
    from .errors import RagError
    from .index import load_index

    if ref not in loaded:
        try:
            loaded[ref] = load_index(ref, root=root)
        except RagError as exc:
            raise SpecError(where, f"{place}.index", str(exc),
                            "build it first: `workbench rag build <experiment folder>` (the "
                            "indexes listed in its indexes.yaml) or wb.rag.build_index(...), "
                            "or name a version that exists") from exc
    return loaded[ref]


def _check_labels(where: Any, place: str, column: str, evalset: EvalSet,
                  indexes: Sequence[Index]) -> None:
    from .errors import LabelError
    from .metrics import LabelledQuery, check_labels

    queries = [LabelledQuery(e.id, "", relevance(e.inputs.get(column)))
               for e in evalset.examples]
    unlabelled = [q.id for q in queries if not q.relevant]
    if unlabelled:
        raise SpecError(where, f"{place}.relevant_field", f"{len(unlabelled)} example(s) "
                        f"have no relevant ids in {column!r}: {', '.join(unlabelled[:5])}",
                        "label every example (their recall would be undefined), or set "
                        "relevant_field: null")
    for index in indexes:
        try:
            check_labels(queries, index)
        except LabelError as exc:
            raise SpecError(where, f"{place}.index", f"{exc} (labels from {column!r} of "
                            f"{evalset.source})") from exc


def validation_view(evalset: EvalSet, retriever: Retriever) -> EvalSet:
    """The eval set as a retrieving variant renders it, for the checks of its fields."""
    from ..evaluation.evalsets import EvalSet

    view = EvalSet.__new__(EvalSet)
    view.__dict__.update(evalset.__dict__)
    view.examples = [retriever.augment(e) for e in evalset.examples]
    view.dataset = evalset.dataset.add_column(
        CONTEXT, [e.inputs[CONTEXT] for e in view.examples])
    return view
