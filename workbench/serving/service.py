"""The thin serving module: load ``name@alias`` from the registry, render, call, report.

It depends on the registry and the gateway only, so an application installs the workbench
and uses this without the runner, the statistics or the widgets.

The registry is read off the request path (``live_prompt``): a request uses the version in
memory and never waits for the registry, so a registry that is slow or down costs requests
nothing; the last version that loaded keeps serving and the outage is logged. An alias move
is seen within ``refresh_s`` plus one registry look-up. Only a service that never loaded
its prompt fails, with the reason. A prompt over the model's context window is refused
before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..aio import iterate_sync, run_sync
from ..errors import GatewayError, RegistryError, TemplateError
from ..gateway.config import Completion, ModelConfig
from ..gateway.routing import Decision, RoutePolicy, project_policy
from ..gateway.scrub import scrub
from ..gateway.send import gateway
from ..observe import hook as usage
from ..observe.budgets import Budget, BudgetExceeded, BudgetGuard
from ..observe.hook import fingerprint
from ..observe.record import UsageRecord
from ..prompts.versions import RegisteredPrompt
from .concurrency import ConcurrencyLimiter, Saturated
from .guards import Guard
from .live_prompt import LivePrompt
from .retrieval import ServedIndex, retrieve, served_index
from .screen import GuardedStream, screen_input, screen_output
from .shadow import shadow_call

log = logging.getLogger("workbench.serving")


@dataclass(frozen=True)
class Reply:
    """What a served call returns: the text plus what produced it and what it cost."""

    text: str
    prompt: str
    version: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    tags: dict[str, str] = field(default_factory=dict)
    request_id: str = ""  # for feedback on this answer: PromptService.feedback(request_id)
    sources: tuple[str, ...] = ()  # documents retrieved into {{context}}, best first

    def __str__(self) -> str:
        return self.text


class PromptService:
    """Serve the prompt version an alias points at; alias moves are seen within ``refresh_s``.

    ``tags`` (for example ``{"application": "helpdesk"}``) go with every request's log
    record, merged with the per-call ``tags=`` (``user``, ``request_type``, ...), so cost
    can be attributed. Variables are keyword arguments, or a mapping as the first positional
    argument when a variable is called ``tags``. ``budgets`` refuse a request whose
    application or user has spent its limit (``BudgetExceeded``), before any call. A refresh
    that has not answered within ``refresh_timeout_s`` makes the registry count as unreachable
    in :meth:`status`. ``max_concurrency`` caps the calls in flight per model; up to
    ``max_queue`` more (default: as many) wait their turn, and past that a request is
    refused at once with ``Saturated`` (its ``retry_after_s``), before any call.
    """

    def __init__(self, name: str, alias: str = "production", *, refresh_s: float = 60.0,
                 refresh_timeout_s: float = 2.0, model: ModelConfig | None = None,
                 tracking_uri: str | None = None, tags: Mapping[str, str] | None = None,
                 budgets: Sequence[Budget] = (), max_concurrency: int | None = None,
                 max_queue: int | None = None, routes: RoutePolicy | None = None,
                 guard: Mapping[str, Any] | Guard | None = None,
                 monitor: Mapping[str, Any] | None = None,
                 index: str | ServedIndex | None = None) -> None:
        self.name, self.alias = name, alias
        self.guard = Guard.of(guard)  # PII and injection policies (serving/guards.py)
        # "kb@production": {{context}} is retrieved for each request (serving/retrieval.py)
        self.index = served_index(index)
        self.tags = _check_tags(tags)
        self.budgets = BudgetGuard(budgets) if budgets else None
        self.limiter = (ConcurrencyLimiter(max_concurrency, max_queue)
                        if max_concurrency is not None else None)
        # called with each request's usage record (the HTTP app's metrics): keep them cheap
        self.observers: list[Callable[[UsageRecord], None]] = []
        self._model_override = model
        self._gateway = gateway(None)  # the litellm send, streams included
        self._live = LivePrompt(name, alias, tracking_uri, refresh_s=refresh_s,
                                refresh_timeout_s=refresh_timeout_s,
                                needs_model=model is None)
        routes = (routes or project_policy() or RoutePolicy()).for_prompt(name)
        self.routes, self._routed_from = routes, None
        if routes.rules:  # evidence is checked before any call
            self._routed_from = self._model_for(self.prompt).model
            routes.check(self._model_for(self.prompt), tracking_uri)
        self.monitor = None  # online evaluation of a share of requests (workbench.monitor)
        if monitor:
            from ..monitor.online import OnlineMonitor

            self.monitor = OnlineMonitor.of(self, monitor)

    @property
    def refresh_s(self) -> float:
        return self._live.refresh_s

    @property
    def refresh_timeout_s(self) -> float:
        return self._live.refresh_timeout_s

    # -- the prompt in memory ------------------------------------------------------------

    @property
    def prompt(self) -> RegisteredPrompt:
        """The version in memory; once older than ``refresh_s`` a refresh starts in the
        background and this still returns at once (only the first load, at start, waits)."""
        return self._live.current()

    async def aprompt(self) -> RegisteredPrompt:
        """``prompt`` from async code."""
        return await self._live.acurrent()

    def status(self, *, detail: bool = True) -> dict[str, Any]:
        """What a health check reports: the version served and whether the registry answers.

        Without ``detail``, only the prompt and the registry's state: a probe that anyone
        may call learns nothing about the store behind it."""
        return self._live.status(detail=detail)

    @property
    def model(self) -> ModelConfig:
        return self._model_for(self.prompt)

    def _model_for(self, prompt: RegisteredPrompt) -> ModelConfig:
        model = self._model_override or prompt.model
        if model is None:
            raise RegistryError(
                f"prompts:/{self.name}@{self.alias} has no model config; register it with one "
                "or pass model=ModelConfig(model=...) to PromptService")
        return model

    # -- calls -----------------------------------------------------------------------------

    def _render(self, prompt: RegisteredPrompt, variables: Mapping[str, Any] | None,
                extra: dict[str, Any]) -> list[dict[str, str]]:
        values = {**(variables or {}), **extra}
        expected = prompt.template.variables
        unexpected = sorted(set(values) - expected)
        missing = sorted(expected - set(values))
        if unexpected or missing:
            problems = ([f"unexpected {unexpected}"] if unexpected else []) + (
                [f"missing {missing}"] if missing else [])
            raise TemplateError(
                f"prompts:/{self.name}@{self.alias} (v{prompt.version}) takes "
                f"{sorted(expected)}; {', '.join(problems)}")
        return prompt.template.render(**values)

    async def acomplete(self, variables: Mapping[str, Any] | None = None, /, *,
                        tags: Mapping[str, str] | None = None, **kwargs: Any) -> Reply:
        started = time.perf_counter()
        prompt = await self.aprompt()
        return await self.acomplete_version(prompt, {**(variables or {}), **kwargs}, tags=tags,
                                            started=started)

    async def acomplete_version(self, prompt: RegisteredPrompt, variables: Mapping[str, Any],
                                *, tags: Mapping[str, str] | None = None,
                                started: float | None = None) -> Reply:
        """Answer with this version, as ``prompt`` returned it: a caller that checked the
        variables against a version (the HTTP app) is answered by that same version."""
        loaded = time.perf_counter()
        started = loaded if started is None else started
        all_tags = {**self.tags, **_check_tags(tags)}
        screened = screen_input(self, variables, all_tags)  # GuardBlocked before any call
        retrieved = retrieve(self.index, screened.variables)
        messages = self._render(prompt, retrieved.variables, {})
        model = self._model_for(prompt)
        route = self._route(model, messages, all_tags)
        model = route.model if route is not None else model
        ledger = screened.ledger_tags  # the ledger's records carry the request id
        rendered = time.perf_counter()
        steps = {"prompt": loaded - started, "render": rendered - loaded - retrieved.seconds}
        if self.index is not None:
            steps["retrieve"] = retrieved.seconds
        if self.budgets is not None:
            _check_budget(self, prompt, model, ledger, steps)
        called = rendered
        try:
            if not self._fits_for_sure(model, messages):  # counting a long prompt takes time
                await asyncio.to_thread(self._gateway.check_context, model, messages)
            waiting = time.perf_counter()
            async with self._slot(model):
                if self.limiter is not None:  # the wait for a slot is a step of its own
                    steps["queue"] = time.perf_counter() - waiting
                    called = rendered + steps["queue"]  # the call step: all but the wait
                completion = await self._gateway.complete(model, messages)
        except GatewayError as exc:
            _log_failure(self, prompt, model, ledger, exc)
            _record(self, prompt, model, ledger, steps, called, error=exc,
                    route=route and route.rule)
            raise
        except Saturated as exc:
            _record(self, prompt, model, ledger, steps, called, error=exc, status="refused",
                    route=route and route.rule)
            raise
        _record(self, prompt, model, ledger, steps, called, completion=completion,
                route=route and route.rule, fingerprint=fingerprint(model, messages))
        if route is not None and route.shadow is not None:
            shadow_call(self, prompt, route, messages, ledger, completion)
        reply = _reply(prompt, model, completion, all_tags, retrieved.sources)
        _log_reply(self, reply, stream=False)
        return screen_output(self, screened, reply)  # output guards, then the monitor

    def _route(self, model: ModelConfig, messages: list[dict[str, str]],
               tags: Mapping[str, str]) -> Decision | None:
        """The route of a request; only from the model the evidence was checked against."""
        if not self.routes.rules:
            return None
        if model.model != self._routed_from:
            if self._routed_from is not None:  # once: the evidence was about another model
                log.warning("%s now calls %s; its route rules were checked against %s and "
                            "stay off until the service is restarted", self, model.model,
                            self._routed_from)
                self._routed_from = None
            return None
        return self.routes.choose(model, messages, tags)

    def _slot(self, model: ModelConfig) -> contextlib.AbstractAsyncContextManager[Any]:
        """A call slot of ``model`` (waiting for one, or ``Saturated``); none without a limit."""
        if self.limiter is None:
            return contextlib.nullcontext()
        return self.limiter.slot(model.model)

    def _fits_for_sure(self, model: ModelConfig, messages: list[dict[str, str]]) -> bool:
        """True when the prompt fits the context window without counting its tokens: a
        token is at least one byte, and a chat template adds a few tokens per message."""
        window = self._gateway.context_window(model)
        if window is None:
            return True  # unknown window: the provider is the judge
        size = sum(len((m.get("content") or "").encode()) + 8 for m in messages)
        return size + int(model.params.get("max_tokens") or 0) <= window

    def complete(self, variables: Mapping[str, Any] | None = None, /, *,
                 tags: Mapping[str, str] | None = None, **kwargs: Any) -> Reply:
        return run_sync(lambda: self.acomplete(variables, tags=tags, **kwargs))

    def stream(self, variables: Mapping[str, Any] | None = None, /, *,
               tags: Mapping[str, str] | None = None, **kwargs: Any) -> ReplyStream:
        """The answer in pieces as the model writes them: ``for piece in ...`` or ``async for``.

        The variables are checked now, before any call; the finished :class:`Reply` (tokens,
        cost, latency) is the stream's ``reply`` once it is exhausted.
        """
        started = time.perf_counter()
        prompt = self.prompt
        all_tags = {**self.tags, **_check_tags(tags)}
        screened = screen_input(self, {**(variables or {}), **kwargs}, all_tags)
        retrieved = retrieve(self.index, screened.variables)
        messages = self._render(prompt, retrieved.variables, {})
        model = self._model_for(prompt)
        route = self._route(model, messages, all_tags)  # a stream has no shadow call
        model = route.model if route is not None else model
        if self.budgets is not None:
            _check_budget(self, prompt, model, screened.ledger_tags,
                          {"render": time.perf_counter() - started})
        if not self._fits_for_sure(model, messages):
            self._gateway.check_context(model, messages)  # ContextWindowError: nothing sent
        stream = ReplyStream(self, prompt, model, messages, screened.ledger_tags)
        stream.route = route and route.rule
        stream.steps["render"] = time.perf_counter() - started - retrieved.seconds
        if self.index is not None:
            stream.steps["retrieve"] = retrieved.seconds
        stream.sources = retrieved.sources
        # output guards and the monitor see the assembled text; the reply gets its request id
        return GuardedStream(self, screened, stream)  # type: ignore[return-value]

    def feedback(self, request_id: str, *, score: float | None = None,
                 comment: str | None = None, annotator: str | None = None) -> None:
        """A person's label for one served answer (``Reply.request_id``), kept with the
        request; an unknown id is ``UnknownRequest``. See ``workbench.serving.feedback``."""
        from .feedback import record

        record(self, request_id, score=score, comment=comment, annotator=annotator)

    def __repr__(self) -> str:
        return f"PromptService('{self.name}@{self.alias}', version={self.prompt.version})"


class ReplyStream:
    """One streamed answer: iterate it once (sync or async); ``reply`` is set at the end."""

    def __init__(self, service: PromptService, prompt: RegisteredPrompt, model: ModelConfig,
                 messages: list[dict[str, str]], tags: dict[str, str]) -> None:
        self._service, self._prompt, self._model = service, prompt, model
        self._messages, self._tags = messages, tags
        self.route: str | None = None  # the route rule that chose the model, if any
        self.sources: tuple[str, ...] = ()  # documents retrieved into {{context}}
        self._started = False
        self.reply: Reply | None = None
        self.steps: dict[str, float] = {}  # for the usage ledger: render, call, total

    @property
    def version(self) -> int:
        return self._prompt.version

    def __aiter__(self) -> AsyncIterator[str]:
        if self._started:
            raise RuntimeError("a ReplyStream can be iterated once")
        self._started = True
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        service, model = self._service, self._model
        started = time.perf_counter()
        stream = service._gateway.stream(model, self._messages)
        try:
            async with service._slot(model):
                if service.limiter is not None:  # the wait for a slot: its own step
                    self.steps["queue"] = time.perf_counter() - started
                    started = time.perf_counter()
                async with contextlib.aclosing(aiter(stream)) as pieces:  # closed if left
                    async for piece in pieces:
                        yield piece
        except Saturated as exc:  # refused before any call, like a spent budget
            _record(self._service, self._prompt, model, self._tags, self.steps, started,
                    error=exc, status="refused", route=self.route)
            raise
        except (GeneratorExit, asyncio.CancelledError):  # the caller stopped reading
            _record(service, self._prompt, model, self._tags, self.steps, started,
                    status="cancelled", first=stream.first_piece_at, route=self.route)
            raise
        except GatewayError as error:  # mapped and scrubbed by the gateway
            _log_failure(service, self._prompt, model, self._tags, error)
            _record(service, self._prompt, model, self._tags, self.steps, started,
                    error=error, first=stream.first_piece_at, route=self.route)
            raise
        completion = stream.completion
        assert completion is not None  # set when the stream ends
        self.reply = _reply(self._prompt, model, completion, self._tags, self.sources)
        _log_reply(service, self.reply, stream=True)
        _record(service, self._prompt, model, self._tags, self.steps, started,
                completion=completion, first=stream.first_piece_at, route=self.route,
                fingerprint=fingerprint(model, self._messages))

    def __iter__(self) -> Iterator[str]:
        """Sync iteration: the async stream runs on a helper thread (works inside Jupyter);
        leaving the loop early or an interrupt cancels it there."""
        return iterate_sync(self.__aiter__)


def _reply(prompt: RegisteredPrompt, model: ModelConfig, completion: Completion,
           tags: dict[str, str], sources: tuple[str, ...] = ()) -> Reply:
    # the model that answered: a fallback's name when the primary failed
    return Reply(text=completion.text, prompt=prompt.name, version=prompt.version,
                 model=completion.model if completion.fallback else model.model,
                 prompt_tokens=completion.prompt_tokens,
                 completion_tokens=completion.completion_tokens, cost=completion.cost,
                 latency_s=completion.latency_s, tags=tags, sources=sources)


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    if not tags:
        return {}
    bad = sorted(str(k) for k, v in tags.items() if not isinstance(k, str)
                 or not isinstance(v, str))
    if bad:
        raise TypeError(f"request tags are text: {bad} must be str → str")
    return dict(tags)


def _log_reply(service: PromptService, reply: Reply, *, stream: bool) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    record = {"event": "served", "prompt": reply.prompt, "alias": service.alias,
              "version": reply.version, "model": reply.model,
              "prompt_tokens": reply.prompt_tokens,
              "completion_tokens": reply.completion_tokens, "cost": reply.cost,
              "latency_s": round(reply.latency_s, 6), "stream": stream, "tags": reply.tags}
    log.info(json.dumps(record), extra={"workbench": record})


def _record(service: PromptService, prompt: RegisteredPrompt, model: ModelConfig,
            tags: dict[str, str], steps: dict[str, float], call_started: float, *,
            completion: Any = None, error: Exception | None = None,
            status: str = "error", first: float | None = None,
            route: str | None = None, fingerprint: str | None = None) -> None:
    """One usage-ledger record: steps so far plus the call, and the total. A refusal (no
    call was made) is recorded but is not the observers' (/metrics counts it itself)."""
    now = time.perf_counter()
    steps = dict(steps) if status == "refused" else {**steps, "call": now - call_started}
    steps["total"] = sum(steps.values())
    made = usage.served(prompt=service.name, version=prompt.version, alias=service.alias,
                        tags=tags, config=model, completion=completion, error=error,
                        status=status, steps=steps, route=route, fingerprint=fingerprint,
                        ttft_s=None if first is None else first - call_started)
    for observer in service.observers if status != "refused" else ():  # /metrics
        try:
            observer(made)
        except Exception:  # metrics never fail a request
            log.exception("a usage observer failed")
    if completion is not None and service.budgets is not None:
        service.budgets.add(tags, completion.cost)


def _check_budget(service: PromptService, prompt: RegisteredPrompt, model: ModelConfig,
                  tags: dict[str, str], steps: dict[str, float]) -> None:
    """``BudgetExceeded`` when a budget of the request is spent; the refusal is recorded."""
    try:
        service.budgets.check(tags)  # type: ignore[union-attr]
    except BudgetExceeded as exc:
        _record(service, prompt, model, tags, steps, 0.0, error=exc, status="refused")
        raise


def _log_failure(service: PromptService, prompt: RegisteredPrompt, model: ModelConfig,
                 tags: dict[str, str], exc: Exception) -> None:
    record = {"event": "failed", "prompt": service.name, "alias": service.alias,
              "version": prompt.version, "model": model.model,
              "error": scrub(str(exc), [model]), "tags": tags}
    log.warning(json.dumps(record), extra={"workbench": record})
