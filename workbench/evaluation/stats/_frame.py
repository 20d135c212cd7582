"""Reading the results frame: validation, successful rows and per-example means."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from workbench.errors import StatsInputError  # defined with the other errors

MetricKind = Literal["binary", "continuous"]
Correction = Literal["holm", "bh", "none"]
McNemarMethod = Literal["exact", "midp"]

SCORE_PREFIX = "score."


def col(metric: str) -> str:
    return f"{SCORE_PREFIX}{metric}"


def ok_rows(df: pd.DataFrame) -> pd.Series:
    """Rows whose call succeeded: ``error`` is None/NaN/empty."""
    if "error" not in df.columns:
        return pd.Series(True, index=df.index)
    err = df["error"]
    return err.isna() | (err.astype(str).str.strip() == "")


def check_frame(df: pd.DataFrame, metrics: Mapping[str, str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of results, got {type(df).__name__}")
    missing = [c for c in ("variant", "example_id") if c not in df.columns]
    if missing:
        raise StatsInputError(
            f"results frame lacks column(s) {missing}; one row per call is expected"
        )
    if not metrics:
        raise StatsInputError("no metrics given: pass e.g. metrics={'exact_match': 'binary'}")
    have = sorted(c[len(SCORE_PREFIX) :] for c in df.columns if c.startswith(SCORE_PREFIX))
    for name, kind in metrics.items():
        if kind not in ("binary", "continuous"):
            raise StatsInputError(
                f"metric {name!r} has kind {kind!r}; use 'binary' (pass/fail) or 'continuous'"
            )
        if col(name) not in df.columns:
            raise StatsInputError(
                f"metric {name!r} has no column {col(name)!r} in the results; "
                f"scored metrics are {have}"
            )
        vals = pd.to_numeric(df[col(name)], errors="coerce")
        inf = vals[np.isinf(vals.to_numpy(dtype=float))]
        if len(inf):
            row = df.loc[inf.index[0]]
            raise StatsInputError(
                f"metric {name!r} has an infinite score ({inf.iloc[0]}) for variant "
                f"{row['variant']!r}, example {row['example_id']!r}: means and tests are "
                f"undefined with infinities; make the scorer return a finite value, or NaN "
                f"for 'not scored'"
            )
        if kind == "binary":
            vals = vals.dropna()
            bad = vals[~vals.isin([0.0, 1.0])]
            if len(bad):
                raise StatsInputError(
                    f"metric {name!r} is declared binary but has values other than 0/1 "
                    f"(e.g. {bad.iloc[0]!r}); declare it 'continuous'"
                )


def check_variant(df: pd.DataFrame, name: str) -> None:
    known = list(pd.unique(df["variant"]))
    if name not in known:
        raise StatsInputError(
            f"variant {name!r} is not in the results; known variants: {known}"
        )


def usable(rows: pd.DataFrame, metric: str, fill_errors: float | None = None) -> pd.Series:
    """Each row's score for the statistics, NaN where the row does not count.

    A failed call counts only with the score it carries: the runner scores a failed call
    only with scorers that never read the answer (retrieval metrics), whose value the
    failure did not change. Otherwise it is left out, or scored ``fill_errors``.
    """
    values = rows[col(metric)].astype(float)
    failed = ~ok_rows(rows) & values.isna()
    return values.where(~failed, math.nan if fill_errors is None else fill_errors)


def per_example(
    df: pd.DataFrame, variant: str, metric: str, fill_errors: float | None = None
) -> tuple[pd.Series, pd.Series]:
    """Per-example mean score over the variant's scored calls, and their count.

    Failed calls are left out, or count as ``fill_errors`` when it is given (the score of a
    failure); a call that succeeded but was not scored is always left out. A failed call
    that carries a score keeps it (see ``usable``).
    """
    rows = df[df["variant"] == variant]
    values = usable(rows, metric, fill_errors)
    keep = values.notna()
    grouped = values[keep].groupby(rows.loc[keep, "example_id"], sort=True)
    return grouped.mean().astype(float), grouped.count()


def error_share(df: pd.DataFrame, variant: str) -> pd.Series:
    """Per example, the share of the variant's calls that failed."""
    rows = df[df["variant"] == variant]
    failed = (~ok_rows(rows)).astype(float)
    return failed.groupby(rows["example_id"], sort=True).mean()


def quantile(values: pd.Series, q: float) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.quantile(q)) if len(values) else math.nan


def _calls(df: pd.DataFrame, variant: str, metric: str, fill_errors: float | None) -> pd.DataFrame:
    """The variant's usable calls in repeat order: example_id, rank within example, value."""
    rows = df[df["variant"] == variant]
    values = usable(rows, metric, fill_errors)
    keep = values.notna()
    order = rows["repeat"] if "repeat" in rows.columns else pd.Series(0, index=rows.index)
    calls = pd.DataFrame(
        {"example_id": rows["example_id"], "order": order, "value": values}
    ).loc[keep]
    calls = calls.sort_values(["example_id", "order"], kind="mergesort")
    calls["rank"] = calls.groupby("example_id", sort=False).cumcount()
    return calls


@dataclass(frozen=True)
class PairedMeans:
    """Per-example means of two variants on the examples both scored, from equally many
    calls per example; ``only_a``/``only_b`` count examples only one variant scored."""

    ids: pd.Index
    x_a: np.ndarray
    x_b: np.ndarray
    calls: np.ndarray
    only_a: int
    only_b: int


def paired_means(
    df: pd.DataFrame, a: str, b: str, metric: str, fill_errors: float | None = None
) -> PairedMeans:
    """Per-example means for a paired comparison, each from the same number of calls.

    A mean of five calls is less spread out than a single call, so when the variants have
    different numbers of usable calls on an example (different ``repeats``, failed repeats)
    their means no longer share a distribution even when the variants are identical, and a
    paired test then finds differences that are not there. Using the first k calls of each,
    k the smaller count, keeps each pair exchangeable.
    """
    calls_a = _calls(df, a, metric, fill_errors)
    calls_b = _calls(df, b, metric, fill_errors)
    n_a = calls_a.groupby("example_id").size()
    n_b = calls_b.groupby("example_id").size()
    ids = n_a.index.intersection(n_b.index).sort_values()
    k = np.minimum(n_a.loc[ids], n_b.loc[ids])

    def means(calls: pd.DataFrame) -> np.ndarray:
        sub = calls[calls["example_id"].isin(ids)]
        sub = sub[sub["rank"].to_numpy() < sub["example_id"].map(k).to_numpy()]
        return sub.groupby("example_id")["value"].mean().loc[ids].to_numpy(dtype=float)

    return PairedMeans(
        ids=ids,
        x_a=means(calls_a),
        x_b=means(calls_b),
        calls=k.to_numpy(dtype=float),
        only_a=len(n_a.index.difference(ids)),
        only_b=len(n_b.index.difference(ids)),
    )
