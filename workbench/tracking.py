"""MLflow tracking: one parent run per execution, one child run per variant.

All writes happen here, from one thread, in batches after the calls finish: the SQLite
store's connection pool is small and per-call writes from many workers starve it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import secrets
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .prompts.versions import VARIANT_TAG, client, register_version
from .rerun import FINGERPRINT_TAG, find_logged, fingerprint, fully_cached
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
                _log_traces(uri, experiment_id, run_id, frame, prompt_uri, evalset, redact)
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


_CALLS_PER_TRACE = 500  # bounds a trace: the store's request and the UI's span tree


def _log_traces(uri: str, experiment_id: str, run_id: str, frame: Any, prompt_uri: str,
                evalset: EvalSet, redact: Callable[[str], str] | None) -> int:
    """One LLM span per call, with its real start and end, written after the run.

    The calls of a variant run are the child spans of one trace linked to the run (one trace
    per ``_CALLS_PER_TRACE`` calls), written with two store calls per trace: ``start_trace``
    and one batched ``log_spans``; 2,000 calls take 0.8-1.3 s on SQLite.
    A trace per call took 30-40 ms a call, whatever the API: each trace costs a store
    transaction of ~10 ms of CPU in MLflow's SQLAlchemy store (~2.5 ms even batched through
    ``log_spans``, which cannot link it to the run), MLflow's exporter adds a second one per
    trace, and its async queue drops traces beyond 1,000 waiting. Each call stays findable:
    ``span.name = '<variant>/<example id>'``, ``span.status = 'ERROR'`` or
    ``span.attributes.<key>`` in ``search_traces`` or the UI's search finds its trace, and
    MLflow sums the spans' tokens and cost per trace.

    Like MLflow's own tracing, a failed write is logged, not raised. Returns the calls written.
    """
    from mlflow.tracing.client import TracingClient
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    calls = frame[~frame["cached"].astype(bool)]
    if calls.empty:
        return 0
    tracing = TracingClient(uri)
    # spans from a tracer of our own, not MLflow's: nothing exports them one by one
    tracer = TracerProvider(sampler=ALWAYS_ON, resource=Resource.get_empty(),
                            shutdown_on_exit=False).get_tracer("workbench")
    inputs = {e.id: dict(e.inputs) for e in evalset.examples}
    parts = range(0, len(calls), _CALLS_PER_TRACE)
    written = 0
    for number, first in enumerate(parts, start=1):
        chunk = calls.iloc[first:first + _CALLS_PER_TRACE]
        name = str(chunk["variant"].iloc[0])
        if len(parts) > 1:
            name += f" ({number}/{len(parts)})"
        try:
            info, spans = _calls_trace(tracer, name, experiment_id, run_id, chunk, prompt_uri,
                                       inputs, redact or (lambda text: text))
            tracing.start_trace(info)
            tracing.log_spans(experiment_id, spans)
        except Exception as exc:  # noqa: BLE001  (the results are logged; only the trace is lost)
            log.warning("MLflow trace %r of run %s not written: %s", name, run_id, exc)
            continue
        written += len(chunk)
    return written


def _calls_trace(tracer: Any, name: str, experiment_id: str, run_id: str, chunk: Any,
                 prompt_uri: str, inputs_by_id: Mapping[str, Mapping[str, Any]],
                 clean: Callable[[str], str]) -> tuple[Any, list[Any]]:
    """The trace info and the finished spans: a root, then one LLM span per call.

    MLflow's ``LiveSpan`` makes the root and one template LLM span; each call's span is
    that template's stored form with the call's own ids, times and values, read back with
    ``Span.from_dict`` (about 0.06 ms a span, values included, against 0.2-0.35 ms for a
    ``LiveSpan`` each).
    """
    from mlflow.entities import LiveSpan, Span, SpanType, TraceInfo, TraceLocation, TraceState
    from mlflow.tracing.constant import (
        TRACE_SCHEMA_VERSION,
        TRACE_SCHEMA_VERSION_KEY,
        SpanAttributeKey,
        TraceMetadataKey,
        TraceTagKey,
    )
    from mlflow.tracing.utils import dump_span_attribute_value as dump
    from opentelemetry.trace import set_span_in_context

    otel_root = tracer.start_span(name, start_time=int(chunk["started_at"].min() * 1e9))
    trace_id = f"tr-{otel_root.get_span_context().trace_id:032x}"  # MLflow's id of the trace
    parent = set_span_in_context(otel_root)
    template = LiveSpan(tracer.start_span("call", context=parent, start_time=0), trace_id,
                        SpanType.LLM)
    template.end(end_time_ns=0)
    stored = template.to_immutable_span().to_dict()  # MLflow's own keys: id, type, level
    constant = {k: v for k, v in stored["attributes"].items()
                if k not in (SpanAttributeKey.INPUTS, SpanAttributeKey.OUTPUTS)}
    constant["prompt_version"] = dump(prompt_uri)
    spans, errors, end = [], 0, 0
    for row in chunk.itertuples(index=False):
        start = int(row.started_at * 1e9)
        latency = 0.0 if math.isnan(row.latency_s) else row.latency_s
        finish = start + int(latency * 1e9)
        end = max(end, finish)
        variables = {k: clean(v) if isinstance(v, str) else v
                     for k, v in inputs_by_id.get(row.example_id, {}).items()}
        tokens = int(row.prompt_tokens), int(row.completion_tokens)
        cost = float(row.cost)
        output = _text(row.output)
        attributes = {
            **constant,
            SpanAttributeKey.INPUTS: dump({"example_id": row.example_id,
                                           "variables": variables, "repeat": row.repeat}),
            SpanAttributeKey.OUTPUTS: dump({"output": clean(output) if output else None}),
            "model": dump(row.model), "answered_by": dump(_text(row.answered_by) or ""),
            "prompt_tokens": dump(tokens[0]), "completion_tokens": dump(tokens[1]),
            "cost_usd": dump(cost), "latency_s": dump(latency),
            "retries": dump(int(row.retries)), "fallback": dump(bool(row.fallback)),
            # MLflow's keys too: its UI shows them and the store sums them over the trace
            SpanAttributeKey.CHAT_USAGE: dump({"input_tokens": tokens[0],
                                               "output_tokens": tokens[1],
                                               "total_tokens": sum(tokens)}),
            SpanAttributeKey.LLM_COST: dump({"total_cost": cost}),
        }
        error = _text(row.error)  # pandas makes a missing text NaN, not None
        if error is not None:
            errors += 1
            attributes["error"] = dump(clean(error))
        spans.append(Span.from_dict({
            **stored,
            "span_id": base64.b64encode(secrets.token_bytes(8)).decode(),
            "name": f"{row.variant}/{row.example_id}",
            "start_time_unix_nano": start,
            "end_time_unix_nano": finish,
            "status": {"code": "STATUS_CODE_ERROR" if error is not None else "STATUS_CODE_OK",
                       "message": ""},
            "attributes": attributes,
        }))
    root = LiveSpan(otel_root, trace_id, SpanType.CHAIN)
    root.set_inputs({"variant": str(chunk["variant"].iloc[0]), "prompt_version": prompt_uri,
                     "calls": len(spans)})
    root.set_attribute("prompt_version", prompt_uri)
    # a failed call makes the trace an error, as a failed call's own trace would be
    root.end(outputs={"calls": len(spans), "errors": errors},
             status="ERROR" if errors else "OK", end_time_ns=end)
    info = TraceInfo(
        trace_id=trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=root.start_time_ns // 1_000_000,
        execution_duration=(end - root.start_time_ns) // 1_000_000,
        state=TraceState.ERROR if errors else TraceState.OK,
        trace_metadata={TraceMetadataKey.SOURCE_RUN: run_id,
                        TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION)},
        tags={TraceTagKey.TRACE_NAME: name})
    return info, [root.to_immutable_span(), *spans]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


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
