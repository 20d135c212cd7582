"""Per-variant summaries: each metric's mean with its interval, errors, cost and latency."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import special, stats

from ._frame import MetricKind, check_frame, ok_rows, per_example, quantile
from ._frame import col as score_col


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval: unlike the Wald interval it stays in [0, 1] and keeps its
    coverage near 0 and 1 and at small n (Brown, Cai & DasGupta 2001). ``n`` may be an
    effective (non-integer) sample size."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    z = special.ndtri(0.5 + confidence / 2)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0))
    return (max(0.0, centre - half), min(1.0, centre + half))


def _mean_ci(
    means: np.ndarray, kind: str, n_calls: int, confidence: float
) -> tuple[float, float, float]:
    n = means.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    est = float(means.mean())
    if kind == "binary":
        # Wilson with the effective sample size of the clustered design (Korn & Graubard
        # 1998): equals plain Wilson on n examples without repeats; with repeats it counts
        # each example for between 1 and k calls depending on how much repeats agree.
        var0 = float(means.var())
        pq = est * (1 - est)
        if pq == 0:
            n_eff = float(n)
        elif var0 == 0:
            n_eff = float(n_calls)
        else:
            n_eff = min(max(pq / (var0 / n), float(n)), float(n_calls))
        lo, hi = wilson_interval(est * n_eff, n_eff, confidence)
        return (est, lo, hi)
    if n < 2:
        return (est, math.nan, math.nan)
    se = float(means.std(ddof=1)) / math.sqrt(n)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * se
    return (est, est - half, est + half)



def _total(df: pd.DataFrame, col: str) -> float:
    if col not in df.columns:
        return math.nan
    return float(pd.to_numeric(df[col], errors="coerce").fillna(0).sum())


def summarize(
    df: pd.DataFrame, metrics: Mapping[str, MetricKind], *, confidence: float = 0.95
) -> pd.DataFrame:
    """One row per variant: sample sizes, errors and the error rate (failed calls over all
    calls), each metric's mean with a confidence interval, token/cost totals and latency
    percentiles.

    Means and intervals are over per-example means, so an example repeated five times counts
    once; binary metrics get a Wilson interval, continuous ones a t interval. Latency
    percentiles use successful calls only (a failed call's time says nothing about speed).
    """
    check_frame(df, metrics)
    df = df.reset_index(drop=True)  # row labels must be unique for the masks below
    ok = ok_rows(df)
    rows: dict[str, dict[str, float]] = {}
    for variant, g in df.groupby("variant", sort=False):
        g_ok = ok.loc[g.index]
        row: dict[str, float] = {
            "n_examples": int(g["example_id"].nunique()),
            "n_calls": len(g),
            "n_errors": int((~g_ok).sum()),
            "error_rate": float((~g_ok).mean()) if len(g) else math.nan,
        }
        for metric, kind in metrics.items():
            means, counts = per_example(g, variant, metric)
            est, lo, hi = _mean_ci(means.to_numpy(), kind, int(counts.sum()), confidence)
            row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = est, lo, hi
        row["prompt_tokens"] = _total(g, "prompt_tokens")
        row["completion_tokens"] = _total(g, "completion_tokens")
        row["cost"] = _total(g, "cost")
        lat = g.loc[g_ok, "latency_s"] if "latency_s" in g.columns else pd.Series(dtype=float)
        row["latency_p50"] = quantile(lat, 0.5)
        row["latency_p95"] = quantile(lat, 0.95)
        rows[str(variant)] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "variant"
    for col in ("n_examples", "n_calls", "n_errors"):
        out[col] = out[col].astype(int)
    return out


def consistency(df: pd.DataFrame, metrics: Mapping[str, MetricKind]) -> pd.DataFrame:
    """How stable each variant is across repeats of the same example.

    Only examples with at least two scored repeats count. ``all_agree`` is the share of those
    examples whose repeats all got the same score; ``within_sd`` the pooled standard deviation
    between repeats (0 for a deterministic variant). When the frame has an ``output`` column,
    a row with metric ``output`` gives the share of examples whose outputs were all identical.
    Empty when nothing was repeated.
    """
    check_frame(df, metrics)
    df = df.reset_index(drop=True)
    ok = ok_rows(df)
    rows = []
    for variant, g in df.groupby("variant", sort=False):
        g = g.loc[ok.loc[g.index]]
        cols = [(m, score_col(m)) for m in metrics]
        if "output" in g.columns:
            cols.append(("output", "output"))
        for metric, col in cols:
            s = g[["example_id", col]].dropna()
            counts = s.groupby("example_id")[col].size()
            repeated = counts[counts >= 2].index
            if len(repeated) == 0:
                continue
            sub = s[s["example_id"].isin(repeated)]
            grp = sub.groupby("example_id")[col]
            agree = float((grp.nunique() == 1).mean())
            within = math.sqrt(float(grp.var(ddof=1).mean())) if metric != "output" else math.nan
            rows.append(
                {
                    "variant": str(variant),
                    "metric": metric,
                    "n_examples": len(repeated),
                    "repeats": float(counts[repeated].mean()),
                    "all_agree": agree,
                    "within_sd": within,
                }
            )
    cols = ["variant", "metric", "n_examples", "repeats", "all_agree", "within_sd"]
    return pd.DataFrame(rows, columns=cols).set_index(["variant", "metric"])


