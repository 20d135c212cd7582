"""The one way a model call leaves the workbench: a ``Send``.

A ``Send`` answers one call: ``await send.complete(config, messages, repeat=, use_cache=,
key=)`` returns a ``Completion`` or raises a ``GatewayError``. Three implement it:
``Gateway`` (litellm, behind the response cache, with pacing, retries, fallbacks and
pricing), the worker-process send of ``gateway.workers`` (the calls made by other
processes, answered into this process's cache) and ``workbench.testing.FakeSend`` (answers
from your code, in memory). The runner, the judges and the pairwise comparison all get
theirs here, so whatever is added to a call (cache, pricing, the usage ledger) sees every
call, and a test or a notebook can swap the transport without patching import paths.

A run uses a send through a ``Batch``: how many calls to keep in flight, and how to stop
sending. A send with a ``batch(concurrency, status)`` method (the worker send) makes its
own; any other gets the plain one.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .config import Completion, ModelConfig
from .workers import CallDropped

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .client import Gateway

Message = dict[str, str]

__all__ = ["Batch", "CallDropped", "Send", "active", "batch", "for_calls", "for_run", "gateway",
           "notes", "using"]


@runtime_checkable
class Send(Protocol):
    """Answers one model call; failures are ``GatewayError``s."""

    async def complete(self, config: ModelConfig, messages: list[Message], *,
                       repeat: int = 0, use_cache: bool = True,
                       key: str | None = None) -> Completion: ...


class Batch:
    """A run's use of a send: ``in_flight`` calls at a time, then ``stop()`` when it ends.

    ``stop()`` says no more calls will come; calls not yet sent may then raise
    ``CallDropped`` (from ``gateway.workers``), which the run treats as never reached.
    """

    def __init__(self, send: Send, in_flight: int) -> None:
        self.send, self.in_flight = send, in_flight
        self.complete: Callable[..., Awaitable[Completion]] = send.complete  # no extra frame

    def stop(self) -> None:
        """Nothing is queued here: every call handed over is already on its way."""


@asynccontextmanager
async def batch(send: Send, concurrency: int,
                status: Callable[[str], None] | None = None) -> AsyncIterator[Batch]:
    """The send's own batch when it has one (it may start processes; ``status`` hears why
    the run waits), else a plain one keeping ``concurrency`` calls in flight."""
    opener = getattr(send, "batch", None)
    if opener is None:
        yield Batch(send, concurrency)
        return
    async with opener(concurrency, status or (lambda _: None)) as opened:
        yield opened


def notes(send: Send) -> list[str]:
    """What the send has to say about the run it made (a worker process that died)."""
    said = getattr(send, "notes", None)
    return list(said()) if callable(said) else []


def gateway(cache: ResponseCache | None = None, *, max_concurrency: int = 64) -> Gateway:
    """The litellm path: the one place a ``Gateway`` is built for the experiment loop."""
    from .client import Gateway

    return Gateway(cache, max_concurrency=max_concurrency)


def for_run(cache: ResponseCache | None, *, concurrency: int, workers: int = 1,
            models: Sequence[ModelConfig] = ()) -> tuple[Send, list[str]]:
    """The send a run's matrix goes through, and notes for its results: litellm in this
    process, or ``workers`` worker processes (started once per process, then reused) when
    every model can be called from one."""
    local = gateway(cache, max_concurrency=concurrency)
    if workers <= 1:
        return local, []
    from .workers import WorkerSend, can_share, pool

    if not can_share(models):
        return local, [f"workers: {workers} ignored: the embedded model runs in this "
                       "process only"]
    return WorkerSend(local, pool(workers)), []


_ACTIVE: contextvars.ContextVar[Send | None] = contextvars.ContextVar("workbench_send",
                                                                      default=None)


@contextmanager
def using(send: Send) -> Iterator[None]:
    """Inside, every call made through ``for_calls`` (judges, pairwise) goes to ``send``:
    a run given ``send=`` sends its judges' calls there too."""
    token = _ACTIVE.set(send)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def for_calls(cache: ResponseCache | None = None) -> Send:
    """The send for a call outside a run's matrix (a judge's, a pairwise comparison's):
    the one ``using`` made active, else litellm through a ``Gateway`` over ``cache``."""
    active = _ACTIVE.get()
    return active if active is not None else gateway(cache)


def active() -> Send | None:
    """The send ``using`` made active here, if any."""
    return _ACTIVE.get()
