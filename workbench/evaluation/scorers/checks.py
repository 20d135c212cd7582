"""More deterministic checks: keyword sets, numbers, JSON structure, length limits.

Each returns a reason that names what was missing or wrong, so a failed row explains itself.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ...errors import ScorerInputError
from ..evalsets import Example
from .base import Options, OptionScorer, Score, register
from .deterministic import _expected, normalize, parse_json

# Numbers as models write them: signs (including the unicode minus), thousands separators,
# decimals and exponents.
_NUMBER = re.compile(r"[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
                     r"|[-+\u2212]?\.\d+")


class _Keywords(Options):
    values: list[str] | None = Field(default=None, min_length=1)
    expected: str | None = Field(default=None, description="eval-set field holding a list")
    case_sensitive: bool = False
    whole_word: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> _Keywords:
        if (self.values is None) == (self.expected is None):
            raise ValueError("give exactly one of `values` (a list) or `expected` (a field)")
        return self


class _KeywordScorer(OptionScorer):
    Opts = _Keywords

    def _found(self, output: str, example: Example) -> tuple[list[str], list[str]]:
        o = self.options
        needles = o.values
        if needles is None:
            raw = _expected(example, o.expected)
            needles = [raw] if isinstance(raw, str) else [str(v) for v in raw]
        text = unicodedata.normalize("NFKC", output)
        flags = 0 if o.case_sensitive else re.IGNORECASE
        found, missing = [], []
        for needle in needles:
            pattern = re.escape(unicodedata.normalize("NFKC", needle))
            if o.whole_word:
                pattern = rf"(?<!\w){pattern}(?!\w)"
            (found if re.search(pattern, text, flags) else missing).append(needle)
        return found, missing


@register("contains_any")
class ContainsAny(_KeywordScorer):
    """At least one of the texts appears in the output."""

    def score(self, output: str, example: Example) -> Score:
        found, missing = self._found(output, example)
        if found:
            return Score(1.0, f"contains {found[0]!r}")
        return Score(0.0, f"contains none of {missing}")


@register("contains_all")
class ContainsAll(_KeywordScorer):
    """Every one of the texts appears in the output."""

    def score(self, output: str, example: Example) -> Score:
        _, missing = self._found(output, example)
        if not missing:
            return Score(1.0, "contains all required texts")
        return Score(0.0, f"missing required texts: {missing}")


def parse_number(text: str, pick: Literal["first", "last", "only"] = "last") -> float | None:
    """The number a model meant, e.g. ``"about 1,234.5 units"`` → 1234.5; None if there is none."""
    found = _NUMBER.findall(unicodedata.normalize("NFKC", text))
    if not found or (pick == "only" and len(found) != 1):
        return None
    raw = found[0] if pick == "first" else found[-1]
    return float(raw.replace(",", "").replace("\u2212", "-"))


@register("numeric")
class Numeric(OptionScorer):
    """The number in the output is within a tolerance of the expected number."""

    class Opts(Options):
        expected: str = "expected"
        tolerance: float = Field(default=0.0, ge=0, description="absolute")
        rel_tolerance: float = Field(default=0.0, ge=0, description="relative to expected")
        pick: Literal["first", "last", "only"] = "last"

    def score(self, output: str, example: Example) -> Score:
        o = self.options
        raw = _expected(example, o.expected)
        want = float(raw) if isinstance(raw, (int, float)) else parse_number(str(raw), "only")
        if want is None:
            raise ScorerInputError(f"example {example.id}: {o.expected}={raw!r} is not a number")
        got = parse_number(output, o.pick)
        if got is None:
            return Score(0.0, f"no number found ({o.pick}) in {output[:60]!r}")
        allowed = max(o.tolerance, o.rel_tolerance * abs(want))
        if math.isclose(got, want, rel_tol=0, abs_tol=allowed) or got == want:
            return Score(1.0, f"{got:g} is within {allowed:g} of {want:g}")
        return Score(0.0, f"{got:g} differs from {want:g} by {abs(got - want):g} "
                          f"(allowed {allowed:g})")


@register("json_schema")
class JsonSchema(OptionScorer):
    """The JSON output validates against a JSON Schema given inline in the experiment."""

    class Opts(Options):
        json_schema: dict[str, Any] = Field(alias="schema")

        @field_validator("json_schema")
        @classmethod
        def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
            import jsonschema

            validator = jsonschema.validators.validator_for(schema)
            try:
                validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"invalid JSON Schema: {exc.message}") from exc
            return schema

    def __init__(self, name: str | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        import jsonschema

        schema = self.options.json_schema
        self._validator = jsonschema.validators.validator_for(schema)(schema)

    def score(self, output: str, example: Example) -> Score:
        try:
            data = parse_json(output)
        except ValueError as exc:
            return Score(0.0, f"not JSON: {exc}")
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
        if not errors:
            return Score(1.0, "matches the schema")
        where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return Score(0.0, f"{where}: {errors[0].message}{more}")


@register("json_match")
class JsonMatch(OptionScorer):
    """Field by field against an expected object: the share of fields that match."""

    kind = "continuous"

    class Opts(Options):
        expected: str = "expected"
        fields: list[str] | None = Field(default=None, min_length=1)
        normalize: bool = True

    def score(self, output: str, example: Example) -> Score:
        want = _expected(example, self.options.expected)
        if isinstance(want, str):
            want = json.loads(want)
        if not isinstance(want, dict):
            raise ScorerInputError(
                f"example {example.id}: {self.options.expected} is not an object")
        try:
            got = parse_json(output)
        except ValueError as exc:
            return Score(0.0, f"not JSON: {exc}")
        if not isinstance(got, dict):
            return Score(0.0, f"expected a JSON object, got {type(got).__name__}")
        fields = self.options.fields or sorted(want)
        wrong = [f for f in fields if not self._equal(want.get(f), got.get(f), f in got)]
        value = (len(fields) - len(wrong)) / len(fields) if fields else 1.0
        if not wrong:
            return Score(value, f"all {len(fields)} fields match")
        return Score(value, f"{len(wrong)} of {len(fields)} fields differ: {wrong}")

    def _equal(self, want: Any, got: Any, present: bool) -> bool:
        if not present:
            return False
        if self.options.normalize and isinstance(want, str) and isinstance(got, str):
            return normalize(want) == normalize(got)
        return want == got


@register("length")
class Length(OptionScorer):
    """The output stays within character and word limits."""

    class Opts(Options):
        min_chars: int | None = Field(default=None, ge=0)
        max_chars: int | None = Field(default=None, ge=0)
        min_words: int | None = Field(default=None, ge=0)
        max_words: int | None = Field(default=None, ge=0)

        @model_validator(mode="after")
        def _some_limit(self) -> Length.Opts:
            if all(v is None for v in self.model_dump().values()):
                raise ValueError("give at least one of min_chars, max_chars, min_words, max_words")
            for low, high in (("min_chars", "max_chars"), ("min_words", "max_words")):
                lo, hi = getattr(self, low), getattr(self, high)
                if lo is not None and hi is not None and lo > hi:
                    raise ValueError(f"{low} ({lo}) is larger than {high} ({hi})")
            return self

    def score(self, output: str, example: Example) -> Score:
        o = self.options
        chars, words = len(output), len(output.split())
        problems = []
        if o.min_chars is not None and chars < o.min_chars:
            problems.append(f"{chars} characters < {o.min_chars}")
        if o.max_chars is not None and chars > o.max_chars:
            problems.append(f"{chars} characters > {o.max_chars}")
        if o.min_words is not None and words < o.min_words:
            problems.append(f"{words} words < {o.min_words}")
        if o.max_words is not None and words > o.max_words:
            problems.append(f"{words} words > {o.max_words}")
        if problems:
            return Score(0.0, "; ".join(problems))
        return Score(1.0, f"{chars} characters, {words} words: within limits")
