"""The HTTP face of :class:`~workbench.serving.PromptService`: a FastAPI app.

``POST /v1/prompts/{name}/complete`` takes the template's variables and answers with the
output, the version that produced it, token usage, cost and latency. Bad bodies get a 422
that names the field (a missing or unexpected variable included), never a 500; a failing
model is a 502. With a token, the prompt routes want ``Authorization: Bearer <token>``; the
health probe and the OpenAPI docs stay open (they reveal no output and spend nothing).

FastAPI is imported at the top: only ``workbench serve`` and applications import this module.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from .errors import GatewayError, RegistryError, TemplateError
from .scrub import scrub

if TYPE_CHECKING:
    from .serving import PromptService

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
    cost: float = Field(description="US dollars, from litellm's price table (0 when unknown)")
    latency_s: float = Field(description="the model call's duration")
    tags: dict[str, str]


def create_app(services: PromptService | Iterable[PromptService], *,
               token: str | None = None) -> FastAPI:
    """An app serving one or more prompts, each under its own name."""
    from . import __version__

    if not isinstance(services, Iterable):
        services = [services]
    by_name: dict[str, PromptService] = {}
    for service in services:
        if service.name in by_name:
            raise ValueError(f"{service.name!r} is served twice; one alias per prompt name")
        by_name[service.name] = service

    def authorize(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.encode(),
                                                                    token.encode()):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(title="Prompt Workbench serving", version=__version__,
                  description="Prompts promoted in MLflow's prompt registry, served over HTTP: "
                              + ", ".join(f"`{s.name}@{s.alias}`" for s in by_name.values()))

    @app.get("/healthz", summary="liveness, the versions served and the registry's state")
    def healthz() -> dict[str, Any]:
        states = [service.status() for service in by_name.values()]
        degraded = any(state["registry"] != "ok" for state in states)
        return {"status": "degraded" if degraded else "ok", "prompts": states}

    @app.post("/v1/prompts/{name}/complete", response_model=CompleteResponse,
              summary="render the served version with the variables and call its model",
              dependencies=[Depends(authorize)],
              responses={404: {"description": "this server does not serve that prompt"},
                         422: {"description": "a field or a template variable is wrong"},
                         502: {"description": "the model call failed"},
                         503: {"description": "the served version cannot be called"}})
    async def complete(name: str, body: CompleteRequest) -> CompleteResponse:
        service = by_name.get(name)
        if service is None:
            raise HTTPException(404, f"{name!r} is not served here; try one of {sorted(by_name)}")
        prompt = await service.aprompt()
        problems = _variable_problems(body.variables, prompt.template.variables)
        if problems:
            raise RequestValidationError(problems)
        try:
            reply = await service.acomplete(body.variables, tags=body.tags)
        except TemplateError as exc:  # the alias moved between the check and the call
            raise HTTPException(422, str(exc)) from exc
        except GatewayError as exc:
            raise HTTPException(502, scrub(str(exc))) from exc
        except RegistryError as exc:  # e.g. a version registered without a model config
            raise HTTPException(503, str(exc)) from exc
        return CompleteResponse(
            output=reply.text, prompt=reply.prompt, alias=service.alias, version=reply.version,
            model=reply.model, cost=reply.cost, latency_s=reply.latency_s, tags=reply.tags,
            usage=Usage(prompt_tokens=reply.prompt_tokens,
                        completion_tokens=reply.completion_tokens,
                        total_tokens=reply.prompt_tokens + reply.completion_tokens))

    return app


def _variable_problems(given: dict[str, Any], expected: frozenset[str]) -> list[dict[str, Any]]:
    problems = [{"type": "missing", "loc": ("body", "variables", name),
                 "msg": f"the template needs the variable {name!r}", "input": None}
                for name in sorted(expected - set(given))]
    problems += [{"type": "extra_forbidden", "loc": ("body", "variables", name),
                  "msg": f"the template has no variable {name!r}; it takes {sorted(expected)}",
                  "input": given[name]}
                 for name in sorted(set(given) - expected)]
    return problems
