"""Prompt Workbench: compare prompt and model variants with statistics you can trust.

Heavy libraries (mlflow, litellm, datasets, llama.cpp) load on first use, so importing the
package in a notebook is instant.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .environment import apply_offline_defaults

apply_offline_defaults()

__version__ = "0.1.0"

_LAZY = {
    "Experiment": ".experiment",
    "EvalSet": ".evaluation.evalsets",
    "PromptTemplate": ".prompts.templates",
    "ModelConfig": ".gateway.config",
    "Gateway": ".gateway.client",
    "Results": ".results",
    "PromptService": ".serving.service",
    "promote": ".prompts.promotion",
    "scorer": ".evaluation.scorers",
    "Score": ".evaluation.scorers",
    "WorkbenchError": ".errors",
    "SpecError": ".errors",
}

# Modules reachable as attributes: `from workbench import registry`, `wb.ui`.
_MODULES = {
    "ui": ".ui",
    "observe": ".observe",
    "rag": ".rag",
    "registry": ".prompts.registry",
    "feedback": ".evaluation.feedback",
}

__all__ = [
    "EvalSet",
    "Experiment",
    "Gateway",
    "ModelConfig",
    "PromptService",
    "PromptTemplate",
    "Results",
    "Score",
    "SpecError",
    "WorkbenchError",
    "promote",
    "scorer",
]

if TYPE_CHECKING:
    from .errors import SpecError, WorkbenchError
    from .evaluation.evalsets import EvalSet
    from .evaluation.scorers import Score, scorer
    from .experiment import Experiment
    from .gateway.client import Gateway
    from .gateway.config import ModelConfig
    from .prompts.promotion import promote
    from .prompts.templates import PromptTemplate
    from .results import Results
    from .serving.service import PromptService


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return import_module(_MODULES[name], __name__)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
