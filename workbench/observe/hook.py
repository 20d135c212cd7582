"""The one seam the call paths use to record usage: cheap, and silent when not attributed.

The gateway's ``complete`` records a call only inside ``attribute(...)`` (an experiment
run sets it), so a gateway used by ``PromptService`` - which records its own request with
its steps - is not counted twice. Importing this module loads nothing heavy.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .record import UsageRecord, provider_of

_attribution: contextvars.ContextVar[dict[str, str | None] | None] = contextvars.ContextVar(
    "workbench_usage_attribution", default=None)
_ledgers: dict[tuple[str | None, str | None, str], Any] = {}
_opening = threading.Lock()


def enabled() -> bool:
    return os.environ.get("WORKBENCH_LEDGER", "on").lower() not in ("off", "0", "false")


def _ledgers_key() -> tuple[str | None, str | None, str]:
    return (os.environ.get("WORKBENCH_LEDGER_URL"), os.environ.get("WORKBENCH_HOME"),
            os.getcwd())


def default_ledger() -> Any:
    """The ledger of the current project (or ``$WORKBENCH_LEDGER_URL``), opened once."""
    where = _ledgers_key()
    ledger = _ledgers.get(where)
    if ledger is None:
        from .ledger import Ledger
        from .store import default_url

        with _opening:  # one writer per store, even when threads start at once
            url = default_url()
            ledger = next((lg for lg in _ledgers.values() if lg.url == url), None)
            ledger = _ledgers[where] = ledger or Ledger(url)
    return ledger


def record(usage: UsageRecord) -> None:
    """Queue one record on the default ledger (unless ``WORKBENCH_LEDGER=off``)."""
    if enabled():
        default_ledger().record(usage)


@contextlib.contextmanager
def attribute(application: str | None = None, *, user: str | None = None,
              request_type: str | None = None, prompt: str | None = None) -> Iterator[None]:
    """Gateway calls inside this block are recorded under these names (tasks inherit it)."""
    token = _attribution.set({"application": application, "user": user,
                              "request_type": request_type, "prompt": prompt})
    try:
        yield
    finally:
        _attribution.reset(token)


def request_type() -> str | None:
    """The request type calls made here are recorded under (None outside ``attribute``)."""
    names = _attribution.get()
    return None if names is None else names.get("request_type")


@contextlib.contextmanager
def relabel(**names: str | None) -> Iterator[None]:
    """Inside an ``attribute`` block, gateway calls in this one are recorded with these
    names changed (a judge's calls are ``request_type="judge"``); outside, nothing is."""
    current = _attribution.get()
    token = _attribution.set(None if current is None else {**current, **names})
    try:
        yield
    finally:
        _attribution.reset(token)


def recorded(complete: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``Gateway.complete``: inside ``attribute(...)``, each call becomes a record."""

    @functools.wraps(complete)
    async def wrapper(self: Any, config: Any, messages: Any, **options: Any) -> Any:
        names = _attribution.get()
        if names is None:
            return await complete(self, config, messages, **options)
        started = time.perf_counter()
        try:
            completion = await complete(self, config, messages, **options)
        except Exception as exc:
            _gateway_record(names, config, None, exc, time.perf_counter() - started)
            raise
        _gateway_record(names, config, completion, None, time.perf_counter() - started)
        return completion

    return wrapper


def _gateway_record(names: Mapping[str, str | None], config: Any, completion: Any,
                    error: BaseException | None, total_s: float) -> None:
    if completion is None:
        record(UsageRecord(**names, model=config.model, provider=config.provider,
                           requested_model=config.model, steps={"total": total_s},
                           status="error", error_type=_error_type(error)))
        return
    hit = bool(completion.cached)
    steps = {"total": total_s} if hit else {"call": completion.latency_s, "total": total_s}
    record(UsageRecord(
        **names, model=completion.model, provider=provider_of(completion.model),
        requested_model=config.model, tokens_in=completion.prompt_tokens,
        tokens_out=completion.completion_tokens,
        tokens_cached=None if hit else getattr(completion, "cached_tokens", None),
        cost=0.0 if hit else completion.cost, priced=hit or _priced(config, completion.model),
        steps=steps, cache_hit=hit, fallback=completion.fallback))


def served(*, prompt: str, version: int | None, alias: str, tags: Mapping[str, str],
           config: Any, steps: dict[str, float], completion: Any = None,
           error: BaseException | None = None, status: str = "error",
           ttft_s: float | None = None, route: str | None = None,
           fingerprint: str | None = None) -> UsageRecord:
    """Record one request served by ``PromptService``; ``completion`` is a gateway
    ``Completion`` or a streamed ``Reply`` (model, tokens, cost). Without one, the request
    failed (``status="error"``) or its stream was abandoned (``"cancelled"``: the tokens
    of a stream are only reported at its end, so they are unknown) or was refused before
    any call (``"refused"``: a spent budget, a saturated model). Returns the record
    (made even with the ledger off), for the serving metrics."""
    names = {"application": tags.get("application"), "user": tags.get("user"),
             "request_type": tags.get("request_type"),
             "request_id": tags.get("request_id", ""), "prompt": prompt,
             "prompt_version": version, "prompt_alias": alias,
             "requested_model": config.model, "steps": steps, "ttft_s": ttft_s,
             "route": route, "fingerprint": fingerprint}
    if completion is None:
        made = UsageRecord(**names, model=config.model, provider=config.provider,
                           status=status, error_type=_error_type(error))
    else:
        answered = completion.model
        made = UsageRecord(
            **names, model=answered, provider=provider_of(answered),
            tokens_in=completion.prompt_tokens, tokens_out=completion.completion_tokens,
            tokens_cached=getattr(completion, "cached_tokens", None),
            cost=completion.cost, priced=_priced(config, answered),
            fallback=bool(getattr(completion, "fallback", False)))
    record(made)
    return made


def fingerprint(config: Any, messages: Any) -> str:
    """32 hex digits naming a request (model, parameters, messages): equal for a repeat,
    so the ledger can tell how many requests a response cache would have answered."""
    import hashlib
    import json

    body = json.dumps([config.model, config.params, messages], sort_keys=True, default=str)
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def _priced(config: Any, answered: str) -> bool:
    from ..gateway.pricing import has_price

    chosen = next((c for c in (config, *config.fallbacks) if c.model == answered), config)
    try:
        return has_price(chosen)
    except Exception:  # a lookup failure is no price
        return False


def _error_type(error: BaseException | None) -> str | None:
    from ..errors import GatewayError

    if error is None:
        return None
    if not isinstance(error, GatewayError):  # a refusal or a workbench check: its own name
        return type(error).__name__
    text = str(error)
    # the gateway's messages start "<model>: <litellm exception name> (...)"
    head = text.split(": ", 2)
    if len(head) >= 2 and head[1].split(" ")[0].endswith(("Error", "Timeout", "Exception")):
        return head[1].split(" ")[0]
    return type(error).__name__
