"""The thin serving module: load ``name@alias`` from the registry, render, call, report.

It depends on the registry and the gateway only, so an application installs the workbench
and uses this without the runner, the statistics or the widgets.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from .aio import run_sync
from .errors import RegistryError, TemplateError
from .gateway import Gateway, ModelConfig
from .registry import RegisteredPrompt, client, load

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

    def __str__(self) -> str:
        return self.text


class PromptService:
    """Serve the prompt version an alias points at; alias moves are seen within ``refresh_s``."""

    def __init__(self, name: str, alias: str = "production", *, refresh_s: float = 60.0,
                 model: ModelConfig | None = None, tracking_uri: str | None = None) -> None:
        self.name, self.alias, self.refresh_s = name, alias, refresh_s
        self._model_override = model
        self._client = client(tracking_uri)
        self._gateway = Gateway(cache=None)
        self._lock = threading.Lock()
        self._prompt: RegisteredPrompt | None = None
        self._loaded_at = 0.0
        _ = self.prompt  # fail fast: a service that cannot load its prompt should not start

    @property
    def prompt(self) -> RegisteredPrompt:
        """The current version, reloaded when older than ``refresh_s``."""
        with self._lock:
            if self._prompt is None or time.monotonic() - self._loaded_at >= self.refresh_s:
                try:
                    self._prompt = load(self.name, alias=self.alias,
                                        cache_ttl_seconds=self.refresh_s,
                                        mlflow_client=self._client)
                except RegistryError:
                    if self._prompt is None:
                        raise
                    log.warning("registry unreachable; still serving %s v%s",
                                self.name, self._prompt.version, exc_info=True)
                self._loaded_at = time.monotonic()
            return self._prompt

    @property
    def model(self) -> ModelConfig:
        model = self._model_override or self.prompt.model
        if model is None:
            raise RegistryError(
                f"prompts:/{self.name}@{self.alias} has no model config; register it with one "
                "or pass model=ModelConfig(model=...) to PromptService")
        return model

    async def acomplete(self, **variables: Any) -> Reply:
        prompt = self.prompt
        unexpected = sorted(set(variables) - prompt.template.variables)
        if unexpected:
            raise TemplateError(
                f"prompts:/{self.name}@{self.alias} (v{prompt.version}) takes "
                f"{sorted(prompt.template.variables)}; unexpected {unexpected}")
        messages = prompt.template.render(**variables)
        model = self.model
        completion = await self._gateway.complete(model, messages)
        reply = Reply(text=completion.text, prompt=self.name, version=prompt.version,
                      model=model.model, prompt_tokens=completion.prompt_tokens,
                      completion_tokens=completion.completion_tokens, cost=completion.cost,
                      latency_s=completion.latency_s)
        log.info("served %s v%s model=%s tokens=%d+%d cost=%.6f latency=%.3fs", self.name,
                 reply.version, reply.model, reply.prompt_tokens, reply.completion_tokens,
                 reply.cost, reply.latency_s)
        return reply

    def complete(self, **variables: Any) -> Reply:
        return run_sync(lambda: self.acomplete(**variables))

    def __repr__(self) -> str:
        version = self._prompt.version if self._prompt else "?"
        return f"PromptService('{self.name}@{self.alias}', version={version})"
