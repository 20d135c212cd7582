"""Per-prompt serving settings from the project's ``workbench.yaml`` (``workbench serve``).

```yaml
serving:
  support-triage:                     # the prompt's registry name
    guard: {pii: redact, prompt_injection: block}
    monitor: {sample: 0.05, scorers: [pii, refusal], metric: refusal}
```

Both are checked when the server starts, with the file and the key in the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import WorkbenchError

KEYS = ("guard", "monitor")


class ServingConfigError(WorkbenchError):
    """The ``serving:`` section of workbench.yaml is invalid."""


def serving_options(name: str, start: str | Path | None = None) -> dict[str, Any]:
    """``guard`` and ``monitor`` for prompt ``name``; empty without a ``serving:`` entry."""
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
