"""A served call's reply and what it leaves behind: its usage-ledger record and log line.

Shared by :mod:`workbench.serving.service` and :mod:`workbench.serving.reply_stream`; it
sees the service only through :class:`Served`, so it never imports the service.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..gateway.config import Completion, ModelConfig
from ..gateway.scrub import scrub
from ..observe import hook as usage
from ..observe.budgets import BudgetExceeded, BudgetGuard
from ..observe.record import UsageRecord
from ..prompts.versions import RegisteredPrompt

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


class Served(Protocol):
    """What the ledger helpers read of a ``PromptService``."""

    name: str
    alias: str
    budgets: BudgetGuard | None
    observers: list[Callable[[UsageRecord], None]]


def make_reply(prompt: RegisteredPrompt, model: ModelConfig, completion: Completion,
               tags: dict[str, str], sources: tuple[str, ...] = ()) -> Reply:
    # the model that answered: a fallback's name when the primary failed
    return Reply(text=completion.text, prompt=prompt.name, version=prompt.version,
                 model=completion.model if completion.fallback else model.model,
                 prompt_tokens=completion.prompt_tokens,
                 completion_tokens=completion.completion_tokens, cost=completion.cost,
                 latency_s=completion.latency_s, tags=tags, sources=sources)


def log_reply(service: Served, reply: Reply, *, stream: bool) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    record = {"event": "served", "prompt": reply.prompt, "alias": service.alias,
              "version": reply.version, "model": reply.model,
              "prompt_tokens": reply.prompt_tokens,
              "completion_tokens": reply.completion_tokens, "cost": reply.cost,
              "latency_s": round(reply.latency_s, 6), "stream": stream, "tags": reply.tags}
    log.info(json.dumps(record), extra={"workbench": record})


def record_call(service: Served, prompt: RegisteredPrompt, model: ModelConfig,
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


def check_budget(service: Served, prompt: RegisteredPrompt, model: ModelConfig,
                 tags: dict[str, str], steps: dict[str, float]) -> None:
    """``BudgetExceeded`` when a budget of the request is spent; the refusal is recorded."""
    try:
        service.budgets.check(tags)  # type: ignore[union-attr]
    except BudgetExceeded as exc:
        record_call(service, prompt, model, tags, steps, 0.0, error=exc, status="refused")
        raise


def log_failure(service: Served, prompt: RegisteredPrompt, model: ModelConfig,
                tags: dict[str, str], exc: Exception) -> None:
    record = {"event": "failed", "prompt": service.name, "alias": service.alias,
              "version": prompt.version, "model": model.model,
              "error": scrub(str(exc), [model]), "tags": tags}
    log.warning(json.dumps(record), extra={"workbench": record})
