"""Paired comparison of variants on every metric, corrected across the report."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._frame import (
    MetricKind,
    StatsInputError,
    check_frame,
    check_variant,
    error_share,
    ok_rows,
    paired_means,
)
from .noninferiority import NonInferiority, non_inferiority
from .paired import PairedTest, adjust_pvalues, clean, paired_test
from .power import minimum_detectable_effect
from .report import ComparisonReport
from .summary import consistency, summarize
from .types import CompareOptions, ErrorCheck, MetricComparison
from .verdict import decide, overall


def _effect_size(kind: str, x_a: np.ndarray, x_b: np.ndarray, d: np.ndarray) -> tuple[float, str]:
    if kind == "binary":
        pa, pb = float(np.clip(x_a.mean(), 0, 1)), float(np.clip(x_b.mean(), 0, 1))
        return 2 * math.asin(math.sqrt(pb)) - 2 * math.asin(math.sqrt(pa)), "Cohen's h"
    if d.size < 2:
        return math.nan, "Cohen's d_z"
    sd = float(d.std(ddof=1))
    mean = float(d.mean())
    if sd == 0:
        return (0.0 if mean == 0 else math.copysign(math.inf, mean)), "Cohen's d_z"
    return mean / sd, "Cohen's d_z"


def _empty(base: dict[str, Any]) -> MetricComparison:
    nan = math.nan
    return MetricComparison(
        **base,
        mean_a=nan,
        mean_b=nan,
        diff=nan,
        ci_low=nan,
        ci_high=nan,
        ci_method="",
        test="",
        statistic=nan,
        p_value=nan,
        p_adj=nan,
        effect_size=nan,
        effect_size_name="",
        discordant_a=None,
        discordant_b=None,
        mde=nan,
        note="no example has a valid score from both",
    )


def _statistic(res: PairedTest, d: np.ndarray) -> tuple[tuple[int, int] | None, float, str]:
    """Discordant counts (McNemar only), the test statistic and the interval's name."""
    if str(res.method[0]).startswith("McNemar"):
        counts = (int(res.discordant_a[0]), int(res.discordant_b[0]))
        return counts, float(min(counts)), "Tango score interval"
    n = d.size
    t = float(d.mean() / (d.std(ddof=1) / math.sqrt(n))) if n > 1 and d.std() > 0 else math.nan
    return None, t, "t interval of the mean difference"


def compare_metric(
    df: pd.DataFrame,
    a: str,
    b: str,
    metric: str,
    kind: MetricKind,
    opts: CompareOptions,
    mde_alpha: float,
) -> MetricComparison:
    """One metric, errors dropped: per-example means paired on the examples both scored."""
    pm = paired_means(df, a, b, metric)
    ids_any = set(df.loc[df["variant"].isin([a, b]), "example_id"])
    n = len(pm.ids)
    higher = metric not in opts.lower_is_better
    base = dict(
        metric=metric,
        kind=kind,
        a=a,
        b=b,
        higher_is_better=higher,
        alpha=opts.alpha,
        n_paired=n,
        n_dropped=len(ids_any) - n,
        n_only_a=pm.only_a,
        n_only_b=pm.only_b,
        calls_per_example=float(pm.calls.mean()) if n else 0.0,
    )
    if n == 0:
        return _empty(base)
    x_a, x_b = pm.x_a, pm.x_b
    d = clean(x_b - x_a)
    res = paired_test(x_a, x_b, kind, alpha=opts.alpha, mcnemar=opts.mcnemar)
    test = str(res.method[0])
    counts, statistic, ci_method = _statistic(res, d)
    es, es_name = _effect_size(kind, x_a, x_b, d)
    return MetricComparison(
        **base,
        mean_a=float(x_a.mean()),
        mean_b=float(x_b.mean()),
        diff=float(res.estimate[0]),
        ci_low=float(res.low[0]),
        ci_high=float(res.high[0]),
        ci_method=ci_method,
        test=test,
        statistic=statistic,
        p_value=float(res.p_value[0]),
        p_adj=float(res.p_value[0]),
        effect_size=es,
        effect_size_name=es_name,
        discordant_a=None if counts is None else counts[0],
        discordant_b=None if counts is None else counts[1],
        mde=_observed_mde(n, kind, d, counts, mde_alpha, opts),
        ni=_non_inferiority(metric, kind, x_a, x_b, d, counts, opts),
        note=_note(d, n),
        skew_warning=_skew_warning(kind, d[0] if d.ndim > 1 else d),
    )


def _note(d: np.ndarray, n: int) -> str:
    """What a reader should know before trusting the numbers of a tiny or tied sample."""
    if np.all(d == 0):
        return f"identical scores on all {n} paired examples"
    return f"only {n} paired examples" if n < 5 else ""


def _non_inferiority(metric: str, kind: MetricKind, x_a: np.ndarray, x_b: np.ndarray,
                     d: np.ndarray, counts: tuple[int, int] | None,
                     opts: CompareOptions) -> NonInferiority | None:
    """The non-inferiority test of the primary metric, when a margin was asked for."""
    if opts.non_inferiority_margin is None or metric != opts.primary:
        return None
    span = float(max(x_a.max(), x_b.max()) - min(x_a.min(), x_b.min()))
    span = 1.0 if kind == "binary" else span
    higher = metric not in opts.lower_is_better
    return non_inferiority(
        d, opts.non_inferiority_margin, higher, opts.alpha, counts, span, opts.seed
    )


def _skew_warning(kind: str, d: np.ndarray) -> str:
    """Cochran's rule: the mean's t-based p and interval are trustworthy once
    n > 25 * skewness^2; below that a skewed difference can look significant by chance."""
    n = len(d)
    if kind != "continuous" or n < 3 or np.all(d == d[0]):
        return ""
    from scipy import stats as sps

    g1 = float(sps.skew(d, bias=False))
    needed = math.ceil(25 * g1 * g1)
    if not math.isfinite(g1) or n >= needed:
        return ""
    return (f"the differences are skewed (skewness {g1:+.1f}) and {n} examples are fewer than "
            f"the {needed} the t-test needs for that skew, so its p-value and interval are "
            f"approximate; add examples before trusting a narrow result")


def _observed_mde(
    n: int,
    kind: str,
    d: np.ndarray,
    counts: tuple[int, int] | None,
    alpha: float,
    opts: CompareOptions,
) -> float:
    """The smallest effect this comparison had ``power`` to detect, from its own nuisance
    parameters (discordance or SD of differences) - not from the observed effect, whose
    'observed power' says nothing new (Hoenig & Heisey 2001)."""
    if n < 2:
        return math.nan
    kw = dict(alpha=alpha, power=opts.power, mcnemar=opts.mcnemar)
    try:
        if counts is not None:
            return minimum_detectable_effect(n, kind="binary", discordance=sum(counts) / n, **kw)
        sdd = float(d.std(ddof=1))
        if sdd == 0:
            return math.nan
        mde = minimum_detectable_effect(n, kind="continuous", sd_diff=sdd, **kw)
        return min(mde, 1.0) if kind == "binary" else mde
    except ValueError:
        return math.nan


def error_check(
    df: pd.DataFrame, a: str, b: str, metric: str, kind: MetricKind, opts: CompareOptions
) -> ErrorCheck | None:
    """Failed calls counted as outcomes, or None when neither variant had a failed call.

    A variant must not win through its own failures: dropping a failed call removes exactly
    the examples it would have lost. So the error indicator gets its own paired test and the
    metric is recomputed with each failed call scored as the worst score observed.
    """
    share_a, share_b = error_share(df, a), error_share(df, b)
    ids = share_a.index.intersection(share_b.index)
    if len(ids) == 0 or (share_a.loc[ids].sum() == 0 and share_b.loc[ids].sum() == 0):
        return None
    rows = df[df["variant"].isin([a, b])]
    scores = pd.to_numeric(rows[f"score.{metric}"], errors="coerce").dropna()
    if scores.empty:
        return None
    higher = metric not in opts.lower_is_better
    worst = float(scores.min() if higher else scores.max())
    err = paired_test(share_a.loc[ids].to_numpy(), share_b.loc[ids].to_numpy(), "binary",
                      alpha=opts.alpha, mcnemar=opts.mcnemar)
    filled = paired_means(df, a, b, metric, fill_errors=worst)
    res = paired_test(filled.x_a, filled.x_b, kind, alpha=opts.alpha, mcnemar=opts.mcnemar)
    lo, hi, p = float(res.low[0]), float(res.high[0]), float(res.p_value[0])
    favours = None
    if p < opts.alpha and len(filled.ids) >= 5 and (lo > 0 or hi < 0):
        favours = b if (lo > 0) == higher else a
    return ErrorCheck(
        rate_a=_call_rate(df, a),
        rate_b=_call_rate(df, b),
        n_paired=len(ids),
        p_value=float(err.p_value[0]),
        test=str(err.method[0]),
        failure_score=worst,
        diff=float(res.estimate[0]),
        ci_low=lo,
        ci_high=hi,
        p_as_failures=p,
        favours_as_failures=favours,
    )


def _call_rate(df: pd.DataFrame, variant: str) -> float:
    rows = df[df["variant"] == variant]
    return float((~ok_rows(rows)).mean()) if len(rows) else math.nan


def compare(
    df: pd.DataFrame,
    a: str,
    b: str,
    metrics: Mapping[str, MetricKind],
    options: CompareOptions | None = None,
    **overrides: Any,
) -> ComparisonReport:
    """Compare variant ``b`` (candidate) with ``a`` (baseline) on every metric, paired by
    example, and draw a verdict from the primary metric.

    Options come as a ``CompareOptions`` or as its fields by keyword (``primary=``,
    ``guardrails=``, ``alpha=``, ``correction=``, ``non_inferiority_margin=``, ...).
    """
    opts = CompareOptions.build(options, overrides).validated(metrics)
    check_frame(df, metrics)
    check_variant(df, a)
    check_variant(df, b)
    if a == b:
        raise StatsInputError(f"compare needs two different variants, got {a!r} twice")
    return build_report(df, [(a, b)], metrics, opts, baseline=a)


def compare_all(
    df: pd.DataFrame,
    metrics: Mapping[str, MetricKind],
    options: CompareOptions | None = None,
    *,
    baseline: str | None = None,
    variants: Sequence[str] | None = None,
    **overrides: Any,
) -> ComparisonReport:
    """Compare several variants; the correction covers every metric x pair in the report.

    With ``baseline`` each other variant is compared with it (fewer tests, more power);
    without, every pair is compared. The overall winner must significantly beat every variant
    it was compared with on the primary metric, guardrails clean.
    """
    opts = CompareOptions.build(options, overrides).validated(metrics)
    check_frame(df, metrics)
    names = list(variants) if variants is not None else [str(v) for v in pd.unique(df["variant"])]
    for v in names:
        check_variant(df, v)
    if len(set(names)) < 2:
        raise StatsInputError(f"need at least two variants to compare, got {names}")
    if baseline is not None:
        check_variant(df, baseline)
        pairs = [(baseline, v) for v in names if v != baseline]
    else:
        pairs = [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    return build_report(df, pairs, metrics, opts, baseline=baseline)


def build_report(
    df: pd.DataFrame,
    pairs: list[tuple[str, str]],
    metrics: Mapping[str, MetricKind],
    opts: CompareOptions,
    *,
    baseline: str | None,
) -> ComparisonReport:
    df = df.reset_index(drop=True)
    m_family = len(pairs) * len(metrics)
    # Power statements use the level Holm/BH demand of the first test in the family.
    mde_alpha = opts.alpha / m_family if opts.correction != "none" else opts.alpha
    results = [
        compare_metric(df, a, b, metric, kind, opts, mde_alpha)
        for a, b in pairs
        for metric, kind in metrics.items()
    ]
    p_adj = adjust_pvalues([r.p_value for r in results], opts.correction)
    results = [r.with_p_adj(float(q)) for r, q in zip(results, p_adj, strict=True)]
    by_pair: dict[tuple[str, str], dict[str, MetricComparison]] = {}
    for r in results:
        by_pair.setdefault((r.a, r.b), {})[r.metric] = r
    primary = str(opts.primary)
    pair_results = tuple(
        decide(
            df,
            by_pair[(a, b)],
            opts,
            error_check(df, a, b, primary, metrics[primary], opts),
            mde_alpha,
        )
        for a, b in pairs
    )
    verdict, winner = overall(pair_results, primary, baseline)
    variants = list(dict.fromkeys(v for pair in pairs for v in pair))
    sub = df[df["variant"].isin(variants)]
    return ComparisonReport(
        pairs=pair_results,
        verdict=verdict,
        winner=winner,
        metric_kinds=dict(metrics),
        primary_metric=primary,
        guardrails=opts.guardrails,
        lower_is_better=tuple(sorted(opts.lower_is_better)),
        alpha=opts.alpha,
        correction=opts.correction,
        baseline=baseline,
        summary=summarize(sub, metrics, confidence=1 - opts.alpha).loc[variants],
        consistency=consistency(sub, metrics),
        settings={
            "non_inferiority_margin": opts.non_inferiority_margin,
            "min_effect": opts.min_effect,
            "power": opts.power,
            "mcnemar": opts.mcnemar,
            "seed": opts.seed,
            "n_tests": int(np.sum(~np.isnan(p_adj))),
        },
        caveats=tuple(dict.fromkeys(c for p in pair_results for c in p.caveats)),
    )
