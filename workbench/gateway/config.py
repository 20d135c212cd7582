"""How to call one model (``ModelConfig``), the answer it gives (``Completion``) and the
connection parameters litellm is called with. Shared by the gateway and its users; imports
nothing heavy."""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..canonical import canonical_json
from ..errors import Unauthorized

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
            raise Unauthorized(
                f"model {self.model!r} needs the environment variable {self.api_key_env} "
                f"(set it in the shell or a .env file before running)", model=self.model)
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
    ``cached_tokens`` are the prompt tokens the provider read from its prompt cache (None
    when it does not say); a response-cache entry does not keep them.
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
    cached_tokens: int | None = None

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        data.pop("cached_tokens")
        return data


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
