"""Every model call goes through here: litellm, the response cache, pacing, tokens, cost.

A model with fallbacks is called through litellm's ``Router``: fallbacks, cooldowns of a
deployment that keeps failing, retries. A model without fallbacks needs none of the Router's
routing, which cost about 0.9 ms of CPU per call here, so it is called with
``litellm.acompletion`` directly and retried with litellm's own policy (``should_retry``
on the status, ``calculate_retry_after``: Retry-After when given, else exponential
backoff). The gateway adds what a batch evaluation needs on top: waiting for rpm/tpm
capacity instead of failing, concurrency that halves on rate limits, a context-window
check before sending, prices for models litellm does not know, and the cache.

Any failure becomes a ``GatewayError`` with a readable reason, so the runner records it
on the row and goes on, and the serving module can show it to a caller.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import GatewayError
from ..observe.hook import recorded
from ..prompts.templates import canonical_json
from .cache import ResponseCache, cache_key
from .limits import AdaptiveConcurrency, MinuteWindow
from .scrub import guard_logs, scrub

log = logging.getLogger("workbench.gateway")

_SECRET_KEYS = {"api_key", "key", "token", "secret", "password", "authorization"}


class ModelConfig(BaseModel):
    """How to call one model: a litellm model string and the parameters of every call.

    Keys never live here, only the *name* of the environment variable that holds one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    api_base: str | None = None
    api_key_env: str | None = None
    timeout: float = Field(default=120.0, gt=0)
    num_retries: int = Field(default=2, ge=0, le=10)
    # models to try, in order, when this one keeps failing
    fallbacks: list[ModelConfig] = Field(default_factory=list)
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    # prices for models missing from litellm's price table, in USD per token
    input_cost_per_token: float | None = Field(default=None, ge=0)
    output_cost_per_token: float | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _no_literal_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "api_key must not be written in a file; put the key in an environment "
                "variable and give its name as api_key_env (e.g. api_key_env: OPENAI_API_KEY)"
            )
        return data

    @field_validator("params")
    @classmethod
    def _no_secrets(cls, params: dict[str, Any]) -> dict[str, Any]:
        leaked = sorted(k for k in params if k.lower() in _SECRET_KEYS)
        if leaked:
            raise ValueError(
                f"{leaked} must not be written in a file; put the key in an environment "
                "variable and name that variable with api_key_env"
            )
        return params

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0] if "/" in self.model else "openai"

    @functools.cached_property
    def key(self) -> str:
        """A stable identity for this configuration (routers and limiters are per key)."""
        return canonical_json(self.model_dump(mode="json"))

    def api_key(self) -> str | None:
        """The key from the environment, or a clear error before any call is made."""
        if not self.api_key_env:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise GatewayError(
                f"model {self.model!r} needs the environment variable {self.api_key_env} "
                f"(set it in the shell or a .env file before running)"
            )
        return value

    def check_keys(self) -> None:
        """Every key this config (and its fallbacks) needs is set; else a clear error."""
        self.api_key()
        for fallback in self.fallbacks:
            fallback.check_keys()


@dataclass(frozen=True)
class Completion:
    """One model answer with what it cost; ``latency_s`` is the original call's, even cached.

    ``model`` is the model that answered: a fallback's when the primary kept failing.
    """

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    cached: bool = False
    retries: int = 0
    fallback: bool = False

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data


_ROUTERS: dict[tuple[str, str], Any] = {}


class ContextWindowError(GatewayError):
    """The prompt does not fit the model's context window."""


Send = Callable[[ModelConfig, list[dict[str, str]]], Awaitable[Completion]]


class Gateway:
    """Calls models through litellm, with an optional on-disk cache in front."""

    def __init__(self, cache: ResponseCache | None = None, *, max_concurrency: int = 64) -> None:
        self.cache = cache
        self.max_concurrency = max_concurrency
        # asyncio primitives belong to one event loop; sync callers may use several
        self._pacing: weakref.WeakKeyDictionary[Any, dict[str, _Pacing]] = (
            weakref.WeakKeyDictionary())

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

    # ---- pacing -------------------------------------------------------------------------
    def _pacing_for(self, config: ModelConfig) -> _Pacing:
        per_loop = self._pacing.setdefault(asyncio.get_running_loop(), {})
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
            except GatewayError as exc:
                if "RateLimitError" in str(exc):
                    pacing.concurrency.rate_limited()
                raise
        pacing.concurrency.succeeded()
        return completion

    # ---- the call -----------------------------------------------------------------------
    def _router(self, config: ModelConfig) -> Any:
        # One Router per configuration per process: litellm re-registers a model's price
        # entry for every new Router, after which each of its calls ran a zero-cost
        # diagnosis (+2 to +6 ms CPU per call in every later run of a notebook).
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
                # calls go straight to the fallback (measured: 10 calls to a dead model took
                # 1.4 s instead of 93 s). Without one, a cooldown would only turn transient
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
                raise GatewayError(_describe(exc, config)) from exc
            retries = 0  # the Router's own count is read from the response below
        else:
            response, retries = await _acompletion_with_retries(litellm, config, messages)
        latency = time.perf_counter() - started
        try:
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError) as exc:
            raise GatewayError(f"{config.model}: response without a message ({exc})") from exc
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
        )

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
        """Raise ``ContextWindowError`` when prompt + completion budget do not fit."""
        tokens = self.count_tokens(config, messages)
        window = self.context_window(config)
        reserve = int(config.params.get("max_tokens") or 0)
        if window is not None and tokens + reserve > window:
            raise ContextWindowError(
                f"{config.model}: the prompt has {tokens} tokens and max_tokens is {reserve}, "
                f"over the {window}-token context window")
        return tokens


@dataclass
class _Pacing:
    requests: MinuteWindow | None
    tokens: MinuteWindow | None
    concurrency: AdaptiveConcurrency

    def __init__(self, config: ModelConfig, max_concurrency: int) -> None:
        self.requests = MinuteWindow(config.rpm) if config.rpm else None
        self.tokens = MinuteWindow(config.tpm) if config.tpm else None
        self.concurrency = AdaptiveConcurrency(max_concurrency)


def _answered_key(config: ModelConfig, completion: Completion, messages: list[dict[str, str]],
                 repeat: int) -> str:
    """The cache key of the request the answering fallback was sent.

    A fallback's answer filed under the primary's key would come back on the next run as
    the primary's. The Router sends a fallback the primary's parameters, so those are in it.
    """
    answered = next((c for c in config.fallbacks if c.model == completion.model), None)
    api_base = answered.api_base if answered is not None else None
    return cache_key(completion.model, config.params, messages, repeat, api_base)


def connection_params(config: ModelConfig) -> dict[str, Any]:
    """Where and how litellm reaches the model: model string, endpoint, key, timeout."""
    params: dict[str, Any] = {"model": config.model, "timeout": config.timeout}
    if config.api_base:
        params["api_base"] = config.api_base
    key = config.api_key()
    if key is not None:
        params["api_key"] = key
    elif config.api_base:
        params["api_key"] = "none"  # OpenAI-compatible local servers want some key
    return params


def _litellm_params(config: ModelConfig) -> dict[str, Any]:
    # the gateway (or the Router) retries; the SDK underneath must not retry too
    return {**connection_params(config), "max_retries": 0}


async def _acompletion_with_retries(litellm: Any, config: ModelConfig,
                                    messages: list[dict[str, str]]) -> tuple[Any, int]:
    """``litellm.acompletion`` and the retries it took, waiting as litellm's Router would."""
    request = {**_litellm_params(config), **config.params, "messages": messages}
    retries = 0
    while True:
        try:
            return await litellm.acompletion(**request), retries
        except Exception as exc:
            if retries >= config.num_retries or not _retryable(exc):
                after = f" (after {retries} retries)" if retries else ""
                raise GatewayError(_describe(exc, config) + after) from exc
            wait = litellm.utils.calculate_retry_after(
                config.num_retries - retries, config.num_retries, _headers(exc),
                min_timeout=0)
        await asyncio.sleep(wait)
        retries += 1


def _retryable(exc: Exception) -> bool:
    """litellm's own rule: 408, 409, 429 and 5xx (timeouts and lost connections included)."""
    import litellm

    if isinstance(exc, (litellm.Timeout, litellm.APIConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and litellm.utils.should_retry(status)


def _headers(exc: Exception) -> Any:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers


def _litellm(config: ModelConfig) -> Any:
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner per error
    guard_logs(config)  # its Router logs provider errors, which may quote the key
    if any(c.model.startswith("local/") for c in (config, *config.fallbacks)):
        from .local_model import register_with_litellm

        register_with_litellm()
    return litellm


def _model_info(config: ModelConfig) -> dict[str, Any]:
    _litellm(config)
    return _model_table_entry(config.model)


@functools.lru_cache(maxsize=256)
def _model_table_entry(model: str) -> dict[str, Any]:
    import litellm

    try:
        return dict(litellm.get_model_info(model))
    except Exception:  # not in litellm's table
        return {}


_unpriced: set[str] = set()
# model -> whether litellm's own table priced it before the gateway first called it
_in_litellm_table: dict[str, bool] = {}
_price_lock = threading.Lock()


def _price_for_litellm(litellm: Any, config: ModelConfig) -> None:
    """Give litellm a price for each model its table lacks, once per process.

    litellm prices every response it returns. For a model missing from its table it first
    searches the table for a near match, on every call: 0.86 ms of CPU per call measured
    (7.55 against 6.96 ms), a tenth of the call. Self-hosted and OpenAI-compatible local
    models are all missing. The entry registered is the config's own prices, else zero; a
    zero entry does not make the model priced for the workbench (``has_price`` stays false,
    the cost is still reported as unknown).
    """
    for c in (config, *config.fallbacks):
        if c.model in _in_litellm_table or c.model.startswith("local/"):
            continue
        with _price_lock:
            if c.model in _in_litellm_table:
                continue
            known = _model_table_entry(c.model).get("input_cost_per_token") is not None
            if not known:
                entry = {"input_cost_per_token": c.input_cost_per_token or 0.0,
                         "output_cost_per_token": c.output_cost_per_token or 0.0,
                         "litellm_provider": c.provider, "mode": "chat"}
                litellm.register_model({c.model: entry})
            _in_litellm_table[c.model] = known


def has_price(config: ModelConfig) -> bool:
    """Whether a cost can be computed for this model (its own prices or litellm's table)."""
    if config.input_cost_per_token is not None or config.output_cost_per_token is not None:
        return True
    if _in_litellm_table.get(config.model) is False:  # the entry above is not a price
        return False
    return bool(_model_info(config).get("input_cost_per_token") is not None)


def price(config: ModelConfig, prompt_tokens: int, completion_tokens: int,
          response: Any = None, *, unknown: float = 0.0) -> float:
    """USD for a call: the config's own prices, else litellm's table, else ``unknown``.

    Recorded costs of unpriced models count as 0 (with one warning per model) so totals
    stay usable; estimates pass ``unknown=nan`` so nobody mistakes them for free.
    """
    if config.input_cost_per_token is not None or config.output_cost_per_token is not None:
        return (prompt_tokens * (config.input_cost_per_token or 0.0)
                + completion_tokens * (config.output_cost_per_token or 0.0))
    if not has_price(config):
        if response is not None and config.model not in _unpriced:
            _unpriced.add(config.model)
            log.warning("no price known for %s: its cost is counted as 0; set "
                        "input_cost_per_token and output_cost_per_token in its config",
                        config.model)
        return unknown
    litellm = _litellm(config)
    if response is not None:
        known = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if known is not None:  # litellm has priced this response already
            return float(known)
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=config.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return float(prompt_cost + completion_cost)


def _estimate_tokens(config: ModelConfig, messages: list[dict[str, str]]) -> int:
    # for tpm pacing only: characters / 4 is close enough and costs nothing
    chars = sum(len(m.get("content") or "") for m in messages)
    return chars // 4 + int(config.params.get("max_tokens") or 256)


def _describe(exc: Exception, config: ModelConfig) -> str:
    kind = type(exc).__name__
    text = scrub(str(exc), [config])  # before the cut: a key cut in half would not match
    message = text.strip().splitlines()[0] if text.strip() else kind
    status = getattr(exc, "status_code", None)
    prefix = f"{config.model}: {kind}" + (f" ({status})" if status else "")
    hint = {401: " — check the key in the environment variable named by api_key_env",
            404: " — check the model name"}.get(status or 0, "")
    return f"{prefix}: {message[:300]}{hint}"
