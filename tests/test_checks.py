"""Deterministic checks beyond exact match: keyword sets, numbers, JSON structure, length."""

import pytest

from workbench.errors import ScorerError
from workbench.evaluation.evalsets import Example
from workbench.evaluation.scorers import build_scorer
from workbench.evaluation.scorers.checks import parse_number

EX = Example("e1", {"expected": "42", "tags": ["refund", "invoice"],
                    "want": {"city": "Paris", "zip": "75001", "n": 3}})
SCHEMA = {"type": "object", "required": ["label"],
          "properties": {"label": {"enum": ["positive", "negative"]}}}


@pytest.mark.parametrize(
    ("type_name", "options", "output", "value"),
    [
        ("contains_any", {"values": ["refund", "chargeback"]}, "I want a REFUND", 1.0),
        ("contains_any", {"values": ["refund"]}, "no money back", 0.0),
        ("contains_any", {"expected": "tags", "whole_word": True}, "invoices only", 0.0),
        ("contains_all", {"expected": "tags"}, "refund for invoice 7", 1.0),
        ("contains_all", {"expected": "tags"}, "refund please", 0.0),
        ("contains_all", {"values": ["café"]}, "CAFÉ au lait", 1.0),
        ("numeric", {}, "The answer is 42.", 1.0),
        ("numeric", {}, "41.9", 0.0),
        ("numeric", {"tolerance": 0.5}, "41.9", 1.0),
        ("numeric", {"rel_tolerance": 0.1}, "about 45", 1.0),
        ("numeric", {}, "no idea", 0.0),
        ("numeric", {"pick": "first"}, "42 of 50", 1.0),
        ("numeric", {"pick": "only"}, "42 of 50", 0.0),
        ("json_schema", {"schema": SCHEMA}, '{"label": "positive"}', 1.0),
        ("json_schema", {"schema": SCHEMA}, '```json\n{"label": "neutral"}\n```', 0.0),
        ("json_schema", {"schema": SCHEMA}, "{}", 0.0),
        ("json_schema", {"schema": SCHEMA}, "", 0.0),
        ("json_match", {"expected": "want"}, '{"city": "paris", "zip": "75001", "n": 3}', 1.0),
        ("json_match", {"expected": "want", "fields": ["city", "zip"]}, '{"city": "Lyon"}', 0.0),
        ("length", {"max_words": 3}, "one two three", 1.0),
        ("length", {"max_words": 3}, "one two three four", 0.0),
        ("length", {"min_chars": 1}, "", 0.0),
        ("length", {"max_chars": 5}, "日本語です", 1.0),  # characters, not bytes
    ],
)
def test_checks(type_name, options, output, value):
    score = build_scorer(type_name, options)(output, EX)
    assert score.value == value, score.reason
    assert score.reason


def test_json_match_gives_partial_credit_and_names_the_fields():
    score = build_scorer("json_match", {"expected": "want"})('{"city": "Paris", "n": 4}', EX)
    assert score.value == pytest.approx(1 / 3)
    assert "['n', 'zip']" in score.reason


def test_a_schema_error_names_the_place():
    score = build_scorer("json_schema", {"schema": SCHEMA})('{"label": 1}', EX)
    assert score.reason.startswith("label:")


@pytest.mark.parametrize(
    ("text", "pick", "number"),
    [("1,234.5 units", "last", 1234.5), ("\u22123 degrees", "last", -3.0),
     ("from 3 to 7", "first", 3.0), ("from 3 to 7", "last", 7.0), ("1e3", "only", 1000.0),
     ("none", "last", None)],
)
def test_parse_number(text, pick, number):
    assert parse_number(text, pick) == number


@pytest.mark.parametrize(
    ("type_name", "options", "message"),
    [
        ("contains_any", {}, "exactly one of"),
        ("contains_all", {"values": []}, "at least 1"),
        ("numeric", {"tolerance": -1}, "greater than or equal"),
        ("json_schema", {"schema": {"type": "nonsense"}}, "invalid JSON Schema"),
        ("length", {}, "at least one of"),
        ("length", {"min_words": 5, "max_words": 2}, "larger than"),
    ],
)
def test_bad_options_fail_when_built(type_name, options, message):
    with pytest.raises(ScorerError, match=message):
        build_scorer(type_name, options)
