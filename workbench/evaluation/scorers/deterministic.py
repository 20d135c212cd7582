"""Deterministic checks: cheap, exact, and the first thing to trust."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from pydantic import Field, field_validator, model_validator

from ...errors import ScorerInputError
from ..evalsets import Example
from .base import Options, OptionScorer, Score, register

_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def normalize(text: str) -> str:
    """Case, width, surrounding punctuation and spacing do not change an answer's meaning."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    return _SPACES.sub(" ", _PUNCT_EDGES.sub("", text))


def _expected(example: Example, field: str) -> Any:
    try:
        return example.inputs[field]
    except KeyError:
        raise ScorerInputError(f"example {example.id} has no field {field!r}") from None


def _answers(example: Example, field: str) -> list[str]:
    """The acceptable answers: a field holds one, or a list of them (openai/evals ``ideal``)."""
    raw = _expected(example, field)
    answers = [str(a) for a in raw] if isinstance(raw, (list, tuple)) else [str(raw)]
    if not answers:
        raise ScorerInputError(f"example {example.id}: {field!r} is an empty list of answers")
    return answers


class _ExpectedField(Options):
    expected: str = Field(default="expected", description="eval-set field with the answer")


@register("exact_match")
class ExactMatch(OptionScorer):
    """Output equals the expected answer, or one of a list of acceptable answers
    (normalised unless ``normalize: false``)."""

    class Opts(_ExpectedField):
        normalize: bool = True

    def score(self, output: str, example: Example) -> Score:
        wants = _answers(example, self.options.expected)
        got = output
        if self.options.normalize:
            wants, got = [normalize(w) for w in wants], normalize(got)
        if got in wants:
            return Score(1.0, "matches" if len(wants) == 1
                         else f"matches {got!r}, one of {len(wants)} acceptable answers")
        if len(wants) == 1:
            return Score(0.0, f"expected {wants[0]!r}, got {got[:80]!r}")
        return Score(0.0, f"expected one of {wants[:5]}, got {got[:80]!r}")

    def categorize(self, output: str, example: Example) -> tuple[str, str]:
        """(answer, expected answer) as compared, for confusion matrices over label sets."""
        want = str(_expected(example, self.options.expected))
        if self.options.normalize:
            return normalize(output)[:200], normalize(want)
        return output[:200], want


@register("contains")
class Contains(OptionScorer):
    """The expected text (a field, or a fixed ``value``) appears in the output; a field
    holding a list of acceptable answers passes when any of them appears."""

    class Opts(Options):
        expected: str | None = None
        value: str | None = None
        case_sensitive: bool = False
        whole_word: bool = False

        @model_validator(mode="after")
        def _one_source(self) -> Contains.Opts:
            if (self.expected is None) == (self.value is None):
                raise ValueError("give exactly one of `expected` (a field) or `value` (a text)")
            return self

    def score(self, output: str, example: Example) -> Score:
        o = self.options
        needles = [o.value] if o.value is not None else _answers(example, o.expected)
        flags = 0 if o.case_sensitive else re.IGNORECASE
        text = unicodedata.normalize("NFKC", output)
        for needle in needles:
            pattern = re.escape(needle)
            if o.whole_word:
                pattern = rf"(?<!\w){pattern}(?!\w)"
            if re.search(pattern, text, flags):
                return Score(1.0, f"contains {needle!r}")
        shown = repr(needles[0]) if len(needles) == 1 else f"any of {needles[:5]}"
        return Score(0.0, f"does not contain {shown}")


@register("regex")
class Regex(OptionScorer):
    """The output matches a regular expression (searched, not anchored)."""

    class Opts(Options):
        pattern: str
        ignore_case: bool = False

        @field_validator("pattern")
        @classmethod
        def _compiles(cls, pattern: str) -> str:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
            return pattern

    def __init__(self, name: str | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        flags = re.IGNORECASE if self.options.ignore_case else 0
        self._re = re.compile(self.options.pattern, flags)

    def score(self, output: str, example: Example) -> Score:
        match = self._re.search(output)
        if match:
            return Score(1.0, f"matched {match.group(0)[:60]!r}")
        return Score(0.0, f"no match for /{self.options.pattern}/")


def parse_json(output: str) -> Any:
    """Parse JSON, allowing the ```json fences models like to add."""
    fenced = _FENCE.match(output)
    return json.loads(fenced.group(1) if fenced else output)


@register("valid_json")
class ValidJson(OptionScorer):
    """The output parses as JSON."""

    def score(self, output: str, example: Example) -> Score:
        try:
            parse_json(output)
        except ValueError as exc:
            return Score(0.0, f"not JSON: {exc}")
        return Score(1.0, "valid JSON")


@register("json_field")
class JsonField(OptionScorer):
    """A field of the JSON output (dotted path) equals the expected value."""

    class Opts(_ExpectedField):
        field: str = Field(min_length=1, description="dotted path inside the output JSON")
        normalize: bool = True

    def score(self, output: str, example: Example) -> Score:
        want = _expected(example, self.options.expected)
        try:
            got: Any = parse_json(output)
        except ValueError as exc:
            return Score(0.0, f"not JSON: {exc}")
        for part in self.options.field.split("."):
            if not isinstance(got, dict) or part not in got:
                return Score(0.0, f"no field {self.options.field!r} in output")
            got = got[part]
        if self.options.normalize and isinstance(want, str) and isinstance(got, str):
            equal = normalize(want) == normalize(got)
        else:
            equal = want == got
        if equal:
            return Score(1.0, f"{self.options.field} matches")
        return Score(0.0, f"{self.options.field}: expected {want!r}, got {got!r}")
