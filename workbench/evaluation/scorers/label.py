"""The label scorer: find the class label in a verbose answer, so that a prompt answering
"The customer seems satisfied." is scored on its label like one answering "satisfied".

Matching is on whole words and numbers after case and punctuation are folded, so
"satisfied" is not found inside "dissatisfied" and "1" not inside "10" or "1.5". The first
label in the answer wins; at one position the longest synonym wins, so a synonym such as
"not satisfied" can take precedence over the "satisfied" it contains.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from ...errors import ScorerInputError
from ..evalsets import Example
from .base import Options, OptionScorer, Score, register

# numbers keep their sign and decimals ("-1", "1.5"); words are letters/digits runs
_TOKEN = re.compile(r"(?<![^\W_])-?\d+(?:[.,]\d+)*(?![^\W_])|[^\W_]+")
NO_LABEL = "(none)"


def tokens(text: str) -> tuple[str, ...]:
    """Words and numbers of ``text``, case and width folded; punctuation separates them."""
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-").casefold()
    return tuple(_TOKEN.findall(text))


class _LabelOptions(Options):
    labels: list[str] | dict[str, list[str] | str] = Field(
        description="the label set, or a map from each label to the words that mean it")
    expected: str = Field(default="expected", description="eval-set field with the label")

    @field_validator("labels", mode="before")
    @classmethod
    def _as_text(cls, labels: Any) -> Any:
        # YAML reads labels 0/1 or yes/no as numbers and booleans; they are matched as text
        if isinstance(labels, dict):
            return {_text(k): [_text(w) for w in v] if isinstance(v, list) else _text(v)
                    for k, v in labels.items()}
        return [_text(v) for v in labels] if isinstance(labels, list | tuple) else labels

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: Any) -> Any:
        synonyms = _synonyms(labels)
        if len({canonical for canonical, _ in synonyms.values()}) < 2:
            raise ValueError("give at least two labels")
        return labels


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int | float) else value


def _synonyms(labels: list[str] | dict[str, list[str] | str]) -> dict[tuple[str, ...],
                                                                     tuple[str, str]]:
    """Token sequence -> (label, the text that was given); clashes are errors."""
    pairs: list[tuple[str, str]] = []
    if isinstance(labels, dict):
        for label, words in labels.items():
            pairs += [(str(label), str(label))]
            pairs += [(str(label), str(w)) for w in ([words] if isinstance(words, str)
                                                    else words)]
    else:
        pairs = [(str(label), str(label)) for label in labels]
    out: dict[tuple[str, ...], tuple[str, str]] = {}
    for label, word in pairs:
        key = tokens(word)
        if not key:
            raise ValueError(f"label text {word!r} has no letters or digits to match")
        if key in out and out[key][0] != label:
            raise ValueError(
                f"{word!r} (for {label!r}) and {out[key][1]!r} (for {out[key][0]!r}) are the "
                "same once case and punctuation are ignored; make them distinct")
        out.setdefault(key, (label, word))
    return out


@register("label")
class LabelMatch(OptionScorer):
    """1 when the first label found in the output is the expected label (a categorical metric:
    the run also records which label each answer gave, for confusion matrices)."""

    Opts = _LabelOptions

    def __init__(self, name: str | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        self._synonyms = _synonyms(self.options.labels)
        self._longest = max(len(k) for k in self._synonyms)
        self.labels = tuple(dict.fromkeys(label for label, _ in self._synonyms.values()))

    def extract(self, output: str) -> str | None:
        """The first label in ``output`` (longest synonym at a position), or None."""
        words = tokens(output or "")
        for start in range(len(words)):
            for size in range(min(self._longest, len(words) - start), 0, -1):
                found = self._synonyms.get(words[start:start + size])
                if found is not None:
                    return found[0]
        return None

    def expected_label(self, example: Example) -> str:
        """The example's label in canonical form; a value outside the label set is an error."""
        try:
            value = example.inputs[self.options.expected]
        except KeyError:
            raise ScorerInputError(f"example {example.id} has no field {self.options.expected!r}"
                           ) from None
        found = self._synonyms.get(tokens(str(value)))
        if found is None:
            raise ScorerInputError(f"example {example.id}: expected label {value!r} is not one of "
                             f"{list(self.labels)}; add it to the scorer's labels")
        return found[0]

    def check_examples(self, examples: Sequence[Example]) -> None:
        """Every example has the expected field with a known label; checked before a call."""
        field = self.options.expected
        missing = [e.id for e in examples if field not in e.inputs]
        if missing:
            raise ScorerInputError(f"{len(missing)} example(s) have no field {field!r} (first: "
                             f"{missing[0]}); name the eval-set field with the label in "
                             "`expected:`")
        unknown = sorted({str(e.inputs[field]) for e in examples
                          if tokens(str(e.inputs[field])) not in self._synonyms})
        if unknown:
            raise ScorerInputError(f"the eval set's {field!r} values {unknown[:10]} are not among "
                             f"the labels {list(self.labels)}; add them to `labels:` (or as "
                             "synonyms of a label) or correct the eval set")

    def categorize(self, output: str, example: Example) -> tuple[str, str]:
        """(label the output gave or "(none)", expected label), for the confusion matrix."""
        return self.extract(output) or NO_LABEL, self.expected_label(example)

    def score(self, output: str, example: Example) -> Score:
        want = self.expected_label(example)
        got = self.extract(output)
        if got is None:
            return Score(0.0, f"no label of {list(self.labels)} in {output[:80]!r}")
        if got == want:
            return Score(1.0, f"label {got!r}")
        return Score(0.0, f"expected {want!r}, got {got!r}")
