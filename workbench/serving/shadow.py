"""Shadow calls of a route: a sampled share of the routed requests is also sent to the model
the route replaced, on a thread of its own, so the caller never waits for it. Both answers
are compared in the log (``event: shadow``) and the shadow call is a ledger record of its
own (``route = "<rule>:shadow"``); its cost counts against the request's budgets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..observe import hook as usage

log = logging.getLogger("workbench.serving")
_running: set[threading.Thread] = set()
_lock = threading.Lock()


def shadow_call(service: Any, prompt: Any, route: Any, messages: list[dict[str, str]],
                tags: Mapping[str, str], routed: Any) -> None:
    """Start the shadow call of one routed request; returns at once."""
    thread = threading.Thread(target=_run, args=(service, prompt, route, messages, dict(tags),
                                                 routed), name="workbench-shadow", daemon=True)
    with _lock:
        _running.add(thread)
    thread.start()


def join(timeout: float = 30.0) -> bool:
    """Wait for the shadow calls started so far (at shutdown); False if some still run."""
    deadline = time.monotonic() + timeout
    with _lock:
        threads = list(_running)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def _run(*args: Any) -> None:
    try:
        _shadow(*args)
    except Exception:  # a shadow never fails a request, nor dies silently
        log.exception("shadow call failed")
    finally:
        with _lock:
            _running.discard(threading.current_thread())


def _shadow(service: Any, prompt: Any, route: Any, messages: list[dict[str, str]],
            tags: dict[str, str], routed: Any) -> None:
    from ..gateway.send import gateway

    model, name = route.shadow, f"{route.rule}:shadow"
    started = time.perf_counter()
    try:
        completion = asyncio.run(gateway(None).complete(model, messages))
    except Exception as exc:
        usage.served(prompt=service.name, version=prompt.version, alias=service.alias,
                     tags=tags, config=model, error=exc, route=name,
                     steps={"call": time.perf_counter() - started,
                            "total": time.perf_counter() - started})
        log.warning("shadow call of route %r to %s failed: %s", route.rule, model.model, exc)
        return
    seconds = time.perf_counter() - started
    usage.served(prompt=service.name, version=prompt.version, alias=service.alias, tags=tags,
                 config=model, completion=completion, route=name,
                 steps={"call": seconds, "total": seconds})
    if service.budgets is not None:
        service.budgets.add(tags, completion.cost)
    comparison = {
        "event": "shadow", "route": route.rule, "prompt": service.name,
        "version": prompt.version, "routed_model": routed.model,
        "shadow_model": completion.model,
        "same_answer": routed.text.strip() == completion.text.strip(),
        "routed_cost": routed.cost, "shadow_cost": completion.cost,
        "routed_tokens_out": routed.completion_tokens,
        "shadow_tokens_out": completion.completion_tokens, "tags": tags}
    log.info(json.dumps(comparison), extra={"workbench": comparison})
