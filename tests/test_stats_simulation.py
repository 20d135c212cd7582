"""Seeded simulations: the decision rules keep their promises over many experiments.

The scenarios are those of ``scripts/simulate_stats.py`` (whose 2,000-seed output
``docs/statistics.md`` quotes), run here with fewer seeds. The bounds are loose enough that a
seeded run cannot drift across them by chance, and tight enough that each defect they guard
against (rates of 0.08 to 0.9 where 0.05 is promised, coverage of 0.91) fails them.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.evaluation.stats import (
    adjust_pvalues,
    compare,
    expected_power,
    mcnemar_pvalue,
    minimum_detectable_effect,
    paired_pvalues,
    paired_test,
    required_sample_size,
)

_path = Path(__file__).resolve().parents[1] / "scripts" / "simulate_stats.py"
_spec = importlib.util.spec_from_file_location("simulate_stats", _path)
sim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sim)

R = 2000
ALPHA = 0.05
BAND = (0.035, 0.065)


def rng(seed):
    return np.random.default_rng(seed)


def in_band(rate, band=BAND):
    return band[0] <= rate <= band[1]


# ----------------------------------------------------------------------------- false positives


def test_exact_mcnemar_false_positive_rate():
    # ~170 discordant pairs per experiment: enough for the exact test's size to reach the band.
    rate = sim.rate_significant(*sim.aa_pass_fail(rng(1), R, 500), "binary")
    assert in_band(rate), rate


def test_exact_mcnemar_never_exceeds_alpha_and_mid_p_is_closer():
    a, b = sim.aa_pass_fail(rng(2), R, 80)
    exact = float(np.mean(paired_test(a, b, "binary").p_value < ALPHA))
    mid = float(np.mean(paired_test(a, b, "binary", mcnemar="midp").p_value < ALPHA))
    assert exact <= ALPHA and exact < mid <= 0.065


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda g: sim.aa_pass_fail(g, R, 100, 3, 3), "binary"),
        (lambda g: sim.aa_scores(g, R, 30), "continuous"),
        (lambda g: sim.aa_scores(g, R, 80, judge=True), "continuous"),
    ],
    ids=["pass-rates-3-calls", "scores", "judge-1-to-5"],
)
def test_default_tests_false_positive_rate(make, kind):
    rate = sim.rate_significant(*make(rng(3)), kind)
    assert in_band(rate), rate


@pytest.mark.parametrize(
    ("make", "kind", "n"),
    [
        (sim.unequal_calls, "continuous", 30),
        (sim.unequal_calls, "continuous", 100),
        (sim.b_loses_half, "continuous", 30),
        (sim.pass_fail_calls, "binary", 50),
    ],
    ids=["1-vs-5-calls-n30", "1-vs-5-calls-n100", "b-loses-half", "pass-fail-1-vs-5"],
)
def test_unequal_calls_per_example_keep_the_false_positive_rate(make, kind, n):
    # 200 experiments through the frame -> per-example means path; the defect gave 0.46-0.91.
    rate = sim.rate_through_frames(rng(4), 200, n, make, kind)
    assert 0.01 <= rate <= 0.10, rate


def test_a_variant_does_not_win_through_its_own_failures():
    g = rng(5)
    wins = sum(compare(sim.errors_frame(g, 100), "A", "B", {"exact_match": "binary"}).winner
               == "B" for _ in range(30))
    assert wins <= 3, wins  # the defect named B the winner in 21-61% of experiments


def test_simulation_uses_the_compare_code_path():
    g = rng(7)
    n, k = 40, 3
    for kind, reps in [("binary", 1), ("binary", k), ("continuous", k)]:
        raw = g.random((2, 5, n, reps))
        raw = (raw < 0.5) * 1.0 if kind == "binary" else raw
        expected = paired_test(raw[0].mean(-1), raw[1].mean(-1), kind)
        for i in range(5):
            df = pd.DataFrame(
                {
                    "variant": np.repeat(["A", "B"], n * reps),
                    "example_id": np.tile(np.repeat([f"e{j:02d}" for j in range(n)], reps), 2),
                    "repeat": np.tile(np.arange(reps), 2 * n),
                    "error": None,
                    "score.m": np.concatenate([raw[0, i].ravel(), raw[1, i].ravel()]),
                }
            )
            got = compare(df, "A", "B", {"m": kind}, primary="m").primary
            assert got.p_value == pytest.approx(expected.p_value[i], rel=1e-12)
            assert got.ci_low == pytest.approx(expected.low[i], rel=1e-9, abs=1e-12)
            assert got.ci_high == pytest.approx(expected.high[i], rel=1e-9, abs=1e-12)


def test_interval_and_test_agree_in_every_simulated_experiment():
    for kind, (a, b) in [("binary", sim.aa_pass_fail(rng(8), 500, 30)),
                         ("binary", sim.aa_pass_fail(rng(9), 500, 40, 3, 3)),
                         ("continuous", sim.aa_unequal_calls_vectorised(rng(10), 500, 25))]:
        res = paired_test(a, b + 0.1 * (kind == "continuous"), kind)
        excludes = (res.low > 0) | (res.high < 0)
        assert np.array_equal(excludes, res.p_value < ALPHA), kind


# ----------------------------------------------------------------------------- family-wise error


def test_holm_keeps_the_family_wise_error_at_alpha():
    g = rng(11)
    n = 100
    # five metrics on the same examples, correlated through the example's difficulty
    bins = [sim.aa_pass_fail(g, R, n) for _ in range(3)]
    conts = [sim.aa_scores(g, R, n) for _ in range(2)]
    p = np.column_stack(
        [paired_test(a, b, "binary", mcnemar="midp").p_value for a, b in bins]
        + [paired_test(a, b, "continuous").p_value for a, b in conts]
    )
    raw_fwer = np.mean((p < ALPHA).any(axis=1))
    holm = np.array([adjust_pvalues(row, "holm") for row in p])
    fwer = np.mean((holm < ALPHA).any(axis=1))
    se = math.sqrt(ALPHA * (1 - ALPHA) / R)
    assert raw_fwer > 0.15  # uncorrected, five looks at noise find "something" often
    assert fwer <= ALPHA + 2 * se, fwer


# ----------------------------------------------------------------------------- non-inferiority


@pytest.mark.parametrize("shape", ["normal", "skewed", "sparse loss", "sparse loss, no noise"])
@pytest.mark.parametrize("n", [10, 20, 50, 300])
def test_non_inferiority_on_scores_holds_its_size_at_the_margin(shape, n):
    rate = sim.ni_scores_size(rng(12), 1000, n, shape)
    assert rate <= 0.07, rate  # the plain t-test reached 0.08-0.13 (and 0.3 on sparse loss)


def test_non_inferiority_on_scores_still_has_power_with_enough_examples():
    assert sim.ni_scores_size(rng(13), 500, 1000, "power") >= 0.9


def test_tango_size_at_the_margin_stays_near_alpha():
    for n in (50, 200):
        rate = sim.ni_pass_fail_size(rng(14), R, n)
        assert rate <= 0.07, (n, rate)


# ----------------------------------------------------------------------------- intervals


@pytest.mark.parametrize("n", [20, 30, 50])
@pytest.mark.parametrize(("p_bad", "p_good"), [(0.02, 0.08), (0.05, 0.15), (0.1, 0.2)])
def test_pass_fail_interval_covers_with_few_discordant_pairs(n, p_bad, p_good):
    cover = sim.coverage_pass_fail(rng(15), 1000, n, p_bad, p_good)
    assert cover >= 0.935, cover  # the BCa bootstrap covered 0.908-0.93 here


def test_score_interval_covers_the_mean_difference():
    assert sim.coverage_scores(rng(16), R, 50, skewed=False) >= 0.94


# ----------------------------------------------------------------------------- power


def simulated_binary_power(g, n, p_bad, p_good):
    cells = g.multinomial(n, [p_bad, p_good, 1 - p_bad - p_good], size=R)
    return float(np.mean(mcnemar_pvalue(cells[:, 0], cells[:, 1]) < ALPHA))


def test_binary_planner_matches_simulated_power_with_known_discordance():
    n = required_sample_size(0.1, kind="binary", baseline=0.6, discordance=0.3)
    planned = expected_power(n, 0.1, kind="binary", baseline=0.6, discordance=0.3)
    simulated = simulated_binary_power(rng(17), n, 0.1, 0.2)
    assert planned >= 0.8
    assert abs(simulated - planned) < 0.05, (n, planned, simulated)


def test_binary_planner_matches_simulation_for_independent_variants():
    n = required_sample_size(0.15, kind="binary", baseline=0.5)
    planned = expected_power(n, 0.15, kind="binary", baseline=0.5)
    g = rng(18)
    a = g.random((R, n)) < 0.5  # no shared difficulty
    b = g.random((R, n)) < 0.65
    simulated = float(np.mean(paired_pvalues(a * 1.0, b * 1.0, "binary")[0] < ALPHA))
    assert abs(simulated - planned) < 0.05, (n, planned, simulated)


def test_continuous_planner_matches_simulated_t_test_power():
    n = required_sample_size(0.35, kind="continuous", sd_diff=1.0)
    planned = expected_power(n, 0.35, kind="continuous", sd_diff=1.0)
    d = rng(19).normal(0.35, 1.0, (R, n))
    simulated = float(np.mean(paired_pvalues(np.zeros_like(d), d, "continuous")[0] < ALPHA))
    assert abs(simulated - planned) < 0.05, (n, planned, simulated)


def test_minimum_detectable_effect_has_the_stated_power():
    mde = minimum_detectable_effect(150, kind="binary", discordance=0.4)
    p_bad, p_good = (0.4 - mde) / 2, (0.4 + mde) / 2
    simulated = simulated_binary_power(rng(20), 150, p_bad, p_good)
    assert abs(simulated - 0.8) < 0.05, (mde, simulated)
