"""Paired tests and intervals of a difference ``b - a``, vectorised over experiments.

Each test comes with the interval that inverts it, so that "significant" and "the interval
excludes 0" are one statement: pass/fail outcomes get McNemar's test with Tango's score
interval, scores (and pass rates over repeats) the paired t-test of the mean with its t
interval. Both guard small samples with an exact test decided per comparison by the number
of non-zero differences. ``docs/statistics.md`` explains each choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from ._frame import Correction, McNemarMethod, MetricKind, StatsInputError

# Up to this many non-zero differences the sign-flip distribution is enumerated exactly.
EXACT_MAX_NONZERO = 12

__all__ = [
    "PairedTest",
    "adjust_pvalues",
    "mcnemar_pvalue",
    "paired_pvalues",
    "paired_test",
    "tango_interval",
    "tango_z",
]


@dataclass(frozen=True)
class PairedTest:
    """Per experiment (row): the estimate of ``b - a``, its interval, the p-value and test."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_value: np.ndarray
    method: np.ndarray
    discordant_a: np.ndarray  # -1 where the test is not McNemar's
    discordant_b: np.ndarray


def clean(d: np.ndarray) -> np.ndarray:
    # Per-example means of repeats are sums of k/n fractions: round off float noise so that
    # equal differences tie and zero differences are exactly zero.
    return np.round(np.asarray(d, dtype=float), 12)


def mcnemar_pvalue(n_a_better, n_b_better, *, mid_p: bool = False):
    """Two-sided McNemar p-value from the discordant pair counts (vectorised).

    Exact form: the binomial test of ``n_b_better`` out of the discordant pairs against 1/2,
    identical to ``scipy.stats.binomtest(n_b_better, n_discordant).pvalue``. The mid-p form
    counts the observed outcome at half weight, which removes most of the exact test's
    conservativeness at small counts (Fagerland, Lydersen & Laake 2013).
    """
    x = np.asarray(n_a_better)
    y = np.asarray(n_b_better)
    n = x + y
    k = np.minimum(x, y)
    if mid_p:
        p = 2 * (stats.binom.cdf(k - 1, n, 0.5) + 0.5 * stats.binom.pmf(k, n, 0.5))
    else:
        p = 2 * stats.binom.cdf(k, n, 0.5)
    p = np.where(n == 0, 1.0, np.minimum(p, 1.0))
    return float(p) if p.ndim == 0 else p


def tango_z(n_good, n_bad, n, theta0):
    """Score statistic for H0: P(b better) - P(a better) = theta0 on paired pass/fail data
    (vectorised).

    The variance uses the maximum-likelihood cell probabilities restricted to H0 (Tango 1998),
    which keeps the test honest when few or no pairs are discordant, where the Wald test
    would claim certainty. At theta0 = 0 it is McNemar's asymptotic statistic.
    """
    g, b, n, t = (np.asarray(v, dtype=float) for v in (n_good, n_bad, n, theta0))
    n_conc = n - g - b
    bq = b * (1 - 3 * t) + g * (1 - t) - 2 * n_conc * t
    cq = b * t * (1 - t)
    x = (bq + np.sqrt(np.maximum(bq * bq + 8 * n * cq, 0.0))) / (4 * n)
    var = (2 * x + t - t * t) / n
    est = (g - b) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (est - t) / np.sqrt(var)
    z = np.where(var > 0, z, np.sign(est - t) * np.inf)
    return float(z) if z.ndim == 0 else z


def tango_interval(n_good, n_bad, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided score interval of P(b better) - P(a better), inverting ``tango_z``.

    Unlike a bootstrap or Wald interval it never has zero width, and its coverage stays near
    nominal with few discordant pairs (Tango 1998; Fagerland, Lydersen & Laake 2014).
    """
    g, b, n = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (n_good, n_bad, n))
    z = special.ndtri(0.5 + confidence / 2)
    est = (g - b) / n

    def solve(target: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        # tango_z falls as theta0 rises; bisection is exact enough after 60 halvings.
        for _ in range(60):
            mid = (lo + hi) / 2
            above = tango_z(g, b, n, mid) > target
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        return (lo + hi) / 2

    eps = 1e-12
    low = solve(z, np.full_like(est, -1 + eps), est)
    high = solve(-z, est, np.full_like(est, 1 - eps))
    return low, high


def _sign_flip_exact(d: np.ndarray) -> np.ndarray:
    """Exact two-sided sign-flip p-value of the sum, for rows with few non-zero entries.

    Padding zeros repeat every sign pattern of the non-zero entries equally often, so all
    rows can share one enumeration of ``2**EXACT_MAX_NONZERO`` patterns.
    """
    k = EXACT_MAX_NONZERO
    packed = np.zeros((d.shape[0], k))
    for i, row in enumerate(d):
        nz = row[row != 0]
        packed[i, : nz.size] = nz
    signs = 1 - 2 * ((np.arange(2**k)[:, None] >> np.arange(k)) & 1)
    obs = np.abs(packed.sum(axis=1))
    tol = 1e-9 * np.maximum(1.0, np.abs(packed).sum(axis=1))
    out = np.empty(d.shape[0])
    for start in range(0, d.shape[0], 256):
        part = slice(start, start + 256)
        sums = np.abs(packed[part] @ signs.T)
        out[part] = (sums >= (obs[part] - tol[part])[:, None]).mean(1)
    return out


def _t_test(d: np.ndarray, alpha: float) -> PairedTest:
    """Paired t-test of the mean difference with its t interval; with few non-zero
    differences the exact sign-flip test also has to reject."""
    n = d.shape[1]
    mean = d.mean(axis=1)
    sd = d.std(axis=1, ddof=1) if n > 1 else np.full(d.shape[0], np.nan)
    se = sd / math.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / se
    t = np.where(se > 0, t, np.where(mean == 0, 0.0, np.sign(mean) * np.inf))
    p = 2 * stats.t.sf(np.abs(t), max(n - 1, 1)) if n > 1 else np.ones(d.shape[0])
    half = stats.t.ppf(1 - alpha / 2, max(n - 1, 1)) * np.where(se > 0, se, 0.0)
    low, high = mean - half, mean + half
    nonzero = (d != 0).sum(axis=1)
    small = (nonzero > 0) & (nonzero <= EXACT_MAX_NONZERO)
    method = np.where(small, "paired t, exact sign-flip", "paired t").astype(object)
    if small.any():
        p[small] = np.maximum(p[small], _sign_flip_exact(d[small]))
    p = np.where(nonzero == 0, 1.0, p)
    if n < 2:
        low, high = np.full(d.shape[0], np.nan), np.full(d.shape[0], np.nan)
    none = np.full(d.shape[0], -1)
    return PairedTest(mean, low, high, np.minimum(p, 1.0), method, none, none)


def _mcnemar_test(x_a: np.ndarray, x_b: np.ndarray, alpha: float, mid_p: bool) -> PairedTest:
    n = x_a.shape[1]
    n_ab = ((x_a == 1) & (x_b == 0)).sum(axis=1)
    n_bb = ((x_a == 0) & (x_b == 1)).sum(axis=1)
    exact = mcnemar_pvalue(n_ab, n_bb, mid_p=mid_p)
    disc = n_ab + n_bb
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(disc > 0, (n_bb - n_ab) / np.sqrt(disc), 0.0)
    # Never below the score test's p: then p < alpha exactly when the interval excludes 0.
    p = np.maximum(np.atleast_1d(exact), 2 * special.ndtr(-np.abs(z)))
    low, high = tango_interval(n_bb, n_ab, np.full(n_ab.shape, n), 1 - alpha)
    name = "McNemar mid-p" if mid_p else "McNemar exact"
    method = np.full(n_ab.shape, name, dtype=object)
    return PairedTest((n_bb - n_ab) / n, low, high, p, method, n_ab, n_bb)


def paired_test(
    x_a: np.ndarray,
    x_b: np.ndarray,
    kind: MetricKind,
    *,
    alpha: float = 0.05,
    mcnemar: McNemarMethod = "exact",
) -> PairedTest:
    """The test and interval ``compare`` uses, per row (experiment) of per-example means.

    ``x_a``/``x_b`` have shape (experiments, examples). A binary metric whose per-example
    values are all 0/1 in that row gets McNemar; anything else (scores, pass rates averaged
    over repeats) the paired t-test. When a row is not significant at ``alpha`` its interval
    is widened to reach 0, so interval and test never disagree.
    """
    x_a = np.atleast_2d(np.asarray(x_a, dtype=float))
    x_b = np.atleast_2d(np.asarray(x_b, dtype=float))
    is01 = np.all((x_a == 0) | (x_a == 1), axis=1) & np.all((x_b == 0) | (x_b == 1), axis=1)
    binary = is01 if kind == "binary" else np.zeros(x_a.shape[0], dtype=bool)
    rows = x_a.shape[0]
    out = {
        "estimate": np.zeros(rows),
        "low": np.zeros(rows),
        "high": np.zeros(rows),
        "p_value": np.ones(rows),
        "method": np.empty(rows, dtype=object),
        "discordant_a": np.full(rows, -1),
        "discordant_b": np.full(rows, -1),
    }
    for mask, res in (
        (binary, lambda m: _mcnemar_test(x_a[m], x_b[m], alpha, mcnemar == "midp")),
        (~binary, lambda m: _t_test(clean(x_b[m] - x_a[m]), alpha)),
    ):
        if mask.any():
            r = res(mask)
            for key in out:
                out[key][mask] = getattr(r, key)
    keep = out["p_value"] >= alpha
    out["low"] = np.where(keep, np.minimum(out["low"], 0.0), out["low"])
    out["high"] = np.where(keep, np.maximum(out["high"], 0.0), out["high"])
    return PairedTest(**out)


def paired_pvalues(
    x_a: np.ndarray,
    x_b: np.ndarray,
    kind: MetricKind,
    *,
    mcnemar: McNemarMethod = "exact",
) -> tuple[np.ndarray, str]:
    """p-values of ``paired_test`` per row, and the test used in the first row."""
    res = paired_test(x_a, x_b, kind, mcnemar=mcnemar)
    return res.p_value, str(res.method[0])


def adjust_pvalues(p_values: Sequence[float], method: Correction = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values; NaN entries (untestable) are left out.

    Holm (1979) controls the chance of *any* false "better" across the family and is never
    less powerful than Bonferroni; Benjamini-Hochberg (1995) controls the expected share of
    false discoveries instead, for exploratory screens of many variants.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    mask = ~np.isnan(p)
    q = p[mask]
    m = q.size
    if m == 0:
        return out
    if method == "none":
        out[mask] = q
        return out
    order = np.argsort(q, kind="mergesort")
    sorted_q = q[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * sorted_q)
    elif method == "bh":
        adj = np.minimum.accumulate((m / np.arange(1, m + 1) * sorted_q)[::-1])[::-1]
    else:
        raise StatsInputError(f"correction must be 'holm', 'bh' or 'none', not {method!r}")
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[mask] = res
    return out
