"""Per-prompt serving settings from the project's ``workbench.yaml`` (``workbench serve``).

```yaml
serving:
  support-triage:                     # the prompt's registry name
    guard: {pii: redact, prompt_injection: block}
    monitor: {sample: 0.05, scorers: [pii, refusal], metric: refusal}
  kb-answer:
    index: kb@production              # or {ref: kb@production, k: 5, query_variable: query}
```

Each is checked when the server starts, with the file and the key in the message. The
index is searched for every request and fills the template's ``{{context}}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import WorkbenchError

KEYS = ("guard", "monitor", "index")
INDEX_KEYS = ("ref", "k", "query_variable")


class ServingConfigError(WorkbenchError):
    """The ``serving:`` section of workbench.yaml is invalid."""


def serving_options(name: str, start: str | Path | None = None) -> dict[str, Any]:
    """``guard``, ``monitor`` and ``index`` for prompt ``name`` (the keywords of
    ``PromptService``); empty without a ``serving:`` entry. An index given as a mapping
    becomes a ``ServedIndex`` (loaded and verified here)."""
    from ..prompts.policy import POLICY_FILE
    from ..settings import project_root

    path = project_root(start) / POLICY_FILE
    if not path.is_file():
        return {}
    from ..files import load_yaml

    data = load_yaml(path) or {}
    section = data.get("serving") if isinstance(data, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ServingConfigError(f"{path}: serving: must map prompt names to settings")
    entry = section.get(name)
    if entry is None:
        return {}
    where = f"{path}: serving.{name}"
    if not isinstance(entry, dict) or set(entry) - set(KEYS):
        unknown = sorted(set(entry) - set(KEYS)) if isinstance(entry, dict) else entry
        raise ServingConfigError(f"{where}: unknown settings {unknown}; fix: use {list(KEYS)}")
    options = {k: entry[k] for k in KEYS if entry.get(k)}
    _check(where, options)
    if isinstance(options.get("index"), dict):
        from .retrieval import ServedIndex

        spec = dict(options["index"])
        try:
            options["index"] = ServedIndex(spec.pop("ref"), **spec)
        except WorkbenchError as exc:
            raise ServingConfigError(f"{where}.index: {exc}") from exc
    return options


def _check(where: str, options: dict[str, Any]) -> None:
    from .guards import Guard

    try:
        if "guard" in options:
            Guard.of(options["guard"])
        if "monitor" in options:
            from ..monitor.online import parse_config

            parse_config(options["monitor"])
    except WorkbenchError as exc:
        raise ServingConfigError(f"{where}: {exc}") from exc
    if "index" in options:
        _check_index(f"{where}.index", options["index"])


def _check_index(where: str, index: Any) -> None:
    """A reference (``kb@production``) or ``{ref, k, query_variable}``."""
    fix = "fix: write index: NAME@ALIAS, or {ref: NAME@ALIAS, k: 5, query_variable: query}"
    spec = {"ref": index} if isinstance(index, str) else index
    if not isinstance(spec, dict) or set(spec) - set(INDEX_KEYS):
        unknown = sorted(set(spec) - set(INDEX_KEYS)) if isinstance(spec, dict) else spec
        raise ServingConfigError(f"{where}: unknown settings {unknown}; {fix}")
    ref, k = spec.get("ref"), spec.get("k", 5)
    if not isinstance(ref, str) or not ref.strip():
        raise ServingConfigError(f"{where}: ref must name an index version or alias; {fix}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ServingConfigError(f"{where}: k must be a whole number of at least 1, got {k!r}")
    variable = spec.get("query_variable", "query")
    if not isinstance(variable, str) or not variable:
        raise ServingConfigError(f"{where}: query_variable must name a template variable")
