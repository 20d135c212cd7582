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
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..aio import run_sync
from ..errors import GatewayError, RegistryError, TemplateError
from ..gateway.config import ModelConfig
from ..gateway.routing import Decision, RoutePolicy, project_policy
from ..gateway.send import gateway
from ..observe.budgets import Budget, BudgetGuard
from ..observe.hook import fingerprint
from ..observe.record import UsageRecord
from ..prompts.versions import RegisteredPrompt
from .concurrency import ConcurrencyLimiter, Saturated
from .guards import Guard
from .live_prompt import LivePrompt
from .reply import Reply, check_budget, log_failure, log_reply, make_reply, record_call
from .reply_stream import ReplyStream
from .retrieval import ServedIndex, retrieve, served_index
from .screen import GuardedStream, screen_input, screen_output
from .shadow import shadow_call

# Reply and ReplyStream are what a service returns: importable from here
__all__ = ["PromptService", "Reply", "ReplyStream"]

log = logging.getLogger("workbench.serving")


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
        # a hosted embedder's call must not hold the server's event loop
        retrieved = (await asyncio.to_thread(retrieve, self.index, screened.variables)
                     if self.index is not None else retrieve(None, screened.variables))
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
            check_budget(self, prompt, model, ledger, steps)
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
            log_failure(self, prompt, model, ledger, exc)
            record_call(self, prompt, model, ledger, steps, called, error=exc,
                        route=route and route.rule)
            raise
        except Saturated as exc:
            record_call(self, prompt, model, ledger, steps, called, error=exc,
                        status="refused", route=route and route.rule)
            raise
        record_call(self, prompt, model, ledger, steps, called, completion=completion,
                    route=route and route.rule, fingerprint=fingerprint(model, messages))
        if route is not None and route.shadow is not None:
            shadow_call(self, prompt, route, messages, ledger, completion)
        reply = make_reply(prompt, model, completion, all_tags, retrieved.sources)
        log_reply(self, reply, stream=False)
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
            check_budget(self, prompt, model, screened.ledger_tags,
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


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    if not tags:
        return {}
    bad = sorted(str(k) for k, v in tags.items() if not isinstance(k, str)
                 or not isinstance(v, str))
    if bad:
        raise TypeError(f"request tags are text: {bad} must be str → str")
    return dict(tags)
