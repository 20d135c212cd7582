"""The result types of a comparison and the options object that configures one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pandas as pd

from ._frame import Correction, McNemarMethod, MetricKind, StatsInputError
from .noninferiority import MIN_PAIRED, NonInferiority


@dataclass(frozen=True, kw_only=True)
class CompareOptions:
    """How a comparison is run and decided; ``compare(..., **kwargs)`` builds one from keywords.

    ``primary`` is the metric the verdict is drawn from (default: the only metric).
    ``guardrails`` may not get significantly worse for a "better" verdict to stand.
    ``non_inferiority_margin`` (primary-metric units) adds the one-sided test "b is worse than
    a by less than the margin". ``min_effect`` is the smallest primary-metric difference worth
    detecting (default 0.05 for pass rates, 0.2 SD for scores). ``seed`` fixes the orderings
    the betting test of non-inferiority averages over; nothing else is random.
    """

    primary: str | None = None
    guardrails: tuple[str, ...] = ()
    alpha: float = 0.05
    correction: Correction = "holm"
    non_inferiority_margin: float | None = None
    lower_is_better: tuple[str, ...] = ()
    min_effect: float | None = None
    power: float = 0.8
    mcnemar: McNemarMethod = "exact"
    seed: int = 0

    @classmethod
    def build(cls, options: CompareOptions | None, overrides: Mapping[str, Any]) -> CompareOptions:
        names = {f.name for f in fields(cls)}
        if "n_bootstrap" in overrides:
            raise StatsInputError(
                "n_bootstrap no longer applies: every interval now inverts its test, with no "
                "resampling; drop the argument"
            )
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise StatsInputError(
                f"unknown comparison option(s) {unknown}; the options are {sorted(names)}"
            )
        opts = replace(options or cls(), **overrides)
        return replace(
            opts, guardrails=tuple(opts.guardrails), lower_is_better=tuple(opts.lower_is_better)
        )

    def validated(self, metrics: Mapping[str, str]) -> CompareOptions:
        """Check the options against the metrics; fills in ``primary`` for a single metric."""
        primary = self.primary
        if primary is None:
            if len(metrics) != 1:
                raise StatsInputError(
                    f"name the primary metric the verdict is drawn from: primary=<one of "
                    f"{list(metrics)}>"
                )
            primary = next(iter(metrics))
        if primary not in metrics:
            raise StatsInputError(
                f"primary metric {primary!r} is not among the metrics {list(metrics)}"
            )
        for g in (*self.guardrails, *self.lower_is_better):
            if g not in metrics:
                raise StatsInputError(f"metric {g!r} is not among the metrics {list(metrics)}")
        if primary in self.guardrails:
            raise StatsInputError(
                f"{primary!r} is the primary metric; it cannot also be a guardrail"
            )
        if not 0 < self.alpha < 1:
            raise StatsInputError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0 < self.power < 1:
            raise StatsInputError(f"power must be in (0, 1), got {self.power}")
        if self.correction not in ("holm", "bh", "none"):
            raise StatsInputError(
                f"correction must be 'holm', 'bh' or 'none', not {self.correction!r}"
            )
        m = self.non_inferiority_margin
        if m is not None and not (math.isfinite(m) and m > 0):
            raise StatsInputError(f"non_inferiority_margin must be positive, got {m}")
        if self.mcnemar not in ("exact", "midp"):
            raise StatsInputError(f"mcnemar must be 'exact' or 'midp', not {self.mcnemar!r}")
        return replace(self, primary=primary)


@dataclass(frozen=True)
class MetricComparison:
    """The paired comparison of one metric between ``a`` (baseline) and ``b`` (candidate).

    ``diff`` is always ``mean_b - mean_a`` over the paired examples; whether that is good news
    depends on ``higher_is_better``. ``ci_low``/``ci_high`` invert the test in ``test``, so the
    interval excludes 0 exactly when ``p_value < alpha``. NaN marks a quantity that the data
    cannot define (no paired examples); verdicts never contain NaN.
    """

    metric: str
    kind: MetricKind
    a: str
    b: str
    higher_is_better: bool
    alpha: float
    n_paired: int
    n_dropped: int
    n_only_a: int
    n_only_b: int
    calls_per_example: float
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    ci_method: str
    test: str
    statistic: float
    p_value: float
    p_adj: float
    effect_size: float
    effect_size_name: str
    discordant_a: int | None
    discordant_b: int | None
    mde: float
    ni: NonInferiority | None = None
    note: str = ""
    # Set when the differences are too skewed for the t distribution at this n (Cochran's rule).
    skew_warning: str = ""

    @property
    def testable(self) -> bool:
        return not math.isnan(self.p_value)

    def _side(self) -> str | None:
        """The variant the interval places on the better side of 0, else None."""
        if self.ci_low > 0:
            b_better = self.higher_is_better
        elif self.ci_high < 0:
            b_better = not self.higher_is_better
        else:
            return None
        return self.b if b_better else self.a

    @property
    def significant(self) -> bool:
        return (
            self.testable
            and self.n_paired >= MIN_PAIRED
            and self.p_adj < self.alpha
            and self._side() is not None
        )

    @property
    def favours(self) -> str | None:
        """The variant the data significantly favours (after correction), else None: the
        adjusted test must reject and the interval must exclude 0 on that variant's side."""
        return self._side() if self.significant else None

    def regresses(self, candidate: str) -> bool:
        """Whether ``candidate`` is significantly worse here (raw p: stricter for guardrails)."""
        if not self.testable or self.n_paired < MIN_PAIRED or self.p_value >= self.alpha:
            return False
        better = self._side()
        return better is not None and better != candidate

    def with_p_adj(self, p_adj: float) -> MetricComparison:
        return replace(self, p_adj=p_adj)


@dataclass(frozen=True)
class ErrorCheck:
    """Failed calls as outcomes: the error rates, their paired test, and the primary metric
    recomputed with every failed call scored as a failure (``failure_score``)."""

    rate_a: float
    rate_b: float
    n_paired: int
    p_value: float
    test: str
    failure_score: float
    diff: float
    ci_low: float
    ci_high: float
    p_as_failures: float
    favours_as_failures: str | None


@dataclass(frozen=True)
class PairComparison:
    """Every metric compared for one pair, and the decision drawn from the primary metric.

    ``outcome`` is one of ``better``, ``blocked`` (better on the primary but a guardrail
    regressed), ``inconclusive`` (failed calls change or cloud the answer), ``non_inferior``,
    ``no_difference``, ``identical`` or ``insufficient_data``.
    """

    a: str
    b: str
    primary_metric: str
    metrics: Mapping[str, MetricComparison]
    verdict: str
    winner: str | None
    outcome: str
    underpowered: bool
    blocked_by: tuple[str, ...]
    non_inferior: bool | None
    resources: pd.DataFrame
    errors: ErrorCheck | None = None
    caveats: tuple[str, ...] = field(default=())

    @property
    def primary(self) -> MetricComparison:
        return self.metrics[self.primary_metric]
