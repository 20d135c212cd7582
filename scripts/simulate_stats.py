"""Seeded simulations of the A/B decision rules; ``docs/statistics.md`` quotes the output.

Every scenario runs the code that ``compare`` runs (``paired_test``, the non-inferiority
tests, or ``compare`` itself for failed calls), over ``--seeds`` simulated experiments each:

    python scripts/simulate_stats.py --seeds 2000          # the figures in the doc
    python scripts/simulate_stats.py --seeds 2000 --only aa

``tests/test_stats_simulation.py`` runs the same scenarios with fewer seeds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.evaluation.stats import adjust_pvalues, compare, paired_test  # noqa: E402
from workbench.evaluation.stats._frame import paired_means  # noqa: E402
from workbench.evaluation.stats.noninferiority import scores_test  # noqa: E402
from workbench.evaluation.stats.paired import tango_z  # noqa: E402

ALPHA = 0.05
MARGIN = 0.05


# ----------------------------------------------------------------------------- A/A data


def _skewed(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Right-skewed call scores (lognormal), the shape where per-example means from different
    numbers of calls stop sharing a distribution."""
    return rng.lognormal(0.0, 1.0, shape)


def aa_pass_fail(rng, r, n, k_a=1, k_b=1):
    p = rng.random((r, n, 1))
    return (rng.random((r, n, k_a)) < p).mean(-1), (rng.random((r, n, k_b)) < p).mean(-1)


def aa_scores(rng, r, n, judge=False):
    mu = rng.normal(0, 1, (r, n))
    a, b = mu + rng.normal(0, 0.7, (r, n)), mu + rng.normal(0, 0.7, (r, n))
    if judge:
        a, b = (np.clip(np.round(3 + x), 1, 5) for x in (a, b))
    return a, b


def calls_frame(a_calls: np.ndarray, b_calls: np.ndarray) -> pd.DataFrame:
    """One experiment as a results frame: (examples, calls) arrays, NaN = failed call."""
    rows = []
    for name, arr in (("A", a_calls), ("B", b_calls)):
        n, k = arr.shape
        rows.append(pd.DataFrame({
            "variant": name,
            "example_id": np.repeat(np.arange(n), k),
            "repeat": np.tile(np.arange(k), n),
            "error": np.where(np.isnan(arr.ravel()), "failed", None),
            "score.s": arr.ravel(),
        }))
    return pd.concat(rows, ignore_index=True)


def rate_through_frames(rng, r, n, make_calls, kind="continuous") -> float:
    """Share significant when each experiment goes through the frame -> per-example means
    step that ``compare`` uses (equal calls per example) and then ``paired_test``."""
    hits = 0
    for _ in range(r):
        pm = paired_means(calls_frame(*make_calls(rng, n)), "A", "B", "s")
        hits += paired_test(pm.x_a, pm.x_b, kind).p_value[0] < ALPHA
    return hits / r


def pass_fail_calls(rng, n, k_a=1, k_b=5):
    p = rng.random((n, 1))
    return (rng.random((n, k_a)) < p) * 1.0, (rng.random((n, k_b)) < p) * 1.0


def unequal_calls(rng, n, k_a=1, k_b=5):
    mu = rng.normal(0, 0.5, (n, 1))
    return mu + _skewed(rng, (n, k_a)), mu + _skewed(rng, (n, k_b))


def b_loses_half(rng, n, k=4):
    """Both variants at ``k`` calls; each of B's calls fails with probability 1/2."""
    mu = rng.normal(0, 0.5, (n, 1))
    a, b = mu + _skewed(rng, (n, k)), mu + _skewed(rng, (n, k))
    return a, np.where(rng.random((n, k)) < 0.5, np.nan, b)


def aa_unequal_calls_vectorised(rng, r, n, k_a=1, k_b=5):
    """A at ``k_a`` calls, B at ``k_b``, averaged without equalising (the old behaviour)."""
    mu = rng.normal(0, 0.5, (r, n, 1))
    return (mu + _skewed(rng, (r, n, k_a))).mean(-1), (mu + _skewed(rng, (r, n, k_b))).mean(-1)


def rate_significant(a, b, kind):
    return float(np.mean(paired_test(a, b, kind).p_value < ALPHA))


def aa_scenarios(rng, r):
    yield "pass/fail, 1 call, n = 50 (exact McNemar)", rate_significant(
        *aa_pass_fail(rng, r, 50), "binary")
    yield "pass/fail, 1 call, n = 500 (exact McNemar)", rate_significant(
        *aa_pass_fail(rng, r, 500), "binary")
    yield "pass/fail, 3 calls each, n = 100 (t)", rate_significant(
        *aa_pass_fail(rng, r, 100, 3, 3), "binary")
    yield "pass/fail, A 1 call / B 5 calls, n = 100", rate_through_frames(
        rng, r, 100, pass_fail_calls, "binary")
    yield "scores, normal, n = 30 (t)", rate_significant(*aa_scores(rng, r, 30), "continuous")
    yield "1-5 judge scores, n = 80 (t)", rate_significant(
        *aa_scores(rng, r, 80, judge=True), "continuous")
    p = np.column_stack(
        [paired_test(*aa_pass_fail(rng, r, 100), "binary").p_value for _ in range(3)]
        + [paired_test(*aa_scores(rng, r, 100), "continuous").p_value for _ in range(2)]
    )
    yield "five null metrics, n = 100: any raw p < 0.05", float(np.mean((p < ALPHA).any(1)))
    holm = np.array([adjust_pvalues(row, "holm") for row in p])
    yield "five null metrics, n = 100: any Holm p_adj < 0.05", float(
        np.mean((holm < ALPHA).any(1)))
    for n in (10, 30, 100):
        yield f"skewed scores, A 1 call / B 5 calls, n = {n}", rate_through_frames(
            rng, r, n, unequal_calls)
    for n in (10, 30, 100):
        yield f"skewed scores, B loses half its 4 calls, n = {n}", rate_through_frames(
            rng, r, n, b_loses_half)


# ----------------------------------------------------------------------------- failed calls


def errors_frame(rng, n):
    """Identical variants; B's call errors on 40% of the examples it would have failed."""
    p = rng.random(n)
    a = (rng.random(n) < p) * 1.0
    b = (rng.random(n) < p) * 1.0
    err = (b == 0) & (rng.random(n) < 0.4)
    ids = [f"e{i}" for i in range(n)]
    return pd.DataFrame({
        "variant": ["A"] * n + ["B"] * n,
        "example_id": ids + ids,
        "error": [None] * n + ["timeout" if e else None for e in err],
        "score.exact_match": np.concatenate([a, np.where(err, np.nan, b)]),
    })


def error_scenarios(rng, r):
    for n in (100,):
        wins = 0
        for _ in range(r):
            rep = compare(errors_frame(rng, n), "A", "B", {"exact_match": "binary"})
            wins += rep.winner == "B"
        yield f"identical, B errors on 40% of its failures, n = {n}: 'B better'", wins / r


# ----------------------------------------------------------------------------- non-inferiority


def ni_scores_size(rng, r, n, shape) -> float:
    """Share of experiments at the margin declared non-inferior: baseline scores spread over
    [0, 1], the candidate's differ by ``shape`` with mean -MARGIN."""
    a = rng.random((r, n))
    b = a + ni_differences(rng, r, n, shape)
    span = np.maximum(a.max(1), b.max(1)) - np.minimum(a.min(1), b.min(1))
    p, _ = scores_test(b - a, MARGIN, ALPHA, span, with_bound=False)
    return float(np.mean(p < ALPHA))


def ni_differences(rng, r, n, shape):
    if shape.startswith("power"):  # no true difference, per-example SD 0.1
        return rng.normal(0, 0.1, (r, n))
    if shape == "normal":
        return rng.normal(-MARGIN, 0.2, (r, n))
    if shape == "skewed":  # a long tail of losses
        return -MARGIN - 0.2 * (rng.exponential(1.0, (r, n)) - 1)
    if shape == "sparse loss":  # 10% of examples lose 0.5, the rest are noise around 0
        return rng.normal(0, 0.02, (r, n)) - 0.5 * (rng.random((r, n)) < 0.1)
    if shape == "sparse loss, no noise":
        return -0.5 * (rng.random((r, n)) < 0.1)
    raise ValueError(shape)


def ni_pass_fail_size(rng, r, n, discordance=0.3):
    p_bad, p_good = (discordance + MARGIN) / 2, (discordance - MARGIN) / 2
    cells = rng.multinomial(n, [p_bad, p_good, 1 - p_bad - p_good], size=r)
    z = tango_z(cells[:, 1], cells[:, 0], n, -MARGIN)
    return float(np.mean(z > 1.6448536269514722))


def ni_scenarios(rng, r):
    for shape in ("normal", "skewed", "sparse loss", "sparse loss, no noise"):
        for n in (10, 20, 50, 100, 300):
            yield f"scores, {shape}, n = {n}", ni_scores_size(rng, r, n, shape)
    for n in (50, 100, 300, 1000):
        yield (f"power: scores, true difference 0, SD 0.1, n = {n}",
               ni_scores_size(rng, r, n, "power"))
    for n in (20, 50, 100, 200):
        yield f"pass/fail (Tango), discordance 0.3, n = {n}", ni_pass_fail_size(rng, r, n)
    for n in (20, 50):
        yield f"pass/fail (Tango), discordance 0.1, n = {n}", ni_pass_fail_size(rng, r, n, 0.1)


# ----------------------------------------------------------------------------- coverage


def coverage_pass_fail(rng, r, n, p_bad, p_good):
    cells = rng.multinomial(n, [p_bad, p_good, 1 - p_bad - p_good], size=r)
    a = np.zeros((r, n))
    b = np.zeros((r, n))
    for i, (x, y, _) in enumerate(cells):
        a[i, :x] = 1
        b[i, x : x + y] = 1
    res = paired_test(a, b, "binary")
    truth = p_good - p_bad
    return float(np.mean((res.low <= truth) & (truth <= res.high)))


def coverage_scores(rng, r, n, skewed):
    d = rng.exponential(1.0, (r, n)) - 1 if skewed else rng.normal(0, 1, (r, n))
    res = paired_test(np.zeros_like(d), d + 0.3, "continuous")
    return float(np.mean((res.low <= 0.3) & (res.high >= 0.3)))


def coverage_scenarios(rng, r):
    for n in (20, 30, 50):
        for p_bad, p_good in ((0.05, 0.05), (0.02, 0.08), (0.05, 0.15), (0.1, 0.2)):
            yield (f"pass/fail, n = {n}, P(a only) {p_bad}, P(b only) {p_good}",
                   coverage_pass_fail(rng, r, n, p_bad, p_good))
    for n in (20, 50):
        yield f"scores, normal differences, n = {n}", coverage_scores(rng, r, n, False)
        yield f"scores, skewed differences, n = {n}", coverage_scores(rng, r, n, True)


GROUPS: dict[str, tuple[str, Callable]] = {
    "aa": ("A/A: share of experiments called significant (alpha = 0.05)", aa_scenarios),
    "errors": ("Failed calls: share of experiments naming a winner", error_scenarios),
    "ni": ("Non-inferiority at the margin (0.05): share declared non-inferior", ni_scenarios),
    "coverage": ("Coverage of the 95% interval of the difference", coverage_scenarios),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2000, help="experiments per scenario")
    parser.add_argument("--only", choices=sorted(GROUPS), action="append")
    args = parser.parse_args(argv)
    for key in args.only or list(GROUPS):
        title, scenarios = GROUPS[key]
        print(f"\n{title}, {args.seeds:,} seeded experiments each\n")
        print("| scenario | rate |\n|---|---|")
        rng = np.random.default_rng(20_261_203 + sorted(GROUPS).index(key))
        for name, rate in scenarios(rng, args.seeds):
            print(f"| {name} | {rate:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
