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
    "EvalSet": ".evalsets",
    "PromptTemplate": ".prompts",
    "ModelConfig": ".gateway",
    "Gateway": ".gateway",
    "Results": ".results",
    "PromptService": ".serving",
    "promote": ".promotion",
    "scorer": ".scorers",
    "Score": ".scorers",
    "WorkbenchError": ".errors",
    "SpecError": ".errors",
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
    from .evalsets import EvalSet
    from .experiment import Experiment
    from .gateway import Gateway, ModelConfig
    from .promotion import promote
    from .prompts import PromptTemplate
    from .results import Results
    from .scorers import Score, scorer
    from .serving import PromptService


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in ("ui", "observe", "rag"):
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
