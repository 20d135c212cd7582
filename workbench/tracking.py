"""MLflow tracking: one parent run per execution, one child run per variant.

All writes happen here, from one thread, in batches after the calls finish: the SQLite
store's connection pool is small and per-call writes from many workers starve it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .prompts.versions import VARIANT_TAG, client, register_version
from .rerun import FINGERPRINT_TAG, find_logged, fingerprint, fully_cached
from .run_traces import log_traces
from .settings import artifact_root, tracking_uri
from .store import PARTIAL_TAG, mark_abandoned, source_tags

log = logging.getLogger("workbench.tracking")

if TYPE_CHECKING:
    from .evaluation.evalsets import EvalSet
    from .evaluation.stats.report import ComparisonReport
    from .results import Results
    from .run_types import Variant

_MAX_PARAM = 6000  # MLflow's limit on a param value


@dataclass
class TrackedExecution:
    """Where an execution landed in MLflow: ids a user can open in the UI."""

    experiment_id: str
    parent_run_id: str
    child_run_ids: dict[str, str] = field(default_factory=dict)
    prompt_versions: dict[str, int] = field(default_factory=dict)
    tracking_uri: str = ""
    reused: bool = False  # True: an identical execution was logged before; these are its ids


def log_execution(*, experiment: str, registry_name: str, variants: Sequence[Variant],
                  evalset: EvalSet, results: Results, report: ComparisonReport | None = None,
                  params: Mapping[str, Any] | None = None, source_dir: Path | None = None,
                  uri: str | None = None, trace: bool = True,
                  redact: Callable[[str], str] | None = None,
                  reuse: bool = False, partial: str | None = None) -> TrackedExecution:
    """Write the execution to MLflow and register each prompt variant's version.

    With ``reuse``, an execution served wholly from the cache that matches a finished parent
    run (same config, eval set, prompts, outputs and scores) is not logged again: that run's
    ids come back, with ``reused`` set.

    With ``trace``, every call made in this execution (cache hits were not calls) becomes
    an LLM span in a trace linked to its variant's run: inputs, output, tokens, cost,
    latency, retries, fallback and the prompt version. ``redact`` rewrites text before it
    is logged. ``partial`` (why the run stopped early) tags every run ``partial=true``.
    Runs of this experiment left RUNNING by a process that is gone are marked KILLED first.
    """
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    uri = uri or tracking_uri(source_dir)
    c = client(uri)
    experiment_id = _experiment_id(c, experiment, uri, source_dir)
    for run_id in mark_abandoned(c, experiment_id):
        log.warning("MLflow run %s was left RUNNING by a process that is gone: marked KILLED",
                    run_id)
    digest = fingerprint(experiment=experiment, registry_name=registry_name, variants=variants,
                         evalset=evalset, results=results, params=params or {}, trace=trace,
                         redacted=redact is not None)
    found = find_logged(c, experiment_id, digest) if reuse and fully_cached(results) else None
    if found is not None:
        parent_id, children, versions = found
        return TrackedExecution(experiment_id, parent_id, children, versions, uri, reused=True)
    now = int(time.time() * 1000)
    tags = source_tags(source_dir)
    if partial:
        tags.update({PARTIAL_TAG: "true", "workbench.partial_reason": partial})
    parent = c.create_run(experiment_id, tags={**tags, FINGERPRINT_TAG: digest},
                          run_name=f"{experiment}-{_stamp()}")
    tracked = TrackedExecution(experiment_id, parent.info.run_id, tracking_uri=uri)
    dataset_input = _dataset_input(mlflow, evalset)
    summary = results.summary()
    classified = _classification(results)
    try:
        for variant in variants:
            version, _created = register_version(
                registry_name, variant.prompt, variant.model,
                tags={VARIANT_TAG: variant.name, "workbench.experiment": experiment},
                mlflow_client=c)
            tracked.prompt_versions[variant.name] = version
            child = c.create_run(
                experiment_id, run_name=variant.name,
                tags={**tags, "mlflow.parentRunId": parent.info.run_id,
                      "workbench.variant": variant.name})
            run_id = child.info.run_id
            tracked.child_run_ids[variant.name] = run_id
            variant_params = {
                "variant": variant.name,
                "prompt": variant.prompt_name,
                "prompt_uri": f"prompts:/{registry_name}/{version}",
                "prompt_hash": variant.prompt.content_hash[:16],
                "model": variant.model.model,
                **{f"model.{k}": v for k, v in variant.model.params.items()},
                "eval_set": evalset.name,
                "eval_set_digest": evalset.digest[:16],
                **(params or {}),
            }
            row = summary.loc[variant.name] if variant.name in summary.index else None
            metrics = _finite(row.to_dict()) if row is not None else {}
            c.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                        params=[Param(k, _param(v)) for k, v in variant_params.items()])
            frame = results.frame[results.frame["variant"] == variant.name]
            c.log_table(run_id, data=_table(_redacted(frame, redact)),
                        artifact_file="results.json")
            for metric, reports in classified.items():
                if variant.name in reports:
                    _log_classification(c, run_id, reports[variant.name], metric)
            c.log_inputs(run_id, datasets=[dataset_input])
            prompt_uri = f"prompts:/{registry_name}/{version}"
            c.link_prompt_version_to_run(run_id, prompt_uri)
            if trace:
                log_traces(uri, experiment_id, run_id, frame, prompt_uri, evalset, redact)
            c.set_terminated(run_id, "FINISHED")

        parent_metrics: dict[str, float] = {}
        if report is not None:
            parent_metrics.update(_finite(report.mlflow_metrics()))
            # caveats quote answers (a degenerate variant's constant output)
            c.log_dict(parent.info.run_id, _redacted_value(report.to_dict(), redact),
                       "ab_report.json")
            c.log_text(parent.info.run_id, _redacted_value(report.to_text(), redact),
                       "ab_report.txt")
            c.log_figure(parent.info.run_id, report.forest_plot(), "ab_forest_plot.png")
        parent_params = {"experiment": experiment, "variants": ",".join(v.name for v in variants),
                         "eval_set": evalset.name, "eval_set_digest": evalset.digest[:16],
                         "primary_metric": results.primary,
                         "metric_kinds": json.dumps(results.metrics, sort_keys=True),
                         "baseline": results.baseline or "", **(params or {})}
        c.log_batch(parent.info.run_id,
                    metrics=[Metric(k, v, now, 0) for k, v in parent_metrics.items()],
                    params=[Param(k, _param(v)) for k, v in parent_params.items()],
                    tags=[RunTag("workbench.child_runs",
                                 ",".join(f"{k}={v}" for k, v in tracked.child_run_ids.items()))])
        c.log_table(parent.info.run_id, data=_table(_redacted(results.frame, redact)),
                    artifact_file="results.json")
        c.log_inputs(parent.info.run_id, datasets=[dataset_input])
        c.set_terminated(parent.info.run_id, "FINISHED")
    except BaseException:
        with contextlib.suppress(Exception):  # a dead store: keep the first error, not this
            c.set_terminated(parent.info.run_id, "FAILED")
        raise
    return tracked


def _classification(results: Results) -> dict[str, dict[str, Any]]:
    from .evaluation.classification import categorical_metrics

    return {m: results.classification(m)
            for m in categorical_metrics(results.frame, results.metrics)}


def _log_classification(c: Any, run_id: str, report: Any, metric: str) -> None:
    """The confusion matrix with per-class recall as a table, and as an image."""
    c.log_table(run_id, data=_table(report.to_frame()),
                artifact_file=f"classification/{metric}_confusion.json")
    c.log_figure(run_id, report.confusion_figure(),
                 f"classification/{metric}_confusion.png")


def _redacted(frame: Any, redact: Callable[[str], str] | None) -> Any:
    if redact is None:
        return frame
    frame = frame.copy()
    # every free-text column: outputs, errors, scorer reasons and labels (which quote outputs)
    for column in frame.columns:
        if column in ("output", "error", "warning") or column.startswith(("reason.", "label.")):
            frame[column] = frame[column].map(lambda v: redact(v) if isinstance(v, str) else v)
    return frame


def _redacted_value(value: Any, redact: Callable[[str], str] | None) -> Any:
    if redact is None:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted_value(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted_value(v, redact) for v in value]
    return value


def _experiment_id(c: Any, name: str, uri: str, source_dir: Path | None) -> str:
    from mlflow.exceptions import MlflowException

    found = c.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:") and not uri.startswith("sqlite:///:memory:"):
        # keep artifacts next to the database, under mlruns/, whatever the cwd
        location = (artifact_root(source_dir) / name).as_uri()
    try:
        return c.create_experiment(name, artifact_location=location)
    except MlflowException as exc:  # another process created it since the look-up
        found = c.get_experiment_by_name(name)
        if exc.error_code != "RESOURCE_ALREADY_EXISTS" or found is None:
            raise
        return found.experiment_id


def _dataset_input(mlflow: Any, evalset: EvalSet) -> Any:
    from mlflow.entities import DatasetInput, InputTag

    with warnings.catch_warnings():
        # a local path "can be interpreted in multiple ways" by MLflow: all of them local
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(evalset.to_pandas(), source=evalset.source,
                                          name=evalset.name, digest=evalset.digest[:16])
    return DatasetInput(dataset._to_mlflow_entity(),
                        tags=[InputTag("mlflow.data.context", "eval")])


def _table(frame: Any) -> Any:
    # JSON artifacts cannot hold NaN; MLflow's table viewer shows None as empty.
    return frame.astype(object).where(frame.notna(), None)


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        if isinstance(value, str):  # a label such as "1" is text, not a measurement
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[str(key).replace("%", "pct")] = number
    return out


def _param(value: Any) -> str:
    return str(value)[:_MAX_PARAM]


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def load_results(run_id: str, *, uri: str | None = None) -> Results:
    """The results of an execution logged earlier, from its parent run's table."""
    from mlflow.exceptions import MlflowException

    from .errors import WorkbenchError
    from .results import Results

    c = client(uri)
    try:
        run = c.get_run(run_id)
    except MlflowException as exc:
        raise WorkbenchError(f"run {run_id}: {exc.message}") from exc
    parent = run.data.tags.get("mlflow.parentRunId")
    if parent:  # a variant's child run: the comparison needs the parent's table
        run = c.get_run(parent)
    params = run.data.params
    if "metric_kinds" not in params:
        raise WorkbenchError(f"run {run.info.run_id} was not logged by `workbench run`")
    frame = c.load_table(run.info.experiment_id, "results.json", run_ids=[run.info.run_id])
    frame = frame.drop(columns=["run_id"], errors="ignore")
    results = Results(frame, metrics=json.loads(params["metric_kinds"]),
                      primary=params["primary_metric"], experiment=params.get("experiment", ""),
                      baseline=params.get("baseline") or None)
    results.run_ids = {"parent": run.info.run_id}
    return results
