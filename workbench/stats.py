"""A/B statistics for prompt variants: paired tests, intervals, corrections, power, verdicts.

Every variant answers the same eval examples, so the comparison is *paired*: an example that
is hard for one variant is usually hard for the other, and comparing per example removes that
shared difficulty from the noise. Repeats of one example at temperature > 0 are not
independent evidence, so the example (not the call) is the unit of analysis throughout: scores
are averaged per example first and intervals resample examples. ``docs/statistics.md`` explains
each choice and its reference.

Pure computation on pandas/numpy/scipy; the report object that renders these results lives in
``workbench.report``.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

if TYPE_CHECKING:
    from workbench.report import ComparisonReport

MetricKind = Literal["binary", "continuous"]
Correction = Literal["holm", "bh", "none"]
McNemarMethod = Literal["exact", "midp"]
ContinuousTest = Literal["wilcoxon", "permutation"]

SCORE_PREFIX = "score."
# Below this many paired examples no verdict is drawn: no two-sided exact test can then reach
# p < 0.05 (the smallest possible p with 4 pairs is 2/2**4 = 0.125).
MIN_PAIRED = 5
# Pitman efficiency of the signed-rank test relative to the t-test for normal data (Lehmann).
WILCOXON_ARE = 3.0 / math.pi
# Default "smallest effect worth detecting" when the caller gives none: 5 points of pass rate,
# or Cohen's "small" 0.2 SD for scores.
DEFAULT_BINARY_MIN_EFFECT = 0.05
DEFAULT_CONTINUOUS_MIN_EFFECT_SD = 0.2

__all__ = [
    "MIN_PAIRED",
    "MetricComparison",
    "NonInferiority",
    "PairComparison",
    "adjust_pvalues",
    "bootstrap_ci",
    "compare",
    "compare_all",
    "consistency",
    "expected_power",
    "format_p",
    "mcnemar_pvalue",
    "minimum_detectable_effect",
    "p_text",
    "paired_pvalues",
    "required_sample_size",
    "summarize",
    "wilson_interval",
]


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class NonInferiority:
    """One-sided test that the candidate ``b`` is worse than ``a`` by less than ``margin``.

    ``bound`` is the one-sided (1 - alpha) confidence bound of ``b - a`` on the unfavourable
    side (a lower bound when higher is better); non-inferiority holds when it clears
    ``-margin`` (or ``+margin`` for lower-is-better metrics).
    """

    margin: float
    bound: float
    p_value: float
    method: str
    non_inferior: bool


@dataclass(frozen=True)
class MetricComparison:
    """The paired comparison of one metric between ``a`` (baseline) and ``b`` (candidate).

    ``diff`` is always ``mean_b - mean_a`` over the paired examples; whether that is good news
    depends on ``higher_is_better``. NaN marks a quantity that the data cannot define (no
    paired examples, no variance); verdicts never contain NaN.
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

    @property
    def testable(self) -> bool:
        return not math.isnan(self.p_value)

    @property
    def significant(self) -> bool:
        return self.testable and self.n_paired >= MIN_PAIRED and self.p_adj < self.alpha

    @property
    def favours(self) -> str | None:
        """The variant the data significantly favours (after correction), else None."""
        if not self.significant or self.diff == 0:
            return None
        b_better = (self.diff > 0) == self.higher_is_better
        return self.b if b_better else self.a

    def regresses(self, candidate: str) -> bool:
        """Whether ``candidate`` is significantly worse here (raw p: stricter for guardrails)."""
        if not self.testable or self.n_paired < MIN_PAIRED or self.p_value >= self.alpha:
            return False
        if self.diff == 0:
            return False
        b_better = (self.diff > 0) == self.higher_is_better
        return (candidate == self.b) != b_better

    def with_p_adj(self, p_adj: float) -> MetricComparison:
        return replace(self, p_adj=p_adj)


@dataclass(frozen=True)
class PairComparison:
    """Every metric compared for one pair, and the decision drawn from the primary metric.

    ``outcome`` is one of ``better``, ``blocked`` (better on the primary but a guardrail
    regressed), ``non_inferior``, ``no_difference``, ``identical`` or ``insufficient_data``.
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

    @property
    def primary(self) -> MetricComparison:
        return self.metrics[self.primary_metric]


# --------------------------------------------------------------------------- input handling


def _col(metric: str) -> str:
    return f"{SCORE_PREFIX}{metric}"


def _ok_rows(df: pd.DataFrame) -> pd.Series:
    """Rows whose call succeeded: ``error`` is None/NaN/empty."""
    if "error" not in df.columns:
        return pd.Series(True, index=df.index)
    err = df["error"]
    return err.isna() | (err.astype(str).str.strip() == "")


def _check_frame(df: pd.DataFrame, metrics: Mapping[str, str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of results, got {type(df).__name__}")
    missing = [c for c in ("variant", "example_id") if c not in df.columns]
    if missing:
        raise ValueError(f"results frame lacks column(s) {missing}; one row per call is expected")
    if not metrics:
        raise ValueError("no metrics given: pass e.g. metrics={'exact_match': 'binary'}")
    have = sorted(c[len(SCORE_PREFIX) :] for c in df.columns if c.startswith(SCORE_PREFIX))
    for name, kind in metrics.items():
        if kind not in ("binary", "continuous"):
            raise ValueError(
                f"metric {name!r} has kind {kind!r}; use 'binary' (pass/fail) or 'continuous'"
            )
        if _col(name) not in df.columns:
            raise ValueError(
                f"metric {name!r} has no column {_col(name)!r} in the results; "
                f"scored metrics are {have}"
            )
        if kind == "binary":
            vals = pd.to_numeric(df[_col(name)], errors="coerce").dropna()
            bad = vals[~vals.isin([0.0, 1.0])]
            if len(bad):
                raise ValueError(
                    f"metric {name!r} is declared binary but has values other than 0/1 "
                    f"(e.g. {bad.iloc[0]!r}); declare it 'continuous'"
                )


def _check_variant(df: pd.DataFrame, name: str) -> None:
    known = list(pd.unique(df["variant"]))
    if name not in known:
        raise ValueError(f"variant {name!r} is not in the results; known variants: {known}")


def _per_example(df: pd.DataFrame, variant: str, metric: str) -> tuple[pd.Series, pd.Series]:
    """Per-example mean score over the variant's successful, scored calls, and their count."""
    rows = df[df["variant"] == variant]
    col = _col(metric)
    ok = _ok_rows(rows) & rows[col].notna()
    grouped = rows.loc[ok].groupby("example_id", sort=True)[col]
    return grouped.mean().astype(float), grouped.count()


# --------------------------------------------------------------------------- per-variant summary


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


def _quantile(values: pd.Series, q: float) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.quantile(q)) if len(values) else math.nan


def _total(df: pd.DataFrame, col: str) -> float:
    if col not in df.columns:
        return math.nan
    return float(pd.to_numeric(df[col], errors="coerce").fillna(0).sum())


def summarize(
    df: pd.DataFrame, metrics: Mapping[str, MetricKind], *, confidence: float = 0.95
) -> pd.DataFrame:
    """One row per variant: sample sizes, each metric's mean with a confidence interval,
    token/cost totals and latency percentiles.

    Means and intervals are over per-example means, so an example repeated five times counts
    once; binary metrics get a Wilson interval, continuous ones a t interval. Latency
    percentiles use successful calls only (a failed call's time says nothing about speed).
    """
    _check_frame(df, metrics)
    df = df.reset_index(drop=True)  # row labels must be unique for the masks below
    ok = _ok_rows(df)
    rows: dict[str, dict[str, float]] = {}
    for variant, g in df.groupby("variant", sort=False):
        g_ok = ok.loc[g.index]
        row: dict[str, float] = {
            "n_examples": int(g["example_id"].nunique()),
            "n_calls": len(g),
            "n_errors": int((~g_ok).sum()),
        }
        for metric, kind in metrics.items():
            means, counts = _per_example(g, variant, metric)
            est, lo, hi = _mean_ci(means.to_numpy(), kind, int(counts.sum()), confidence)
            row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = est, lo, hi
        row["prompt_tokens"] = _total(g, "prompt_tokens")
        row["completion_tokens"] = _total(g, "completion_tokens")
        row["cost"] = _total(g, "cost")
        lat = g.loc[g_ok, "latency_s"] if "latency_s" in g.columns else pd.Series(dtype=float)
        row["latency_p50"] = _quantile(lat, 0.5)
        row["latency_p95"] = _quantile(lat, 0.95)
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
    _check_frame(df, metrics)
    df = df.reset_index(drop=True)
    ok = _ok_rows(df)
    rows = []
    for variant, g in df.groupby("variant", sort=False):
        g = g.loc[ok.loc[g.index]]
        cols = [(m, _col(m)) for m in metrics]
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


# --------------------------------------------------------------------------- tests


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


def _clean(d: np.ndarray) -> np.ndarray:
    # Per-example means of repeats are sums of k/n fractions: round off float noise so that
    # equal differences tie and zero differences are exactly zero.
    return np.round(np.asarray(d, dtype=float), 12)


def _wilcoxon_pvalues(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed-rank test per row of ``d`` (zeros dropped, Wilcoxon's convention).

    scipy picks the exact null distribution for small untied samples, an exact permutation
    for small tied ones and the tie-corrected normal approximation otherwise.
    """
    d = np.atleast_2d(_clean(d))
    all_zero = np.all(d == 0, axis=-1)
    stat = np.zeros(d.shape[0])
    p = np.ones(d.shape[0])
    rows = ~all_zero
    if rows.any():
        res = stats.wilcoxon(d[rows], zero_method="wilcox", method="auto", axis=-1)
        stat[rows] = res.statistic
        p[rows] = np.nan_to_num(res.pvalue, nan=1.0)
    return stat, p


def _sign_flip_pvalues(
    d: np.ndarray, rng: np.random.Generator, n_resamples: int = 9_999
) -> tuple[np.ndarray, np.ndarray]:
    """Paired permutation test of the mean difference, per row of ``d``.

    Under "no difference" each example's pair of scores is exchangeable, so each difference
    is equally likely to carry either sign. All 2**n sign patterns are enumerated up to
    n = 16; beyond that a seeded Monte Carlo sample is used with the (1 + hits)/(1 + B)
    estimate, which keeps the test valid (Phipson & Smyth 2010).
    """
    d = np.atleast_2d(_clean(d))
    n = d.shape[-1]
    obs = np.abs(d.sum(axis=-1))
    tol = 1e-9 * np.maximum(1.0, np.abs(d).sum(axis=-1))
    if n <= 16:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        sums = np.abs(d @ signs.T)
        p = (sums >= (obs - tol)[:, None]).mean(axis=-1)
    else:
        hits = np.zeros(d.shape[0])
        done = 0
        while done < n_resamples:
            size = min(n_resamples - done, max(1, 1_000_000 // n))
            signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))
            hits += (np.abs(d @ signs.T) >= (obs - tol)[:, None]).sum(axis=-1)
            done += size
        p = (1 + hits) / (1 + n_resamples)
    return d.sum(axis=-1) / n, np.minimum(p, 1.0)


def paired_pvalues(
    x_a: np.ndarray,
    x_b: np.ndarray,
    kind: MetricKind,
    *,
    mcnemar: McNemarMethod = "exact",
    continuous_test: ContinuousTest = "wilcoxon",
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, str]:
    """p-values of the paired test ``compare`` uses, vectorised over rows (experiments).

    ``x_a``/``x_b`` are per-example means, shape (experiments, examples). Binary metrics whose
    per-example values are all 0/1 get McNemar; anything else (scores, or pass rates averaged
    over repeats) gets the continuous test on the per-example differences. Exposed so that
    simulations exercise exactly the decision rule the report uses.
    """
    x_a = np.atleast_2d(np.asarray(x_a, dtype=float))
    x_b = np.atleast_2d(np.asarray(x_b, dtype=float))
    if kind == "binary" and _is_01(x_a) and _is_01(x_b):
        a_better = ((x_a == 1) & (x_b == 0)).sum(axis=-1)
        b_better = ((x_a == 0) & (x_b == 1)).sum(axis=-1)
        name = "McNemar mid-p" if mcnemar == "midp" else "McNemar exact"
        return np.atleast_1d(mcnemar_pvalue(a_better, b_better, mid_p=mcnemar == "midp")), name
    d = x_b - x_a
    if continuous_test == "permutation":
        _, p = _sign_flip_pvalues(d, rng or np.random.default_rng(0))
        return p, "paired permutation"
    return _wilcoxon_pvalues(d)[1], "Wilcoxon signed-rank"


def _is_01(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


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
        raise ValueError(f"correction must be 'holm', 'bh' or 'none', not {method!r}")
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[mask] = res
    return out


# --------------------------------------------------------------------------- bootstrap


def bootstrap_ci(
    d: np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | np.random.SeedSequence = 0,
) -> tuple[float, float]:
    """BCa bootstrap interval of the mean of per-example differences.

    Resampling examples (not calls) is the cluster bootstrap when examples were repeated.
    BCa corrects the percentile interval for bias and skew (Efron 1987; DiCiccio & Efron
    1996); the bias term counts resamples tied with the estimate at half weight, as pass/fail
    differences put real mass there.
    """
    d = np.asarray(d, dtype=float)
    n = d.size
    if n == 0:
        return (math.nan, math.nan)
    theta = float(d.mean())
    if n == 1 or np.all(d == d[0]):
        return (theta, theta)
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        boot[start:stop] = d[idx].mean(axis=1)
    tol = 1e-12 * max(1.0, abs(theta))
    below = np.sum(boot < theta - tol) + 0.5 * np.sum(np.abs(boot - theta) <= tol)
    prop = below / n_resamples
    lo_q, hi_q = (1 - confidence) / 2, (1 + confidence) / 2
    if 0 < prop < 1:
        z0 = special.ndtri(prop)
        jack = (d.sum() - d) / (n - 1)
        dev = jack.mean() - jack
        ss = float((dev**2).sum())
        acc = float((dev**3).sum()) / (6 * ss**1.5) if ss > 0 else 0.0

        def shift(q: float) -> float:
            z = z0 + special.ndtri(q)
            return float(special.ndtr(z0 + z / (1 - acc * z)))

        lo_q, hi_q = shift(lo_q), shift(hi_q)
    lo, hi = np.quantile(boot, [lo_q, hi_q])
    return (float(lo), float(hi))


def _seed_for(seed: int, *parts: str) -> np.random.SeedSequence:
    # Stable across processes (unlike hash()) and independent of metric order.
    key = zlib.crc32("\x1f".join(parts).encode())
    return np.random.SeedSequence([int(seed), key])


# --------------------------------------------------------------------------- non-inferiority


def _tango_z(n_good: int, n_bad: int, n: int, theta0: float) -> float:
    """Score statistic for H0: P(b better) - P(a better) = theta0 on paired pass/fail data.

    The variance uses the maximum-likelihood cell probabilities restricted to H0 (Tango 1998),
    which keeps the test honest when few or no pairs are discordant, where the Wald test
    would claim certainty.
    """
    t = theta0
    n_conc = n - n_good - n_bad
    bq = n_bad * (1 - 3 * t) + n_good * (1 - t) - 2 * n_conc * t
    cq = n_bad * t * (1 - t)
    x = (bq + math.sqrt(max(bq * bq + 8 * n * cq, 0.0))) / (4 * n)  # restricted P(a better)
    var = (2 * x + t - t * t) / n
    est = (n_good - n_bad) / n
    if var <= 0:
        return math.inf if est > t else (-math.inf if est < t else 0.0)
    return (est - t) / math.sqrt(var)


def _non_inferiority(
    d: np.ndarray,
    margin: float,
    higher_is_better: bool,
    alpha: float,
    mcnemar_counts: tuple[int, int] | None,
) -> NonInferiority:
    sign = 1.0 if higher_is_better else -1.0
    n = d.size
    if mcnemar_counts is not None:
        n_a_better, n_b_better = mcnemar_counts
        if not higher_is_better:
            n_a_better, n_b_better = n_b_better, n_a_better
        z = _tango_z(n_b_better, n_a_better, n, -margin)
        p = float(special.ndtr(-z))
        est = (n_b_better - n_a_better) / n
        crit = special.ndtri(1 - alpha)
        if est <= -1 + 1e-12:
            bound = -1.0
        else:
            bound = optimize.brentq(
                lambda t: _tango_z(n_b_better, n_a_better, n, t) - crit, -1 + 1e-12, est
            )
        method = "Tango score test (paired proportions)"
    else:
        od = sign * d
        mean = float(od.mean())
        se = float(od.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
        if se == 0:
            p = 0.0 if mean > -margin else 1.0
            bound = mean
        else:
            tstat = (mean + margin) / se
            p = float(stats.t.sf(tstat, n - 1))
            bound = mean - float(stats.t.ppf(1 - alpha, n - 1)) * se
        method = "paired t on per-example differences"
    ok = p < alpha and n >= MIN_PAIRED
    return NonInferiority(
        margin=margin, bound=sign * bound, p_value=p, method=method, non_inferior=ok
    )


# --------------------------------------------------------------------------- power


def _check_power_args(alpha: float, power: float | None = None) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if power is not None and not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")


def _binary_cells(
    effect: float, baseline: float | None, discordance: float | None
) -> tuple[float, float]:
    """P(a passes, b fails) and P(a fails, b passes) for a paired pass/fail design."""
    if discordance is None:
        if baseline is None:
            raise ValueError("binary power needs baseline= (pass rate of a) or discordance=")
        if not 0 <= baseline <= 1 or not 0 <= baseline + effect <= 1:
            raise ValueError(f"baseline {baseline} plus effect {effect} must stay within [0, 1]")
        # No pairing information: assume the variants fail independently, the cautious
        # default (real variants share hard examples, which lowers discordance).
        p_b = baseline + effect
        return baseline * (1 - p_b), p_b * (1 - baseline)
    if not abs(effect) <= discordance <= 1:
        raise ValueError(
            f"discordance (share of examples where exactly one variant passes) must be "
            f"between |effect| = {abs(effect)} and 1, got {discordance}"
        )
    p_bad, p_good = (discordance - effect) / 2, (discordance + effect) / 2
    if baseline is not None and (p_bad > baseline + 1e-12 or p_good > 1 - baseline + 1e-12):
        raise ValueError(
            f"discordance {discordance} is impossible with baseline {baseline} and effect {effect}"
        )
    return p_bad, p_good


@functools.lru_cache(maxsize=32)
def _mcnemar_critical(max_n: int, alpha: float, mid_p: bool) -> np.ndarray:
    """Largest count c (per number of discordant pairs N = 0..max_n) at which the two-sided
    McNemar test rejects: reject when min(n_a_better, n_b_better) <= c; -1 when it never can."""
    big_n = np.arange(max_n + 1)
    z = special.ndtri(1 - alpha / 2)
    c = np.floor(big_n / 2 - z * np.sqrt(big_n) / 2).astype(np.int64) - 3
    c = np.maximum(c, -1)

    def pval(k: np.ndarray) -> np.ndarray:
        kk = np.maximum(k, 0)
        cdf = np.where(k < 0, 0.0, special.bdtr(kk, big_n, 0.5))
        if not mid_p:
            return 2 * cdf
        below = np.where(k < 1, 0.0, special.bdtr(np.maximum(k - 1, 0), big_n, 0.5))
        return 2 * below + (cdf - below)

    for _ in range(big_n.size):  # walks a few steps from the normal-theory start
        step = (pval(c + 1) <= alpha) & (2 * (c + 1) < big_n)
        if not step.any():
            break
        c = c + step
    return c


def _mcnemar_power(n: int, p_bad: float, p_good: float, alpha: float, mid_p: bool) -> float:
    """Exact power of the (exact or mid-p) McNemar test: sums over the number of discordant
    pairs, so it matches simulation rather than a normal approximation."""
    psi = p_bad + p_good
    if n <= 0 or psi <= 0:
        return 0.0
    size = 1 << max(6, int(n).bit_length())  # cache critical values per power of two
    c_all = _mcnemar_critical(size, float(alpha), bool(mid_p))
    # Only discordant counts within 9 SD of their mean carry weight (< 1e-18 outside).
    half = 9 * math.sqrt(n * psi * (1 - psi)) + 2
    lo, hi = max(0, int(n * psi - half)), min(n, int(n * psi + half) + 1)
    big_n = np.arange(lo, hi + 1)
    c = c_all[lo : hi + 1]
    w = stats.binom.pmf(big_n, n, min(psi, 1.0))
    q = min(p_good / psi, 1.0)
    lower = np.where(c < 0, 0.0, special.bdtr(np.maximum(c, 0), big_n, q))
    upper_k = big_n - c - 1  # reject when n_b_better > N - c - 1
    upper = np.where(c < 0, 0.0, special.bdtrc(np.maximum(upper_k, 0), big_n, q))
    return float(np.clip(np.sum(w * (lower + upper)), 0.0, 1.0))


def _t_power(n: float, effect: float, sd_diff: float, alpha: float, are: float) -> float:
    """Power of the paired test via the noncentral t, at the effective sample size
    ``n * are`` (Noether 1987 for the signed-rank test)."""
    n_eff = n * are
    if n_eff < 2 or sd_diff <= 0:
        return math.nan if sd_diff <= 0 else 0.0
    df = n_eff - 1
    nc = abs(effect) / sd_diff * math.sqrt(n_eff)
    crit = stats.t.ppf(1 - alpha / 2, df)
    if nc - crit > 9:  # power is 1 to double precision; scipy's nct tail can return NaN here
        return 1.0
    p = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    if not math.isfinite(p):  # same tail problem: the normal approximation is exact enough
        p = float(special.ndtr(nc - crit) + special.ndtr(-nc - crit))
    return min(max(p, 0.0), 1.0)


def _sd_diff(sd: float | None, sd_diff: float | None, correlation: float) -> float:
    if sd_diff is not None:
        if sd_diff <= 0:
            raise ValueError(f"sd_diff must be positive, got {sd_diff}")
        return float(sd_diff)
    if sd is None:
        raise ValueError(
            "continuous power needs sd_diff= (SD of per-example differences) or sd= "
            "(SD of scores) with correlation= between the variants' scores"
        )
    if sd <= 0 or not -1 <= correlation < 1:
        raise ValueError("need sd > 0 and correlation in [-1, 1)")
    return float(sd) * math.sqrt(2 * (1 - correlation))


def expected_power(
    n: int,
    effect: float,
    *,
    kind: MetricKind,
    baseline: float | None = None,
    discordance: float | None = None,
    sd: float | None = None,
    sd_diff: float | None = None,
    correlation: float = 0.0,
    alpha: float = 0.05,
    mcnemar: McNemarMethod = "exact",
    continuous_test: ContinuousTest = "wilcoxon",
) -> float:
    """Probability that ``compare`` calls a true difference of ``effect`` significant with
    ``n`` paired examples (one example = one call; two-sided level ``alpha``).

    Binary: exact power of the McNemar test used by ``compare``, from the baseline pass rate
    and, if known from a pilot, the discordance (share of examples where exactly one variant
    passes). Continuous: noncentral t at the signed-rank test's efficiency, from the SD of
    per-example differences (or score SD and between-variant correlation).
    """
    _check_power_args(alpha)
    if kind == "binary":
        p_bad, p_good = _binary_cells(effect, baseline, discordance)
        return _mcnemar_power(int(n), p_bad, p_good, alpha, mcnemar == "midp")
    sdd = _sd_diff(sd, sd_diff, correlation)
    are = WILCOXON_ARE if continuous_test == "wilcoxon" else 1.0
    return _t_power(n, effect, sdd, alpha, are)


def required_sample_size(
    effect: float,
    *,
    kind: MetricKind,
    baseline: float | None = None,
    discordance: float | None = None,
    sd: float | None = None,
    sd_diff: float | None = None,
    correlation: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
    mcnemar: McNemarMethod = "exact",
    continuous_test: ContinuousTest = "wilcoxon",
    max_n: int = 1_000_000,
) -> int:
    """Paired examples needed to detect ``effect`` (b - a, in metric units) with ``power``.

    For the exact McNemar test power is a saw-tooth in n; the answer is the smallest n from
    which every larger n (in the searched range) also reaches ``power``, so rounding up never
    lands on a dip. Raises ValueError when even ``max_n`` examples would not suffice.
    """
    _check_power_args(alpha, power)
    if effect == 0:
        raise ValueError("effect must be non-zero: no sample size detects a zero difference")
    kw = dict(
        kind=kind,
        baseline=baseline,
        discordance=discordance,
        sd=sd,
        sd_diff=sd_diff,
        correlation=correlation,
        alpha=alpha,
        mcnemar=mcnemar,
        continuous_test=continuous_test,
    )

    def pw(n: int) -> float:
        return expected_power(n, effect, **kw)

    if kind == "continuous":
        lo, hi = 2, 64
        while pw(hi) < power:
            if hi >= max_n:
                raise ValueError(f"more than {max_n} examples needed for effect {effect}")
            lo, hi = hi, min(max_n, 4 * hi)
        while lo < hi:
            mid = (lo + hi) // 2
            if pw(mid) >= power:
                hi = mid
            else:
                lo = mid + 1
        return lo
    p_bad, p_good = _binary_cells(effect, baseline, discordance)
    psi = p_bad + p_good
    z = special.ndtri(1 - alpha / 2) * math.sqrt(psi) + special.ndtri(power) * math.sqrt(
        max(psi - effect**2, 0.0)
    )
    approx = max(MIN_PAIRED, int(math.ceil((z / effect) ** 2)))  # Connor (1987)
    if approx > max_n:
        raise ValueError(f"more than {max_n} examples needed for effect {effect}")
    if approx > 20_000:  # the exact test's saw-tooth is negligible this far out
        return approx
    # Bisect as if power rose steadily, then walk forward past any dip of the saw-tooth
    # (Chernick & Liu 2002): the answer is an n from which the following ~2*sqrt(n)
    # sample sizes all reach the target too.
    lo, hi = 1, max(2 * approx, 50)
    while pw(hi) < power:
        if hi >= max_n:
            raise ValueError(f"more than {max_n} examples needed for effect {effect}")
        lo, hi = hi, min(max_n, 2 * hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if pw(mid) >= power:
            hi = mid
        else:
            lo = mid + 1
    start = lo
    n = start
    while n < start + 2 * math.isqrt(start) + 20:
        n += 1
        if pw(n) < power:
            start = n + 1
    return start


def minimum_detectable_effect(
    n: int,
    *,
    kind: MetricKind,
    baseline: float | None = None,
    discordance: float | None = None,
    sd: float | None = None,
    sd_diff: float | None = None,
    correlation: float = 0.0,
    alpha: float = 0.05,
    power: float = 0.8,
    mcnemar: McNemarMethod = "exact",
    continuous_test: ContinuousTest = "wilcoxon",
) -> float:
    """Smallest improvement (b - a > 0, metric units) detected with ``power`` at ``n`` pairs.

    For binary metrics with a known ``discordance``, the discordance is taken as at least the
    effect itself (a difference of d needs at least a share d of discordant pairs). NaN when
    no effect is detectable (too few examples).
    """
    _check_power_args(alpha, power)
    kw = dict(kind=kind, alpha=alpha, mcnemar=mcnemar, continuous_test=continuous_test)
    if kind == "binary":
        if baseline is None and discordance is None:
            raise ValueError("binary MDE needs baseline= or discordance=")
        upper = 1.0 - (baseline or 0.0) if discordance is None else 1.0

        def pw(delta: float) -> float:
            psi = None if discordance is None else max(discordance, delta)
            return expected_power(n, delta, baseline=baseline, discordance=psi, **kw)

    else:
        sdd = _sd_diff(sd, sd_diff, correlation)
        upper = 1e6 * sdd

        def pw(delta: float) -> float:
            return expected_power(n, delta, sd_diff=sdd, **kw)

    if upper <= 0 or not pw(upper) >= power:
        return math.nan
    lo, hi = 0.0, upper
    for _ in range(60):  # bisection: the McNemar power is not smooth enough for brentq
        mid = (lo + hi) / 2
        if pw(mid) >= power:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-6 * max(1.0, hi):
            break
    return hi


# --------------------------------------------------------------------------- comparison


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


def _compare_metric(
    df: pd.DataFrame,
    a: str,
    b: str,
    metric: str,
    kind: MetricKind,
    *,
    higher_is_better: bool,
    alpha: float,
    mde_alpha: float,
    power: float,
    seed: int,
    n_bootstrap: int,
    mcnemar: McNemarMethod,
    continuous_test: ContinuousTest,
    margin: float | None,
) -> MetricComparison:
    mean_a_s, cnt_a = _per_example(df, a, metric)
    mean_b_s, cnt_b = _per_example(df, b, metric)
    ids_any = set(df.loc[df["variant"].isin([a, b]), "example_id"])
    paired = mean_a_s.index.intersection(mean_b_s.index)
    n = len(paired)
    only_a = len(mean_a_s.index.difference(paired))
    only_b = len(mean_b_s.index.difference(paired))
    x_a = mean_a_s.loc[paired].to_numpy()
    x_b = mean_b_s.loc[paired].to_numpy()
    d = _clean(x_b - x_a)
    calls = float((cnt_a.loc[paired].sum() + cnt_b.loc[paired].sum()) / (2 * n)) if n else 0.0
    base = dict(
        metric=metric,
        kind=kind,
        a=a,
        b=b,
        higher_is_better=higher_is_better,
        alpha=alpha,
        n_paired=n,
        n_dropped=len(ids_any) - n,
        n_only_a=only_a,
        n_only_b=only_b,
        calls_per_example=calls,
    )
    if n == 0:
        return MetricComparison(
            **base,
            mean_a=math.nan,
            mean_b=math.nan,
            diff=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            ci_method="",
            test="",
            statistic=math.nan,
            p_value=math.nan,
            p_adj=math.nan,
            effect_size=math.nan,
            effect_size_name="",
            discordant_a=None,
            discordant_b=None,
            mde=math.nan,
            note="no example has a valid score from both",
        )
    rng = np.random.default_rng(_seed_for(seed, "test", metric, a, b))
    p, test = paired_pvalues(
        x_a, x_b, kind, mcnemar=mcnemar, continuous_test=continuous_test, rng=rng
    )
    p_value = float(p[0])
    mcnemar_counts = None
    if test.startswith("McNemar"):
        n_ab = int(((x_a == 1) & (x_b == 0)).sum())
        n_bb = int(((x_a == 0) & (x_b == 1)).sum())
        mcnemar_counts = (n_ab, n_bb)
        statistic = float(min(n_ab, n_bb))
    elif test == "paired permutation":
        statistic = float(d.mean())
    else:
        statistic = float(_wilcoxon_pvalues(d)[0][0])
    lo, hi = bootstrap_ci(
        d, confidence=1 - alpha, n_resamples=n_bootstrap, seed=_seed_for(seed, metric, a, b)
    )
    es, es_name = _effect_size(kind, x_a, x_b, d)
    note = ""
    if np.all(d == 0):
        note = f"identical scores on all {n} paired examples"
    elif n < MIN_PAIRED:
        note = f"only {n} paired examples"
    mde = _observed_mde(n, kind, d, mcnemar_counts, mde_alpha, power, mcnemar, continuous_test)
    ni = None
    if margin is not None:
        ni = _non_inferiority(d, margin, higher_is_better, alpha, mcnemar_counts)
    return MetricComparison(
        **base,
        mean_a=float(x_a.mean()),
        mean_b=float(x_b.mean()),
        diff=float(d.mean()),
        ci_low=lo,
        ci_high=hi,
        ci_method=f"BCa bootstrap over examples ({n_bootstrap} resamples, seed {seed})",
        test=test,
        statistic=statistic,
        p_value=p_value,
        p_adj=p_value,
        effect_size=es,
        effect_size_name=es_name,
        discordant_a=None if mcnemar_counts is None else mcnemar_counts[0],
        discordant_b=None if mcnemar_counts is None else mcnemar_counts[1],
        mde=mde,
        ni=ni,
        note=note,
    )


def _observed_mde(
    n: int,
    kind: str,
    d: np.ndarray,
    counts: tuple[int, int] | None,
    alpha: float,
    power: float,
    mcnemar: McNemarMethod,
    continuous_test: ContinuousTest,
) -> float:
    """The smallest effect this comparison had ``power`` to detect, from its own nuisance
    parameters (discordance or SD of differences) - not from the observed effect, whose
    'observed power' says nothing new (Hoenig & Heisey 2001)."""
    if n < 2:
        return math.nan
    try:
        if counts is not None:
            return minimum_detectable_effect(
                n,
                kind="binary",
                discordance=sum(counts) / n,
                alpha=alpha,
                power=power,
                mcnemar=mcnemar,
            )
        sdd = float(d.std(ddof=1))
        if sdd == 0:
            return math.nan
        mde = minimum_detectable_effect(
            n,
            kind="continuous",
            sd_diff=sdd,
            alpha=alpha,
            power=power,
            continuous_test=continuous_test,
        )
        return min(mde, 1.0) if kind == "binary" else mde
    except ValueError:
        return math.nan


def _check_options(
    metrics: Mapping[str, str],
    primary: str,
    guardrails: Sequence[str],
    lower_is_better: Sequence[str],
    alpha: float,
    correction: str,
    margin: float | None,
    n_bootstrap: int,
    mcnemar: str,
    continuous_test: str,
) -> None:
    if primary not in metrics:
        raise ValueError(f"primary metric {primary!r} is not among the metrics {list(metrics)}")
    for g in (*guardrails, *lower_is_better):
        if g not in metrics:
            raise ValueError(f"metric {g!r} is not among the metrics {list(metrics)}")
    if primary in guardrails:
        raise ValueError(f"{primary!r} is the primary metric; it cannot also be a guardrail")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if correction not in ("holm", "bh", "none"):
        raise ValueError(f"correction must be 'holm', 'bh' or 'none', not {correction!r}")
    if margin is not None and not margin > 0:
        raise ValueError(f"non_inferiority_margin must be positive, got {margin}")
    if n_bootstrap < 100:
        raise ValueError(f"n_bootstrap must be at least 100, got {n_bootstrap}")
    if mcnemar not in ("exact", "midp"):
        raise ValueError(f"mcnemar must be 'exact' or 'midp', not {mcnemar!r}")
    if continuous_test not in ("wilcoxon", "permutation"):
        raise ValueError(
            f"continuous_test must be 'wilcoxon' or 'permutation', not {continuous_test!r}"
        )


def compare(
    df: pd.DataFrame,
    a: str,
    b: str,
    metrics: Mapping[str, MetricKind],
    *,
    primary: str,
    guardrails: Sequence[str] = (),
    alpha: float = 0.05,
    correction: Correction = "holm",
    non_inferiority_margin: float | None = None,
    seed: int = 0,
    n_bootstrap: int = 10_000,
    lower_is_better: Sequence[str] = (),
    min_effect: float | None = None,
    power: float = 0.8,
    mcnemar: McNemarMethod = "exact",
    continuous_test: ContinuousTest = "wilcoxon",
) -> ComparisonReport:
    """Compare variant ``b`` (candidate) with ``a`` (baseline) on every metric, paired by
    example, and draw a verdict from the ``primary`` metric.

    ``guardrails`` are metrics that may not get significantly worse for a "better" verdict to
    stand. ``non_inferiority_margin`` (primary-metric units) adds the one-sided test "b is
    worse than a by less than the margin". ``min_effect`` is the smallest primary-metric
    difference worth detecting; a non-significant comparison that could not detect it is
    called underpowered (default: 0.05 for pass rates, 0.2 SD for scores).
    """
    _check_frame(df, metrics)
    _check_variant(df, a)
    _check_variant(df, b)
    if a == b:
        raise ValueError(f"compare needs two different variants, got {a!r} twice")
    return _build_report(
        df,
        [(a, b)],
        metrics,
        primary=primary,
        guardrails=guardrails,
        alpha=alpha,
        correction=correction,
        margin=non_inferiority_margin,
        seed=seed,
        n_bootstrap=n_bootstrap,
        lower_is_better=lower_is_better,
        min_effect=min_effect,
        power=power,
        mcnemar=mcnemar,
        continuous_test=continuous_test,
        baseline=a,
    )


def compare_all(
    df: pd.DataFrame,
    metrics: Mapping[str, MetricKind],
    *,
    primary: str,
    baseline: str | None = None,
    variants: Sequence[str] | None = None,
    guardrails: Sequence[str] = (),
    alpha: float = 0.05,
    correction: Correction = "holm",
    non_inferiority_margin: float | None = None,
    seed: int = 0,
    n_bootstrap: int = 10_000,
    lower_is_better: Sequence[str] = (),
    min_effect: float | None = None,
    power: float = 0.8,
    mcnemar: McNemarMethod = "exact",
    continuous_test: ContinuousTest = "wilcoxon",
) -> ComparisonReport:
    """Compare several variants; the correction covers every metric x pair in the report.

    With ``baseline`` each other variant is compared with it (fewer tests, more power);
    without, every pair is compared. The overall winner must significantly beat every variant
    it was compared with on the primary metric, guardrails clean.
    """
    _check_frame(df, metrics)
    names = list(variants) if variants is not None else [str(v) for v in pd.unique(df["variant"])]
    for v in names:
        _check_variant(df, v)
    if len(set(names)) < 2:
        raise ValueError(f"need at least two variants to compare, got {names}")
    if baseline is not None:
        _check_variant(df, baseline)
        pairs = [(baseline, v) for v in names if v != baseline]
    else:
        pairs = [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    return _build_report(
        df,
        pairs,
        metrics,
        primary=primary,
        guardrails=guardrails,
        alpha=alpha,
        correction=correction,
        margin=non_inferiority_margin,
        seed=seed,
        n_bootstrap=n_bootstrap,
        lower_is_better=lower_is_better,
        min_effect=min_effect,
        power=power,
        mcnemar=mcnemar,
        continuous_test=continuous_test,
        baseline=baseline,
    )


def _build_report(
    df: pd.DataFrame,
    pairs: list[tuple[str, str]],
    metrics: Mapping[str, MetricKind],
    *,
    primary: str,
    guardrails: Sequence[str],
    alpha: float,
    correction: Correction,
    margin: float | None,
    seed: int,
    n_bootstrap: int,
    lower_is_better: Sequence[str],
    min_effect: float | None,
    power: float,
    mcnemar: McNemarMethod,
    continuous_test: ContinuousTest,
    baseline: str | None,
) -> ComparisonReport:
    # Imported here: the report module renders these results and itself depends on this one.
    from workbench.report import ComparisonReport

    df = df.reset_index(drop=True)
    guardrails = tuple(guardrails)
    _check_options(
        metrics,
        primary,
        guardrails,
        lower_is_better,
        alpha,
        correction,
        margin,
        n_bootstrap,
        mcnemar,
        continuous_test,
    )
    lower = set(lower_is_better)
    m_family = len(pairs) * len(metrics)
    # Power statements use the level Holm/BH demand of the first test in the family.
    mde_alpha = alpha / m_family if correction != "none" else alpha
    results: list[MetricComparison] = []
    for a, b in pairs:
        for metric, kind in metrics.items():
            results.append(
                _compare_metric(
                    df,
                    a,
                    b,
                    metric,
                    kind,
                    higher_is_better=metric not in lower,
                    alpha=alpha,
                    mde_alpha=mde_alpha,
                    power=power,
                    seed=seed,
                    n_bootstrap=n_bootstrap,
                    mcnemar=mcnemar,
                    continuous_test=continuous_test,
                    margin=margin if metric == primary else None,
                )
            )
    p_adj = adjust_pvalues([r.p_value for r in results], correction)
    results = [r.with_p_adj(float(q)) for r, q in zip(results, p_adj, strict=True)]
    by_pair: dict[tuple[str, str], dict[str, MetricComparison]] = {}
    for r in results:
        by_pair.setdefault((r.a, r.b), {})[r.metric] = r
    pair_results = tuple(
        _decide(
            df,
            a,
            b,
            by_pair[(a, b)],
            primary=primary,
            guardrails=guardrails,
            min_effect=min_effect,
            power=power,
            mcnemar=mcnemar,
            continuous_test=continuous_test,
            mde_alpha=mde_alpha,
        )
        for a, b in pairs
    )
    verdict, winner = _overall(pair_results, primary, baseline)
    variants = list(dict.fromkeys(v for pair in pairs for v in pair))
    sub = df[df["variant"].isin(variants)]
    return ComparisonReport(
        pairs=pair_results,
        verdict=verdict,
        winner=winner,
        metric_kinds=dict(metrics),
        primary_metric=primary,
        guardrails=guardrails,
        lower_is_better=tuple(sorted(lower)),
        alpha=alpha,
        correction=correction,
        baseline=baseline,
        summary=summarize(sub, metrics, confidence=1 - alpha).loc[variants],
        consistency=consistency(sub, metrics),
        settings={
            "seed": seed,
            "n_bootstrap": n_bootstrap,
            "non_inferiority_margin": margin,
            "min_effect": min_effect,
            "power": power,
            "mcnemar": mcnemar,
            "continuous_test": continuous_test,
            "n_tests": int(np.sum(~np.isnan(p_adj))),
        },
    )


# --------------------------------------------------------------------------- verdicts


def _decimals(width: float) -> int:
    if not math.isfinite(width) or width <= 0:
        return 3
    return int(min(6, max(2, 1 - math.floor(math.log10(width)))))


def _num(x: float, dec: int, sign: bool = False) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:+.{dec}f}" if sign else f"{x:.{dec}f}"


def format_p(p: float, alpha: float = 0.05) -> str:
    """Two significant digits, more when rounding would cross ``alpha``."""
    if not math.isfinite(p):
        return "n/a"
    if p < 1e-4:
        return "<0.0001"
    s = f"{p:.2g}"
    if (float(s) < alpha) != (p < alpha):
        s = f"{p:.4g}"
    return s


def p_text(name: str, p: float, alpha: float = 0.05) -> str:
    """'p_adj=0.03' or 'p_adj<0.0001'."""
    s = format_p(p, alpha)
    return f"{name}{s}" if s.startswith("<") else f"{name}={s}"


def _effect_text(r: MetricComparison, winner: str | None = None) -> str:
    """'(+0.21, 95% CI [0.12, 0.30], p_adj=0.0003)' seen from ``winner`` (default b - a)."""
    flip = winner is not None and winner == r.a
    diff, lo, hi = (-r.diff, -r.ci_high, -r.ci_low) if flip else (r.diff, r.ci_low, r.ci_high)
    dec = _decimals(hi - lo)
    conf = round(100 * (1 - r.alpha))
    side = "" if r.higher_is_better else ", lower is better"
    return (
        f"({_num(diff, dec, True)}, {conf}% CI [{_num(lo, dec)}, {_num(hi, dec)}]{side}, "
        f"{p_text('p_adj', r.p_adj, r.alpha)})"
    )


def _min_effect(r: MetricComparison, min_effect: float | None, df_sd: float) -> float:
    if min_effect is not None:
        return float(min_effect)
    if r.kind == "binary":
        return DEFAULT_BINARY_MIN_EFFECT
    return DEFAULT_CONTINUOUS_MIN_EFFECT_SD * df_sd if df_sd > 0 else math.nan


def _decide(
    df: pd.DataFrame,
    a: str,
    b: str,
    results: dict[str, MetricComparison],
    *,
    primary: str,
    guardrails: tuple[str, ...],
    min_effect: float | None,
    power: float,
    mcnemar: McNemarMethod,
    continuous_test: ContinuousTest,
    mde_alpha: float,
) -> PairComparison:
    r = results[primary]
    resources = _resources(df, a, b)
    blocked: tuple[str, ...] = ()
    underpowered = False
    non_inf: bool | None = None
    winner: str | None = None
    dropped = (
        f"; {r.n_dropped} examples dropped (not scored by both variants)" if r.n_dropped else ""
    )

    if r.n_paired == 0:
        outcome = "insufficient_data"
        verdict = f"cannot compare {a} and {b} on {primary}: " + _why_no_pairs(df, a, b, primary)
    elif r.n_paired < MIN_PAIRED:
        outcome = "insufficient_data"
        underpowered = True
        verdict = (
            f"too few paired examples to compare {a} and {b} on {primary} "
            f"(n={r.n_paired}; at least {MIN_PAIRED} are needed, and far more to detect "
            f"realistic differences){dropped}"
        )
    elif r.note.startswith("identical"):
        outcome = "identical"
        verdict = f"no difference on {primary}: {a} and {b} scored identically on all {r.n_paired} paired examples{dropped}"  # noqa: E501
    elif r.favours is not None:
        win = r.favours
        lose = a if win == b else b
        blocked = tuple(g for g in guardrails if results[g].regresses(win))
        verdict = f"{win} better than {lose} on {primary} {_effect_text(r, win)}{dropped}"
        if blocked:
            outcome = "blocked"
            parts = [f"{g} {_guard_text(results[g], win)}" for g in blocked]
            verdict += f"; blocked: {win} regresses on guardrail " + "; ".join(parts)
        else:
            outcome = "better"
            winner = win
    else:
        outcome = "no_difference"
        verdict = f"no detectable difference on {primary} {_effect_text(r)}"
        sd = float(_per_example(df, a, primary)[0].std()) if r.kind == "continuous" else 0.0
        target = _min_effect(r, min_effect, sd)
        dec = _decimals(abs(r.ci_high - r.ci_low))
        if math.isfinite(r.mde):
            verdict += f"; could detect >= {_num(r.mde, dec)} at {round(power * 100)}% power"
        else:
            verdict += "; too few examples to detect any effect reliably"
        if math.isfinite(target) and (not math.isfinite(r.mde) or r.mde > target):
            underpowered = True
            need = _needed_n(r, df, a, target, mde_alpha, power, mcnemar, continuous_test)
            verdict += f"; underpowered for differences of {_num(target, dec)}"
            if need is not None:
                verdict += f" (about {need} paired examples needed)"
        verdict += dropped

    if r.ni is not None and r.n_paired >= MIN_PAIRED and outcome not in ("identical",):
        guard_bad = tuple(g for g in guardrails if results[g].regresses(b))
        dec = _decimals(abs(r.ci_high - r.ci_low))
        rel = ">" if r.higher_is_better else "<"
        lim = -r.ni.margin if r.higher_is_better else r.ni.margin
        conf = round(100 * (1 - r.alpha))
        stats_text = (
            f"one-sided {conf}% bound {_num(r.ni.bound, dec)} {rel} {_num(lim, dec)}, "
            f"{p_text('p', r.ni.p_value, r.alpha)}"
        )
        if r.ni.non_inferior and not guard_bad:
            non_inf = True
            verdict += f"; {b} non-inferior to {a} within {r.ni.margin:g} ({stats_text})"
            if outcome == "no_difference":
                outcome = "non_inferior"
        elif r.ni.non_inferior:
            non_inf = False
            verdict += (
                f"; {b} would be non-inferior within {r.ni.margin:g} but regresses on "
                f"guardrail {', '.join(guard_bad)}"
            )
            blocked = tuple(dict.fromkeys((*blocked, *guard_bad)))
        else:
            non_inf = False
            verdict += (
                f"; non-inferiority of {b} within {r.ni.margin:g} not shown "
                f"(one-sided {conf}% bound {_num(r.ni.bound, dec)}, "
                f"{p_text('p', r.ni.p_value, r.alpha)})"
            )
    elif r.ni is not None and outcome == "identical":
        non_inf = r.ni.non_inferior
        if non_inf:
            verdict += f"; {b} non-inferior to {a} within {r.ni.margin:g}"
    return PairComparison(
        a=a,
        b=b,
        primary_metric=primary,
        metrics=results,
        verdict=verdict,
        winner=winner,
        outcome=outcome,
        underpowered=underpowered,
        blocked_by=blocked,
        non_inferior=non_inf,
        resources=resources,
    )


def _guard_text(r: MetricComparison, candidate: str) -> str:
    flip = candidate == r.a
    diff, lo, hi = (-r.diff, -r.ci_high, -r.ci_low) if flip else (r.diff, r.ci_low, r.ci_high)
    dec = _decimals(hi - lo)
    conf = round(100 * (1 - r.alpha))
    return (
        f"({_num(diff, dec, True)}, {conf}% CI [{_num(lo, dec)}, {_num(hi, dec)}], "
        f"{p_text('p', r.p_value, r.alpha)})"
    )


def _needed_n(
    r: MetricComparison,
    df: pd.DataFrame,
    a: str,
    target: float,
    alpha: float,
    power: float,
    mcnemar: McNemarMethod,
    continuous_test: ContinuousTest,
) -> int | None:
    try:
        if r.discordant_a is not None and r.discordant_b is not None:
            psi = (r.discordant_a + r.discordant_b) / r.n_paired
            return required_sample_size(
                target,
                kind="binary",
                discordance=max(psi, target),
                alpha=alpha,
                power=power,
                mcnemar=mcnemar,
                max_n=10_000_000,
            )
        d = _per_example(df, r.b, r.metric)[0] - _per_example(df, a, r.metric)[0]
        sdd = float(d.dropna().std())
        if not sdd > 0:
            return None
        return required_sample_size(
            target,
            kind="continuous",
            sd_diff=sdd,
            alpha=alpha,
            power=power,
            continuous_test=continuous_test,
            max_n=10_000_000,
        )
    except ValueError:
        return None


def _why_no_pairs(df: pd.DataFrame, a: str, b: str, metric: str) -> str:
    ok = _ok_rows(df)
    reasons = []
    for v in (a, b):
        rows = df[df["variant"] == v]
        n_err = int((~ok.loc[rows.index]).sum())
        if len(rows) and n_err == len(rows):
            reasons.append(f"{v} has only error rows ({n_err} calls, all failed)")
        elif _per_example(df, v, metric)[0].empty:
            reasons.append(f"{v} has no valid {metric} score")
    if reasons:
        return "; ".join(reasons)
    return "no example has a valid score from both variants (their example sets do not overlap)"


def _resources(df: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Cost, tokens and latency per successful call, on the examples both variants ran."""
    ok = _ok_rows(df)
    ids = set(df.loc[df["variant"] == a, "example_id"]) & set(
        df.loc[df["variant"] == b, "example_id"]
    )
    rows = {}
    for v in (a, b):
        g = df[(df["variant"] == v) & ok & df["example_id"].isin(ids)]

        def mean(col: str, g: pd.DataFrame = g) -> float:
            if col not in g.columns or g.empty:
                return math.nan
            return float(pd.to_numeric(g[col], errors="coerce").mean())

        lat = g["latency_s"] if "latency_s" in g.columns else pd.Series(dtype=float)
        rows[v] = {
            "cost_per_call": mean("cost"),
            "prompt_tokens_per_call": mean("prompt_tokens"),
            "completion_tokens_per_call": mean("completion_tokens"),
            "latency_p50": _quantile(lat, 0.5),
            "latency_p95": _quantile(lat, 0.95),
        }
    out = pd.DataFrame(rows)
    out["diff"] = out[b] - out[a]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = out[b] / out[a]
    out["ratio"] = ratio.where(np.isfinite(ratio))
    out.index.name = "resource"
    return out


def _overall(
    pairs: tuple[PairComparison, ...], primary: str, baseline: str | None
) -> tuple[str, str | None]:
    if len(pairs) == 1:
        return pairs[0].verdict, pairs[0].winner
    lines = [f"{p.a} vs {p.b}: {p.verdict}" for p in pairs]
    variants = list(dict.fromkeys(v for p in pairs for v in (p.a, p.b)))
    champions = [v for v in variants if all(p.winner == v for p in pairs if v in (p.a, p.b))]
    if baseline is not None:
        # A winner improves on the baseline (guardrails clean); the baseline itself never wins.
        beat = [p.winner for p in pairs if p.winner is not None and p.winner != baseline]
        winner: str | None = None
        if len(beat) == 1:
            head = f"{beat[0]} is the only variant better than {baseline} on {primary}"
            winner = beat[0]
        elif beat:
            head = (
                f"several variants beat {baseline} on {primary} ({', '.join(beat)}); they were "
                f"not compared with each other, so there is no single winner (compare two of "
                f"them directly, e.g. results.compare({beat[0]!r}, {beat[1]!r}))"
            )
        elif all(p.winner == baseline for p in pairs):
            head = f"{baseline} is better than every other variant on {primary}; keep it"
        else:
            head = f"no variant is significantly better than {baseline} on {primary}"
    elif len(champions) == 1:
        head = f"{champions[0]} beats every other variant on {primary}"
        winner = champions[0]
    else:
        head, winner = f"no variant beats every other on {primary}", None
    return "\n".join([head, *lines]), winner
