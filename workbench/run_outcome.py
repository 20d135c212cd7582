"""A finished run's rows as ``Results``: the warnings a reader needs, and a verdict unless
the run stopped early (partial data can mislead)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .errors import WorkbenchWarning

if TYPE_CHECKING:
    from .results import Results
    from .run_types import Variant
    from .runner import Progress
    from .spec import ExperimentSpec


class Experiment(Protocol):
    """What a run's outcome reads of the experiment that made it."""

    spec: ExperimentSpec
    name: str
    metrics: dict[str, str]
    variants: Sequence[Variant]
    scorers: Sequence[Any]
    progress: Progress


def outcome(experiment: Experiment, rows: list[dict[str, Any]], repeats: int,
            max_cost: float | None, notes: list[str], *, cancelled: bool) -> Results:
    """The rows as ``Results``, with their warnings, and a verdict unless partial."""
    from .results import Results

    spec = experiment.spec
    lower = [s.name for s in experiment.scorers if getattr(s, "lower_is_better", False)]
    results = Results.from_rows(rows, metrics=experiment.metrics, primary=spec.primary,
                                experiment=experiment.name, baseline=spec.baseline,
                                guardrails=spec.gate.guardrails, lower_is_better=lower)
    results.registry_name = spec.prompt_registry_name
    results.non_inferiority_margin = spec.non_inferiority_margin
    results.warnings = notes + _warnings(experiment, results, repeats)
    results.partial = _partial(experiment.progress, cancelled, len(rows), max_cost)
    if results.partial:
        results.warnings.append(f"partial: {results.partial}; no verdict from partial "
                                "data (results.compare() computes one anyway)")
    elif len(results.variants) >= 2:
        results.report = results.compare()
    return results


def _partial(progress: Progress, cancelled: bool, made: int, max_cost: float | None
             ) -> str | None:
    """Why the run stopped before its last call, or None when it made them all."""
    if not cancelled or made >= progress.total:
        return None
    why = (f"stopped at max_cost ${max_cost:.4f}"
           if max_cost is not None and progress.cost >= max_cost else "cancelled")
    return f"{why}: {made} of {progress.total} calls were made"


def _warnings(experiment: Experiment, results: Results, repeats: int) -> list[str]:
    notes: list[str] = []
    if not len(results.frame):  # cancelled before the first call finished
        return notes
    for variant in experiment.variants:
        rows = results.frame[results.frame["variant"] == variant.name]
        hot = float(variant.model.params.get("temperature", 1.0) or 0.0) > 0
        if hot and repeats == 1 and len(rows) and rows["cached"].any():
            notes.append(
                f"{variant.name}: temperature > 0 with one sample per example, served from "
                "the cache: the same single sample is reused, which hides the variance "
                "between samples (set run.repeats > 1, or refresh this variant)")
    truncated = int(results.frame["warning"].notna().sum())
    if truncated:
        notes.append(f"{truncated} call(s) had a variable truncated to fit the context "
                     "window (see the warning column)")
    failures = results.failures()
    for failure in failures:  # a verdict on these would be meaningless: say so loudly
        warnings.warn(failure, WorkbenchWarning, stacklevel=6)
    return notes + failures
