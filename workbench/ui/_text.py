"""Text shapes the editors and viewers use: the template editor format and word diffs."""

from __future__ import annotations

import difflib
import html
import re

from workbench.prompts.templates import PromptTemplate, Template

_ROLE_LINE = re.compile(r"^\[(system|user|assistant|developer)\]\s*$")


def template_to_text(template: Template) -> str:
    """A text template as is; a chat template as ``[role]`` headers, the layout of
    ``PromptTemplate.diff``, so an editor and a diff read the same."""
    if isinstance(template, str):
        return template
    return "\n".join(f"[{m['role']}]\n{m['content']}" for m in template)


def text_to_template(text: str, name: str = "") -> PromptTemplate:
    """Inverse of ``template_to_text``: ``[role]`` header lines make it a chat template."""
    lines = text.splitlines()
    if not lines or not _ROLE_LINE.match(lines[0]):
        return PromptTemplate(text, name=name)
    messages: list[dict[str, str]] = []
    for line in lines:
        match = _ROLE_LINE.match(line)
        if match:
            messages.append({"role": match.group(1), "content": ""})
        else:
            current = messages[-1]
            current["content"] += ("\n" if current["content"] else "") + line
    return PromptTemplate(messages, name=name)


def word_diff_html(old: str, new: str) -> str:
    """``new`` with words added over ``old`` in <ins> and removed ones in <del>."""
    a, b = re.split(r"(\s+)", old), re.split(r"(\s+)", new)
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(html.escape("".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            parts.append(f"<del>{html.escape(''.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            parts.append(f"<ins>{html.escape(''.join(b[j1:j2]))}</ins>")
    return "".join(parts)
