"""Every model call goes through here: litellm, the response cache, tokens, cost, latency.

The gateway turns any failure into a ``GatewayError`` with a readable reason, so the runner
can record it on the row and go on, and the serving module can show it to a caller.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .cache import ResponseCache, cache_key
from .errors import GatewayError

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


@dataclass(frozen=True)
class Completion:
    """One model answer with what it cost; ``latency_s`` is the original call's, even cached."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    cached: bool = False

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data


class Gateway:
    """Calls models through litellm, with an optional on-disk cache in front."""

    def __init__(self, cache: ResponseCache | None = None) -> None:
        self.cache = cache
        self.calls = 0

    async def complete(self, config: ModelConfig, messages: list[dict[str, str]], *,
                       repeat: int = 0, use_cache: bool = True) -> Completion:
        key = cache_key(config.model, config.params, messages, repeat, config.api_base)
        if self.cache is not None and use_cache:
            hit = self.cache.get(key)
            if hit is not None:
                return Completion(**hit, cached=True)
        completion = await self._call(config, messages)
        if self.cache is not None:
            self.cache.put(key, config.model, completion.record())
        return completion

    async def _call(self, config: ModelConfig, messages: list[dict[str, str]]) -> Completion:
        litellm = _litellm(config.model)
        kwargs: dict[str, Any] = {
            "model": config.model,
            "messages": messages,
            "timeout": config.timeout,
            "num_retries": config.num_retries,
            **config.params,
        }
        if config.api_base:
            kwargs["api_base"] = config.api_base
        key = config.api_key()
        if key is not None:
            kwargs["api_key"] = key
        elif config.api_base:
            kwargs["api_key"] = "none"  # OpenAI-compatible local servers want some key
        self.calls += 1
        started = time.perf_counter()
        try:
            response = await litellm.acompletion(**kwargs)
        except Exception as exc:
            raise GatewayError(_describe(exc, config)) from exc
        latency = time.perf_counter() - started
        try:
            text = response.choices[0].message.content or ""
        except (AttributeError, IndexError) as exc:
            raise GatewayError(f"{config.model}: response without a message ({exc})") from exc
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            model=getattr(response, "model", None) or config.model,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost=_cost(litellm, response),
            latency_s=latency,
        )


def _litellm(model: str) -> Any:
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner per error
    if model.startswith("local/"):
        from .local_model import register_with_litellm

        register_with_litellm()
    return litellm


def _cost(litellm: Any, response: Any) -> float:
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost")
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:  # models missing from litellm's price table cost "unknown"
            cost = 0.0
    return float(cost or 0.0)


def _describe(exc: Exception, config: ModelConfig) -> str:
    kind = type(exc).__name__
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else kind
    status = getattr(exc, "status_code", None)
    prefix = f"{config.model}: {kind}" + (f" ({status})" if status else "")
    return f"{prefix}: {message[:300]}"
