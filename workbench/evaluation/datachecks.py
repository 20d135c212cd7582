"""An experiment against its eval set, before any call: every field the prompts and the
scorers read is there in every row, conversations are well formed; warnings for prompts
that already contain eval-set inputs (few-shot leakage) and rows repeating another's inputs.

A template variable missing from one row would be rendered as an empty string and a
scorer's missing answer field scores every row NaN: both look like a run that worked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..canonical import canonical_json
from ..errors import SpecError
from ..prompts.templates import (
    ROLES,
    VARIABLE_PATTERN,
    PromptTemplate,
    conversation,
)
from .evalsets import EvalSet, Example

_SINGLE_BRACES = re.compile(r"(?<!\{)\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}(?!\})")
_SPACES = re.compile(r"\s+")
# shorter inputs ("thanks!", "yes") appear in ordinary prompt text by chance
_LEAK_MIN_CHARS = 16


def check_data(where: str | Path, templates: dict[str, PromptTemplate], evalset: EvalSet,
               scorer_fields: dict[str, str]) -> list[str]:
    """Raise ``SpecError`` for what would make results wrong; return warnings for the rest.

    ``scorer_fields`` maps a place (``scorers.0.expected``) to the eval-set field it reads.
    """
    columns = set(evalset.columns)
    warnings: list[str] = []
    for name, template in templates.items():
        field = f"prompts.{name}"
        missing = sorted(template.variables - columns)
        if missing:
            raise SpecError(where, field, f"the template uses {missing} but the eval set "
                            f"{evalset.source} has only the fields {sorted(columns)}",
                            "rename the placeholder or add the field to the eval set")
        warnings += _single_braces(where, field, name, template, columns)
        for variable in sorted(template.variables):
            _check_present(where, field, evalset, variable, f"the template's {{{{{variable}}}}}")
            warnings += _check_conversations(where, field, evalset.examples, variable)
        if not template.variables:
            warnings.append(f"prompt {name!r} has no {{{{variable}}}}: every example gets the "
                            "same prompt, so the eval set cannot tell the variants apart"
                            + _conversation_hint(evalset))
        warnings += _leaks(name, template, evalset.examples)
    warnings += _repeated_inputs(templates, evalset.examples)
    for place, column in scorer_fields.items():
        if column not in columns:
            raise SpecError(where, place, f"{column!r} is not a field of the eval set "
                            f"{evalset.source}; every score would be missing",
                            f"use one of {sorted(columns)}")
        if place.endswith((".expected", ".context")):  # an input scanned may be empty
            _check_present(where, place, evalset, column, "read by the scorer")
    return list(dict.fromkeys(warnings))


def _check_present(where: str | Path, field: str, evalset: EvalSet, column: str,
                   what: str) -> None:
    empty = [e.id for e in evalset.examples if _missing(e.inputs.get(column))]
    if empty:
        shown = ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else "")
        raise SpecError(where, field, f"{len(empty)} example(s) of {evalset.source} have no "
                        f"value for {column!r} ({what}): {shown}",
                        f"give those rows a {column!r} value, or remove them")


def _conversation_hint(evalset: EvalSet) -> str:
    first = evalset.examples[0].inputs
    chats = [c for c in evalset.columns if conversation(first.get(c)) is not None]
    if not chats:
        return ""
    return (f"; to send each row's conversation, add the message "
            f'{{role: user, content: "{{{{{chats[0]}}}}}"}} (it is replaced by the turns)')


def _missing(value: Any) -> bool:
    """None, the NaN of an empty numeric cell, or an empty list (no turns, no answers)."""
    return (value is None or (isinstance(value, float) and math.isnan(value))
            or (isinstance(value, list) and not value))


def _single_braces(where: str | Path, field: str, name: str, template: PromptTemplate,
                   columns: set[str]) -> list[str]:
    """``{column}`` is sent literally. With no ``{{variable}}`` at all the template was
    surely written in the wrong syntax (an error); next to real placeholders it may be
    meant literally, e.g. as an answer format (a warning)."""
    found = sorted({m.group(1) for text in _texts(template)
                    for m in _SINGLE_BRACES.finditer(text) if m.group(1) in columns})
    if not found:
        return []
    shown = ", ".join(f"{{{c}}}" for c in found)
    if not template.variables:
        raise SpecError(where, field, f"{shown} name(s) eval-set fields but single braces are "
                        "sent literally and the template has no {{variable}}",
                        "write " + ", ".join(f"{{{{{c}}}}}" for c in found))
    return [f"prompt {name!r}: {shown} in single braces is sent literally, not filled in "
            "(a placeholder is {{" + found[0] + "}})"]


def _check_conversations(where: str | Path, field: str, examples: Sequence[Example],
                         variable: str) -> list[str]:
    """Every message well formed; a conversation ending with the assistant's turn is
    usually the reference answer, which the model would then be shown."""
    answered = []
    for example in examples:
        value = example.inputs.get(variable)
        if not (isinstance(value, list) and value and isinstance(value[0], dict)):
            continue
        for i, message in enumerate(value):
            role = message.get("role") if isinstance(message, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            if role not in ROLES or not isinstance(content, str):
                raise SpecError(where, field, f"example {example.id}: {variable}[{i}] is not a "
                                f"chat message (role {role!r}, content "
                                f"{type(content).__name__})",
                                f"give each message a role in {sorted(ROLES)} and text "
                                "content")
        if value[-1].get("role") == "assistant":
            answered.append(example.id)
    if not answered:
        return []
    return [f"{len(answered)} conversation(s) in {variable!r} end with an assistant turn "
            f"(e.g. {answered[0]}): the model is shown that answer and asked to continue; if "
            "it is the reference answer, move it to its own field and score against that"]


def _repeated_inputs(templates: dict[str, PromptTemplate],
                     examples: Sequence[Example]) -> list[str]:
    """Rows that send the same prompt under two ids count twice in every mean and test."""
    used = sorted(set().union(*(t.variables for t in templates.values())))
    if not used:
        return []
    first: dict[str, str] = {}
    repeats = []
    for example in examples:
        key = canonical_json([example.inputs.get(v) for v in used])
        if key in first:
            repeats.append(f"{example.id} = {first[key]}")
        else:
            first[key] = example.id
    if not repeats:
        return []
    return [f"{len(repeats)} example(s) send the same {used} as another ({', '.join(repeats[:3])}"
            f"{', ...' if len(repeats) > 3 else ''}): each copy counts in every mean and test, "
            "and the confidence intervals come out too narrow; drop the copies"]


def _leaks(name: str, template: PromptTemplate, examples: Sequence[Example]) -> list[str]:
    """Eval-set inputs that already appear in the prompt's own text (few-shot examples)."""
    own = _normalize(" ".join(VARIABLE_PATTERN.sub(" ", t) for t in _texts(template)))
    leaked = []
    for example in examples:
        for variable in template.variables:
            for text in _input_texts(example.inputs.get(variable)):
                if len(text) >= _LEAK_MIN_CHARS and text in own:
                    leaked.append(f"{example.id} ({text[:40]!r})")
                    break
    if not leaked:
        return []
    shown = ", ".join(leaked[:3]) + (", ..." if len(leaked) > 3 else "")
    return [f"prompt {name!r} contains the input of {len(leaked)} eval-set example(s) in its "
            f"own text: {shown}. A few-shot example that is also scored inflates the "
            "prompt's score; remove it from the prompt or from the eval set"]


def _input_texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [_normalize(value)]
    if isinstance(value, list):  # a conversation: what the user said
        return [_normalize(m["content"]) for m in value if isinstance(m, dict)
                and m.get("role") == "user" and isinstance(m.get("content"), str)]
    return []


def _texts(template: PromptTemplate) -> list[str]:
    if isinstance(template.template, str):
        return [template.template]
    return [m["content"] for m in template.template]


def _normalize(text: str) -> str:
    return _SPACES.sub(" ", text.casefold()).strip()


def scorer_fields(scorers: Sequence[Any]) -> dict[str, str]:
    """The eval-set fields the configured scorers read, by their place in the file."""
    fields = {}
    for i, scorer in enumerate(scorers):
        options = getattr(scorer, "options", None)
        for option in getattr(scorer, "data_fields", ()):
            value = getattr(options, option, None)
            if isinstance(value, str):
                fields[f"scorers.{i}.{option}"] = value
    return fields
