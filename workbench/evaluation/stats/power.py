"""Power, sample size and the smallest detectable effect of the paired tests ``compare`` runs."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from scipy import special, stats

from ._frame import McNemarMethod, MetricKind, StatsInputError
from .noninferiority import MIN_PAIRED


def _check_power_args(alpha: float, power: float | None = None) -> None:
    if not 0 < alpha < 1:
        raise StatsInputError(f"alpha must be in (0, 1), got {alpha}")
    if power is not None and not 0 < power < 1:
        raise StatsInputError(f"power must be in (0, 1), got {power}")


def _binary_cells(
    effect: float, baseline: float | None, discordance: float | None
) -> tuple[float, float]:
    """P(a passes, b fails) and P(a fails, b passes) for a paired pass/fail design."""
    if discordance is None:
        if baseline is None:
            raise StatsInputError("binary power needs baseline= (pass rate of a) or discordance=")
        if not 0 <= baseline <= 1 or not 0 <= baseline + effect <= 1:
            raise StatsInputError(
                f"baseline {baseline} plus effect {effect} must stay within [0, 1]")
        # No pairing information: assume the variants fail independently, the cautious
        # default (real variants share hard examples, which lowers discordance).
        p_b = baseline + effect
        return baseline * (1 - p_b), p_b * (1 - baseline)
    if not abs(effect) <= discordance <= 1:
        raise StatsInputError(
            f"discordance (share of examples where exactly one variant passes) must be "
            f"between |effect| = {abs(effect)} and 1, got {discordance}"
        )
    p_bad, p_good = (discordance - effect) / 2, (discordance + effect) / 2
    if baseline is not None and (p_bad > baseline + 1e-12 or p_good > 1 - baseline + 1e-12):
        raise StatsInputError(
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


def _t_power(n: float, effect: float, sd_diff: float, alpha: float) -> float:
    """Power of the two-sided paired t-test via the noncentral t distribution."""
    n_eff = n
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
            raise StatsInputError(f"sd_diff must be positive, got {sd_diff}")
        return float(sd_diff)
    if sd is None:
        raise StatsInputError(
            "continuous power needs sd_diff= (SD of per-example differences) or sd= "
            "(SD of scores) with correlation= between the variants' scores"
        )
    if sd <= 0 or not -1 <= correlation < 1:
        raise StatsInputError("need sd > 0 and correlation in [-1, 1)")
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
) -> float:
    """Probability that ``compare`` calls a true difference of ``effect`` significant with
    ``n`` paired examples (one example = one call; two-sided level ``alpha``).

    Binary: exact power of the McNemar test used by ``compare``, from the baseline pass rate
    and, if known from a pilot, the discordance (share of examples where exactly one variant
    passes). Continuous: the noncentral t of the paired t-test, from the SD of per-example
    differences (or score SD and between-variant correlation).
    """
    _check_power_args(alpha)
    if kind == "binary":
        p_bad, p_good = _binary_cells(effect, baseline, discordance)
        return _mcnemar_power(int(n), p_bad, p_good, alpha, mcnemar == "midp")
    sdd = _sd_diff(sd, sd_diff, correlation)
    return _t_power(n, effect, sdd, alpha)


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
    max_n: int = 1_000_000,
) -> int:
    """Paired examples needed to detect ``effect`` (b - a, in metric units) with ``power``.

    For the exact McNemar test power is a saw-tooth in n; the answer is the smallest n from
    which every larger n (in the searched range) also reaches ``power``, so rounding up never
    lands on a dip. Raises ValueError when even ``max_n`` examples would not suffice.
    """
    _check_power_args(alpha, power)
    if effect == 0:
        raise StatsInputError("effect must be non-zero: no sample size detects a zero difference")
    kw = dict(
        kind=kind,
        baseline=baseline,
        discordance=discordance,
        sd=sd,
        sd_diff=sd_diff,
        correlation=correlation,
        alpha=alpha,
        mcnemar=mcnemar,
    )

    def pw(n: int) -> float:
        return expected_power(n, effect, **kw)

    too_many = f"more than {max_n} examples needed for effect {effect}"
    if kind == "continuous":
        return _smallest_n(pw, power, 2, 64, 4, max_n, too_many)
    approx = _connor_n(effect, baseline, discordance, alpha, power)
    if approx > max_n:
        raise StatsInputError(too_many)
    if approx > 20_000:  # the exact test's saw-tooth is negligible this far out
        return approx
    # Bisect as if power rose steadily, then walk forward past any dip of the saw-tooth
    # (Chernick & Liu 2002): the answer is an n from which the following ~2*sqrt(n)
    # sample sizes all reach the target too.
    start = _smallest_n(pw, power, 1, max(2 * approx, 50), 2, max_n, too_many)
    n = start
    while n < start + 2 * math.isqrt(start) + 20:
        n += 1
        if pw(n) < power:
            start = n + 1
    return start


def _smallest_n(pw: Callable[[int], float], power: float, lo: int, hi: int, grow: int,
                max_n: int, too_many: str) -> int:
    """The smallest n in (lo, hi] reaching ``power``, hi grown ``grow``-fold until it
    does, assuming power rises with n."""
    while pw(hi) < power:
        if hi >= max_n:
            raise StatsInputError(too_many)
        lo, hi = hi, min(max_n, grow * hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if pw(mid) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _connor_n(effect: float, baseline: float | None, discordance: float | None,
              alpha: float, power: float) -> int:
    """Connor's (1987) normal approximation of the McNemar sample size."""
    p_bad, p_good = _binary_cells(effect, baseline, discordance)
    psi = p_bad + p_good
    z = special.ndtri(1 - alpha / 2) * math.sqrt(psi) + special.ndtri(power) * math.sqrt(
        max(psi - effect**2, 0.0)
    )
    return max(MIN_PAIRED, int(math.ceil((z / effect) ** 2)))


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
) -> float:
    """Smallest improvement (b - a > 0, metric units) detected with ``power`` at ``n`` pairs.

    For binary metrics with a known ``discordance``, the discordance is taken as at least the
    effect itself (a difference of d needs at least a share d of discordant pairs). NaN when
    no effect is detectable (too few examples).
    """
    _check_power_args(alpha, power)
    kw = dict(kind=kind, alpha=alpha, mcnemar=mcnemar)
    if kind == "binary":
        if baseline is None and discordance is None:
            raise StatsInputError("binary MDE needs baseline= or discordance=")
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

