"""Seeded simulations: the decision rules keep their promises over many experiments.

Each check runs the same vectorised p-value code that ``compare`` uses (``paired_pvalues``;
``test_simulation_uses_the_compare_code_path`` pins that equivalence). With R experiments a
rate has Monte Carlo standard error sqrt(p(1-p)/R), about 0.0034 at p=0.05 and R=4000,
so the [0.035, 0.065] band is more than four standard errors wide on each side.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.stats import (
    _tango_z,
    adjust_pvalues,
    bootstrap_ci,
    compare,
    expected_power,
    minimum_detectable_effect,
    paired_pvalues,
    required_sample_size,
)

R = 4000
ALPHA = 0.05
BAND = (0.035, 0.065)


def aa_binary(rng, n, k=1):
    """A/A pass/fail data: each example has its own difficulty, shared by both variants."""
    p = rng.random((R, n, 1))
    a = (rng.random((R, n, k)) < p).mean(axis=-1)
    b = (rng.random((R, n, k)) < p).mean(axis=-1)
    return a, b


def aa_continuous(rng, n, k=1, judge=False):
    """A/A scores: example effect plus call noise; ``judge`` rounds to a 1-5 scale (ties)."""
    mu = rng.normal(0, 1, (R, n, 1))
    a = mu + rng.normal(0, 0.7, (R, n, k))
    b = mu + rng.normal(0, 0.7, (R, n, k))
    if judge:
        a, b = (np.clip(np.round(3 + x), 1, 5) for x in (a, b))
    return a.mean(axis=-1), b.mean(axis=-1)


def fpr(a, b, kind, **kw):
    p, _ = paired_pvalues(a, b, kind, **kw)
    return float(np.mean(p < ALPHA))


def in_band(rate):
    return BAND[0] <= rate <= BAND[1]


# ----------------------------------------------------------------------------- false positives


def test_exact_mcnemar_false_positive_rate():
    # ~170 discordant pairs per experiment: enough for the exact test's size to reach the band.
    rate = fpr(*aa_binary(np.random.default_rng(1), n=500), "binary")
    assert in_band(rate), rate


def test_exact_mcnemar_is_conservative_at_small_n_and_mid_p_is_not():
    a, b = aa_binary(np.random.default_rng(2), n=80)
    exact = fpr(a, b, "binary")
    mid = fpr(a, b, "binary", mcnemar="midp")
    assert exact <= ALPHA  # never above alpha, but well below it with ~27 discordant pairs
    assert exact < mid
    assert in_band(mid), mid


def test_binary_with_repeats_false_positive_rate():
    a, b = aa_binary(np.random.default_rng(3), n=100, k=3)
    _, test = paired_pvalues(a[:1], b[:1], "binary")
    assert test == "Wilcoxon signed-rank"
    rate = fpr(a, b, "binary")
    assert in_band(rate), rate


@pytest.mark.parametrize(("n", "k", "judge"), [(60, 1, False), (30, 1, False), (80, 1, True)])
def test_continuous_false_positive_rate(n, k, judge):
    rate = fpr(*aa_continuous(np.random.default_rng(n), n=n, k=k, judge=judge), "continuous")
    assert in_band(rate), rate


def test_continuous_with_repeats_false_positive_rate():
    rate = fpr(*aa_continuous(np.random.default_rng(4), n=80, k=4), "continuous")
    assert in_band(rate), rate


def test_judge_scores_with_repeats_false_positive_rate():
    a, b = aa_continuous(np.random.default_rng(5), n=80, k=3, judge=True)
    rate = fpr(a, b, "continuous")
    assert in_band(rate), rate


def test_paired_permutation_false_positive_rate():
    a, b = aa_continuous(np.random.default_rng(6), n=30)
    rate = fpr(
        a[:1000],
        b[:1000],
        "continuous",
        continuous_test="permutation",
        rng=np.random.default_rng(0),
    )
    assert 0.03 <= rate <= 0.07, rate  # 1000 experiments: a slightly wider band


def test_simulation_uses_the_compare_code_path():
    rng = np.random.default_rng(7)
    n, k = 40, 3
    for kind, reps in [("binary", 1), ("binary", k), ("continuous", k)]:
        raw = rng.random((2, 5, n, reps))
        raw = (raw < 0.5) * 1.0 if kind == "binary" else raw
        expected, _ = paired_pvalues(raw[0].mean(-1), raw[1].mean(-1), kind)
        for i in range(5):
            df = pd.DataFrame(
                {
                    "variant": np.repeat(["A", "B"], n * reps),
                    "example_id": np.tile(np.repeat([f"e{j}" for j in range(n)], reps), 2),
                    "error": None,
                    "score.m": np.concatenate([raw[0, i].ravel(), raw[1, i].ravel()]),
                }
            )
            got = compare(df, "A", "B", {"m": kind}, primary="m", n_bootstrap=200).primary
            assert got.p_value == pytest.approx(expected[i], rel=1e-12)


# ----------------------------------------------------------------------------- family-wise error


def test_holm_keeps_the_family_wise_error_at_alpha():
    rng = np.random.default_rng(8)
    n = 100
    # five metrics on the same examples, correlated through the example's difficulty
    bins = [aa_binary(rng, n) for _ in range(3)]
    conts = [aa_continuous(rng, n) for _ in range(2)]
    p = np.column_stack(
        [paired_pvalues(a, b, "binary", mcnemar="midp")[0] for a, b in bins]
        + [paired_pvalues(a, b, "continuous")[0] for a, b in conts]
    )
    raw_fwer = np.mean((p < ALPHA).any(axis=1))
    holm = np.array([adjust_pvalues(row, "holm") for row in p])
    fwer = np.mean((holm < ALPHA).any(axis=1))
    se = math.sqrt(ALPHA * (1 - ALPHA) / R)
    assert raw_fwer > 0.15  # uncorrected, five looks at noise find "something" often
    assert fwer <= ALPHA + 2 * se, fwer


# ----------------------------------------------------------------------------- power


def simulated_binary_power(rng, n, p_bad, p_good):
    cells = rng.multinomial(n, [p_bad, p_good, 1 - p_bad - p_good], size=R)
    from workbench.stats import mcnemar_pvalue

    return float(np.mean(mcnemar_pvalue(cells[:, 0], cells[:, 1]) < ALPHA))


def test_binary_planner_matches_simulated_power_with_known_discordance():
    n = required_sample_size(0.1, kind="binary", baseline=0.6, discordance=0.3)
    planned = expected_power(n, 0.1, kind="binary", baseline=0.6, discordance=0.3)
    simulated = simulated_binary_power(np.random.default_rng(9), n, 0.1, 0.2)
    assert planned >= 0.8
    assert abs(simulated - planned) < 0.05, (n, planned, simulated)


def test_binary_planner_matches_simulation_for_independent_variants():
    n = required_sample_size(0.15, kind="binary", baseline=0.5)
    planned = expected_power(n, 0.15, kind="binary", baseline=0.5)
    rng = np.random.default_rng(10)
    a = rng.random((R, n)) < 0.5  # no shared difficulty
    b = rng.random((R, n)) < 0.65
    simulated = float(np.mean(paired_pvalues(a * 1.0, b * 1.0, "binary")[0] < ALPHA))
    assert abs(simulated - planned) < 0.05, (n, planned, simulated)


def test_continuous_planner_matches_simulated_wilcoxon_power():
    n = required_sample_size(0.35, kind="continuous", sd_diff=1.0)
    planned = expected_power(n, 0.35, kind="continuous", sd_diff=1.0)
    rng = np.random.default_rng(11)
    d = rng.normal(0.35, 1.0, (R, n))
    simulated = float(np.mean(paired_pvalues(np.zeros_like(d), d, "continuous")[0] < ALPHA))
    assert abs(simulated - planned) < 0.05, (n, planned, simulated)


def test_minimum_detectable_effect_has_the_stated_power():
    mde = minimum_detectable_effect(150, kind="binary", discordance=0.4)
    p_bad, p_good = (0.4 - mde) / 2, (0.4 + mde) / 2
    simulated = simulated_binary_power(np.random.default_rng(12), 150, p_bad, p_good)
    assert abs(simulated - 0.8) < 0.05, (mde, simulated)


# ----------------------------------------------------------------------------- intervals


def test_non_inferiority_tests_hold_their_size_at_the_margin():
    rng = np.random.default_rng(13)
    n, margin = 200, 0.05
    p_bad, p_good = 0.15 + margin / 2, 0.15 - margin / 2  # true difference = -margin
    cells = rng.multinomial(n, [p_bad, p_good, 1 - p_bad - p_good], size=R)
    z = np.array([_tango_z(int(g), int(b), n, -margin) for b, g, _ in cells])
    rate = float(np.mean(z > 1.6448536269514722))
    assert in_band(rate), rate


def test_bootstrap_interval_covers_the_true_difference():
    rng = np.random.default_rng(14)
    d = rng.normal(0.1, 1.0, (1000, 50))
    hits = 0
    for i, row in enumerate(d):
        lo, hi = bootstrap_ci(row, n_resamples=1000, seed=i)
        hits += lo <= 0.1 <= hi
    assert 0.925 <= hits / 1000 <= 0.97, hits
