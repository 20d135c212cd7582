"""Results of a run: one pandas row per call, and the statistics a reader needs first."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .scorers import MetricKind

if TYPE_CHECKING:
    from .report import ComparisonReport


class Results:
    """A table of calls plus what is needed to read it: metric kinds, primary metric."""

    def __init__(self, frame: pd.DataFrame, *, metrics: Mapping[str, MetricKind], primary: str,
                 experiment: str = "", baseline: str | None = None,
                 guardrails: Sequence[str] = ()) -> None:
        self.frame = frame
        self.metrics = dict(metrics)
        self.primary = primary
        self.experiment = experiment
        self.baseline = baseline
        self.guardrails = tuple(guardrails)
        self.run_ids: dict[str, str] = {}
        self.registry_name = experiment
        self.warnings: list[str] = []
        self.report: ComparisonReport | None = None  # baseline vs. the next variant, once run
        self.tracking_uri = ""
        self.prompt_versions: dict[str, int] = {}
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
        from .stats import summarize

        return summarize(self.frame, self.metrics)

    def compare(self, a: str | None = None, b: str | None = None, **options: Any
                ) -> ComparisonReport:
        """Paired comparison of two variants on every metric (``a`` is the baseline)."""
        from .stats import compare

        names = self.variants
        if a is None:
            a = self.baseline or names[0]
        if b is None:
            others = [n for n in names if n != a]
            if not others:
                raise ValueError(f"nothing to compare {a!r} with: the run has only {names}")
            b = others[0]
        options.setdefault("primary", self.primary)
        options.setdefault("guardrails", self.guardrails)
        report = compare(self.frame, a, b, self.metrics, **options)
        return dataclasses.replace(report, source=self)

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
        lines.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(header)]
    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _seconds(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.3f}"
