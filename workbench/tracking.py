"""MLflow tracking: one parent run per execution, one child run per variant.

All writes happen here, from one thread, in batches after the calls finish: the SQLite
store's connection pool is small and per-call writes from many workers starve it.
"""

from __future__ import annotations

import contextlib
import functools
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
from .run_frames import (
    ERRORS_TAG,
    EXAMPLE_FIELD_PREFIXES,
    error_tags,
    first_call_ms,
    json_table,
    redacted,
    redacted_value,
    with_example_fields,
)
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
UI_ENV = "WORKBENCH_MLFLOW_UI"  # where the MLflow UI of a local store is served
LOCAL_UI = "http://127.0.0.1:5000"  # `make ui`
REQUEST_TYPE_TAG = "workbench.request_type"  # what gateway.routing reads of its evidence


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
                  reuse: bool = False, partial: str | None = None,
                  expected: Sequence[str] = (), trace_calls: bool = False,
                  request_type: str | None = None) -> TrackedExecution:
    """Write the execution to MLflow and register each prompt variant's version.

    With ``reuse``, an execution served wholly from the cache that matches a finished parent
    run (same config, eval set, prompts, outputs and scores) is not logged again: that run's
    ids come back, with ``reused`` set.

    With ``trace``, every call made in this execution (cache hits were not calls) becomes
    an LLM span in a trace linked to its variant's run: inputs, output, tokens, cost,
    latency, retries, fallback and the prompt version. ``redact`` rewrites text before it
    is logged. ``partial`` (why the run stopped early) tags every run ``partial=true``.
    ``trace_calls`` adds one trace per call with its scores as feedback and the expected
    fields as expectations (``run_call_traces``), for MLflow's evaluation view.
    ``expected`` names the eval-set fields scorers compare against: the per-example tables
    show them as ``expectations.<field>`` and the other fields as ``inputs.<field>``.
    ``request_type`` (the served traffic the eval set stands for) tags every run
    ``workbench.request_type``: a route rule for that type can cite the run as evidence.
    Runs of this experiment left RUNNING by a process that is gone are marked KILLED first.
    """
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
    tags = source_tags(source_dir)
    if request_type:
        tags[REQUEST_TYPE_TAG] = request_type
    if partial:
        tags.update({PARTIAL_TAG: "true", "workbench.partial_reason": partial})
    run = _Logging(c=c, uri=uri, experiment=experiment, experiment_id=experiment_id,
                   registry_name=registry_name, evalset=evalset, results=results,
                   params=dict(params or {}), tags=tags, trace=trace, redact=redact,
                   expected=tuple(expected), trace_calls=trace_calls)
    parent_id = _start_parent(run, variants, digest)
    tracked = TrackedExecution(experiment_id, parent_id, tracking_uri=uri)
    try:
        for variant in variants:
            version, run_id = _log_variant(run, variant, parent_id)
            tracked.prompt_versions[variant.name] = version
            tracked.child_run_ids[variant.name] = run_id
        _finish_parent(run, parent_id, variants, report, tracked.child_run_ids)
    except BaseException:
        with contextlib.suppress(Exception):  # a dead store: keep the first error, not this
            c.set_terminated(parent_id, "FAILED")
        raise
    return tracked


@dataclass
class _Logging:
    """What every step of logging one execution reads."""

    c: Any
    uri: str
    experiment: str
    experiment_id: str
    registry_name: str
    evalset: EvalSet
    results: Results
    params: dict[str, Any]
    tags: dict[str, str]
    trace: bool
    redact: Callable[[str], str] | None
    expected: tuple[str, ...]
    trace_calls: bool = False
    short_id: str = ""
    now: int = field(default_factory=lambda: int(time.time() * 1000))

    @functools.cached_property
    def summary(self) -> Any:
        return self.results.summary()

    @functools.cached_property
    def dataset_input(self) -> Any:
        return _dataset_input(self.evalset)

    @functools.cached_property
    def classified(self) -> dict[str, dict[str, Any]]:
        return _classification(self.results)

    def table(self, frame: Any) -> Any:
        """A per-example table as logged: redacted, with the example's fields beside it."""
        return json_table(with_example_fields(redacted(frame, self.redact), self.evalset,
                                              self.expected, self.redact))


def _start_parent(run: _Logging, variants: Sequence[Variant], digest: str) -> str:
    """The parent run, named after the experiment, its variants and its own short id, and
    started when the first call started so its duration covers the calls."""
    names = [v.name for v in variants]
    shown = " vs ".join(names) if len(names) <= 4 else \
        f"{', '.join(names[:3])} +{len(names) - 3} more"
    parent = run.c.create_run(run.experiment_id, start_time=first_call_ms(run.results.frame),
                              tags={**run.tags, FINGERPRINT_TAG: digest},
                              run_name=f"{run.experiment}: {shown}")
    run_id = parent.info.run_id
    run.short_id = run_id[:7]
    run.c.update_run(run_id, name=f"{run.experiment}: {shown} · {run.short_id}")
    return run_id


def _log_variant(run: _Logging, variant: Variant, parent_id: str) -> tuple[int, str]:
    """Register the variant's prompt version and log its child run; returns both ids."""
    from mlflow.entities import Metric, Param

    c, registry_name = run.c, run.registry_name
    version, _created = register_version(
        registry_name, variant.prompt, variant.model,
        tags={VARIANT_TAG: variant.name, "workbench.experiment": run.experiment},
        commit_message=variant.prompt.description
        or f"variant {variant.name} of experiment {run.experiment}",
        mlflow_client=c)
    frame = run.results.frame[run.results.frame["variant"] == variant.name]
    status_tags = error_tags(frame)
    child = c.create_run(
        run.experiment_id, run_name=f"{variant.name} · {run.experiment} · {run.short_id}",
        start_time=first_call_ms(frame),
        tags={**run.tags, **status_tags, "mlflow.parentRunId": parent_id,
              "workbench.variant": variant.name})
    run_id = child.info.run_id
    prompt_uri = f"prompts:/{registry_name}/{version}"
    variant_params = {
        "variant": variant.name, "prompt": variant.prompt_name, "prompt_uri": prompt_uri,
        "prompt_hash": variant.prompt.content_hash[:16], "model": variant.model.model,
        **{f"model.{k}": v for k, v in variant.model.params.items()},
        "eval_set": run.evalset.name, "eval_set_digest": run.evalset.digest[:16],
        **run.params,
    }
    summary = run.summary
    row = summary.loc[variant.name] if variant.name in summary.index else None
    metrics = _finite(row.to_dict()) if row is not None else {}
    c.log_batch(run_id, metrics=[Metric(k, v, run.now, 0) for k, v in metrics.items()],
                params=[Param(k, _param(v)) for k, v in variant_params.items()])
    c.log_table(run_id, data=run.table(frame), artifact_file="results.json")
    for metric, reports in run.classified.items():
        if variant.name in reports:
            _log_classification(c, run_id, reports[variant.name], metric)
    c.log_inputs(run_id, datasets=[run.dataset_input])
    c.link_prompt_version_to_run(run_id, prompt_uri)
    if run.trace:
        log_traces(run.uri, run.experiment_id, run_id, frame, prompt_uri, run.evalset,
                   run.redact)
    if run.trace_calls:
        from .run_call_traces import log_call_traces

        log_call_traces(run.uri, run.experiment_id, run_id, frame, prompt_uri, run.evalset,
                        run.redact, run.expected)
    c.set_terminated(run_id, "FAILED" if status_tags.get(ERRORS_TAG) == "all" else "FINISHED")
    return version, run_id


def _finish_parent(run: _Logging, parent_id: str, variants: Sequence[Variant],
                   report: ComparisonReport | None, child_run_ids: Mapping[str, str]) -> None:
    """The A/B report, the whole table and the parent's status: FAILED when no call
    answered, so the MLflow UI does not show such a run as finished cleanly."""
    from mlflow.entities import Metric, Param, RunTag

    c, results = run.c, run.results
    parent_metrics: dict[str, float] = {}
    if report is not None:
        parent_metrics.update(_finite(report.mlflow_metrics()))
        # caveats quote answers (a degenerate variant's constant output)
        c.log_dict(parent_id, redacted_value(report.to_dict(), run.redact), "ab_report.json")
        c.log_text(parent_id, redacted_value(report.to_text(), run.redact), "ab_report.txt")
        c.log_figure(parent_id, report.forest_plot(), "ab_forest_plot.png")
    parent_params = {"experiment": run.experiment,
                     "variants": ",".join(v.name for v in variants),
                     "eval_set": run.evalset.name, "eval_set_digest": run.evalset.digest[:16],
                     "primary_metric": results.primary,
                     "metric_kinds": json.dumps(results.metrics, sort_keys=True),
                     "baseline": results.baseline or "", **run.params}
    status_tags = error_tags(results.frame)
    children = ",".join(f"{k}={v}" for k, v in child_run_ids.items())
    c.log_batch(parent_id,
                metrics=[Metric(k, v, run.now, 0) for k, v in parent_metrics.items()],
                params=[Param(k, _param(v)) for k, v in parent_params.items()],
                tags=[RunTag("workbench.child_runs", children),
                      *[RunTag(k, v) for k, v in status_tags.items()]])
    c.log_table(parent_id, data=run.table(results.frame), artifact_file="results.json")
    c.log_inputs(parent_id, datasets=[run.dataset_input])
    c.set_terminated(parent_id,
                     "FAILED" if status_tags.get(ERRORS_TAG) == "all" else "FINISHED")


def _classification(results: Results) -> dict[str, dict[str, Any]]:
    from .evaluation.classification import categorical_metrics

    return {m: results.classification(m)
            for m in categorical_metrics(results.frame, results.metrics)}


def _log_classification(c: Any, run_id: str, report: Any, metric: str) -> None:
    """The confusion matrix with per-class recall as a table, and as an image."""
    c.log_table(run_id, data=json_table(report.to_frame()),
                artifact_file=f"classification/{metric}_confusion.json")
    c.log_figure(run_id, report.confusion_figure(),
                 f"classification/{metric}_confusion.png")


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


def _dataset_input(evalset: EvalSet) -> Any:
    import mlflow
    from mlflow.entities import DatasetInput, InputTag

    with warnings.catch_warnings():
        # a local path "can be interpreted in multiple ways" by MLflow: all of them local
        warnings.simplefilter("ignore", UserWarning)
        # and its schema "cannot represent missing values" in integer columns: no model here
        dataset = mlflow.data.from_pandas(evalset.to_pandas(), source=evalset.source,
                                          name=evalset.name, digest=evalset.digest[:16])
        entity = dataset._to_mlflow_entity()
    return DatasetInput(entity, tags=[InputTag("mlflow.data.context", "eval")])


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


def ui_url(uri: str | None = None) -> str:
    """The MLflow UI that shows the store at ``uri`` (default: the project's).

    A tracking server serves its own UI, so its URL is the link; a local store's UI is
    wherever ``WORKBENCH_MLFLOW_UI`` says, else ``make ui``'s address.
    """
    import os

    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return os.environ.get(UI_ENV, LOCAL_UI).rstrip("/")


def run_url(run_id: str, *, experiment_id: str | None = None, uri: str | None = None) -> str:
    """A link to one run in the MLflow UI of ``uri``."""
    base = ui_url(uri)
    if experiment_id:
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    return f"{base}/#/runs/{run_id}"


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
    frame = frame.drop(columns=["run_id", *[c for c in frame.columns
                                            if c.startswith(EXAMPLE_FIELD_PREFIXES)]],
                       errors="ignore")
    results = Results(frame, metrics=json.loads(params["metric_kinds"]),
                      primary=params["primary_metric"], experiment=params.get("experiment", ""),
                      baseline=params.get("baseline") or None)
    results.run_ids = {"parent": run.info.run_id}
    return results
