"""Results of a run: one pandas row per call, and the statistics a reader needs first."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import StatsInputError
from .evaluation.scorers.base import MetricKind

if TYPE_CHECKING:
    from .evaluation.classification import ClassReport
    from .evaluation.stats.report import ComparisonReport


class Results:
    """A table of calls plus what is needed to read it: metric kinds, primary metric."""

    def __init__(self, frame: pd.DataFrame, *, metrics: Mapping[str, MetricKind], primary: str,
                 experiment: str = "", baseline: str | None = None,
                 guardrails: Sequence[str] = (), lower_is_better: Sequence[str] = ()) -> None:
        self.frame = frame
        self.metrics = dict(metrics)
        self.primary = primary
        self.experiment = experiment
        self.baseline = baseline
        self.guardrails = tuple(guardrails)
        self.lower_is_better = tuple(lower_is_better)  # e.g. context_tokens
        self.non_inferiority_margin: float | None = None  # the experiment's, for compare()
        self.run_ids: dict[str, str] = {}
        self.registry_name = experiment
        self.warnings: list[str] = []
        self.report: ComparisonReport | None = None  # every variant vs. the baseline
        self.tracking_uri = ""
        self.prompt_versions: dict[str, int] = {}
        self.partial: str | None = None  # why the run stopped before its last call
        self.log_error: str | None = None  # why MLflow did not take the run, and what to do
        self.cache_hits = int(frame["cached"].sum()) if len(frame) else 0

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], **kwargs: Any) -> Results:
        return cls(pd.DataFrame(list(rows)), **kwargs)

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(self.frame["variant"])) if len(self.frame) else []

    @property
    def errors(self) -> pd.DataFrame:
        return self.frame[self.frame["error"].notna()]

    def to_pandas(self) -> pd.DataFrame:
        return self.frame.copy()

    def summary(self) -> pd.DataFrame:
        """Per variant: each metric's mean with its 95% CI, n, errors, tokens, cost, latency."""
        from .evaluation.classification import summary_columns
        from .evaluation.stats import summarize
        from .gateway.fallbacks import fallback_shares

        summary = summarize(self.frame, self.metrics)
        shares = fallback_shares(self.frame)
        summary["fallback_share"] = [shares.get(str(v), 0.0) for v in summary.index]
        # categorical metrics add balanced accuracy, kappa, recall and the degenerate flag
        extra = summary_columns(self.frame, self.metrics)
        return summary.join(extra) if len(extra.columns) else summary

    def classification(self, metric: str | None = None, *, alpha: float = 0.05
                       ) -> dict[str, ClassReport]:
        """Per variant: confusion matrix, per-class recall, balanced accuracy, kappa and the
        answers given, for a categorical metric (default: the primary); empty for others."""
        from .evaluation.classification import categorical_metrics, classify

        metric = metric or self.primary
        if metric not in categorical_metrics(self.frame, {metric: ""}):
            return {}
        found = {v: classify(self.frame, metric, v, alpha=alpha) for v in self.variants}
        return {v: r for v, r in found.items() if r is not None}

    def degenerate(self, *, alpha: float = 0.05) -> dict[str, str]:
        """Variants whose answers are degenerate, with why: on a categorical primary metric,
        nearly constant or not above the majority-class baseline; otherwise nearly constant
        on another categorical metric. Promotion and the gate refuse them."""
        from .evaluation.classification import degenerate

        return degenerate(self.frame, self.primary, alpha=alpha, metrics=self.metrics)

    def compare(self, a: str | None = None, b: str | None = None, **options: Any
                ) -> ComparisonReport:
        """Paired comparison on every metric; ``a`` is the baseline (default: the experiment's).

        With ``b``, the one pair. Without it, every other variant against ``a`` as one family:
        the correction (Holm by default) covers every pair and metric, so adding a third
        variant costs power instead of being silently left out. With several candidates the
        report names a winner only when exactly one is a guardrail-clean improvement on ``a``.
        """
        from .evaluation.stats import compare, compare_all
        from .gateway.fallbacks import fallback_caveats

        names = self.variants
        a = a or self.baseline or (names[0] if names else None)
        options.setdefault("primary", self.primary)
        options.setdefault("guardrails", self.guardrails)
        options.setdefault("lower_is_better", self.lower_is_better)
        if self.non_inferiority_margin is not None:
            options.setdefault("non_inferiority_margin", self.non_inferiority_margin)
        if b is not None:
            report = compare(self.frame, a, b, self.metrics, **options)
        elif len(names) < 2:
            raise StatsInputError(f"nothing to compare {a!r} with: the run has only {names}")
        else:
            report = compare_all(self.frame, self.metrics, baseline=a, **options)
        caveats = (report.caveats + fallback_caveats(self.frame, report.variants)
                   + self._degenerate_caveats(report))
        return dataclasses.replace(report, source=self, caveats=caveats)

    def _degenerate_caveats(self, report: ComparisonReport) -> tuple[str, ...]:
        """One caveat per compared variant that is degenerate, for any number of pairs."""
        flagged = self.degenerate(alpha=report.alpha)
        return tuple(f"{v} is degenerate: {flagged[v]}" for v in report.variants if v in flagged)

    def failures(self) -> list[str]:
        """Why the run's verdict cannot be trusted at all: a variant none of whose calls
        succeeded, or a scorer that produced no score on the calls that did."""
        frame = self.frame
        if frame.empty:
            return ["no call was made"]
        problems = []
        for variant, rows in frame.groupby("variant", sort=False):
            answered = rows[rows["error"].isna()]
            if answered.empty:
                problems.append(f"every call of {variant!r} failed ({len(rows)} calls)")
                continue
            for metric in self.metrics:
                column = f"score.{metric}"
                if column in answered and answered[column].isna().all():
                    reason = str(answered[f"reason.{metric}"].iloc[0])[:200]
                    problems.append(f"scorer {metric!r} produced no score for {variant!r} "
                                    f"({len(answered)} answered calls; first reason: {reason})")
        return problems

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        return (f"Results({self.experiment!r}, variants={self.variants}, rows={len(self.frame)}, "
                f"errors={len(self.errors)}, primary={self.primary!r})")


def format_summary(summary: pd.DataFrame, metrics: Mapping[str, MetricKind]) -> str:
    """A fixed-width table for terminals: errors with their rate, each metric as
    ``mean [95% CI]``."""
    header = ["variant", "n", "errors", *metrics, "tokens in/out", "cost $", "p50 s", "p95 s"]
    lines = []
    for variant, row in summary.iterrows():
        rate = row["n_errors"] / row["n_calls"] if row["n_calls"] else 0.0
        cells = [str(variant), f"{int(row['n_calls'])}", f"{int(row['n_errors'])} ({rate:.1%})"]
        for metric in metrics:
            mean, lo, hi = row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
            cells.append("n/a" if pd.isna(mean) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]")
        cells += [f"{int(row['prompt_tokens'])}/{int(row['completion_tokens'])}",
                  f"{row['cost']:.4f}", _seconds(row["latency_p50"]), _seconds(row["latency_p95"])]
        if row.get("fallback_share", 0) > 0:  # answers another model gave
            cells[0] += f" ({row['fallback_share']:.0%} fallback)"
        lines.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(header)]
    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _seconds(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3f}"
