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
from pathlib import Path
from typing import Any

from ..canonical import canonical_json
from ..errors import TemplateError

# Same pattern as mlflow.prompt.constants.PROMPT_TEMPLATE_VARIABLE_PATTERN (a test pins it).
VARIABLE_PATTERN = re.compile(
    r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z_][a-zA-Z0-9_]*)*)\s*\}\}"
)
# anything between double braces, and an opening pair that is never closed: text a user
# meant as a placeholder but that would be sent literally
_BRACED = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_UNCLOSED = re.compile(r"\{\{\s*[A-Za-z_][^}\n]*(\}(?!\})|$|\n)")
ROLES = frozenset({"system", "user", "assistant", "developer"})

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
            if not self.template.strip():  # would send an empty user message
                raise TemplateError(f"{where}: the template is empty\n  fix: write the prompt")
            texts = [self.template]
        elif isinstance(self.template, list) and self.template:
            texts = []
            for i, message in enumerate(self.template):
                if not isinstance(message, Mapping) or set(message) != {"role", "content"}:
                    raise TemplateError(
                        f"{where}: message {i} must have exactly the keys 'role' and 'content'"
                    )
                if message["role"] not in ROLES:
                    raise TemplateError(
                        f"{where}: message {i} has role {message['role']!r}; "
                        f"use one of {sorted(ROLES)}"
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
            _check_placeholders(where, text)
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
        self._require(values)
        if isinstance(self.template, str):
            return _fill(self.template, values)
        return [{"role": m["role"], "content": _fill(m["content"], values)}
                for m in self.template]

    def render(self, **values: Any) -> list[Message]:
        """Chat messages ready for a model call; a text template becomes one user message.

        A message (or a whole text template) that is only ``{{name}}``, where the value is a
        conversation (a list of ``{"role", "content"}``, as in openai/evals ``input`` or a
        Hugging Face ``messages`` column), is replaced by that conversation's messages, so
        the prompt supplies the system message or the turns around it.
        """
        self._require(values)
        parts = [self.template] if isinstance(self.template, str) else self.template
        messages: list[Message] = []
        for part in parts:
            text = part if isinstance(part, str) else part["content"]
            whole = VARIABLE_PATTERN.fullmatch(text.strip())
            turns = conversation(values.get(whole.group(1))) if whole else None
            if turns is not None:
                messages.extend(turns)
                continue
            role = "user" if isinstance(part, str) else part["role"]
            messages.append({"role": role, "content": _fill(text, values)})
        return messages

    def _require(self, values: Mapping[str, Any]) -> None:
        missing = self.variables - values.keys()
        if missing:
            raise TemplateError(
                f"prompt {self.name!r} needs {sorted(missing)} but got only {sorted(values)}"
            )

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


def _fill(text: str, values: Mapping[str, Any]) -> str:
    return VARIABLE_PATTERN.sub(lambda m: _to_text(values[m.group(1)]), text)


def conversation(value: Any) -> list[Message] | None:
    """``value`` as chat messages if it is a list of ``{"role", "content"}``, else None."""
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(m, Mapping) and "role" in m and "content" in m for m in value):
        return None
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _check_placeholders(where: str, text: str) -> None:
    """Text that looks like a placeholder but is not one would reach the model literally."""
    for match in _BRACED.finditer(text):
        # starting like a name ({{x[0]}}, {{ x | f }}); {{2}} in LaTeX or {{"a": 1}} is text
        looks_like_one = re.match(r"\s*[A-Za-z_]", match.group(1))
        if looks_like_one and not VARIABLE_PATTERN.fullmatch(match.group(0)):
            raise TemplateError(
                f"{where}: {match.group(0)!r} is not a placeholder the workbench can fill "
                "(only {{name}} or {{name.sub}}: no indexing, filters or expressions) and "
                "would be sent literally\n  fix: put that value in an eval-set column of its "
                "own and write {{column}}")
    unclosed = _UNCLOSED.search(_BRACED.sub("", text))
    if unclosed:
        name = re.match(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)", unclosed.group(0)).group(1)
        raise TemplateError(
            f"{where}: {unclosed.group(0).strip()!r} opens a placeholder that is never closed "
            f"and would be sent literally\n  fix: write it as {{{{{name}}}}}")


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


def update_prompt_file(directory: Path, entry: Any, template: PromptTemplate) -> Path:
    """Write ``template`` over the prompt file an experiment.yaml ``prompts:`` ``entry``
    names (relative to ``directory``), keeping its description; returns the file.

    A prompt written inline in experiment.yaml has no file of its own to update.
    """
    import yaml

    from ..files import BlockDumper, inside, load_yaml

    file = inside(directory, entry.strip()) if isinstance(entry, str) else None
    if file is None or not file.is_file():
        raise TemplateError(
            f"prompt {template.name!r} is written inline in experiment.yaml, not in a file of "
            "its own\n  fix: edit it in experiment.yaml, or save the edit as a new variant")
    if file.suffix not in (".yaml", ".yml"):
        if template.is_chat:
            raise TemplateError(f"{file} holds plain text and the edit is a chat prompt\n  fix: "
                                "save it as a new variant (a YAML file with messages:)")
        file.write_text(str(template.template), encoding="utf-8")
        return file
    content = load_yaml(file)
    kept = {"description": content["description"]} \
        if isinstance(content, dict) and content.get("description") else {}
    kept["messages" if template.is_chat else "template"] = template.template
    file.write_text(yaml.dump(kept, Dumper=BlockDumper, sort_keys=False, allow_unicode=True,
                              width=100), encoding="utf-8")
    return file
