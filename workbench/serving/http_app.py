"""The HTTP face of :class:`~workbench.serving.PromptService`: a FastAPI app.

``POST /v1/prompts/{name}/complete`` takes the template's variables and answers with the
output, the version that produced it, token usage, cost and latency, and, for a prompt
served with an index, the documents retrieved into ``{{context}}`` (``sources``). Bad bodies
get a 422 that names the field (a missing or unexpected variable included), never a 500; a
body over the size limit is a 413, a prompt over the model's context window a 422 (nothing
is sent); a failing model is a 502, its text scrubbed of keys; a spent budget is a 429 with
the reason and, as ``Retry-After``, the seconds until the budget's period resets; so is a
request when the model's calls in flight and its queue are full (``max_concurrency``). With
a token, the prompt routes want ``Authorization: Bearer <token>``; the health probe and the
OpenAPI docs stay open, but without the token the probe says only whether each prompt's
registry is ok (the versions and the reasons, which may name the store, are for the token's
holders).

FastAPI is imported at the top: only ``workbench serve`` and applications import this module.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from ..errors import GatewayError, RegistryError, TemplateError
from ..gateway.client import ContextWindowError
from ..gateway.scrub import scrub
from ..observe.budgets import BudgetExceeded
from .concurrency import Saturated
from .feedback import add_route as add_feedback_route
from .guards import GuardBlocked, count_hits
from .metrics import CONTENT_TYPE_LATEST, ServingMetrics
from .retrieval import CONTEXT

if TYPE_CHECKING:
    from .service import PromptService

Scalar = str | int | float | bool | None


class CompleteRequest(BaseModel):
    """The variables of the template, and tags for cost attribution (application, user...)."""

    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Scalar | list[Any] | dict[str, Any]] = Field(
        default_factory=dict, examples=[{"ticket": "My invoice is wrong"}])
    tags: dict[str, str] = Field(default_factory=dict,
                                 examples=[{"user": "u-123", "request_type": "triage"}])


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompleteResponse(BaseModel):
    output: str
    prompt: str
    alias: str
    version: int
    model: str
    usage: Usage
    cost: float = Field(description="US dollars, at the model config's prices, else "
                                    "litellm's price table (0 when unknown)")
    latency_s: float = Field(description="the model call's duration")
    tags: dict[str, str]
    request_id: str = Field("", description="for POST /v1/feedback on this answer")
    sources: list[str] = Field(default_factory=list,
                               description="ids of the documents retrieved into {{context}}, "
                                           "best first (empty for a prompt served without an "
                                           "index)")


MAX_BODY_BYTES = 1_000_000


def create_app(services: PromptService | Iterable[PromptService], *,
               token: str | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """An app serving one or more prompts, each under its own name.

    A body over ``max_body_bytes`` is refused with a 413 before it is read into memory.
    """
    from .. import __version__

    by_name = _by_name(services)
    app = FastAPI(title="Prompt Workbench serving", version=__version__,
                  description="Prompts promoted in MLflow's prompt registry, served over HTTP: "
                              + ", ".join(f"`{s.name}@{s.alias}`" for s in by_name.values()))
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    metrics = app.state.metrics = ServingMetrics()  # a registry of this app's own
    for service in by_name.values():
        service.observers.append(metrics.observe)
        metrics.watch(service)
    count_hits(metrics.registry, by_name.values())  # workbench_guard_hits_total
    _add_status_routes(app, by_name, metrics, token)
    _add_complete_route(app, by_name, metrics, token)
    add_feedback_route(app, by_name.values(), _token_check(token))  # POST /v1/feedback
    return app


def _by_name(services: PromptService | Iterable[PromptService]) -> dict[str, PromptService]:
    if not isinstance(services, Iterable):
        services = [services]
    by_name: dict[str, PromptService] = {}
    for service in services:
        if service.name in by_name:
            raise ValueError(f"{service.name!r} is served twice; one alias per prompt name")
        by_name[service.name] = service
    return by_name


def _authorized(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(value.encode(), token.encode())


def _token_check(token: str | None) -> Any:
    """A 401 without the bearer token (when one is configured)."""

    def authorize(request: Request) -> None:
        if not _authorized(request, token):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return authorize


def _authorize(token: str | None) -> Any:
    """The bearer-token check as a route dependency."""
    return Depends(_token_check(token))


def _add_status_routes(app: FastAPI, by_name: dict[str, PromptService],
                       metrics: ServingMetrics, token: str | None) -> None:
    @app.get("/healthz", summary="liveness and the registry's state; with the bearer token "
                                 "(or none configured) also the versions served and why")
    def healthz(request: Request) -> dict[str, Any]:
        detail = _authorized(request, token)
        states = [service.status(detail=detail) for service in by_name.values()]
        degraded = any(state["registry"] != "ok" for state in states)
        return {"status": "degraded" if degraded else "ok", "prompts": states}

    @app.get("/metrics", summary="Prometheus metrics: token usage and operation duration "
                                 "(OpenTelemetry GenAI names), cost, requests, errors",
             dependencies=[_authorize(token)], response_class=Response)
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _add_complete_route(app: FastAPI, by_name: dict[str, PromptService],
                        metrics: ServingMetrics, token: str | None) -> None:
    @app.post("/v1/prompts/{name}/complete", response_model=CompleteResponse,
              summary="render the served version with the variables and call its model",
              dependencies=[_authorize(token)],
              responses={404: {"description": "this server does not serve that prompt"},
                         413: {"description": "the body is over the size limit"},
                         422: {"description": "a field or a template variable is wrong, or "
                                            "the prompt is over the model's context window"},
                         400: {"description": "a guard blocked the request's input or "
                                            "output (body: guard, stage, reason)"},
                         429: {"description": "a budget of the request's application or "
                                            "user is spent (Retry-After: until it resets), "
                                            "or the model's calls in flight and queue are "
                                            "full (Retry-After: an estimate)"},
                         502: {"description": "the model call failed"},
                         503: {"description": "the served version cannot be called"}})
    async def complete(name: str, body: CompleteRequest) -> CompleteResponse:
        service = by_name.get(name)
        if service is None:
            raise HTTPException(404, f"{name!r} is not served here; try one of {sorted(by_name)}")
        prompt = await service.aprompt()  # the one look-up: checked and called alike
        expected, given = prompt.template.variables, body.variables
        if service.index is not None:  # retrieval fills it, and refuses one given (a 422)
            expected = expected - {CONTEXT}
            given = {k: v for k, v in given.items() if k != CONTEXT}
        problems = _variable_problems(given, expected)
        if problems:
            raise RequestValidationError(problems)
        try:
            reply = await service.acomplete_version(prompt, body.variables, tags=body.tags)
        except Exception as exc:
            answer = _http_error(exc, name, prompt, metrics)
            if answer is None:
                raise
            raise answer from exc
        return CompleteResponse(
            output=reply.text, prompt=reply.prompt, alias=service.alias, version=reply.version,
            model=reply.model, cost=reply.cost, latency_s=reply.latency_s, tags=reply.tags,
            request_id=reply.request_id, sources=list(reply.sources),
            usage=Usage(prompt_tokens=reply.prompt_tokens,
                        completion_tokens=reply.completion_tokens,
                        total_tokens=reply.prompt_tokens + reply.completion_tokens))


def _http_error(exc: Exception, name: str, prompt: Any,
                metrics: ServingMetrics) -> HTTPException | None:
    """The HTTP answer to a request that failed; None for the unforeseen (a 500)."""
    if isinstance(exc, BudgetExceeded):  # refused before any call
        metrics.rejected.labels(name, "budget").inc()
        return HTTPException(429, str(exc), headers=_retry_after(exc.resets_at))
    if isinstance(exc, Saturated):  # the model's slots and queue are full: nothing was sent
        metrics.rejected.labels(name, "saturated").inc()
        return HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, GuardBlocked):  # the application shows exc.reason; PII is masked in it
        return HTTPException(400, exc.as_dict())
    if isinstance(exc, (TemplateError, ContextWindowError)):  # nothing was sent
        return HTTPException(422, str(exc))
    if isinstance(exc, GatewayError):
        return HTTPException(502, scrub(str(exc), [prompt.model] if prompt.model else []))
    if isinstance(exc, RegistryError):  # a version this service cannot call
        return HTTPException(503, str(exc))
    return None


def _retry_after(resets_at: float | None) -> dict[str, str] | None:
    """``Retry-After`` in whole seconds until ``resets_at``; none when it is unknown."""
    if resets_at is None:
        return None
    return {"Retry-After": str(max(1, math.ceil(resets_at - time.time())))}


def _variable_problems(given: dict[str, Any], expected: frozenset[str]) -> list[dict[str, Any]]:
    problems = [{"type": "missing", "loc": ("body", "variables", name),
                 "msg": f"the template needs the variable {name!r}", "input": None}
                for name in sorted(expected - set(given))]
    problems += [{"type": "extra_forbidden", "loc": ("body", "variables", name),
                  "msg": f"the template has no variable {name!r}; it takes {sorted(expected)}",
                  "input": given[name]}
                 for name in sorted(set(given) - expected)]
    return problems


class _BodyLimit:
    """Refuse a body over ``limit`` bytes with a 413: by its Content-Length, or, sent in
    chunks, as soon as the chunks read pass the limit (never reading the whole body)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            body = json.dumps({"detail": self._too_large}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # FastAPI passes an HTTPException from the body read on
                raise HTTPException(413, self._too_large)
            return message

        await self.app(scope, limited, send)

    @property
    def _too_large(self) -> str:
        return f"the body is over {self.limit} bytes"
