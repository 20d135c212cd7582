"""Prompt templates with ``{{variable}}`` placeholders, exactly as MLflow's prompt registry
stores them, so a template round-trips through the registry unchanged.

Rendering is plain substitution: a template cannot execute code. Jinja control blocks
(``{% ... %}``), which MLflow would hand to a sandboxed Jinja, are rejected here.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import TemplateError

# Same pattern as mlflow.prompt.constants.PROMPT_TEMPLATE_VARIABLE_PATTERN (a test pins it).
VARIABLE_PATTERN = re.compile(
    r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z_][a-zA-Z0-9_]*)*)\s*\}\}"
)
_ROLES = {"system", "user", "assistant", "developer"}

Message = dict[str, str]
Template = str | list[Message]


@dataclass(frozen=True)
class PromptTemplate:
    """A text or chat template. Chat templates are lists of ``{"role", "content"}``."""

    template: Template
    name: str = ""
    description: str = ""
    variables: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        where = f"prompt {self.name!r}" if self.name else "prompt"
        if isinstance(self.template, str):
            texts = [self.template]
        elif isinstance(self.template, list) and self.template:
            texts = []
            for i, message in enumerate(self.template):
                if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
                    raise TemplateError(
                        f"{where}: message {i} must have exactly the keys 'role' and 'content'"
                    )
                if message["role"] not in _ROLES:
                    raise TemplateError(
                        f"{where}: message {i} has role {message['role']!r}; "
                        f"use one of {sorted(_ROLES)}"
                    )
                if not isinstance(message["content"], str):
                    raise TemplateError(f"{where}: message {i} content must be text")
                texts.append(message["content"])
            object.__setattr__(self, "template", [dict(m) for m in self.template])
        else:
            raise TemplateError(f"{where}: a template is a string or a non-empty list of messages")
        for text in texts:
            if "{%" in text or "{#" in text:
                raise TemplateError(
                    f"{where}: Jinja blocks ('{{% ... %}}') are not allowed; "
                    "use only {{variable}} placeholders"
                )
        found = frozenset(v for text in texts for v in VARIABLE_PATTERN.findall(text))
        object.__setattr__(self, "variables", found)

    @property
    def is_chat(self) -> bool:
        return isinstance(self.template, list)

    @property
    def content_hash(self) -> str:
        """Identity of the template text: equal hashes mean the same prompt."""
        return hashlib.sha256(canonical_json(self.template).encode()).hexdigest()

    def format(self, **values: Any) -> Template:
        """Fill the placeholders; the result has the template's own shape (text or chat)."""
        missing = self.variables - values.keys()
        if missing:
            raise TemplateError(
                f"prompt {self.name!r} needs {sorted(missing)} but got only {sorted(values)}"
            )

        def fill(text: str) -> str:
            return VARIABLE_PATTERN.sub(lambda m: _to_text(values[m.group(1)]), text)

        if isinstance(self.template, str):
            return fill(self.template)
        return [{"role": m["role"], "content": fill(m["content"])} for m in self.template]

    def render(self, **values: Any) -> list[Message]:
        """Chat messages ready for a model call; a text template becomes one user message."""
        filled = self.format(**values)
        if isinstance(filled, str):
            return [{"role": "user", "content": filled}]
        return filled

    def diff(self, other: PromptTemplate) -> str:
        """A unified diff of the two templates, for reviews and the UI."""
        return "".join(
            difflib.unified_diff(
                _as_lines(self.template),
                _as_lines(other.template),
                fromfile=self.name or "a",
                tofile=other.name or "b",
            )
        )


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _as_lines(template: Template) -> list[str]:
    if isinstance(template, str):
        return template.splitlines(keepends=True)
    lines = []
    for message in template:
        lines.append(f"[{message['role']}]\n")
        lines.extend(line + "\n" for line in message["content"].splitlines())
    return lines
