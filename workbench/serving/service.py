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
from ..gateway.client import Gateway, mapped
from ..gateway.config import ModelConfig, connection_params
from ..gateway.pricing import _litellm
from ..gateway.scrub import scrub
from ..observe import hook as usage
from ..observe.budgets import Budget, BudgetGuard
from ..observe.record import UsageRecord
from ..prompts.versions import RegisteredPrompt
from .concurrency import ConcurrencyLimiter, Saturated
from .live_prompt import LivePrompt
from .retrieval import ServedIndex, retrieve, served_index

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
                 max_queue: int | None = None, index: str | ServedIndex | None = None
                 ) -> None:
        self.name, self.alias = name, alias
        # "kb@production": {{context}} is retrieved for each request (serving/retrieval.py)
        self.index = served_index(index)
        self.tags = _check_tags(tags)
        self.budgets = BudgetGuard(budgets) if budgets else None
        self.limiter = (ConcurrencyLimiter(max_concurrency, max_queue)
                        if max_concurrency is not None else None)
        # called with each request's usage record (the HTTP app's metrics): keep them cheap
        self.observers: list[Callable[[UsageRecord], None]] = []
        self._model_override = model
        self._gateway = Gateway(cache=None)
        self._live = LivePrompt(name, alias, tracking_uri, refresh_s=refresh_s,
                                refresh_timeout_s=refresh_timeout_s,
                                needs_model=model is None)

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
        retrieved = retrieve(self.index, variables)
        messages = self._render(prompt, retrieved.variables, {})
        model = self._model_for(prompt)
        all_tags = {**self.tags, **_check_tags(tags)}
        if self.budgets is not None:
            self.budgets.check(all_tags)
        rendered = time.perf_counter()
        steps = {"prompt": loaded - started, "render": rendered - loaded - retrieved.seconds}
        if self.index is not None:
            steps["retrieve"] = retrieved.seconds
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
            _log_failure(self, prompt, model, all_tags, exc)
            _record(self, prompt, model, all_tags, steps, called, error=exc)
            raise
        _record(self, prompt, model, all_tags, steps, called, completion=completion)
        reply = Reply(text=completion.text, prompt=self.name, version=prompt.version,
                      model=model.model, prompt_tokens=completion.prompt_tokens,
                      completion_tokens=completion.completion_tokens, cost=completion.cost,
                      latency_s=completion.latency_s, tags=all_tags,
                      sources=retrieved.sources)
        _log_reply(self, reply, stream=False)
        return reply

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
        retrieved = retrieve(self.index, {**(variables or {}), **kwargs})
        messages = self._render(prompt, retrieved.variables, {})
        model = self._model_for(prompt)
        all_tags = {**self.tags, **_check_tags(tags)}
        if self.budgets is not None:
            self.budgets.check(all_tags)
        if not self._fits_for_sure(model, messages):
            self._gateway.check_context(model, messages)  # ContextWindowError: nothing sent
        stream = ReplyStream(self, prompt, model, messages, all_tags)
        stream.steps["render"] = time.perf_counter() - started - retrieved.seconds
        if self.index is not None:
            stream.steps["retrieve"] = retrieved.seconds
        return stream

    def __repr__(self) -> str:
        return f"PromptService('{self.name}@{self.alias}', version={self.prompt.version})"


class ReplyStream:
    """One streamed answer: iterate it once (sync or async); ``reply`` is set at the end."""

    def __init__(self, service: PromptService, prompt: RegisteredPrompt, model: ModelConfig,
                 messages: list[dict[str, str]], tags: dict[str, str]) -> None:
        self._service, self._prompt, self._model = service, prompt, model
        self._messages, self._tags = messages, tags
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
        model = self._model
        litellm = _litellm(model)  # registers the embedded model's provider when needed
        kwargs = _litellm_kwargs(model, self._messages)
        started = time.perf_counter()
        chunks: list[Any] = []
        usage = None
        first: float | None = None
        try:
            async with self._service._slot(model):
                if self._service.limiter is not None:  # the wait for a slot: its own step
                    self.steps["queue"] = time.perf_counter() - started
                    started = time.perf_counter()
                response = await litellm.acompletion(**kwargs, stream=True,
                                                     stream_options={"include_usage": True})
                async for chunk in response:
                    chunks.append(chunk)
                    usage = getattr(chunk, "usage", None) or usage
                    choices = getattr(chunk, "choices", None) or []
                    piece = choices[0].delta.content if choices else None
                    if piece:
                        first = first or time.perf_counter()
                        yield piece
        except Saturated:  # refused before any call, like a spent budget
            raise
        except (GeneratorExit, asyncio.CancelledError):  # the caller stopped reading
            _record(self._service, self._prompt, model, self._tags, self.steps, started,
                    status="cancelled", first=first)
            raise
        except Exception as exc:
            error = mapped(exc, model)  # scrubbed, as every call's error
            _log_failure(self._service, self._prompt, model, self._tags, error)
            _record(self._service, self._prompt, model, self._tags, self.steps, started,
                    error=error, first=first)
            raise error from exc
        latency = time.perf_counter() - started
        text = "".join(c.choices[0].delta.content or "" for c in chunks
                       if getattr(c, "choices", None))
        self.reply = Reply(
            text=text, prompt=self._prompt.name, version=self._prompt.version,
            model=model.model, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost=_stream_cost(litellm, chunks, self._messages), latency_s=latency,
            tags=self._tags)
        _log_reply(self._service, self.reply, stream=True)
        _record(self._service, self._prompt, model, self._tags, self.steps, started,
                completion=self.reply, first=first)

    def __iter__(self) -> Iterator[str]:
        """Sync iteration: the async stream runs on a helper thread (works inside Jupyter);
        leaving the loop early or an interrupt cancels it there."""
        return iterate_sync(self.__aiter__)


def _litellm_kwargs(model: ModelConfig, messages: list[dict[str, str]]) -> dict[str, Any]:
    # The gateway has no streaming yet, so a stream calls litellm itself: the primary model
    # with its retries, without the gateway's fallbacks and pacing.
    return {**connection_params(model), "messages": messages,
            "num_retries": model.num_retries, **model.params}


def _stream_cost(litellm: Any, chunks: list[Any], messages: list[dict[str, str]]) -> float:
    try:
        built = litellm.stream_chunk_builder(chunks, messages=messages)
        return float(litellm.completion_cost(completion_response=built) or 0.0)
    except Exception:  # models missing from litellm's price table cost "unknown"
        return 0.0


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
            status: str = "error", first: float | None = None) -> None:
    """One usage-ledger record: steps so far plus the call, and the total."""
    now = time.perf_counter()
    steps = {**steps, "call": now - call_started}
    steps["total"] = sum(steps.values())
    made = usage.served(prompt=service.name, version=prompt.version, alias=service.alias,
                        tags=tags, config=model, completion=completion, error=error,
                        status=status, steps=steps,
                        ttft_s=None if first is None else first - call_started)
    for observer in service.observers:  # the HTTP app's /metrics
        try:
            observer(made)
        except Exception:  # metrics never fail a request
            log.exception("a usage observer failed")
    if completion is not None and service.budgets is not None:
        service.budgets.add(tags, completion.cost)


def _log_failure(service: PromptService, prompt: RegisteredPrompt, model: ModelConfig,
                 tags: dict[str, str], exc: Exception) -> None:
    record = {"event": "failed", "prompt": service.name, "alias": service.alias,
              "version": prompt.version, "model": model.model,
              "error": scrub(str(exc), [model]), "tags": tags}
    log.warning(json.dumps(record), extra={"workbench": record})
