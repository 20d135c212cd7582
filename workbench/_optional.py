"""Optional dependencies: an import that names the extra to install when it fails.

The core install serves prompts (``workbench serve``, the registry, the gateway) and runs
experiments from a script; the rest comes in extras (``pyproject.toml``): ``[local]`` for the
embedded model, ``[lab]`` for the JupyterLab panels and charts, ``[rag]`` for retrieval.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import WorkbenchError


class MissingDependency(WorkbenchError):
    """An optional dependency is not installed; the message says which extra brings it."""


def install_hint(extra: str) -> str:
    return f"pip install 'prompt-workbench[{extra}]'"


def optional_import(module: str, extra: str, purpose: str,
                    error: type[WorkbenchError] = MissingDependency) -> ModuleType:
    """``importlib.import_module(module)``, or ``error`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise error(
            f"{purpose}: {module.split('.')[0]} is not installed; {install_hint(extra)}"
        ) from exc
