"""Scorers: built-ins register themselves the same way a user's own scorers do."""

from . import checks as _checks  # noqa: F401
from . import deterministic as _deterministic  # noqa: F401  (registers the built-ins)
from . import label as _label  # noqa: F401
from . import safety as _safety  # noqa: F401
from . import text_metrics as _text_metrics  # noqa: F401
from .base import (
    MetricKind,
    Options,
    OptionScorer,
    Score,
    Scorer,
    build_scorer,
    register,
    registered_types,
    scorer,
)
from .deterministic import normalize
from .judges import flagged, register_judge_prompts
from .pairwise import pairwise
from .safety import find_injection, find_pii, redact

__all__ = [
    "MetricKind",
    "OptionScorer",
    "Options",
    "Score",
    "Scorer",
    "build_scorer",
    "find_injection",
    "find_pii",
    "flagged",
    "normalize",
    "pairwise",
    "redact",
    "register",
    "register_judge_prompts",
    "registered_types",
    "scorer",
]
