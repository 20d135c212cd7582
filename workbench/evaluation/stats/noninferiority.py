"""Non-inferiority: is the candidate worse than the baseline by less than a margin?"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from .paired import tango_z

MIN_PAIRED = 5  # below this many paired examples no verdict is drawn


@dataclass(frozen=True)
class NonInferiority:
    """One-sided test that the candidate ``b`` is worse than ``a`` by less than ``margin``.

    ``bound`` is the one-sided (1 - alpha) confidence bound of ``b - a`` on the unfavourable
    side (a lower bound when higher is better); non-inferiority holds when it clears
    ``-margin`` (or ``+margin`` for lower-is-better metrics). ``reason`` says why it was not
    shown when the data cannot show it at all.
    """

    margin: float
    bound: float
    p_value: float
    method: str
    non_inferior: bool
    reason: str = ""


def tango_bound(n_good, n_bad, n, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) lower bound of P(b better) - P(a better), inverting Tango's test."""
    g, b, n = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (n_good, n_bad, n))
    crit = special.ndtri(1 - alpha)
    lo, hi = np.full(g.shape, -1 + 1e-12), (g - b) / n
    for _ in range(60):
        mid = (lo + hi) / 2
        above = tango_z(g, b, n, mid) > crit
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return np.where(hi <= -1 + 1e-9, -1.0, (lo + hi) / 2)


def hall_t(y: np.ndarray, margin: float, alpha: float) -> tuple[np.ndarray, ...]:
    """One-sided test of mean(y) > -margin per row, Studentised with Hall's (1992) skewness
    correction, and the matching (1 - alpha) lower bound of the mean.

    The plain t-test over-rejects on one side when differences are skewed (a few large
    losses); Hall's monotone cubic transform removes the skewness term of the t statistic's
    Edgeworth expansion. Rows without variance cannot show anything: p = 1.
    """
    y = np.atleast_2d(np.asarray(y, dtype=float))
    n = y.shape[1]
    mean = y.mean(axis=1)
    sd = y.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(sd > 0, ((y - mean[:, None]) ** 3).mean(axis=1) / sd**3, 0.0)
        u = np.where(sd > 0, (mean + margin) / sd, 0.0)
    g = u + gamma * u**2 / 3 + gamma**2 * u**3 / 27
    t_stat = math.sqrt(n) * (g + gamma / (6 * n))
    p = np.where(sd > 0, stats.t.sf(t_stat, n - 1), 1.0)
    c = stats.t.ppf(1 - alpha, n - 1) / math.sqrt(n) - gamma / (6 * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        u_star = np.where(
            np.abs(gamma) > 1e-12, 3 * (np.cbrt(1 + gamma * c) - 1) / gamma, c
        )
    bound = np.where(sd > 0, mean - u_star * sd, mean)
    return p, bound


# Orderings averaged by the betting test, so its answer does not depend on the row order.
BET_ORDERINGS = 10


def _log_capital(x: np.ndarray, m: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """Log of the capital of betting that mean(x) > m, averaged over fixed orderings.

    ``x`` lies in [0, 1]. Each bet is sized from the earlier observations only (the
    predictable plug-in of Waudby-Smith & Ramdas 2024), so the capital is a nonnegative
    supermartingale under "mean <= m" and, by Markov's inequality, exceeds 1/alpha with
    probability at most alpha at any n: no normal approximation is involved.
    """
    rows, n = x.shape
    steps = np.arange(1, n + 1)
    logs = []
    for k in range(BET_ORDERINGS):
        xx = x[:, np.random.default_rng([seed, k]).permutation(n)] if k else x
        csum = np.cumsum(xx, axis=1)
        centre = (0.5 + csum) / (steps + 1)
        dev = np.cumsum((xx - centre) ** 2, axis=1)
        var = (0.25 + np.concatenate([np.zeros((rows, 1)), dev[:, :-1]], axis=1)) / steps
        lam = np.minimum(np.sqrt(2 * math.log(1 / alpha) / (n * var)), 0.75 / m[:, None])
        logs.append(np.log1p(lam * (xx - m[:, None])).sum(axis=1))
    stacked = np.stack(logs)
    top = stacked.max(axis=0)
    return top + np.log(np.exp(stacked - top).mean(axis=0))


def betting_test(
    od: np.ndarray,
    margin: float,
    alpha: float,
    span: np.ndarray,
    with_bound: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided test of mean(od) > -margin valid at every n for differences within
    [-span, span], and the matching lower confidence bound of the mean, per row.

    Rare large losses are what a t-test misses at small n: a sample that happens to contain
    none looks precise. Bounding the possible loss by the range of the scores makes the
    claim hold without that luck.
    """
    od = np.atleast_2d(np.asarray(od, dtype=float))
    span = np.broadcast_to(np.asarray(span, dtype=float), od.shape[:1])
    safe = np.where(span > 0, span, 1.0)
    x = np.clip((od + safe[:, None]) / (2 * safe[:, None]), 0.0, 1.0)
    level = math.log(1 / alpha)

    def log_k(mean: np.ndarray) -> np.ndarray:
        return _log_capital(x, np.clip((mean + safe) / (2 * safe), 1e-9, 1.0), alpha, seed)

    p = np.minimum(1.0, np.exp(-log_k(np.full(safe.shape, -margin))))
    p = np.where(span > 0, p, 1.0)
    if not with_bound:
        return p, np.full(p.shape, np.nan)
    lo, hi = -safe.copy(), od.mean(axis=1)
    for _ in range(50):  # the capital falls as the hypothesised mean rises
        mid = (lo + hi) / 2
        rejected = log_k(mid) >= level
        lo, hi = np.where(rejected, mid, lo), np.where(rejected, hi, mid)
    bound = np.where(log_k(lo) >= level, lo, -safe)
    return p, np.where(span > 0, bound, od.mean(axis=1))


def scores_test(
    od: np.ndarray,
    margin: float,
    alpha: float,
    span: np.ndarray,
    with_bound: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-inferiority of scores per row: Hall's t and the betting test must both show it;
    p and bound are the weaker of the two. Rows without variance get p = 1."""
    od = np.atleast_2d(np.asarray(od, dtype=float))
    ps, bs = hall_t(od, margin, alpha)
    pb, bb = betting_test(od, margin, alpha, span, with_bound, seed)
    return np.maximum(ps, pb), np.minimum(bs, bb)


def non_inferiority(
    d: np.ndarray,
    margin: float,
    higher_is_better: bool,
    alpha: float,
    mcnemar_counts: tuple[int, int] | None,
    span: float,
    seed: int = 0,
) -> NonInferiority:
    """Tango's score test for pass/fail outcomes; for scores, both Hall's t and the betting
    test must show non-inferiority, and the reported p and bound are the weaker of the two.

    ``span`` bounds the size of a per-example score difference (the range of the scores).
    """
    sign = 1.0 if higher_is_better else -1.0
    od = sign * np.asarray(d, dtype=float)
    n = od.size
    reason = ""
    if n < 2 or (mcnemar_counts is None and np.all(od == od[0])):
        p, bound = 1.0, float(od.mean()) if n else math.nan
        method = "not tested"
        reason = "the differences have no variance, so their uncertainty is unknown"
    else:
        if mcnemar_counts is not None:
            n_a_better, n_b_better = mcnemar_counts
            if not higher_is_better:
                n_a_better, n_b_better = n_b_better, n_a_better
            p = float(special.ndtr(-tango_z(n_b_better, n_a_better, n, -margin)))
            bound = float(tango_bound(n_b_better, n_a_better, n, alpha)[0])
            method = "Tango score test (paired proportions)"
        else:
            ps, bs = scores_test(od, margin, alpha, np.array([span]), seed=seed)
            p, bound = float(ps[0]), float(bs[0])
            method = "Hall-corrected one-sided t and betting test"
    if n < MIN_PAIRED and not reason:
        reason = f"only {n} paired examples"
    ok = p < alpha and not reason
    return NonInferiority(
        margin=margin,
        bound=sign * bound,
        p_value=p,
        method=method,
        non_inferior=ok,
        reason=reason,
    )
