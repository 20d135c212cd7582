"""The promoted version's offline score: the metric of the MLflow run behind the alias."""

from __future__ import annotations

import math

from ..errors import WorkbenchError


class NoOfflineEstimate(WorkbenchError):
    """The alias's promotion names no run, or the run has no such metric."""


def offline_estimate(prompt: str, alias: str, metric: str) -> float:
    """The mean of ``metric`` for the promoted variant, from the promotion's evidence run."""
    from ..prompts.registry import history
    from ..prompts.versions import client

    fix = "fix: promote from a comparison report (wb.promote) or give monitor baseline=..."
    if not metric:
        raise NoOfflineEstimate(f"monitor of {prompt}@{alias}: no metric to compare; fix: "
                                "give monitor metric=<scorer name>")
    moves = history(prompt)
    moves = moves[(moves["alias"] == alias) & (moves["action"] == "promotion")]
    evidence = moves.iloc[-1]["evidence"] if len(moves) else {}
    run_id, variant = evidence.get("run_id"), evidence.get("variant")
    if not run_id or not variant:
        raise NoOfflineEstimate(f"prompts:/{prompt}@{alias} was not promoted from a "
                                f"tracked comparison, so it has no offline score; {fix}")
    c = client()
    parent = c.get_run(run_id)
    children = c.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and "
                      f"tags.`workbench.variant` = '{variant}'")
    value = children[0].data.metrics.get(metric) if children else None
    if value is None or not math.isfinite(value):
        known = sorted(children[0].data.metrics) if children else []
        raise NoOfflineEstimate(f"run {run_id} ({variant}) has no metric {metric!r} "
                                f"(it has {known}); {fix}")
    return float(value)
