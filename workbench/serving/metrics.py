"""Prometheus metrics of served requests, named after the OpenTelemetry GenAI conventions.

``gen_ai_client_token_usage`` (``gen_ai_token_type`` = input/output) and
``gen_ai_client_operation_duration_seconds`` are histograms with the conventions' advised
buckets; cost, unpriced calls, requests and errors are counters. Every series is labelled
by application, request type, prompt, prompt version and the model that answered - never
by user: users are unbounded. Each app has its own ``CollectorRegistry`` (not the process's
global one), so several apps and tests do not share counts. Fed with the usage record each
request makes (``serving.reply.record_call``): a few dictionary look-ups and additions. With
``max_concurrency``, the calls in flight and the queue depth per model are gauges read at
each scrape, and requests refused with a 429 are counted by reason.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LABELS = ("application", "request_type", "prompt", "prompt_version", "gen_ai_operation_name",
          "gen_ai_response_model")
# the OpenTelemetry GenAI semantic conventions' advised bucket boundaries
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics"]


class ServingMetrics:
    """The metrics of one app; ``observe(record)`` counts one served request."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tokens = Histogram(
            "gen_ai_client_token_usage", "Tokens used per model call (input or output)",
            [*LABELS, "gen_ai_token_type"], buckets=TOKEN_BUCKETS, registry=r)
        self.duration = Histogram(
            "gen_ai_client_operation_duration_seconds", "Duration of the model call",
            LABELS, buckets=DURATION_BUCKETS, registry=r)
        self.cost = Counter("workbench_cost_usd", "US dollars spent on model calls (priced "
                            "calls only; see workbench_unpriced_calls)", LABELS, registry=r)
        self.unpriced = Counter("workbench_unpriced_calls", "Answered calls on a model with no "
                                "known price (counted at $0)", LABELS, registry=r)
        self.requests = Counter("workbench_requests", "Served requests by status (ok, error, "
                                "cancelled)", [*LABELS, "status"], registry=r)
        self.errors = Counter("workbench_errors", "Failed requests by error type",
                              [*LABELS, "error_type"], registry=r)
        self.rejected = Counter("workbench_rejected_requests", "Requests refused before any "
                                "call: a spent budget, or a saturated model (HTTP 429)",
                                ["prompt", "reason"], registry=r)
        self._watched: list[Any] = []
        r.register(_Concurrency(self._watched))

    def watch(self, service: Any) -> None:
        """Report ``service``'s calls in flight and queue depth per model at each scrape."""
        self._watched.append(service)

    def observe(self, record: Any) -> None:
        """Count one usage record (``workbench.observe.record.UsageRecord``)."""
        labels = (record.application or "", record.request_type or "", record.prompt or "",
                  "" if record.prompt_version is None else str(record.prompt_version),
                  "chat", record.model or "")
        self.requests.labels(*labels, record.status).inc()
        call = record.steps.get("call")
        if call is not None and record.status != "cancelled":
            self.duration.labels(*labels).observe(call)
        if record.status == "error":
            self.errors.labels(*labels, record.error_type or "unknown").inc()
            return
        if record.status != "ok":
            return
        self.tokens.labels(*labels, "input").observe(record.tokens_in)
        self.tokens.labels(*labels, "output").observe(record.tokens_out)
        if record.priced:
            self.cost.labels(*labels).inc(record.cost)
        else:
            self.unpriced.labels(*labels).inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class _Concurrency:
    """Gauges read at scrape time from each service's limiter: nothing to keep in step."""

    def __init__(self, services: list[Any]) -> None:
        self.services = services

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        labels = ["prompt", "gen_ai_request_model"]
        in_flight = GaugeMetricFamily("workbench_in_flight_requests",
                                      "Model calls in flight", labels=labels)
        queued = GaugeMetricFamily("workbench_queue_depth",
                                   "Requests waiting for a call slot", labels=labels)
        limit = GaugeMetricFamily("workbench_max_concurrency",
                                  "Calls in flight allowed per model", labels=["prompt"])
        for service in self.services:
            if service.limiter is None:
                continue
            limit.add_metric([service.name], service.limiter.limit)
            for model, (flying, waiting) in service.limiter.state().items():
                in_flight.add_metric([service.name, model], flying)
                queued.add_metric([service.name, model], waiting)
        return [in_flight, queued, limit]
