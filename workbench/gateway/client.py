"""Every model call goes through here: litellm, the response cache, pacing, tokens, cost.

A model with fallbacks is called through litellm's ``Router``: fallbacks, cooldowns of a
deployment that keeps failing, retries. A model without fallbacks needs none of the Router's
routing, which cost about 0.9 ms of CPU per call here, so it is called with
``litellm.acompletion`` directly and retried with litellm's own policy (``should_retry``
on the status, ``calculate_retry_after``: Retry-After when given, else exponential
backoff). The gateway adds what a batch evaluation needs on top: waiting for rpm/tpm
capacity instead of failing (one minute window per model for every call of the process),
concurrency that halves on rate limits, a context-window check before sending, prices for
models litellm does not know, and the cache.

Any failure becomes a ``GatewayError`` with a readable reason, so the runner records it
on the row and goes on, and the serving module can show it to a caller. A litellm exception
is mapped once, by :func:`mapped`, to one of its subclasses (``RateLimited``,
``Unauthorized``, ``ContextWindowExceeded``, ``Timeout``, ``ConnectionFailed``,
``ProviderError``), which carries the model, the HTTP status and the retries made.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import (
    ContextWindowExceeded,
    ProviderError,
    RateLimited,
)
from ..observe.hook import recorded
from .cache import ResponseCache, cache_key
from .config import Completion, ModelConfig, _litellm_params
from .failures import _headers, _retryable, mapped
from .limits import AdaptiveConcurrency, MinuteWindow
from .pricing import _litellm, _model_info, _price_for_litellm, price
from .stream import CompletionStream

if TYPE_CHECKING:
    from .embeddings import Embeddings

_ROUTERS: dict[tuple[str, str], Any] = {}
# a model's rpm/tpm windows, shared by every gateway, event loop and thread of the process
_WINDOWS: dict[str, tuple[MinuteWindow | None, MinuteWindow | None]] = {}
_WINDOWS_LOCK = threading.Lock()


# the name this error had before the tree in ``workbench.errors``
ContextWindowError = ContextWindowExceeded


Send = Callable[[ModelConfig, list[dict[str, str]]], Awaitable[Completion]]


class Gateway:
    """Calls models through litellm, with an optional on-disk cache in front."""

    def __init__(self, cache: ResponseCache | None = None, *, max_concurrency: int = 64) -> None:
        self.cache = cache
        self.max_concurrency = max_concurrency
        # concurrency slots are asyncio primitives, which belong to one event loop
        self._pacing: weakref.WeakKeyDictionary[Any, dict[str, _Pacing]] = (
            weakref.WeakKeyDictionary())
        self._pacing_lock = threading.Lock()  # sync callers on several threads add loops

    @recorded  # one usage record per call inside observe.attribute(...)
    async def complete(self, config: ModelConfig, messages: list[dict[str, str]], *,
                       repeat: int = 0, use_cache: bool = True, key: str | None = None,
                       send: Send | None = None) -> Completion:
        """One answer: from the cache when allowed, else from the model (then cached).

        ``key`` is the request's ``cache_key`` when the caller has it already. ``send``
        makes the call in place of this gateway (a worker process's gateway): the answer is
        still looked up and cached here.
        """
        send = send or self._paced_call
        if self.cache is None:
            return await send(config, messages)
        key = key or cache_key(config.model, config.params, messages, repeat, config.api_base)
        if use_cache:
            hit = self.cache.get(key)
            if hit is not None:
                return Completion(**hit, cached=True)
        completion = await send(config, messages)
        if completion.fallback:
            key = _answered_key(config, completion, messages, repeat)
        self.cache.put(key, completion.model, completion.record())
        return completion

    async def embed(self, config: ModelConfig, texts: list[str], *, use_cache: bool = True
                    ) -> Embeddings:
        """Vectors of ``texts`` through litellm's embedding API, cached per text, retried,
        priced and recorded as ``complete`` is (see ``gateway.embeddings``)."""
        from .embeddings import embed

        return await embed(self, config, texts, use_cache=use_cache)

    # ---- pacing -------------------------------------------------------------------------
    def _pacing_for(self, config: ModelConfig) -> _Pacing:
        per_loop = self._pacing.get(asyncio.get_running_loop())
        found = per_loop.get(config.key) if per_loop is not None else None
        return found if found is not None else self._new_pacing(config)

    def _new_pacing(self, config: ModelConfig) -> _Pacing:
        """The model's pacing on this event loop, made on its first call there.

        A slot's asyncio primitives hold on to the loop they waited on, so a weak key does
        not let a finished loop go: loops that have closed are dropped here instead.
        """
        loop = asyncio.get_running_loop()
        with self._pacing_lock:
            per_loop = self._pacing.get(loop)
            if per_loop is None:
                for closed in [old for old in self._pacing if old.is_closed()]:
                    del self._pacing[closed]
                per_loop = self._pacing[loop] = {}
            if config.key not in per_loop:
                per_loop[config.key] = _Pacing(config, self.max_concurrency)
            return per_loop[config.key]

    async def _paced_call(self, config: ModelConfig, messages: list[dict[str, str]]
                          ) -> Completion:
        pacing = self._pacing_for(config)
        if pacing.requests:
            await pacing.requests.acquire()
        if pacing.tokens:
            await pacing.tokens.acquire(_estimate_tokens(config, messages))
        async with pacing.concurrency.slot():
            try:
                completion = await self._call(config, messages)
            except RateLimited:
                pacing.concurrency.rate_limited()
                raise
        pacing.concurrency.succeeded()
        return completion

    # ---- the call -----------------------------------------------------------------------
    def _router(self, config: ModelConfig) -> Any:
        # One Router per configuration per process: litellm re-registers a model's price
        # entry for every new Router, after which each of its calls pays for a zero-cost
        # diagnosis.
        key = (config.key, hashlib.sha256((config.api_key() or "").encode()).hexdigest())
        router = _ROUTERS.get(key)
        if router is None:
            from litellm import Router

            chain = [config, *config.fallbacks]
            names = [f"m{i}" for i in range(len(chain))]
            router = Router(
                model_list=[{"model_name": name, "litellm_params": _litellm_params(c)}
                            for name, c in zip(names, chain, strict=True)],
                num_retries=config.num_retries,
                retry_after=0,           # wait what Retry-After says, at least nothing more
                timeout=config.timeout,
                fallbacks=[{names[0]: names[1:]}] if len(names) > 1 else [],
                # With a fallback, a deployment that keeps failing is cooled down so later
                # calls go straight to the fallback instead of retrying a dead model each
                # time. Without one, a cooldown would only turn transient
                # errors into "no deployments available", so retries are the recovery.
                disable_cooldowns=len(names) == 1,
                allowed_fails=1,
                cooldown_time=30,
            )
            _ROUTERS[key] = router
        return router

    async def _call(self, config: ModelConfig, messages: list[dict[str, str]]) -> Completion:
        litellm = _litellm(config)
        _price_for_litellm(litellm, config)
        started = time.perf_counter()
        if config.fallbacks:
            try:
                response = await self._router(config).acompletion(
                    model="m0", messages=messages, **config.params)
            except Exception as exc:
                raise mapped(exc, config) from exc
            retries = 0  # the Router's own count is read from the response below
        else:
            response, retries = await _acompletion_with_retries(litellm, config, messages)
        latency = time.perf_counter() - started
        try:
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError) as exc:
            raise ProviderError(f"{config.model}: response without a message ({exc})",
                                model=config.model) from exc
        hidden = getattr(response, "_hidden_params", None) or {}
        headers = hidden.get("additional_headers") or {}
        answered = hidden.get("litellm_model_name") or config.model
        answered_config = next((c for c in config.fallbacks if c.model == answered), config)
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return Completion(
            text=text,
            model=answered,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=price(answered_config, prompt_tokens, completion_tokens, response),
            latency_s=latency,
            retries=retries or int(headers.get("x-litellm-attempted-retries") or 0),
            fallback=int(headers.get("x-litellm-attempted-fallbacks") or 0) > 0,
            cached_tokens=_cached_tokens(usage),
        )

    # ---- streams ------------------------------------------------------------------------
    def stream(self, config: ModelConfig, messages: list[dict[str, str]]) -> CompletionStream:
        """The answer in pieces as the model writes them, paced, retried, falling back and
        priced as ``complete`` is (never cached: a stream is for a live reader); its
        ``completion`` is set once the stream is read."""
        return CompletionStream(config, messages, pacing=self._pacing_for,
                                open_one=self._open_stream, mapped=mapped,
                                estimate_tokens=_estimate_tokens)

    async def _open_stream(self, config: ModelConfig, messages: list[dict[str, str]]
                           ) -> tuple[Any, int]:
        litellm = _litellm(config)
        _price_for_litellm(litellm, config)
        return await _acompletion_with_retries(litellm, config, messages, stream=True,
                                               stream_options={"include_usage": True})

    # ---- before sending -----------------------------------------------------------------
    def count_tokens(self, config: ModelConfig, messages: list[dict[str, str]]) -> int:
        """Prompt tokens as the model will see them (the embedded model counts its own)."""
        if config.model.startswith("local/"):
            from .local_model import count_tokens

            return count_tokens(messages, config.model.split("/", 1)[1])
        import litellm

        return int(litellm.token_counter(model=config.model, messages=messages))

    def context_window(self, config: ModelConfig) -> int | None:
        """The model's input limit: config, then litellm's model table; None if unknown."""
        if config.context_window:
            return config.context_window
        info = _model_info(config)
        return info.get("max_input_tokens") or info.get("max_tokens") if info else None

    def check_context(self, config: ModelConfig, messages: list[dict[str, str]]) -> int:
        """Raise ``ContextWindowExceeded`` when prompt + completion budget do not fit."""
        tokens = self.count_tokens(config, messages)
        window = self.context_window(config)
        reserve = int(config.params.get("max_tokens") or 0)
        if window is not None and tokens + reserve > window:
            raise ContextWindowExceeded(
                f"{config.model}: the prompt has {tokens} tokens and max_tokens is {reserve}, "
                f"over the {window}-token context window", model=config.model)
        return tokens


@dataclass
class _Pacing:
    requests: MinuteWindow | None
    tokens: MinuteWindow | None
    concurrency: AdaptiveConcurrency

    def __init__(self, config: ModelConfig, max_concurrency: int) -> None:
        self.requests, self.tokens = _windows(config)
        self.concurrency = AdaptiveConcurrency(max_concurrency)


def _windows(config: ModelConfig) -> tuple[MinuteWindow | None, MinuteWindow | None]:
    """The model's requests and tokens windows, one pair per configuration in the process.

    The provider counts a model's requests however they were made, so a window is not the
    gateway's nor the event loop's: sync calls (each on a loop of its own), threads, and
    the gateways made per call (a shadow call's, a pairwise comparison's) all fill one.
    """
    if not (config.rpm or config.tpm):
        return None, None
    with _WINDOWS_LOCK:
        found = _WINDOWS.get(config.key)
        if found is None:
            found = _WINDOWS[config.key] = (
                MinuteWindow(config.rpm) if config.rpm else None,
                MinuteWindow(config.tpm) if config.tpm else None)
        return found


def _answered_key(config: ModelConfig, completion: Completion, messages: list[dict[str, str]],
                 repeat: int) -> str:
    """The cache key of the request the answering fallback was sent.

    A fallback's answer filed under the primary's key would come back on the next run as
    the primary's. The Router sends a fallback the primary's parameters, so those are in it.
    """
    answered = next((c for c in config.fallbacks if c.model == completion.model), None)
    api_base = answered.api_base if answered is not None else None
    return cache_key(completion.model, config.params, messages, repeat, api_base)


async def _acompletion_with_retries(litellm: Any, config: ModelConfig,
                                    messages: list[dict[str, str]], **extra: Any
                                    ) -> tuple[Any, int]:
    """``litellm.acompletion`` and the retries it took, waiting as litellm's Router would."""
    request = {**_litellm_params(config), **config.params, "messages": messages, **extra}
    retries = 0
    while True:
        try:
            return await litellm.acompletion(**request), retries
        except Exception as exc:
            if retries >= config.num_retries or not _retryable(exc):
                raise mapped(exc, config, retries) from exc
            wait = litellm.utils.calculate_retry_after(
                config.num_retries - retries, config.num_retries, _headers(exc),
                min_timeout=0)
        await asyncio.sleep(wait)
        retries += 1


def _cached_tokens(usage: Any) -> int | None:
    """Prompt tokens read from the provider's prompt cache: OpenAI's
    ``prompt_tokens_details.cached_tokens`` (litellm maps Anthropic's and others' there too),
    else Anthropic's ``cache_read_input_tokens``; None when the response does not say."""
    details = getattr(usage, "prompt_tokens_details", None)
    found = getattr(details, "cached_tokens", None)
    if found is None:
        found = getattr(usage, "cache_read_input_tokens", None)
    return int(found) if isinstance(found, int | float) else None


def _estimate_tokens(config: ModelConfig, messages: list[dict[str, str]]) -> int:
    # for tpm pacing only: characters / 4 is close enough and costs nothing
    chars = sum(len(m.get("content") or "") for m in messages)
    return chars // 4 + int(config.params.get("max_tokens") or 256)
