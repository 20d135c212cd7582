"""Scorers: built-ins register themselves the same way a user's own scorers do."""

from . import deterministic as _deterministic  # noqa: F401  (registers the built-ins)
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

__all__ = [
    "MetricKind",
    "OptionScorer",
    "Options",
    "Score",
    "Scorer",
    "build_scorer",
    "normalize",
    "register",
    "registered_types",
    "scorer",
]
