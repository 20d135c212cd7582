"""The thin serving module: load ``name@alias`` from the registry, render, call, report.

It depends on the registry and the gateway only, so an application installs the workbench
and uses this without the runner, the statistics or the widgets.

The registry is read off the request path: a request uses the version in memory, and once
``refresh_s`` has passed it asks the registry again but waits at most ``refresh_timeout_s``
for the answer. So an alias move is seen within the interval, and a registry that is slow
or down costs a request that bounded wait once per interval, never an error: the last
version that loaded keeps serving and the outage is logged. Only a service that never
loaded its prompt fails, with the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from .aio import run_sync
from .errors import GatewayError, RegistryError, TemplateError
from .gateway import Gateway, ModelConfig, _litellm, connection_params
from .registry import RegisteredPrompt, client, load
from .scrub import scrub

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

    def __str__(self) -> str:
        return self.text


class PromptService:
    """Serve the prompt version an alias points at; alias moves are seen within ``refresh_s``.

    ``tags`` (for example ``{"application": "helpdesk"}``) go with every request's log
    record, merged with the per-call ``tags=`` (``user``, ``request_type``, ...), so cost
    can be attributed. Variables are keyword arguments, or a mapping as the first positional
    argument when a variable is called ``tags``.
    """

    def __init__(self, name: str, alias: str = "production", *, refresh_s: float = 60.0,
                 refresh_timeout_s: float = 2.0, model: ModelConfig | None = None,
                 tracking_uri: str | None = None, tags: Mapping[str, str] | None = None) -> None:
        self.name, self.alias, self.refresh_s = name, alias, refresh_s
        self.refresh_timeout_s = refresh_timeout_s
        self.tags = _check_tags(tags)
        self._model_override = model
        self._client = client(tracking_uri)
        self._gateway = Gateway(cache=None)
        self._lock = threading.Lock()
        self._prompt: RegisteredPrompt | None = None
        self._checked_at = 0.0
        self._loaded_at = 0.0
        self._refresh: Future[None] | None = None
        self._registry_error: str | None = None
        _ = self.prompt  # fail fast: a service that cannot load its prompt should not start

    # -- the prompt in memory ------------------------------------------------------------

    @property
    def prompt(self) -> RegisteredPrompt:
        """The current version, refreshed from the registry when older than ``refresh_s``."""
        prompt = self._prompt
        if prompt is not None and time.monotonic() - self._checked_at < self.refresh_s:
            return prompt
        future = self._start_refresh()
        if self._prompt is None:
            future.result()  # a cold start waits, and fails with the reason
        else:
            try:
                future.result(timeout=self.refresh_timeout_s)
            except FutureTimeout:
                log.warning("registry slow (> %.1fs); still serving %s v%s",
                            self.refresh_timeout_s, self.name, self._prompt.version)
        assert self._prompt is not None
        return self._prompt

    async def aprompt(self) -> RegisteredPrompt:
        """``prompt`` without blocking the event loop while the registry answers."""
        prompt = self._prompt
        if prompt is not None and time.monotonic() - self._checked_at < self.refresh_s:
            return prompt
        waiting = asyncio.wrap_future(self._start_refresh())
        if self._prompt is None:
            await waiting
        else:
            try:
                await asyncio.wait_for(asyncio.shield(waiting), self.refresh_timeout_s)
            except TimeoutError:
                log.warning("registry slow (> %.1fs); still serving %s v%s",
                            self.refresh_timeout_s, self.name, self._prompt.version)
        assert self._prompt is not None
        return self._prompt

    def _start_refresh(self) -> Future[None]:
        with self._lock:
            if self._refresh is None or self._refresh.done():
                self._refresh = Future()
                threading.Thread(target=self._reload, args=(self._refresh,),
                                 name=f"workbench-refresh-{self.name}", daemon=True).start()
            return self._refresh

    def _reload(self, future: Future[None]) -> None:
        try:
            # cache_ttl_seconds=0: this service is the cache; MLflow's own would add up to
            # another interval of delay before an alias move is seen.
            fresh = load(self.name, alias=self.alias, cache_ttl_seconds=0,
                         mlflow_client=self._client)
        except Exception as exc:  # any failure of the registry: keep the version we have
            self._checked_at = time.monotonic()
            self._registry_error = f"{type(exc).__name__}: {exc}"
            if self._prompt is None:
                future.set_exception(_cold_start_error(self, exc))
                return
            log.warning("registry unreachable (%s); still serving %s v%s",
                        self._registry_error, self.name, self._prompt.version)
            future.set_result(None)
            return
        if self._prompt is not None and fresh.version != self._prompt.version:
            log.info("prompts:/%s@%s moved: v%s → v%s", self.name, self.alias,
                     self._prompt.version, fresh.version)
        if self._registry_error is not None and self._prompt is not None:
            log.info("registry reachable again; serving %s v%s", self.name, fresh.version)
        self._prompt, self._registry_error = fresh, None
        self._checked_at = self._loaded_at = time.monotonic()
        future.set_result(None)

    def status(self) -> dict[str, Any]:
        """What a health check reports: the version served and whether the registry answers."""
        prompt = self._prompt
        return {
            "prompt": self.name,
            "alias": self.alias,
            "version": prompt.version if prompt else None,
            "registry": "unreachable" if self._registry_error else "ok",
            "registry_error": self._registry_error,
            "loaded_s_ago": round(time.monotonic() - self._loaded_at, 3),
        }

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
        prompt = await self.aprompt()
        messages = self._render(prompt, variables, kwargs)
        model = self._model_for(prompt)
        all_tags = {**self.tags, **_check_tags(tags)}
        try:
            completion = await self._gateway.complete(model, messages)
        except GatewayError as exc:
            _log_failure(self, prompt, model, all_tags, exc)
            raise
        reply = Reply(text=completion.text, prompt=self.name, version=prompt.version,
                      model=model.model, prompt_tokens=completion.prompt_tokens,
                      completion_tokens=completion.completion_tokens, cost=completion.cost,
                      latency_s=completion.latency_s, tags=all_tags)
        _log_reply(self, reply, stream=False)
        return reply

    def complete(self, variables: Mapping[str, Any] | None = None, /, *,
                 tags: Mapping[str, str] | None = None, **kwargs: Any) -> Reply:
        return run_sync(lambda: self.acomplete(variables, tags=tags, **kwargs))

    def stream(self, variables: Mapping[str, Any] | None = None, /, *,
               tags: Mapping[str, str] | None = None, **kwargs: Any) -> ReplyStream:
        """The answer in pieces as the model writes them: ``for piece in ...`` or ``async for``.

        The variables are checked now, before any call; the finished :class:`Reply` (tokens,
        cost, latency) is the stream's ``reply`` once it is exhausted.
        """
        prompt = self.prompt
        messages = self._render(prompt, variables, kwargs)
        return ReplyStream(self, prompt, self._model_for(prompt), messages,
                           {**self.tags, **_check_tags(tags)})

    def __repr__(self) -> str:
        version = self._prompt.version if self._prompt else "?"
        return f"PromptService('{self.name}@{self.alias}', version={version})"


class ReplyStream:
    """One streamed answer: iterate it once (sync or async); ``reply`` is set at the end."""

    def __init__(self, service: PromptService, prompt: RegisteredPrompt, model: ModelConfig,
                 messages: list[dict[str, str]], tags: dict[str, str]) -> None:
        self._service, self._prompt, self._model = service, prompt, model
        self._messages, self._tags = messages, tags
        self._started = False
        self.reply: Reply | None = None

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
        try:
            response = await litellm.acompletion(**kwargs, stream=True,
                                                 stream_options={"include_usage": True})
            async for chunk in response:
                chunks.append(chunk)
                usage = getattr(chunk, "usage", None) or usage
                choices = getattr(chunk, "choices", None) or []
                piece = choices[0].delta.content if choices else None
                if piece:
                    yield piece
        except Exception as exc:
            text = scrub(str(exc), [model])  # before the cut: half a key would not match
            error = GatewayError(f"{model.model}: {type(exc).__name__}: {text[:300]}")
            _log_failure(self._service, self._prompt, model, self._tags, error)
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

    def __iter__(self) -> Iterator[str]:
        """Sync iteration: the async stream runs on a helper thread (works inside Jupyter)."""
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()

        async def pump() -> None:
            async for piece in self:
                pieces.put(("piece", piece))

        def worker() -> None:
            try:
                asyncio.run(pump())
                pieces.put(("end", None))
            except BaseException as exc:  # re-raised in the caller's thread
                pieces.put(("error", exc))

        threading.Thread(target=worker, name="workbench-stream", daemon=True).start()
        while True:
            kind, value = pieces.get()
            if kind == "piece":
                yield value
            elif kind == "error":
                raise value
            else:
                return


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


_ANSWERED = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}


def _cold_start_error(service: PromptService, exc: Exception) -> RegistryError:
    cause = exc.__cause__ if isinstance(exc, RegistryError) else exc
    if isinstance(exc, RegistryError) and getattr(cause, "error_code", None) in _ANSWERED:
        return exc  # the registry answered: no such prompt or alias, and the message says so
    return RegistryError(
        f"cannot start serving prompts:/{service.name}@{service.alias}: the registry at "
        f"{service._client._registry_uri} did not answer ({type(exc).__name__}: {exc}); "
        "check MLFLOW_TRACKING_URI and that the tracking server is up")


def _log_reply(service: PromptService, reply: Reply, *, stream: bool) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    record = {"event": "served", "prompt": reply.prompt, "alias": service.alias,
              "version": reply.version, "model": reply.model,
              "prompt_tokens": reply.prompt_tokens,
              "completion_tokens": reply.completion_tokens, "cost": reply.cost,
              "latency_s": round(reply.latency_s, 6), "stream": stream, "tags": reply.tags}
    log.info(json.dumps(record), extra={"workbench": record})


def _log_failure(service: PromptService, prompt: RegisteredPrompt, model: ModelConfig,
                 tags: dict[str, str], exc: Exception) -> None:
    record = {"event": "failed", "prompt": service.name, "alias": service.alias,
              "version": prompt.version, "model": model.model,
              "error": scrub(str(exc), [model]), "tags": tags}
    log.warning(json.dumps(record), extra={"workbench": record})
