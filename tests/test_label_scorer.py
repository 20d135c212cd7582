"""The label scorer: the label is found in a verbose answer, on word and number boundaries."""

from __future__ import annotations

import pytest

from workbench.errors import ScorerError
from workbench.evaluation.evalsets import Example
from workbench.evaluation.scorers import build_scorer, registered_types

SENTIMENT = {"labels": ["satisfied", "dissatisfied"], "expected": "label"}


def example(label: object) -> Example:
    return Example(id="e1", inputs={"label": label, "text": "..."})


def test_label_is_registered_like_the_other_built_ins():
    assert "label" in registered_types()
    assert build_scorer("label", SENTIMENT, name="sentiment").name == "sentiment"


@pytest.mark.parametrize(("output", "found"), [
    ("satisfied", "satisfied"),
    ("Dissatisfied.", "dissatisfied"),
    ("The customer seems **SATISFIED** overall!", "satisfied"),
    ("dissatisfied: the order was late", "dissatisfied"),   # not the "satisfied" inside it
    ("Satisfied, not dissatisfied", "satisfied"),           # the first label wins
    ("unsatisfiedness", None),
    ("I cannot tell.", None),
    ("", None),
])
def test_extracts_the_first_whole_word_label(output, found):
    assert build_scorer("label", SENTIMENT).extract(output) == found


@pytest.mark.parametrize(("output", "found"), [
    ("1", "1"), ("Label: 0.", "0"), ("The answer is 1 (sarcastic)", "1"),
    ("10", None), ("1.5", None), ("0,5", None), ("v1", None), ("-1", None),
    ("Rated 10/10, so 0", "0"),
])
def test_numeric_labels_are_not_found_inside_other_numbers(output, found):
    assert build_scorer("label", {"labels": [0, 1]}).extract(output) == found


def test_a_label_map_takes_synonyms_and_phrases_the_longest_first():
    scorer = build_scorer("label", {"labels": {
        "dissatisfied": ["not satisfied", "unhappy"], "satisfied": "happy"}})
    assert scorer.labels == ("dissatisfied", "satisfied")
    assert scorer.extract("I am not satisfied at all") == "dissatisfied"
    assert scorer.extract("A very-unhappy customer") == "dissatisfied"
    assert scorer.extract("Happy.") == "satisfied"


def test_score_compares_the_extracted_label_with_the_expected_one():
    scorer = build_scorer("label", {"labels": {"1": ["sarcastic"], "0": ["sincere"]},
                                    "expected": "label"})
    assert scorer("This headline is sarcastic.", example(1)).value == 1.0
    wrong = scorer("Sincere, I think", example("1"))
    assert wrong.value == 0.0 and wrong.reason == "expected '1', got '0'"
    missing = scorer("No idea", example(1))
    assert missing.value == 0.0 and "no label of ['1', '0']" in missing.reason
    assert scorer.categorize("No idea", example(0)) == ("(none)", "0")


def test_an_expected_value_outside_the_label_set_is_a_clear_error():
    scorer = build_scorer("label", SENTIMENT)
    with pytest.raises(ValueError, match=r"expected label 'neutral' is not one of .*add it"):
        scorer("satisfied", example("neutral"))


@pytest.mark.parametrize(("labels", "message"), [
    (["satisfied"], "at least two labels"),
    (["yes", "Yes!"], "same once case and punctuation are ignored"),
    ({"pos": ["good"], "neg": ["Good"]}, "'Good' .for 'neg'. and 'good' .for 'pos'."),
    (["a", "??"], "has no letters or digits"),
])
def test_ambiguous_or_empty_label_sets_fail_when_the_experiment_loads(labels, message):
    with pytest.raises(ScorerError, match=message):
        build_scorer("label", {"labels": labels})


def test_exact_match_also_records_the_answer_and_the_expected_label():
    scorer = build_scorer("exact_match", {"expected": "label"})
    assert scorer.categorize("  Satisfied. ", example("satisfied")) == ("satisfied",
                                                                        "satisfied")


def test_an_eval_set_with_labels_outside_the_set_fails_when_the_experiment_loads(
        make_experiment, llm_server):
    from workbench import Experiment
    from workbench.errors import SpecError

    folder = make_experiment(scorers=[{"type": "label", "expected": "label",
                                       "labels": ["positive", "negative", "mixed"]}],
                             primary_metric="label")
    assert Experiment.from_yaml(folder).metrics == {"label": "binary"}
    folder = make_experiment(scorers=[{"type": "label", "expected": "label",
                                       "labels": ["positive", "neutral"]}],
                             primary_metric="label")
    with pytest.raises(SpecError, match=r"scorers\[0\]: the eval set's 'label' values "
                                        r"\['negative'\] are not among the labels"):
        Experiment.from_yaml(folder)
    folder = make_experiment(scorers=[{"type": "label", "labels": ["positive", "negative"]}],
                             primary_metric="label")
    with pytest.raises(SpecError, match=r"scorers\.0\.expected: 'expected' is not a field of "
                                        r"the eval set .*\n  fix: use one of \['id', 'label'"):
        Experiment.from_yaml(folder)
    assert llm_server.request_count == 0
