"""The calls of a logged run as MLflow traces: one LLM span per call, written after the run
from the results table (see ``log_traces``)."""

from __future__ import annotations

import base64
import logging
import math
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

log = logging.getLogger("workbench.tracking")

if TYPE_CHECKING:
    from .evaluation.evalsets import EvalSet


_CALLS_PER_TRACE = 500  # bounds a trace: the store's request and the UI's span tree


def log_traces(uri: str, experiment_id: str, run_id: str, frame: Any, prompt_uri: str,
               evalset: EvalSet, redact: Callable[[str], str] | None) -> int:
    """One LLM span per call, with its real start and end, written after the run.

    The calls of a variant run are the child spans of one trace linked to the run (one trace
    per ``_CALLS_PER_TRACE`` calls), written with two store calls per trace: ``start_trace``
    and one batched ``log_spans``: a trace per call would cost a store transaction (two,
    with MLflow's exporter) per call, and MLflow's async queue drops traces beyond 1,000
    waiting. Each call stays findable:
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
    ``Span.from_dict`` (cheaper than a ``LiveSpan`` per call).
    """
    from mlflow.entities import LiveSpan, SpanType
    from opentelemetry.trace import set_span_in_context

    otel_root = tracer.start_span(name, start_time=int(chunk["started_at"].min() * 1e9))
    trace_id = f"tr-{otel_root.get_span_context().trace_id:032x}"  # MLflow's id of the trace
    stored, constant = _span_template(tracer, set_span_in_context(otel_root), trace_id,
                                      prompt_uri)
    spans, errors, end = [], 0, 0
    for row in chunk.itertuples(index=False):
        span, finish, failed = _call_span(row, stored, constant, inputs_by_id, clean)
        spans.append(span)
        errors += failed
        end = max(end, finish)
    root = LiveSpan(otel_root, trace_id, SpanType.CHAIN)
    root.set_inputs({"variant": str(chunk["variant"].iloc[0]), "prompt_version": prompt_uri,
                     "calls": len(spans)})
    root.set_attribute("prompt_version", prompt_uri)
    # a failed call makes the trace an error, as a failed call's own trace would be
    root.end(outputs={"calls": len(spans), "errors": errors},
             status="ERROR" if errors else "OK", end_time_ns=end)
    info = _trace_info(trace_id, experiment_id, run_id, name, root, end, errors)
    return info, [root.to_immutable_span(), *spans]


def _span_template(tracer: Any, parent: Any, trace_id: str, prompt_uri: str
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """An LLM span's stored form (MLflow's own keys: id, type, level), and the attributes
    every call's span shares."""
    from mlflow.entities import LiveSpan, SpanType
    from mlflow.tracing.constant import SpanAttributeKey
    from mlflow.tracing.utils import dump_span_attribute_value as dump

    template = LiveSpan(tracer.start_span("call", context=parent, start_time=0), trace_id,
                        SpanType.LLM)
    template.end(end_time_ns=0)
    stored = template.to_immutable_span().to_dict()
    constant = {k: v for k, v in stored["attributes"].items()
                if k not in (SpanAttributeKey.INPUTS, SpanAttributeKey.OUTPUTS)}
    constant["prompt_version"] = dump(prompt_uri)
    return stored, constant


def _call_span(row: Any, stored: dict[str, Any], constant: dict[str, Any],
               inputs_by_id: Mapping[str, Mapping[str, Any]], clean: Callable[[str], str]
               ) -> tuple[Any, int, bool]:
    """One call's span, when it ended (ns), and whether the call failed."""
    from mlflow.entities import Span
    from mlflow.tracing.constant import SpanAttributeKey
    from mlflow.tracing.utils import dump_span_attribute_value as dump

    start = int(row.started_at * 1e9)
    latency = 0.0 if math.isnan(row.latency_s) else row.latency_s
    finish = start + int(latency * 1e9)
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
        attributes["error"] = dump(clean(error))
        attributes["error_type"] = dump(_text(getattr(row, "error_type", None)) or "")
    span = Span.from_dict({
        **stored,
        "span_id": base64.b64encode(secrets.token_bytes(8)).decode(),
        "name": f"{row.variant}/{row.example_id}",
        "start_time_unix_nano": start,
        "end_time_unix_nano": finish,
        "status": {"code": "STATUS_CODE_ERROR" if error is not None else "STATUS_CODE_OK",
                   "message": ""},
        "attributes": attributes,
    })
    return span, finish, error is not None


def _trace_info(trace_id: str, experiment_id: str, run_id: str, name: str, root: Any,
                end: int, errors: int) -> Any:
    """The trace's record, linked to the run that made its calls."""
    from mlflow.entities import TraceInfo, TraceLocation, TraceState
    from mlflow.tracing.constant import (
        TRACE_SCHEMA_VERSION,
        TRACE_SCHEMA_VERSION_KEY,
        TraceMetadataKey,
        TraceTagKey,
    )

    return TraceInfo(
        trace_id=trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=root.start_time_ns // 1_000_000,
        execution_duration=(end - root.start_time_ns) // 1_000_000,
        state=TraceState.ERROR if errors else TraceState.OK,
        trace_metadata={TraceMetadataKey.SOURCE_RUN: run_id,
                        TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION)},
        tags={TraceTagKey.TRACE_NAME: name})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
