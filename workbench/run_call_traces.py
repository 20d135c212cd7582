"""One MLflow trace per call, for MLflow's own evaluation and trace views (opt-in:
``run.trace_calls: true`` in experiment.yaml).

Those views list a run's traces one row per request: the request and response columns
come from each trace's previews, the judges' columns from its assessments. The default
tracing (``run_traces``) packs a variant's calls into one trace, which is cheaper but shows
there as a single row. Here each call is a trace of one LLM span whose inputs are the
example's variables and whose output is the answer, carrying the scores as feedback (with
each scorer's reason) and the expected fields as expectations, all written with two store
calls per trace.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

log = logging.getLogger("workbench.tracking")

if TYPE_CHECKING:
    from .evaluation.evalsets import EvalSet

_PREVIEW = 1000  # characters of request and response the trace list shows


def log_call_traces(uri: str, experiment_id: str, run_id: str, frame: Any, prompt_uri: str,
                    evalset: EvalSet, redact: Callable[[str], str] | None,
                    expected: Sequence[str] = ()) -> int:
    """A trace per call made (cache hits were not calls) of one variant's run, linked to it.

    A failed write is logged, not raised, like MLflow's own tracing. Returns the traces
    written.
    """
    from mlflow.tracing.client import TracingClient
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    calls = frame[~frame["cached"].astype(bool)]
    tracing = TracingClient(uri)
    tracer = TracerProvider(sampler=ALWAYS_ON, resource=Resource.get_empty(),
                            shutdown_on_exit=False).get_tracer("workbench")
    inputs = {e.id: dict(e.inputs) for e in evalset.examples}
    clean = redact or (lambda text: text)
    metrics = [c[6:] for c in frame.columns if c.startswith("score.")]
    written = 0
    for row in calls.to_dict("records"):
        try:
            info, span = _call_trace(tracer, experiment_id, run_id, row, prompt_uri,
                                     inputs.get(row["example_id"], {}), clean, metrics,
                                     expected)
            tracing.start_trace(info)
            tracing.log_spans(experiment_id, [span])
        except Exception as exc:  # noqa: BLE001  (the results are logged; only the trace is lost)
            log.warning("MLflow trace of call %s/%s not written: %s", row["variant"],
                        row["example_id"], exc)
            continue
        written += 1
    return written


def _call_trace(tracer: Any, experiment_id: str, run_id: str, row: dict[str, Any],
                prompt_uri: str, example: dict[str, Any], clean: Callable[[str], str],
                metrics: Sequence[str], expected: Sequence[str]) -> tuple[Any, Any]:
    from mlflow.entities import LiveSpan, SpanType, TraceInfo, TraceLocation, TraceState
    from mlflow.tracing.constant import (
        TRACE_SCHEMA_VERSION,
        TRACE_SCHEMA_VERSION_KEY,
        SpanAttributeKey,
        TraceMetadataKey,
        TraceTagKey,
    )

    start = int(row["started_at"] * 1e9)
    latency = 0.0 if _missing(row["latency_s"]) else float(row["latency_s"])
    name = f"{row['variant']}/{row['example_id']}"
    otel = tracer.start_span(name, start_time=start)
    trace_id = f"tr-{otel.get_span_context().trace_id:032x}"
    span = LiveSpan(otel, trace_id, SpanType.LLM)
    variables = {k: clean(v) if isinstance(v, str) else v
                 for k, v in example.items() if k not in expected and k != "id"}
    output = clean(row["output"]) if isinstance(row["output"], str) else None
    error = clean(row["error"]) if isinstance(row["error"], str) else None
    tokens = int(row["prompt_tokens"]), int(row["completion_tokens"])
    span.set_inputs(variables)
    span.set_attributes({
        "example_id": str(row["example_id"]), "repeat": int(row["repeat"]),
        "model": row["model"], "prompt_version": prompt_uri, "latency_s": latency,
        SpanAttributeKey.CHAT_USAGE: {"input_tokens": tokens[0], "output_tokens": tokens[1],
                                      "total_tokens": sum(tokens)},
        SpanAttributeKey.LLM_COST: {"total_cost": float(row["cost"])}})
    if error is not None:
        span.set_attribute("error", error)
    span.end(outputs={"output": output}, status="ERROR" if error is not None else "OK",
             end_time_ns=start + int(latency * 1e9))
    info = TraceInfo(
        trace_id=trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=start // 1_000_000, execution_duration=int(latency * 1000),
        state=TraceState.ERROR if error is not None else TraceState.OK,
        request_preview=json.dumps(variables, ensure_ascii=False, default=str)[:_PREVIEW],
        response_preview=(output if output is not None else error or "")[:_PREVIEW],
        trace_metadata={TraceMetadataKey.SOURCE_RUN: run_id,
                        TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION)},
        tags={TraceTagKey.TRACE_NAME: name, "workbench.example_id": str(row["example_id"]),
              "workbench.variant": str(row["variant"])},
        assessments=_assessments(trace_id, row, example, metrics, expected, clean))
    return info, span.to_immutable_span()


def _assessments(trace_id: str, row: dict[str, Any], example: dict[str, Any],
                 metrics: Sequence[str], expected: Sequence[str],
                 clean: Callable[[str], str]) -> list[Any]:
    """Each score as feedback from the scorer (with its reason), each expected field as an
    expectation: the columns of MLflow's evaluation view."""
    from mlflow.entities import AssessmentSource, Expectation, Feedback

    code = AssessmentSource(source_type="CODE", source_id="workbench")
    found: list[Any] = []
    for metric in metrics:
        value = row.get(f"score.{metric}")
        if _missing(value):
            continue
        reason = row.get(f"reason.{metric}")
        found.append(Feedback(name=metric, value=float(value), source=code, trace_id=trace_id,
                              rationale=clean(reason) if isinstance(reason, str) else None))
    for field in expected:
        if field in example:
            value = example[field]
            found.append(Expectation(name=field, source=code, trace_id=trace_id,
                                     value=clean(value) if isinstance(value, str) else value))
    return found


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
