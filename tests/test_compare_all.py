"""Several variants: every one is compared with the baseline, in one corrected family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from workbench import Experiment
from workbench.cli import main
from workbench.prompts.promotion import PromotionRefused, promote
from workbench.prompts.registry import client
from workbench.results import Results

BARE = {"template": "Sentiment of: {{ticket}}"}
GUIDED = {"messages": [{"role": "system", "content": "Answer with one word: positive or negative."},
                       {"role": "user", "content": "{{ticket}}"}]}
# the loopback model answers like `guided` when the prompt says "one word", like `bare` otherwise
LIKE_GUIDED = {"template": "In one word, positive or negative? {{ticket}}"}
LIKE_BARE = {"template": "How does this customer feel: {{ticket}}"}


def three(make_experiment, third):
    return make_experiment(prompts={"bare": BARE, "guided": GUIDED, "third": third})


def test_a_run_compares_every_variant_with_the_baseline_and_logs_each_pair(make_experiment):
    results = Experiment.from_yaml(three(make_experiment, LIKE_BARE)).run(progress=False)
    report = results.report
    assert [(p.a, p.b) for p in report.pairs] == [("bare", "guided"), ("bare", "third")]
    raw = [r.p_value for r in report.comparisons]
    assert report.settings["n_tests"] == 4  # 2 pairs x 2 metrics, one Holm family
    assert [r.p_adj for r in report.comparisons] == pytest.approx(
        multipletests(raw, method="holm")[1])
    assert report.winner == "guided"
    assert report.verdict.splitlines()[0] == (
        "guided is the only variant better than bare on exact_match")
    metrics = client().get_run(results.run_ids["parent"]).data.metrics
    assert metrics["ab/exact_match/bare_vs_guided/diff"] == 0.5
    assert metrics["ab/exact_match/bare_vs_third/diff"] == 0.0
    assert "ab/contains/bare_vs_third/p_adj" in metrics


def test_two_named_variants_are_still_one_pair(make_experiment):
    results = Experiment.from_yaml(three(make_experiment, LIKE_BARE)).run(
        progress=False, track=False)
    report = results.compare("bare", "third")
    assert [(p.a, p.b) for p in report.pairs] == [("bare", "third")]
    assert report.settings["n_tests"] == 2
    assert [(p.a, p.b) for p in results.compare(b="guided").pairs] == [("bare", "guided")]
    # one name: that variant is the baseline of the family
    assert [(p.a, p.b) for p in results.compare("third").pairs] == [
        ("third", "bare"), ("third", "guided")]


def test_two_improvements_on_the_baseline_name_no_winner_and_promote_nothing(
        make_experiment, capsys):
    folder = three(make_experiment, LIKE_GUIDED)
    assert main(["run", str(folder), "--promote", "staging"]) == 0
    out = capsys.readouterr().out
    assert "Comparison of 3 variants: bare, guided, third" in out
    assert "third - bare" in out and "guided - bare" in out
    assert "not promoted: several variants beat bare on exact_match (guided, third)" in out
    assert "results.compare('guided', 'third')" in out
    parent = next(line.split()[-1] for line in out.splitlines() if "parent run" in line)
    assert main(["compare", parent]) == 0  # the logged run, recomputed: every pair again
    assert "guided - bare" in (again := capsys.readouterr().out) and "third - bare" in again
    results = Experiment.from_yaml(folder).run(progress=False, track=False)
    assert results.report.winner is None
    with pytest.raises(PromotionRefused,
                       match=r"the verdict names no winner \(several variants beat bare"):
        promote(results.report, alias="staging")


# ---- verdicts over several candidates, from made-up scores ----------------------------------
def frame(scores: dict[str, np.ndarray], **extra: np.ndarray) -> pd.DataFrame:
    rows = []
    for variant, values in scores.items():
        for i, value in enumerate(values):
            row = {"variant": variant, "example_id": f"e{i:03d}", "repeat": 0, "error": None,
                   "prompt_tokens": 10, "completion_tokens": 2, "cost": 0.0, "latency_s": 0.1,
                   "cached": False, "output": "x", "score.exact_match": float(value)}
            for metric, by_variant in extra.items():
                row[f"score.{metric}"] = float(by_variant[variant][i])
            rows.append(row)
    return pd.DataFrame(rows)


def results_of(df: pd.DataFrame, **kwargs) -> Results:
    metrics = {c[len("score."):]: "binary" for c in df.columns if c.startswith("score.")}
    return Results(df, metrics=metrics, primary="exact_match", baseline="base", **kwargs)


N = 60
GOOD, POOR = np.r_[np.ones(50), np.zeros(10)], np.r_[np.ones(10), np.zeros(50)]


def test_a_baseline_better_than_every_candidate_is_no_winner_to_promote():
    report = results_of(frame({"base": GOOD, "x": POOR, "y": POOR})).compare()
    assert [p.winner for p in report.pairs] == ["base", "base"]
    assert report.winner is None
    assert report.verdict.splitlines()[0] == (
        "base is better than every other variant on exact_match; keep it")


def test_a_candidate_that_breaks_a_guardrail_is_not_the_winner():
    safe = {"base": np.ones(N), "x": np.r_[np.zeros(40), np.ones(20)], "y": np.ones(N)}
    report = results_of(frame({"base": POOR, "x": GOOD, "y": POOR}, safe=safe),
                        guardrails=["safe"]).compare()
    assert report.pair("base", "x").outcome == "blocked"
    assert report.winner is None
    assert report.verdict.splitlines()[0] == (
        "no variant is significantly better than base on exact_match")


def test_the_ab_panel_shows_every_variant_against_the_baseline_then_one_pair():
    ui = pytest.importorskip("workbench.ui")
    results = results_of(frame({"base": POOR, "x": GOOD, "y": POOR}))
    results.report = results.compare()
    panel = ui.ABPanel(results)
    assert (panel.a.value, panel.b.value) == ("base", "*")
    assert "every other variant" in [label for label, _ in panel.b.options]
    assert "<b>x</b> is the better variant" in panel.verdict.value
    panel.b.value = "y"
    assert [(p.a, p.b) for p in panel.session.report.pairs] == [("base", "y")]
    assert "No variant is shown to be better" in panel.verdict.value
    panel.a.value = "x"
    panel.b.value = "*"
    assert [(p.a, p.b) for p in panel.session.report.pairs] == [("x", "base"), ("x", "y")]


def test_the_ab_panel_says_when_several_beat_the_baseline_and_none_is_best():
    ui = pytest.importorskip("workbench.ui")
    results = results_of(frame({"base": POOR, "x": GOOD, "y": GOOD}))
    panel = ui.ABPanel(results.compare())
    assert "x, y each beat base; none is shown to be the best" in panel.verdict.value
