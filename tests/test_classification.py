"""Classification views of a categorical metric and the degenerate-winner check, on frames."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, confusion_matrix

from workbench.evaluation.classification import categorical_metrics, classify, degenerate
from workbench.results import Results


def frame(answers: dict[str, list[str]], expected: list[str], metric: str = "label",
          repeats: int = 1) -> pd.DataFrame:
    """One row per (variant, example, repeat), scored as exact label agreement."""
    rows = []
    for variant, given in answers.items():
        for repeat in range(repeats):
            for i, (got, want) in enumerate(zip(given, expected, strict=True)):
                rows.append({"variant": variant, "example_id": f"e{i:04d}", "repeat": repeat,
                             "output": f"I'd say {got}", "error": None, "cached": False,
                             "prompt_tokens": 10, "completion_tokens": 2, "cost": 0.0,
                             "latency_s": 0.1, f"score.{metric}": float(got == want),
                             f"label.{metric}": got, f"expected.{metric}": want})
    return pd.DataFrame(rows)


BALANCED = ["1", "0"] * 50


def test_a_constant_answer_on_a_balanced_binary_set_is_degenerate():
    df = frame({"bare": [f"sentence {i}" for i in range(100)], "guided": ["1"] * 100},
               BALANCED)
    found = degenerate(df, "label")
    assert set(found) == {"bare", "guided"}
    assert "answers nearly constant on label ('1' in 100% of 100 calls" in found["guided"]
    assert "0.500 is not significantly above the majority-class baseline 0.500" in found["guided"]
    assert "nearly constant" not in found["bare"]  # varied answers, but never a label


def test_a_nearly_constant_answer_at_chance_is_degenerate():
    answers = ["1"] * 97 + ["0"] * 3
    r = classify(frame({"v": answers}, BALANCED), "label", "v")
    assert r.top_output == "1" and r.top_output_share == pytest.approx(0.97)
    assert r.degenerate and "nearly constant" in r.degenerate


def test_a_good_classifier_on_a_balanced_set_is_not_flagged():
    # like the demo's guided prompt: 122 of 150 right, both labels answered
    expected = ["satisfied", "dissatisfied"] * 75
    answers = [("dissatisfied" if w == "satisfied" else "satisfied") if i < 28 else w
               for i, w in enumerate(expected)]
    r = classify(frame({"guided": answers}, expected), "label", "guided")
    assert r.accuracy == pytest.approx(122 / 150) and r.degenerate is None
    assert r.p_above_majority < 1e-10


def test_an_imbalanced_set_answered_well_is_not_flagged_though_mostly_majority():
    # 95% majority; the classifier answers the majority on 96% of calls but finds 16 of the
    # 20 minority examples, so it is significantly above always answering the majority
    expected = ["ok"] * 380 + ["fraud"] * 20
    answers = ["ok"] * 380 + ["fraud"] * 16 + ["ok"] * 4
    r = classify(frame({"v": answers}, expected), "label", "v")
    assert r.top_output_share == pytest.approx(0.96) and r.majority_share == 0.95
    assert r.kappa > 0.8 and r.p_above_majority < 0.05
    assert r.degenerate is None
    # always answering the majority on the same set scores 0.95 and is flagged
    assert "v" in degenerate(frame({"v": ["ok"] * 400}, expected), "label")


def test_a_weak_classifier_not_above_the_majority_baseline_is_flagged():
    expected = ["ok"] * 90 + ["fraud"] * 10
    answers = ["ok"] * 85 + ["fraud"] * 5 + ["fraud"] * 4 + ["ok"] * 6  # 89% vs 90% baseline
    r = classify(frame({"v": answers}, expected), "label", "v")
    assert r.accuracy == pytest.approx(0.89)
    assert "nearly constant" not in r.degenerate and "not significantly above" in r.degenerate


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_numbers_agree_with_scikit_learn():
    expected = ["a", "b", "c"] * 20
    answers = ["a", "b", "c"] * 12 + ["a", "a", "b"] * 6 + ["(none)", "zzz", "c"] * 2
    r = classify(frame({"v": answers}, expected), "label", "v")
    lumped = [a if a in {"a", "b", "c", "(none)"} else "(other)" for a in answers]
    assert r.balanced_accuracy == pytest.approx(balanced_accuracy_score(expected, lumped))
    assert r.kappa == pytest.approx(cohen_kappa_score(expected, lumped))
    cols = ["a", "b", "c", "(none)", "(other)"]
    assert list(r.confusion.columns) == cols
    assert (r.confusion.to_numpy() == confusion_matrix(expected, lumped, labels=cols)[:3]).all()
    assert r.recall["c"] == pytest.approx(14 / 20)
    assert r.outputs.index[0] == "a" and math.isclose(r.outputs.sum(), 1.0)


def test_repeats_count_once_per_example_in_the_baseline_test():
    df = frame({"v": ["1", "0"] * 10}, ["1", "0"] * 10, repeats=5)
    r = classify(df, "label", "v")
    assert r.n_calls == 100 and r.n_examples == 20
    assert r.p_above_majority == pytest.approx(0.5 ** 20)


def test_free_text_answers_and_continuous_metrics_are_not_categorical():
    qa = frame({"v": [f"answer {i}" for i in range(30)]}, [f"answer {i}" for i in range(30)])
    assert categorical_metrics(qa, {"label": "binary"}) == []
    assert degenerate(qa, "label") == {}
    rouge = qa.drop(columns=["label.label", "expected.label"]).rename(
        columns={"score.label": "score.rouge"})
    rouge["score.rouge"] = 0.42  # a constant score is not a constant label
    assert degenerate(rouge, "rouge") == {}


def test_results_summary_and_compare_flag_the_degenerate_winner():
    df = frame({"bare": [f"sentence {i}" for i in range(100)], "guided": ["1"] * 100},
               BALANCED)
    results = Results(df, metrics={"label": "binary"}, primary="label", baseline="bare")
    summary = results.summary()
    assert summary.loc["guided", "label_degenerate"]
    assert summary.loc["guided", "label_top_answer"] == "1"
    assert summary.loc["guided", "label_kappa"] == 0
    assert summary.loc["guided", "label_recall.0"] == 0
    report = results.compare()
    assert report.winner == "guided"  # on accuracy it did win
    assert any(c.startswith("guided is degenerate: answers nearly constant on label")
               for c in report.caveats)
    assert "Caveat: guided is degenerate" in report.to_text()
    assert "<b>Caveat:</b> guided is degenerate" in report._repr_html_()
    assert report.to_dict()["caveats"] == list(report.caveats)


def test_results_without_label_columns_have_no_classification():
    df = frame({"a": ["1", "0"] * 10, "b": ["1"] * 20}, ["1", "0"] * 10)
    df = df.drop(columns=["label.label", "expected.label"])
    results = Results(df, metrics={"label": "binary"}, primary="label", baseline="a")
    assert results.classification() == {} and results.degenerate() == {}
    assert "label_degenerate" not in results.summary().columns
    assert results.compare().caveats == ()


def test_an_underpowered_good_classifier_is_flagged_with_a_hint_to_add_examples():
    expected = ["ok"] * 90 + ["fraud"] * 10
    answers = ["ok"] * 90 + ["fraud"] * 5 + ["ok"] * 5  # 0.95 vs 0.90 on 100: p = 0.06
    r = classify(frame({"v": answers}, expected), "label", "v")
    assert 0.05 < r.p_above_majority < 0.1 and r.kappa > 0.6
    assert "more examples may show it is better than the baseline" in r.degenerate
    big = classify(frame({"v": answers * 4}, expected * 4), "label", "v")
    assert big.degenerate is None  # the same classifier on 400 examples: p < 0.001


def test_with_a_non_categorical_primary_only_constant_answers_count():
    df = frame({"bare": [f"sentence {i}" for i in range(100)], "guided": ["1"] * 100},
               BALANCED)
    df["score.rouge"] = [0.1] * 100 + [0.9] * 100  # guided "wins" on a text metric
    metrics = {"rouge": "continuous", "label": "binary"}
    found = degenerate(df, "rouge", metrics=metrics)
    assert list(found) == ["guided"]  # bare is at chance on labels, but varied: not flagged
    assert found["guided"].startswith("answers nearly constant on label")
    assert degenerate(df, "rouge", metrics={"rouge": "continuous"}) == {}
    results = Results(df, metrics=metrics, primary="rouge", baseline="bare")
    assert list(results.degenerate()) == ["guided"]
