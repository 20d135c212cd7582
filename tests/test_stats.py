"""Reference values and behaviour of workbench.evaluation.stats (statsmodels serves as an
independent reference implementation)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from workbench.evaluation.stats import (
    CompareOptions,
    StatsInputError,
    adjust_pvalues,
    compare,
    compare_all,
    mcnemar_pvalue,
    summarize,
    wilson_interval,
)

BIN = {"exact_match": "binary"}
CONT = {"rouge": "continuous"}


def frame(scores: dict[str, np.ndarray], metric: str = "exact_match", **extra) -> pd.DataFrame:
    """Results frame from per-variant score arrays: shape (examples,) or (examples, repeats);
    NaN marks a failed call."""
    rows = []
    for variant, arr in scores.items():
        arr = np.asarray(arr, dtype=float)
        arr = arr[:, None] if arr.ndim == 1 else arr
        for i in range(arr.shape[0]):
            for r in range(arr.shape[1]):
                value = arr[i, r]
                rows.append(
                    {
                        "variant": variant,
                        "example_id": f"ex{i:03d}",
                        "repeat": r,
                        "error": "timeout" if np.isnan(value) else None,
                        "prompt_tokens": 100 + i,
                        "completion_tokens": 10 + r,
                        "cost": 0.001,
                        "latency_s": 0.5 + 0.01 * i,
                        "cached": False,
                        f"score.{metric}": value,
                        "output": f"{variant}-{i}",
                    }
                )
    df = pd.DataFrame(rows)
    for name, values in extra.items():
        df[name] = values
    return df


def binary_pair(n=80, p_a=0.5, p_b=0.75, seed=1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u = rng.random(n)  # shared difficulty: paired outcomes are correlated
    a = (u < p_a).astype(float)
    b = (u < p_b).astype(float)
    flip = rng.random(n) < 0.15
    b[flip] = 1 - b[flip]
    return a, b


# ----------------------------------------------------------------------------- summarize


def test_summarize_counts_ci_and_resources_match_references():
    a, b = binary_pair()
    a[[3, 7]] = np.nan  # two failed calls
    df = frame({"A": a, "B": b})
    s = summarize(df, BIN)
    assert list(s.index) == ["A", "B"]
    assert s.loc["A", "n_examples"] == 80 and s.loc["A", "n_calls"] == 80
    assert s.loc["A", "n_errors"] == 2 and s.loc["B", "n_errors"] == 0
    ok = a[~np.isnan(a)]
    assert s.loc["A", "exact_match"] == pytest.approx(ok.mean())
    lo, hi = proportion_confint(ok.sum(), ok.size, alpha=0.05, method="wilson")
    assert s.loc["A", "exact_match_ci_low"] == pytest.approx(lo, abs=1e-12)
    assert s.loc["A", "exact_match_ci_high"] == pytest.approx(hi, abs=1e-12)
    assert s.loc["B", "prompt_tokens"] == sum(100 + i for i in range(80))
    assert s.loc["A", "cost"] == pytest.approx(0.08)
    lat = 0.5 + 0.01 * np.arange(80)
    lat_ok = np.delete(lat, [3, 7])  # failed calls do not count towards latency
    assert s.loc["A", "latency_p50"] == pytest.approx(np.percentile(lat_ok, 50))
    assert s.loc["A", "latency_p95"] == pytest.approx(np.percentile(lat_ok, 95))


def test_summarize_continuous_uses_t_interval():
    rng = np.random.default_rng(3)
    x = rng.normal(0.6, 0.2, 40)
    s = summarize(frame({"A": x}, "rouge"), CONT)
    lo, hi = stats.t.interval(0.95, 39, loc=x.mean(), scale=stats.sem(x))
    assert s.loc["A", "rouge"] == pytest.approx(x.mean())
    assert s.loc["A", "rouge_ci_low"] == pytest.approx(lo)
    assert s.loc["A", "rouge_ci_high"] == pytest.approx(hi)


def test_wilson_interval_matches_statsmodels():
    for k, n in [(0, 10), (1, 10), (5, 10), (10, 10), (37, 120)]:
        ref = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert wilson_interval(k, n) == pytest.approx(ref, abs=1e-12)


# ----------------------------------------------------------------------------- tests


def test_mcnemar_exact_matches_scipy_binomtest_and_statsmodels():
    for n_a in range(0, 25):
        for n_b in range(0, 25):
            ref = stats.binomtest(n_b, n_a + n_b, 0.5).pvalue if n_a + n_b else 1.0
            assert mcnemar_pvalue(n_a, n_b) == pytest.approx(ref, rel=1e-10)
    table = [[30, 7], [18, 25]]
    res = sm_mcnemar(table, exact=True)
    assert mcnemar_pvalue(7, 18) == pytest.approx(res.pvalue, rel=1e-10)


def test_mcnemar_mid_p_is_exact_p_minus_observed_point_probability():
    for n_a, n_b in [(3, 12), (12, 3), (10, 20), (0, 6), (5, 5)]:
        k, n = min(n_a, n_b), n_a + n_b
        exact = stats.binomtest(n_b, n, 0.5).pvalue
        expected = exact - stats.binom.pmf(k, n, 0.5) if n_a != n_b else 1.0
        assert mcnemar_pvalue(n_a, n_b, mid_p=True) == pytest.approx(expected, rel=1e-10)
        assert mcnemar_pvalue(n_a, n_b, mid_p=True) <= exact


def test_compare_binary_uses_exact_mcnemar_on_discordant_pairs():
    a, b = binary_pair()
    rep = compare(frame({"A": a, "B": b}), "A", "B", BIN, primary="exact_match")
    r = rep.primary
    n_ab = int(((a == 1) & (b == 0)).sum())
    n_bb = int(((a == 0) & (b == 1)).sum())
    assert (r.discordant_a, r.discordant_b) == (n_ab, n_bb)
    assert r.test == "McNemar exact"
    assert r.p_value == pytest.approx(stats.binomtest(n_bb, n_ab + n_bb, 0.5).pvalue)
    assert r.statistic == min(n_ab, n_bb)
    assert r.diff == pytest.approx(b.mean() - a.mean())
    assert r.mean_a == pytest.approx(a.mean()) and r.mean_b == pytest.approx(b.mean())
    assert r.ci_low < r.diff < r.ci_high
    assert r.n_paired == 80 and r.n_dropped == 0
    h = 2 * math.asin(math.sqrt(b.mean())) - 2 * math.asin(math.sqrt(a.mean()))
    assert r.effect_size == pytest.approx(h)


def test_compare_continuous_uses_the_paired_t_test_and_its_interval():
    rng = np.random.default_rng(5)
    base = rng.normal(0.5, 0.2, 60)
    a = base + rng.normal(0, 0.1, 60)
    b = base + 0.05 + rng.normal(0, 0.1, 60)
    rep = compare(frame({"A": a, "B": b}, "rouge"), "A", "B", CONT, primary="rouge")
    r = rep.primary
    ref = stats.ttest_rel(b, a)
    assert r.test == "paired t"
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.statistic == pytest.approx(ref.statistic)
    ci = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high))
    d = b - a
    assert r.effect_size == pytest.approx(d.mean() / d.std(ddof=1))


def test_estimate_interval_and_test_agree_on_a_single_large_loss():
    # B is higher by 0.1 on 20 of 21 examples and lower by 5.0 on one: the mean says A is
    # better, a signed-rank test said "B better, p=0.0002" with an interval containing 0.
    a = np.linspace(1.0, 3.0, 21)
    b = a + 0.1
    b[5] = a[5] - 5.0
    rep = compare(frame({"A": a, "B": b}, "s"), "A", "B", {"s": "continuous"}, primary="s")
    r = rep.primary
    assert r.diff == pytest.approx((b - a).mean()) and r.diff < 0
    assert r.ci_low < 0 < r.ci_high and r.p_value > 0.05
    assert rep.winner is None and rep.pairs[0].outcome == "no_difference"
    assert not rep.verdict.startswith("A better")


def test_a_skewed_difference_at_small_n_carries_a_caveat():
    # Small consistent losses and one large gain: at 12 examples the t-test's p is optimistic
    # (mean-zero lognormal differences give 'significant' in ~15% of experiments at n = 8-12).
    a = np.linspace(1.0, 2.0, 12)
    b = a - 0.1
    b[3] = a[3] + 3.0
    rep = compare(frame({"A": a, "B": b}, "s"), "A", "B", {"s": "continuous"}, primary="s")
    assert rep.primary.skew_warning.startswith("the differences are skewed (skewness +3.5)")
    assert any("A vs B on s: the differences are skewed" in c for c in rep.caveats)
    assert "Caveat: A vs B on s: the differences are skewed" in rep.to_text()


def test_symmetric_differences_at_moderate_n_carry_no_skew_caveat():
    rng = np.random.default_rng(3)
    a = rng.normal(0.5, 0.1, 60)
    b = a + rng.normal(0.02, 0.05, 60)
    rep = compare(frame({"A": a, "B": b}, "s"), "A", "B", {"s": "continuous"}, primary="s")
    assert rep.primary.skew_warning == ""
    assert not any("skewed" in c for c in rep.caveats)
    pass_fail = compare(frame({"A": (a > 0.5) * 1.0, "B": (b > 0.5) * 1.0}), "A", "B",
                        {"exact_match": "binary"})
    assert pass_fail.primary.skew_warning == ""


@pytest.mark.parametrize("seed", range(40))
def test_significance_and_interval_always_agree(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 60))
    if seed % 2:
        a = (rng.random(n) < 0.5) * 1.0
        b = np.where(rng.random(n) < 0.2, 1 - a, a)
        metric = {"exact_match": "binary"}
    else:
        a = rng.gamma(0.5, 1.0, n)
        b = a + rng.normal(0.2, 1.0, n) * (rng.random(n) < 0.5)
        metric = {"exact_match": "continuous"}
    r = compare(frame({"A": a, "B": b}), "A", "B", metric, correction="none").primary
    excludes = r.ci_low > 0 or r.ci_high < 0
    assert excludes == (r.p_value < 0.05), (r.p_value, r.ci_low, r.ci_high)
    assert r.ci_low <= r.diff <= r.ci_high
    if r.favours is not None:
        assert (r.favours == "B") == (r.diff > 0)


def test_five_non_zero_differences_can_never_be_significant():
    # Whatever the other examples do, 5 non-zero differences in one direction have exact
    # two-sided p = 2/2**5 = 0.0625, for scores as for pass/fail outcomes.
    a = np.full(40, 0.5)
    b = a.copy()
    b[:5] += np.array([0.1, 0.11, 0.12, 0.13, 0.14])
    r = compare(frame({"A": a, "B": b}, "s"), "A", "B", {"s": "continuous"}).primary
    assert r.test == "paired t, exact sign-flip"
    assert r.p_value == pytest.approx(0.0625)
    assert r.ci_low <= 0 and r.favours is None
    x, y = np.zeros(40), np.zeros(40)
    y[:5] = 1
    r = compare(frame({"A": x, "B": y}), "A", "B", BIN).primary
    assert r.p_value == pytest.approx(0.0625) and r.favours is None
    assert (r.discordant_a, r.discordant_b) == (0, 5)


def test_exact_or_asymptotic_is_decided_per_comparison_not_per_batch():
    from workbench.evaluation.stats import paired_pvalues

    rng = np.random.default_rng(3)
    few = np.zeros(30)
    few[:5] = [0.2, 0.3, 0.25, 0.1, 0.15]
    many = rng.normal(0.3, 1.0, 30)
    alone = [paired_pvalues(np.zeros((1, 30)), r[None], "continuous")[0][0] for r in (few, many)]
    batch = paired_pvalues(np.zeros((2, 30)), np.vstack([few, many]), "continuous")[0]
    assert list(batch) == pytest.approx(alone, rel=1e-12)
    assert alone[0] == pytest.approx(0.0625)
    many_rows = paired_pvalues(np.zeros((300, 30)), np.tile(few, (300, 1)), "continuous")[0]
    assert many_rows == pytest.approx(np.full(300, 0.0625))  # exact rows past one chunk


def test_pass_fail_interval_has_width_and_comes_from_the_score_test():
    from workbench.evaluation.stats import tango_interval

    a = np.ones(30)
    rep = compare(frame({"A": a, "B": a}), "A", "B", BIN)
    r = rep.primary
    assert r.ci_low < 0 < r.ci_high  # not the zero-width interval of a bootstrap
    lo, hi = tango_interval(7, 3, 40)
    # the bounds are where Tango's score statistic crosses the normal quantile
    assert float(_tango(7, 3, 40, lo[0])) == pytest.approx(1.959964, abs=1e-6)
    assert float(_tango(7, 3, 40, hi[0])) == pytest.approx(-1.959964, abs=1e-6)


def _tango(g, b, n, t):
    from workbench.evaluation.stats.paired import tango_z

    return tango_z(g, b, n, t)


def test_infinite_scores_are_rejected_with_the_place_and_the_fix():
    a, b = np.linspace(0, 1, 10), np.linspace(0, 1, 10)
    b[3] = np.inf
    with pytest.raises(StatsInputError, match=r"infinite score .* variant 'B', example 'ex003'"):
        compare(frame({"A": a, "B": b}, "s"), "A", "B", {"s": "continuous"})
    with pytest.raises(ValueError, match="finite value"):
        summarize(frame({"A": a, "B": b}, "s"), {"s": "continuous"})


def test_options_object_and_keywords_are_the_same():
    a, b = binary_pair()
    df = frame({"A": a, "B": b})
    opts = CompareOptions(primary="exact_match", alpha=0.01, correction="none")
    r1 = compare(df, "A", "B", BIN, opts)
    r2 = compare(df, "A", "B", BIN, primary="exact_match", alpha=0.01, correction="none")
    assert r1.verdict == r2.verdict and r1.alpha == 0.01
    with pytest.raises(StatsInputError, match=r"unknown comparison option\(s\) \['sed'\]"):
        compare(df, "A", "B", BIN, sed=3)
    with pytest.raises(StatsInputError, match="n_bootstrap no longer applies"):
        compare(df, "A", "B", BIN, n_bootstrap=1000)


# ----------------------------------------------------------------------------- corrections


@pytest.mark.parametrize(("ours", "theirs"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_pvalues_match_statsmodels(ours, theirs):
    rng = np.random.default_rng(2)
    for m in (1, 2, 5, 17):
        p = rng.random(m) ** 3
        p[: m // 3] = p[0]  # ties
        expected = multipletests(p, method=theirs)[1]
        assert adjust_pvalues(p, ours) == pytest.approx(expected, rel=1e-12)


def test_adjust_pvalues_skips_untestable_entries():
    out = adjust_pvalues([0.01, np.nan, 0.04], "holm")
    assert np.isnan(out[1])
    assert out[[0, 2]] == pytest.approx(multipletests([0.01, 0.04], method="holm")[1])


def test_compare_corrects_across_all_metrics_with_holm():
    rng = np.random.default_rng(9)
    n = 60
    a, b = binary_pair(n)
    cont_a = rng.normal(0, 1, n)
    cont_b = cont_a + rng.normal(0.3, 1, n)
    df = frame({"A": a, "B": b})
    df["score.rouge"] = np.concatenate([cont_a, cont_b])
    metrics = {"exact_match": "binary", "rouge": "continuous"}
    rep = compare(df, "A", "B", metrics, primary="exact_match")
    raw = [rep.pairs[0].metrics[m].p_value for m in metrics]
    adj = [rep.pairs[0].metrics[m].p_adj for m in metrics]
    assert adj == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert all(q >= p for p, q in zip(raw, adj, strict=True))


# ----------------------------------------------------------------------------- verdicts


def test_clear_win_names_the_winner_with_numbers():
    a, b = binary_pair(n=120, p_a=0.4, p_b=0.8)
    rep = compare(
        frame({"concise": a, "detailed": b}), "concise", "detailed", BIN, primary="exact_match"
    )
    r = rep.primary
    assert rep.winner == "detailed"
    assert rep.pairs[0].outcome == "better"
    expected = (
        f"detailed better than concise on exact_match (+{r.diff:.2f}, 95% CI "
        f"[{r.ci_low:.2f}, {r.ci_high:.2f}], McNemar exact, discordant pairs concise "
        f"{r.discordant_a} / detailed {r.discordant_b}, p_adj"
    )
    assert rep.verdict.startswith(expected)
    assert r.p_adj < 1e-4 and "p_adj<0.0001)" in rep.verdict


def test_win_for_the_baseline_is_reported_from_its_side():
    a, b = binary_pair(n=120, p_a=0.4, p_b=0.8)
    rep = compare(frame({"new": a, "old": b}), "old", "new", BIN, primary="exact_match")
    assert rep.winner == "old"
    assert rep.primary.diff < 0  # the stored difference stays new - old
    assert rep.verdict.startswith(f"old better than new on exact_match (+{-rep.primary.diff:.2f}")


def test_no_difference_states_what_could_have_been_detected():
    rng = np.random.default_rng(4)
    a = (rng.random(60) < 0.6).astype(float)
    b = a.copy()
    b[:6] = 1 - b[:6]  # a few discordant pairs both ways
    rep = compare(frame({"A": a, "B": b}), "A", "B", BIN, primary="exact_match")
    assert rep.winner is None
    assert rep.verdict.startswith("no detectable difference on exact_match")
    assert f"could detect >= {rep.primary.mde:.2f} at 80% power" in rep.verdict
    assert "nan" not in rep.verdict.lower()


def test_unknown_variant_names_the_known_ones():
    a, b = binary_pair()
    df = frame({"A": a, "B": b})
    with pytest.raises(
        ValueError, match=r"variant 'C' is not in the results; known variants: \['A', 'B'\]"
    ):  # noqa: E501
        compare(df, "A", "C", BIN, primary="exact_match")


def test_bad_metric_declarations_are_clear_errors():
    a, b = binary_pair()
    df = frame({"A": a, "B": b})
    with pytest.raises(ValueError, match="no column 'score.bleu'"):
        compare(df, "A", "B", {"bleu": "continuous"}, primary="bleu")
    with pytest.raises(ValueError, match="primary metric 'rouge'"):
        compare(df, "A", "B", BIN, primary="rouge")
    df["score.exact_match"] = df["score.exact_match"] * 0.5
    with pytest.raises(ValueError, match="declared binary"):
        compare(df, "A", "B", BIN, primary="exact_match")


# ----------------------------------------------------------------------------- repeats


def repeated_binary(n=60, k=3, lift=0.0, seed=2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    a = (rng.random((n, k)) < p[:, None]).astype(float)
    b = (rng.random((n, k)) < np.clip(p[:, None] + lift, 0, 1)).astype(float)
    return a, b


def test_repeats_are_averaged_per_example_before_testing():
    a, b = repeated_binary(lift=0.15)
    a[0, 1] = np.nan  # one failed repeat: the example still counts, with two calls
    rep = compare(frame({"A": a, "B": b}), "A", "B", BIN, primary="exact_match")
    r = rep.primary
    ma, mb = np.nanmean(a, axis=1), b.mean(axis=1)
    mb[0] = b[0, :2].mean()  # the example A answered twice compares two calls of each
    assert r.test == "paired t"  # pass rates per example are no longer 0/1
    assert r.p_value == pytest.approx(stats.ttest_rel(mb, ma).pvalue)
    assert r.diff == pytest.approx((mb - ma).mean())
    assert r.n_paired == 60
    assert r.calls_per_example == pytest.approx((2 + 59 * 3) / 60)


def test_unequal_repeats_compare_equally_many_calls_per_example():
    # A/A on skewed scores, A at 1 call and B at 5: a 5-call mean is less spread out than
    # one call, and comparing the two called identical variants different.
    rng = np.random.default_rng(0)
    mu = rng.normal(0, 0.5, (300, 1))
    a = mu + rng.lognormal(0, 1, (300, 1))
    b = mu + rng.lognormal(0, 1, (300, 5))
    df = frame({"A": a, "B": b}, "s")
    r = compare(df, "A", "B", {"s": "continuous"}).primary
    assert r.calls_per_example == 1.0
    assert r.mean_b == pytest.approx(b[:, 0].mean())
    assert r.p_value == pytest.approx(stats.ttest_rel(b[:, 0], a[:, 0]).pvalue)
    # the mean over all five calls stays in the per-variant summary
    assert summarize(df, {"s": "continuous"}).loc["B", "s"] == pytest.approx(b.mean())


def test_repeats_that_always_agree_keep_mcnemar():
    a, b = binary_pair()
    rep = compare(
        frame({"A": np.repeat(a[:, None], 3, 1), "B": np.repeat(b[:, None], 3, 1)}),
        "A",
        "B",
        BIN,
        primary="exact_match",
    )
    single = compare(frame({"A": a, "B": b}), "A", "B", BIN, primary="exact_match")
    assert rep.primary.test == "McNemar exact"
    assert rep.primary.p_value == single.primary.p_value


def test_summary_interval_with_repeats_counts_examples_not_calls():
    a, _ = repeated_binary(n=80, k=4)
    s = summarize(frame({"A": a}), BIN).loc["A"]
    p = a.mean(axis=1).mean()
    per_example = proportion_confint(p * 80, 80, method="wilson")
    per_call = proportion_confint(p * 320, 320, method="wilson")
    width = s["exact_match_ci_high"] - s["exact_match_ci_low"]
    assert s["exact_match"] == pytest.approx(p)
    # Repeats add information, but less than independent examples would.
    assert per_call[1] - per_call[0] < width < per_example[1] - per_example[0]


def test_consistency_reports_agreement_between_repeats():
    a = np.array([[1, 1, 1], [0, 0, 0], [1, 0, 1], [0, 1, 0]], dtype=float)
    df = frame({"A": a, "B": np.ones((4, 3))})
    df.loc[(df["variant"] == "A") & (df["repeat"] == 2), "output"] = "changed"
    c = compare(df, "A", "B", BIN, primary="exact_match").consistency
    assert c.loc[("A", "exact_match"), "all_agree"] == 0.5
    assert c.loc[("B", "exact_match"), "all_agree"] == 1.0
    assert c.loc[("B", "exact_match"), "within_sd"] == 0.0
    expected_sd = math.sqrt(np.mean([0, 0, np.var([1, 0, 1], ddof=1), np.var([0, 1, 0], ddof=1)]))
    assert c.loc[("A", "exact_match"), "within_sd"] == pytest.approx(expected_sd)
    assert c.loc[("A", "output"), "all_agree"] == 0.0
    assert c.loc[("A", "exact_match"), "repeats"] == 3.0


# ----------------------------------------------------------------------------- non-inferiority


def tango_reference(n_good: int, n_bad: int, n: int, margin: float) -> float:
    """Tango's score test computed independently: restricted MLE by numerical optimisation."""
    from scipy.optimize import minimize_scalar

    t = -margin
    n_conc = n - n_good - n_bad

    def nll(x):
        return -(n_bad * np.log(x) + n_good * np.log(x + t) + n_conc * np.log(1 - 2 * x - t))

    res = minimize_scalar(
        nll, bounds=(-t + 1e-12, (1 - t) / 2 - 1e-12), method="bounded", options={"xatol": 1e-12}
    )
    var = (2 * res.x + t - t * t) / n
    z = ((n_good - n_bad) / n - t) / math.sqrt(var)
    return stats.norm.sf(z)


def test_non_inferiority_binary_is_tangos_score_test():
    a, b = binary_pair(n=200, p_a=0.7, p_b=0.68, seed=3)
    df = frame({"base": a, "cheap": b})
    ni = compare(df, "base", "cheap", BIN, primary="exact_match", non_inferiority_margin=0.1)
    r = ni.primary
    n_good, n_bad = r.discordant_b, r.discordant_a
    assert r.ni.p_value == pytest.approx(tango_reference(n_good, n_bad, 200, 0.1), rel=1e-5)
    assert r.ni.method.startswith("Tango")


def test_non_inferiority_bound_and_p_value_agree():
    a, b = binary_pair(n=150, p_a=0.7, p_b=0.66, seed=7)
    rng = np.random.default_rng(7)
    x = rng.random(150)
    y = x - 0.02 + rng.normal(0, 0.1, 150)
    cases = [(frame({"base": a, "cheap": b}), BIN),
             (frame({"base": x, "cheap": y}, "s"), {"s": "continuous"})]
    for df, metrics in cases:
        decisions = set()
        for margin in (0.01, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3):
            ni = compare(df, "base", "cheap", metrics, non_inferiority_margin=margin).primary.ni
            assert (ni.p_value < 0.05) == (ni.bound > -margin)
            assert ni.non_inferior == (ni.p_value < 0.05)
            decisions.add(ni.non_inferior)
        assert decisions == {True, False}


def test_non_inferiority_on_scores_needs_the_t_test_and_the_betting_test():
    from workbench.evaluation.stats.noninferiority import betting_test, hall_t

    rng = np.random.default_rng(12)
    a = rng.normal(0.7, 0.15, 300)
    b = a - 0.01 + rng.normal(0, 0.05, 300)
    rep = compare(frame({"base": a, "cheap": b}, "rouge"), "base", "cheap", CONT,
                  non_inferiority_margin=0.05)
    ni = rep.primary.ni
    ref, lower = hall_reference(b - a, 0.05)
    assert hall_t(b - a, 0.05, 0.05)[0][0] == pytest.approx(ref, rel=1e-9)
    assert hall_t(b - a, 0.05, 0.05)[1][0] == pytest.approx(lower)
    span = max(a.max(), b.max()) - min(a.min(), b.min())
    p_bet, bound_bet = betting_test(b - a, 0.05, 0.05, span)
    assert ni.p_value == pytest.approx(max(ref, p_bet[0]))
    assert ni.bound == pytest.approx(min(lower, bound_bet[0]))
    assert rep.pairs[0].non_inferior is True
    assert "cheap non-inferior to base within 0.05" in rep.verdict


def test_rare_large_losses_are_not_ruled_out_by_a_few_clean_examples():
    # Scores spread over [0, 1]; on 40 examples the candidate matches the baseline up to
    # tiny noise. A t-test calls that non-inferior within 0.05, but a 1-in-10 chance of
    # losing 0.5 (a mean loss of 0.05) leaves no trace in 40 examples 1.5% of the time.
    rng = np.random.default_rng(4)
    a = rng.random(40)
    b = a + rng.normal(0, 0.01, 40)
    assert stats.ttest_1samp(b - a + 0.05, 0.0, alternative="greater").pvalue < 1e-10
    rep = compare(frame({"base": a, "cheap": b}, "s"), "base", "cheap", {"s": "continuous"},
                  non_inferiority_margin=0.05)
    assert rep.primary.ni.non_inferior is False and rep.primary.ni.p_value > 0.05
    assert "non-inferiority of cheap within 0.05 not shown" in rep.verdict
    big = compare(frame({"base": np.tile(a, 5), "cheap": np.tile(b, 5)}, "s"), "base",
                  "cheap", {"s": "continuous"}, non_inferiority_margin=0.05)
    assert big.primary.ni.non_inferior is True


def hall_reference(d, margin, alpha=0.05):
    """Hall's (1992) skewness-corrected one-sided t, written out from the paper's formula;
    the bound is found by numerical root finding, not by the closed-form inverse."""
    from scipy.optimize import brentq

    n = d.size
    s = d.std(ddof=1)
    gamma = np.mean((d - d.mean()) ** 3) / s**3

    def stat(mu0):
        u = (d.mean() - mu0) / s
        return math.sqrt(n) * (u + gamma * u**2 / 3 + gamma**2 * u**3 / 27 + gamma / (6 * n))

    p = stats.t.sf(stat(-margin), n - 1)
    crit = stats.t.ppf(1 - alpha, n - 1)
    bound = brentq(lambda mu: stat(mu) - crit, d.mean() - 10 * s, d.mean() + 10 * s)
    return p, bound


def test_non_inferiority_is_not_claimed_from_identical_scores():
    x = np.random.default_rng(2).random(200)
    rep = compare(frame({"base": x, "cheap": x}, "s"), "base", "cheap", {"s": "continuous"},
                  non_inferiority_margin=0.05)
    assert rep.primary.ni.non_inferior is False and rep.primary.ni.p_value == 1.0
    assert rep.pairs[0].non_inferior is False
    assert "non-inferiority of cheap within 0.05 not shown (the differences have no variance" \
        in rep.verdict


def test_skewed_losses_do_not_pass_non_inferiority_by_the_plain_t_test():
    # 29 ties and one loss of 0.5 at margin 0.05: the plain one-sided t-test says p = 0.03,
    # though a loss that rare is easily missed; the skewness correction does not claim it.
    d = np.zeros(30)
    d[0] = -0.5
    assert stats.ttest_1samp(d + 0.05, 0.0, alternative="greater").pvalue < 0.05
    a = np.full(30, 0.8)
    rep = compare(frame({"base": a, "cheap": a + d}, "s"), "base", "cheap",
                  {"s": "continuous"}, non_inferiority_margin=0.05)
    assert rep.primary.ni.non_inferior is False and rep.primary.ni.p_value > 0.1
    assert "non-inferiority of cheap within 0.05 not shown" in rep.verdict


def test_non_inferiority_is_not_claimed_from_a_handful_of_agreeing_examples():
    ones = np.ones(10)
    rep = compare(
        frame({"base": ones, "cheap": ones}),
        "base",
        "cheap",
        BIN,
        primary="exact_match",
        non_inferiority_margin=0.05,
    )
    # Ten concordant pairs: the Wald test would say "certain"; the score test does not.
    assert rep.primary.ni.non_inferior is False
    assert rep.primary.ni.p_value > 0.2


def test_non_inferiority_for_lower_is_better_metric():
    rng = np.random.default_rng(13)
    a = rng.normal(2.0, 0.3, 300)  # e.g. a toxicity score
    b = a + 0.01 + rng.normal(0, 0.05, 300)
    rep = compare(
        frame({"base": a, "cheap": b}, "tox"),
        "base",
        "cheap",
        {"tox": "continuous"},
        lower_is_better=["tox"],
        non_inferiority_margin=0.1,
    )
    ni = rep.primary.ni
    _, lower = hall_reference(-(b - a), 0.1)
    assert ni.bound >= -lower - 1e-12  # an upper bound of b - a, at least Hall's
    assert ni.non_inferior and ni.bound < 0.1


# ----------------------------------------------------------------------------- power


def brute_force_mcnemar_power(n, p_bad, p_good, alpha, mid_p=False):
    total = 0.0
    for x in range(n + 1):
        for y in range(n + 1 - x):
            prob = stats.multinomial.pmf([x, y, n - x - y], n, [p_bad, p_good, 1 - p_bad - p_good])
            if mcnemar_pvalue(x, y, mid_p=mid_p) <= alpha:
                total += prob
    return total


@pytest.mark.parametrize("mid_p", [False, True])
def test_binary_power_is_exact(mid_p):
    from workbench.evaluation.stats import expected_power

    for n, p_bad, p_good in [(30, 0.05, 0.2), (45, 0.1, 0.25), (20, 0.0, 0.3)]:
        got = expected_power(
            n,
            p_good - p_bad,
            kind="binary",
            discordance=p_bad + p_good,
            mcnemar="midp" if mid_p else "exact",
        )
        assert got == pytest.approx(brute_force_mcnemar_power(n, p_bad, p_good, 0.05, mid_p))


def test_continuous_power_matches_statsmodels_t_power():
    from statsmodels.stats.power import TTestPower

    from workbench.evaluation.stats import expected_power, required_sample_size

    for n, d in [(20, 0.5), (100, 0.2), (50, 0.4)]:
        ref = TTestPower().power(effect_size=d, nobs=n, alpha=0.05)
        got = expected_power(n, d, kind="continuous", sd_diff=1.0)
        assert got == pytest.approx(ref, rel=1e-6)
    n = required_sample_size(0.3, kind="continuous", sd_diff=1.0)
    assert n == math.ceil(TTestPower().solve_power(effect_size=0.3, alpha=0.05, power=0.8))


def test_sd_and_correlation_give_the_sd_of_differences():
    from workbench.evaluation.stats import required_sample_size

    via_corr = required_sample_size(0.1, kind="continuous", sd=0.25, correlation=0.6)
    direct = required_sample_size(0.1, kind="continuous", sd_diff=0.25 * math.sqrt(0.8))
    assert via_corr == direct
    assert required_sample_size(0.1, kind="continuous", sd=0.25) > via_corr


def test_binary_sample_size_reaches_power_and_stays_there():
    from workbench.evaluation.stats import expected_power, required_sample_size

    n = required_sample_size(0.1, kind="binary", baseline=0.6, discordance=0.3)
    powers = [
        expected_power(m, 0.1, kind="binary", baseline=0.6, discordance=0.3)
        for m in range(n - 5, n + 30)
    ]
    assert all(p >= 0.8 for p in powers[5:])
    assert powers[4] < 0.8
    # Connor's normal approximation lands in the same place
    z = stats.norm.ppf(0.975) * math.sqrt(0.3) + stats.norm.ppf(0.8) * math.sqrt(0.3 - 0.01)
    assert abs(n - (z / 0.1) ** 2) / n < 0.1


def test_pairing_information_cuts_the_sample_size():
    from workbench.evaluation.stats import required_sample_size

    independent = required_sample_size(0.1, kind="binary", baseline=0.6)
    correlated = required_sample_size(0.1, kind="binary", baseline=0.6, discordance=0.2)
    assert correlated < 0.6 * independent


def test_minimum_detectable_effect_inverts_the_sample_size():
    from workbench.evaluation.stats import (
        expected_power,
        minimum_detectable_effect,
        required_sample_size,
    )

    for kw in (dict(kind="binary", discordance=0.35), dict(kind="continuous", sd_diff=0.4)):
        mde = minimum_detectable_effect(200, **kw)
        assert expected_power(200, mde, **kw) == pytest.approx(0.8, abs=0.01)
        assert (
            required_sample_size(mde * 1.02, **kw) <= 200 <= required_sample_size(mde * 0.95, **kw)
        )  # noqa: E501
    assert math.isnan(minimum_detectable_effect(3, kind="binary", baseline=0.5))


def test_power_arguments_are_validated():
    from workbench.evaluation.stats import required_sample_size

    with pytest.raises(ValueError, match="baseline"):
        required_sample_size(0.1, kind="binary")
    with pytest.raises(ValueError, match="discordance"):
        required_sample_size(0.3, kind="binary", discordance=0.2)
    with pytest.raises(ValueError, match="sd_diff"):
        required_sample_size(0.3, kind="continuous")
    with pytest.raises(ValueError, match="non-zero"):
        required_sample_size(0.0, kind="continuous", sd_diff=1)


def test_underpowered_comparison_says_so_and_how_many_examples_it_needs():
    a = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1], dtype=float)
    b = a.copy()
    b[[1, 4]] = 1
    b[[0]] = 0
    rep = compare(frame({"A": a, "B": b}), "A", "B", BIN, primary="exact_match")
    assert rep.pairs[0].underpowered
    m = re.search(
        r"underpowered for differences of 0\.05 \(about (\d+) paired examples needed\)", rep.verdict
    )
    assert m and int(m.group(1)) > 200
    big = compare(
        frame({"A": np.tile(a, 30), "B": np.tile(a, 30)}),
        "A",
        "B",
        BIN,
        primary="exact_match",
        min_effect=0.5,
    )
    assert not big.pairs[0].underpowered


# ----------------------------------------------------------------------------- guardrails


def test_guardrail_regression_blocks_the_win():
    a, b = binary_pair(n=150, p_a=0.4, p_b=0.8)
    df = frame({"A": a, "B": b})
    rng = np.random.default_rng(0)
    json_a = (rng.random(150) < 0.95).astype(float)
    json_b = json_a.copy()
    json_b[rng.choice(150, 30, replace=False)] = 0.0  # B breaks the JSON format
    df["score.valid_json"] = np.concatenate([json_a, json_b])
    metrics = {"exact_match": "binary", "valid_json": "binary"}
    free = compare(df, "A", "B", metrics, primary="exact_match")
    guarded = compare(df, "A", "B", metrics, primary="exact_match", guardrails=["valid_json"])
    assert free.winner == "B"
    assert guarded.winner is None
    assert guarded.pairs[0].outcome == "blocked"
    assert guarded.pairs[0].blocked_by == ("valid_json",)
    assert "blocked: B regresses on guardrail valid_json (-0." in guarded.verdict


def test_guardrail_that_does_not_regress_lets_the_win_stand():
    a, b = binary_pair(n=150, p_a=0.4, p_b=0.8)
    df = frame({"A": a, "B": b})
    df["score.valid_json"] = 1.0
    metrics = {"exact_match": "binary", "valid_json": "binary"}
    rep = compare(df, "A", "B", metrics, primary="exact_match", guardrails=["valid_json"])
    assert rep.winner == "B" and rep.pairs[0].blocked_by == ()


def test_lower_is_better_metric_flips_the_direction():
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 0.2, 50)
    b = a - 0.2 + rng.normal(0, 0.05, 50)  # B lowers the error
    rep = compare(
        frame({"A": a, "B": b}, "err"),
        "A",
        "B",
        {"err": "continuous"},
        primary="err",
        lower_is_better=["err"],
    )
    assert rep.winner == "B"
    assert "lower is better" in rep.verdict and "(-0.2" in rep.verdict


# ----------------------------------------------------------------------------- several pairs


def three_variants():
    rng = np.random.default_rng(21)
    u = rng.random(120)
    base = (u < 0.4).astype(float)
    good = (u < 0.75).astype(float)
    same = base.copy()
    same[rng.choice(120, 10, replace=False)] = 1 - same[rng.choice(120, 10, replace=False)]
    return frame({"base": base, "good": good, "same": same})


def test_compare_all_pairs_corrects_across_metrics_and_pairs():
    df = three_variants()
    df["score.rouge"] = np.random.default_rng(1).random(len(df))
    metrics = {"exact_match": "binary", "rouge": "continuous"}
    rep = compare_all(df, metrics, primary="exact_match")
    assert [(p.a, p.b) for p in rep.pairs] == [("base", "good"), ("base", "same"), ("good", "same")]
    raw = [r.p_value for r in rep.comparisons]
    assert [r.p_adj for r in rep.comparisons] == pytest.approx(multipletests(raw, method="holm")[1])
    assert rep.settings["n_tests"] == 6
    assert rep.winner == "good"
    assert rep.verdict.splitlines()[0] == "good beats every other variant on exact_match"


def test_compare_all_against_a_baseline():
    rep = compare_all(three_variants(), BIN, primary="exact_match", baseline="base")
    assert [(p.a, p.b) for p in rep.pairs] == [("base", "good"), ("base", "same")]
    assert rep.winner == "good"


def test_no_single_winner_when_several_beat_the_baseline_only():
    df = three_variants()
    extra = df[df["variant"] == "good"].assign(variant="good2")
    rep = compare_all(pd.concat([df, extra]), BIN, primary="exact_match", baseline="base")
    assert rep.winner is None
    assert rep.verdict.startswith("several variants beat base on exact_match (good, good2)")


def test_benjamini_hochberg_on_request():
    df = three_variants()
    rep = compare_all(df, BIN, primary="exact_match", correction="bh")
    raw = [r.p_value for r in rep.comparisons]
    assert [r.p_adj for r in rep.comparisons] == pytest.approx(
        multipletests(raw, method="fdr_bh")[1]
    )


# ----------------------------------------------------------------------------- edge cases


def assert_clear(rep, outcome):
    assert rep.pairs[0].outcome == outcome
    assert rep.winner is None
    assert "nan" not in rep.verdict.lower()
    assert json.dumps(rep.to_dict(), allow_nan=False)
    assert "nan" not in rep.to_text().lower()


def test_fewer_than_five_pairs():
    rep = compare(frame({"A": [1, 0, 0], "B": [1, 1, 1]}), "A", "B", BIN, primary="exact_match")
    assert_clear(rep, "insufficient_data")
    assert "too few paired examples" in rep.verdict and "n=3" in rep.verdict


def test_all_ties_and_identical_outputs():
    rep = compare(frame({"A": np.ones(30), "B": np.ones(30)}), "A", "B", BIN, primary="exact_match")
    assert_clear(rep, "identical")
    assert rep.primary.p_value == 1.0 and rep.primary.diff == 0.0
    assert rep.primary.ci_low < 0 < rep.primary.ci_high  # score interval: never zero width
    x = np.random.default_rng(1).random(30)
    rep = compare(frame({"A": x, "B": x}, "rouge"), "A", "B", CONT, primary="rouge")
    assert_clear(rep, "identical")
    assert "scored identically on all 30 paired examples" in rep.verdict


def test_variant_with_only_error_rows():
    rep = compare(
        frame({"A": np.ones(20), "B": np.full(20, np.nan)}), "A", "B", BIN, primary="exact_match"
    )
    assert_clear(rep, "insufficient_data")
    assert "B has only error rows (20 calls, all failed)" in rep.verdict
    assert rep.summary.loc["B", "n_errors"] == 20


def test_mismatched_example_sets_compare_on_the_intersection():
    a, b = binary_pair(n=60, p_a=0.3, p_b=0.8)
    df = frame({"A": a, "B": b})
    drop = (df["variant"] == "B") & df["example_id"].isin([f"ex{i:03d}" for i in range(10)])
    rep = compare(df[~drop], "A", "B", BIN, primary="exact_match")
    r = rep.primary
    assert (r.n_paired, r.n_dropped, r.n_only_a, r.n_only_b) == (50, 10, 10, 0)
    assert r.diff == pytest.approx(b[10:].mean() - a[10:].mean())
    assert "10 examples dropped" in rep.verdict


def test_scorer_failure_without_call_error_drops_the_example():
    a, b = binary_pair(n=40)
    df = frame({"A": a, "B": b})
    df.loc[(df["variant"] == "A") & (df["example_id"] == "ex000"), "score.exact_match"] = np.nan
    assert compare(df, "A", "B", BIN, primary="exact_match").primary.n_paired == 39


def test_disjoint_example_sets():
    df = pd.concat([frame({"A": np.ones(10)}), frame({"B": np.ones(10)}).assign(example_id="z")])
    rep = compare(df, "A", "B", BIN, primary="exact_match")
    assert_clear(rep, "insufficient_data")
    assert "do not overlap" in rep.verdict


def test_empty_error_string_counts_as_success():
    a, b = binary_pair(n=30)
    df = frame({"A": a, "B": b})
    df["error"] = ""
    assert summarize(df, BIN).loc["A", "n_errors"] == 0


def test_same_variant_twice_is_an_error():
    a, b = binary_pair(n=30)
    with pytest.raises(ValueError, match="two different variants"):
        compare(frame({"A": a, "B": b}), "A", "A", BIN, primary="exact_match")


# ----------------------------------------------------------------------------- failed calls


def test_a_variant_cannot_win_through_its_own_failures():
    # Identical variants; B's call fails on 40% of the examples it would have failed, so with
    # failures dropped B looked better ("B better", p_adj < 0.05, for this seed).
    rng = np.random.default_rng(3)
    p = rng.random(150)
    a = (rng.random(150) < p) * 1.0
    b = (rng.random(150) < p) * 1.0
    b[(b == 0) & (rng.random(150) < 0.4)] = np.nan
    rep = compare(frame({"A": a, "B": b}), "A", "B", BIN)
    pair = rep.pairs[0]
    assert pair.primary.favours == "B"  # what dropping the failures alone would say
    assert rep.winner is None and pair.outcome == "inconclusive"
    e = pair.errors
    assert e is not None and e.rate_a == 0 and e.rate_b == pytest.approx(np.isnan(b).mean())
    assert e.p_value < 0.05 and e.favours_as_failures is None
    assert rep.verdict.startswith("no winner on exact_match: B looked better")
    assert "the error rates differ significantly (A 0.0%, B " in rep.verdict
    assert any("error rates differ" in c for c in rep.caveats)


def test_win_that_only_holds_with_failures_dropped_names_no_winner():
    a = np.zeros(60)
    a[:30] = 1
    b = a.copy()
    b[30:42] = 1  # B passes 12 more examples ...
    b[:14] = np.nan  # ... and fails to answer on 14 that A passed (errors on both sides)
    a[50:52] = np.nan
    rep = compare(frame({"A": a, "B": b}), "A", "B", BIN)
    pair = rep.pairs[0]
    dropped_only = pair.primary
    assert dropped_only.favours == "B"
    assert pair.outcome == "inconclusive" and rep.winner is None
    assert rep.verdict.startswith("no winner on exact_match: B looked better")
    assert "counting failed calls as exact_match=0" in rep.verdict


def test_failed_calls_that_change_nothing_are_reported_with_the_win():
    a, b = binary_pair(n=150, p_a=0.3, p_b=0.85)
    a[[4, 9]] = np.nan
    b[[17]] = np.nan
    rep = compare(frame({"A": a, "B": b}), "A", "B", BIN)
    assert rep.winner == "B"
    assert "failed calls: A 1.3%, B 0.7% of calls failed, the verdict holds" in rep.verdict


def test_identical_outcome_at_small_n_is_underpowered():
    small = compare(frame({"A": np.ones(12), "B": np.ones(12)}), "A", "B", BIN)
    assert small.pairs[0].outcome == "identical" and small.pairs[0].underpowered
    assert "underpowered for differences of 0.05" in small.verdict
    big = compare(frame({"A": np.ones(400), "B": np.ones(400)}), "A", "B", BIN)
    assert not big.pairs[0].underpowered


def test_failed_non_inferiority_is_stated_in_every_outcome():
    ones = np.ones(10)
    identical = compare(frame({"A": ones, "B": ones}), "A", "B", BIN, non_inferiority_margin=0.05)
    assert "non-inferiority of B within 0.05 not shown" in identical.verdict
    a, b = binary_pair(n=120, p_a=0.8, p_b=0.4)
    worse = compare(frame({"A": a, "B": b}), "A", "B", BIN, non_inferiority_margin=0.05)
    assert worse.winner == "A" and "non-inferiority of B within 0.05 not shown" in worse.verdict
    tiny = compare(frame({"A": [1, 0, 1], "B": [1, 0, 1]}), "A", "B", BIN,
                   non_inferiority_margin=0.05)
    assert "non-inferiority of B within 0.05 not shown" in tiny.verdict
    assert tiny.pairs[0].non_inferior is False


def test_guardrail_uses_the_same_rule_as_the_verdict():
    # The guardrail gains 0.1 on 20 of 21 examples and loses 5.0 on one: its mean falls, but
    # not significantly. A signed-rank p with the mean's sign used to call this a regression.
    a, b = binary_pair(n=21, p_a=0.2, p_b=0.9)
    df = frame({"A": a, "B": b})
    g_a = np.linspace(1, 3, 21)
    g_b = g_a + 0.1
    g_b[5] -= 5.0
    df["score.tone"] = np.concatenate([g_a, g_b])
    metrics = {"exact_match": "binary", "tone": "continuous"}
    rep = compare(df, "A", "B", metrics, primary="exact_match", guardrails=["tone"])
    tone = rep.pairs[0].metrics["tone"]
    assert tone.ci_low < 0 < tone.ci_high and tone.p_value > 0.05
    assert not tone.regresses("B") and not tone.regresses("A")
    assert rep.pairs[0].blocked_by == ()


def test_the_bundled_demo_keeps_its_verdict():
    # experiments/support-triage: bare 0/150 vs guided 122/150 exact match
    bare = np.zeros(150)
    guided = np.zeros(150)
    guided[:122] = 1
    rep = compare(frame({"bare": bare, "guided": guided}), "bare", "guided", BIN)
    assert rep.winner == "guided" and rep.pairs[0].outcome == "better"
    assert rep.verdict.startswith("guided better than bare on exact_match (+0.81, 95% CI [0.74")
    assert "discordant pairs bare 0 / guided 122, p_adj<0.0001)" in rep.verdict
