"""The provider-drift canary: a small fixed eval set against the alias's prompt, on a schedule.

Nothing in the workbench changes between two canary runs of the same prompt version and
model string, so a change in their answers is the provider's: a model updated behind the
same name. Each run calls the model without the response cache, logs its answers and
scores to the MLflow experiment ``workbench-canary`` (tagged with the prompt, version,
content hash and model string), and is compared with the latest earlier run of the same
prompt content and model: the share of examples whose answer changed, and a paired test of
every metric (the experiment's statistics). Drift is an alert through the observability
channels and exit code 1 for cron; the first run only records the reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError

EXPERIMENT = "workbench-canary"
ARTIFACT = "canary.json"
KEEP = ("example_id", "repeat", "output", "error")


@dataclass(frozen=True)
class CanaryResult:
    """What one canary run found; ``drifted`` decides the exit code."""

    drifted: bool
    prompt: str
    version: int
    model: str
    n: int
    run_id: str | None
    previous_run_id: str | None
    changed_share: float | None
    reasons: tuple[str, ...]
    lines: tuple[str, ...]

    def to_text(self) -> str:
        verdict = ("DRIFT: " + "; ".join(self.reasons) if self.drifted else
                   "no drift" if self.previous_run_id else
                   "first canary run of this prompt and model: recorded as the reference")
        return "\n".join([*self.lines, verdict])


def canary(experiment_dir: str | Path, *, alias: str = "production", limit: int = 20,
           max_changed: float = 0.2, alpha: float = 0.05, webhook: str | None = None
           ) -> CanaryResult:
    """Run the canary once (see the module doc); drift is delivered as a ``canary`` alert."""
    from ..aio import run_sync

    result = run_sync(lambda: _run(experiment_dir, alias, limit))
    exp, frame, prompt, version, model, digest = result
    previous = _previous(prompt, digest, model)
    lines = [f"workbench canary {exp.name}: prompts:/{prompt}@{alias} (v{version}) on {model},"
             f" {frame['example_id'].nunique()} examples, no response cache"]
    reasons: list[str] = []
    changed = None
    if previous is not None:
        changed, found = _compare(exp, previous[1], frame, alpha)
        lines += [f"  vs run {previous[0]}: {changed:.0%} of the answers changed", *found[0]]
        reasons = found[1]
        if changed > max_changed:
            reasons.insert(0, f"{changed:.0%} of the answers changed (allowed "
                              f"{max_changed:.0%})")
    run_id = _log(exp, prompt, version, digest, model, alias, frame, changed, bool(reasons))
    outcome = CanaryResult(bool(reasons), prompt, version, model,
                           int(frame["example_id"].nunique()), run_id,
                           previous[0] if previous else None, changed, tuple(reasons),
                           tuple(lines))
    if outcome.drifted:
        _alert(outcome, alias, webhook)
    return outcome


async def _run(experiment_dir: str | Path, alias: str, limit: int) -> tuple[Any, ...]:
    from ..evaluation.gate import _as_gate_run, _baseline, _check_fields, _regression_set
    from ..experiment import Experiment
    from ..observe.hook import attribute

    exp = Experiment.from_yaml(experiment_dir)
    variant = _baseline(exp, alias, exp.variants[0])
    if variant is None:
        raise WorkbenchError(f"prompts:/{exp.spec.prompt_registry_name}@{alias} does not "
                             "exist; fix: promote a version first (wb.promote or workbench "
                             "promote)")
    evalset = _regression_set(exp).head(limit)
    _check_fields(variant, evalset)
    variant.model.check_keys()
    _as_gate_run(exp, [variant], evalset)  # the run's own checks, before any call
    with attribute(exp.name, request_type="canary"):
        results = await exp.arun(track=False, progress=False, use_cache=False)
    frame = results.frame
    scores = [c for c in frame.columns if c.startswith("score.")]
    frame = frame[[c for c in KEEP if c in frame.columns] + scores].copy()
    version = int(variant.prompt_name.rsplit("(v", 1)[1].rstrip(")"))
    digest = variant.prompt.content_hash[:16]
    return exp, frame, exp.spec.prompt_registry_name, version, variant.model.model, digest


def _compare(exp: Any, before: Any, after: Any, alpha: float
             ) -> tuple[float, tuple[list[str], list[str]]]:
    import pandas as pd

    from ..evaluation.stats import compare, format_p

    joined = before.merge(after, on="example_id", suffixes=("_before", "_after"))
    changed = float((joined["output_before"] != joined["output_after"]).mean()) \
        if len(joined) else 0.0
    frame = pd.concat([before.assign(variant="previous"), after.assign(variant="now")],
                      ignore_index=True)
    lines, reasons = [], []
    metrics = {m: k for m, k in exp.metrics.items() if f"score.{m}" in frame.columns}
    report = compare(frame, "previous", "now", metrics, primary=exp.spec.primary, alpha=alpha)
    for metric, r in report.pairs[0].metrics.items():
        p_value = f"p={format_p(r.p_value, alpha)}"
        moved = r.p_value is not None and r.p_value < alpha
        lines.append(f"  {metric:<24} {r.mean_a:.3f} → {r.mean_b:.3f}  diff {r.diff:+.3f}  "
                     f"{p_value}{'  CHANGED' if moved else ''}")
        if moved:
            reasons.append(f"{metric} changed significantly ({r.mean_a:.3f} → "
                           f"{r.mean_b:.3f}, {p_value})")
    return changed, (lines, reasons)


def _previous(prompt: str, digest: str, model: str) -> tuple[str, Any] | None:
    import mlflow
    import pandas as pd

    from ..prompts.versions import client

    c = client()
    found = c.get_experiment_by_name(EXPERIMENT)
    if found is None:
        return None
    runs = c.search_runs([found.experiment_id], max_results=1, order_by=["start_time DESC"],
                         filter_string=f"tags.`workbench.canary.prompt` = '{prompt}' and "
                                       f"tags.`workbench.canary.hash` = '{digest}' and "
                                       f"tags.`workbench.canary.model` = '{model}'")
    if not runs:
        return None
    run_id = runs[0].info.run_id
    mlflow.set_tracking_uri(c.tracking_uri)
    rows = mlflow.artifacts.load_dict(f"runs:/{run_id}/{ARTIFACT}")
    return run_id, pd.DataFrame(rows["rows"])


def _log(exp: Any, prompt: str, version: int, digest: str, model: str, alias: str,
         frame: Any, changed: float | None, drifted: bool) -> str:
    from ..prompts.versions import client

    c = client()
    found = c.get_experiment_by_name(EXPERIMENT)
    experiment_id = found.experiment_id if found else c.create_experiment(EXPERIMENT)
    run = c.create_run(experiment_id, run_name=f"{prompt}@{alias}", tags={
        "workbench.canary.prompt": prompt, "workbench.canary.version": str(version),
        "workbench.canary.hash": digest, "workbench.canary.model": model,
        "workbench.canary.drifted": str(drifted).lower(), "workbench.experiment": exp.name})
    run_id = run.info.run_id
    for column in (c for c in frame.columns if c.startswith("score.")):
        value = frame[column].mean()
        if value == value:
            c.log_metric(run_id, column[6:], float(value))
    if changed is not None:
        c.log_metric(run_id, "changed_share", changed)
    records = json.loads(frame.to_json(orient="records"))
    c.log_dict(run_id, {"format": 1, "rows": records}, ARTIFACT)
    c.set_terminated(run_id)
    return run_id


def _alert(result: CanaryResult, alias: str, webhook: str | None) -> None:
    import time

    from ..observe.alerting import deliver
    from ..observe.anomalies import Alert
    from ..observe.hook import default_ledger

    now = time.time()
    alert = Alert(kind="canary", key=f"prompt={result.prompt}@{alias} v{result.version}",
                  start=now, end=now, expected=0.0, observed=result.changed_share or 0.0,
                  unit="share of answers changed",
                  detail=f"model {result.model}: " + "; ".join(result.reasons))
    deliver([alert], default_ledger().store(), webhook=webhook, source="monitor")


def history(prompt: str, max_results: int = 50) -> Any:
    """Canary runs of ``prompt``, newest first: when, version, model, drift, changed share
    and each metric."""
    import pandas as pd

    from ..prompts.versions import client

    c = client()
    found = c.get_experiment_by_name(EXPERIMENT)
    columns = ["at", "version", "model", "drifted", "changed_share", "run_id"]
    if found is None:
        return pd.DataFrame(columns=columns)
    runs = c.search_runs([found.experiment_id], max_results=max_results,
                         order_by=["start_time DESC"],
                         filter_string=f"tags.`workbench.canary.prompt` = '{prompt}'")
    rows = [{"at": pd.Timestamp(r.info.start_time, unit="ms", tz="UTC"),
             "version": int(r.data.tags.get("workbench.canary.version", 0)),
             "model": r.data.tags.get("workbench.canary.model"),
             "drifted": r.data.tags.get("workbench.canary.drifted") == "true",
             "run_id": r.info.run_id, **r.data.metrics} for r in runs]
    frame = pd.DataFrame(rows)
    return frame.reindex(columns=[*columns, *sorted(set(frame.columns) - set(columns))])
