"""Scorers: each built-in on known cases; custom functions work like built-ins."""

import asyncio
import math

import pytest

from workbench.errors import ScorerError
from workbench.evaluation.evalsets import Example
from workbench.evaluation.scorers import Score, build_scorer, normalize, scorer
from workbench.runner import _score

EX = Example("e1", {"label": "Positive", "answer": {"city": "Paris"}, "n": 3})


@pytest.mark.parametrize(
    ("type_name", "options", "output", "value"),
    [
        ("exact_match", {"expected": "label"}, "positive.", 1.0),
        ("exact_match", {"expected": "label"}, "  POSITIVE  ", 1.0),
        ("exact_match", {"expected": "label"}, "It is positive", 0.0),
        ("exact_match", {"expected": "label", "normalize": False}, "positive", 0.0),
        ("exact_match", {"expected": "label"}, "", 0.0),
        ("contains", {"expected": "label"}, "I'd say positive overall", 1.0),
        ("contains", {"expected": "label", "whole_word": True}, "nonpositive", 0.0),
        ("contains", {"expected": "label", "whole_word": True}, "Positive!", 1.0),
        ("contains", {"value": "ｐositive"}, "positive", 0.0),
        ("contains", {"value": "posit"}, "ＰＯＳＩＴＩＶＥ", 1.0),
        ("regex", {"pattern": r"^\d{3}-\d{4}$"}, "555-1234", 1.0),
        ("regex", {"pattern": "yes", "ignore_case": True}, "YES", 1.0),
        ("regex", {"pattern": "yes"}, "no", 0.0),
        ("valid_json", {}, '{"a": 1}', 1.0),
        ("valid_json", {}, '```json\n{"a": 1}\n```', 1.0),
        ("valid_json", {}, "{'a': 1}", 0.0),
        ("json_field", {"field": "city", "expected": "label"}, '{"city": "positive"}', 1.0),
        ("json_field", {"field": "a.b", "expected": "n"}, '{"a": {"b": 3}}', 1.0),
        ("json_field", {"field": "a.b", "expected": "n"}, '{"a": {"b": "3"}}', 0.0),
        ("json_field", {"field": "city", "expected": "label"}, "not json", 0.0),
        ("json_field", {"field": "zip", "expected": "label"}, '{"city": "x"}', 0.0),
    ],
)
def test_builtin_scorers(type_name, options, output, value):
    score = build_scorer(type_name, options)(output, EX)
    assert score.value == value, score.reason
    assert score.reason


def test_normalize_folds_case_width_punctuation_and_spaces():
    assert normalize("  «Ｐositive»!\n") == "positive"
    assert normalize("New   York.") == "new york"


def test_huge_output_is_scored():
    assert build_scorer("contains", {"value": "needle"})("x" * 1_000_000 + "needle", EX).value == 1


@pytest.mark.parametrize(
    ("type_name", "options", "message"),
    [
        ("exact", {}, "unknown scorer type 'exact'"),
        ("regex", {"pattern": "("}, "invalid regular expression"),
        ("regex", {}, "pattern"),
        ("contains", {}, "exactly one of"),
        ("exact_match", {"expected": "label", "case": True}, "case"),
    ],
)
def test_bad_options_fail_when_built(type_name, options, message):
    with pytest.raises(ScorerError, match=message):
        build_scorer(type_name, options)


def test_a_missing_expected_field_is_a_scorer_error_on_the_row():
    score = asyncio.run(_score(build_scorer("exact_match", {"expected": "nope"}), "x", EX))
    assert score.value is None and "has no field 'nope'" in score.error


def test_a_notebook_function_is_a_scorer():
    @scorer
    def mentions_paris(output):
        return "paris" in output.lower(), "looked for paris"

    assert mentions_paris.name == "mentions_paris" and mentions_paris.kind == "binary"
    assert mentions_paris("Paris!", EX) == Score(1.0, "looked for paris")


def test_an_async_continuous_scorer():
    @scorer(name="length", kind="continuous")
    async def length(output, inputs):
        return len(output) / inputs["n"]

    assert asyncio.run(_score(length, "abcdef", EX)) == Score(2.0)


def test_a_scorer_that_raises_becomes_an_error_score():
    @scorer
    def broken(output):
        raise RuntimeError("boom")

    score = asyncio.run(_score(broken, "x", EX))
    assert score.value is None and "RuntimeError: boom" in score.error


def test_a_scorer_asking_for_unknown_arguments_is_refused():
    with pytest.raises(ScorerError, match="may take"):
        scorer(lambda output, reference: True)


def test_nan_is_not_a_pass():
    @scorer(kind="continuous")
    def nan(output):
        return math.nan

    assert math.isnan(nan("x", EX).value)
