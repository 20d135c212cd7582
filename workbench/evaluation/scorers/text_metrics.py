"""Reference-based text metrics (ROUGE, BLEU, chrF, token F1) computed through ``evaluate``.

The metric modules ship in ``workbench/metrics`` because the hub is unreachable; ``evaluate``
is imported on the first score, not when the experiment loads, so validation stays instant.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from pydantic import Field, field_validator

from ...errors import ScorerError, ScorerInputError
from ..evalsets import Example
from .base import Options, OptionScorer, Score, register
from .deterministic import _expected

_MODULES: dict[str, Any] = {}
_LOCK = threading.Lock()


def metric_module(name: str) -> Any:
    """One loaded ``evaluate`` module per metric, shared by every scorer that uses it."""
    from .. import metrics

    with _LOCK:
        if name not in _MODULES:
            _MODULES[name] = metrics.load(name)
        return _MODULES[name]


def _references(example: Example, field: str) -> list[str]:
    raw = _expected(example, field)
    refs = [raw] if isinstance(raw, str) else [str(r) for r in raw]
    if not refs:
        raise ScorerInputError(f"example {example.id}: {field} has no reference text")
    return refs


class _Reference(Options):
    expected: str = Field(default="expected", description="field with the reference text(s)")


class _MetricScorer(OptionScorer):
    kind = "continuous"
    module = ""

    def compute(self, output: str, refs: list[str]) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, output: str, example: Example) -> Score:
        refs = _references(example, self.options.expected)
        value = float(self.compute(output, refs))
        return Score(value, f"{self.name} {value:.3f} against {len(refs)} reference(s)")


@register("rouge")
class Rouge(_MetricScorer):
    """ROUGE F-measure (0–1): word overlap with the reference, for summaries."""

    module = "rouge"

    class Opts(_Reference):
        variant: Literal["rouge1", "rouge2", "rougeL", "rougeLsum"] = "rougeL"
        use_stemmer: bool = False

    def compute(self, output: str, refs: list[str]) -> float:
        o = self.options
        result = metric_module(self.module).compute(
            predictions=[output], references=[refs], rouge_types=[o.variant],
            use_stemmer=o.use_stemmer, use_aggregator=False)
        return result[o.variant][0]


@register("bleu")
class Bleu(_MetricScorer):
    """Sentence BLEU (0–100, sacrebleu with effective order), for translation-like tasks."""

    module = "sacrebleu"

    class Opts(_Reference):
        lowercase: bool = False
        tokenize: str | None = None

    def compute(self, output: str, refs: list[str]) -> float:
        o = self.options
        return metric_module(self.module).compute(
            predictions=[output], references=[refs], lowercase=o.lowercase, tokenize=o.tokenize,
            use_effective_order=True)["score"]


@register("chrf")
class Chrf(_MetricScorer):
    """chrF (0–100; ``word_order: 2`` gives chrF++): robust to morphology and short texts."""

    module = "chrf"

    class Opts(_Reference):
        word_order: int = Field(default=0, ge=0, le=2)
        char_order: int = Field(default=6, ge=1, le=10)
        lowercase: bool = False

    def compute(self, output: str, refs: list[str]) -> float:
        o = self.options
        return metric_module(self.module).compute(
            predictions=[output], references=[refs], word_order=o.word_order,
            char_order=o.char_order, lowercase=o.lowercase)["score"]


@register("token_f1")
class TokenF1(_MetricScorer):
    """SQuAD token F1 (0–1): partial credit for short answers that are nearly right."""

    module = "token_f1"
    Opts = _Reference

    def compute(self, output: str, refs: list[str]) -> float:
        result = metric_module(self.module).compute(
            predictions=[output], references=[refs], use_aggregator=False)
        return result["f1"][0]


@register("evaluate")
class EvaluateMetric(_MetricScorer):
    """Any ``evaluate`` metric module by bundled name or path; ``key`` picks its number."""

    class Opts(_Reference):
        metric: str = Field(min_length=1)
        key: str = Field(min_length=1, description="which entry of compute()'s result")
        args: dict[str, Any] = Field(default_factory=dict)
        references_as_list: bool = True

        @field_validator("metric")
        @classmethod
        def _reachable(cls, metric: str) -> str:
            from .. import metrics

            metrics.resolve(metric)  # offline, an unknown name fails when the experiment loads
            return metric

    def compute(self, output: str, refs: list[str]) -> float:
        o = self.options
        references = [refs] if o.references_as_list else [refs[0]]
        result = metric_module(o.metric).compute(predictions=[output], references=references,
                                                 **o.args)
        if o.key not in result:
            raise ScorerError(f"metric {o.metric!r} returned {sorted(result)}, not {o.key!r}")
        value = result[o.key]
        return value[0] if isinstance(value, list) else value
