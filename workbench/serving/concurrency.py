"""A per-model limit on calls in flight, with a bounded queue in front of it.

A request over the limit waits in a first-come queue; when the queue is full too it is
refused at once with :class:`Saturated`, which says how long to wait before trying again
(the queue ahead of it times the recent call duration). The state is guarded by a thread
lock and a waiter is woken on its own event loop, so one service may be called from
several loops (``complete`` runs on a helper thread's loop, the HTTP app on uvicorn's).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..errors import WorkbenchError


class Saturated(WorkbenchError):
    """Refused: the model's calls in flight and its queue are full; ``retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class _Model:
    in_flight: int = 0
    waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=deque)
    call_s: float = 1.0  # a moving average of the call duration, for Retry-After


class ConcurrencyLimiter:
    """At most ``limit`` calls in flight per model, at most ``max_queue`` more waiting."""

    def __init__(self, limit: int, max_queue: int | None = None) -> None:
        if limit < 1 or (max_queue is not None and max_queue < 0):
            raise WorkbenchError("max_concurrency must be >= 1 and max_queue >= 0")
        self.limit = limit
        self.max_queue = limit if max_queue is None else max_queue
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()

    def state(self) -> dict[str, tuple[int, int]]:
        """Per model: (calls in flight, requests waiting)."""
        with self._lock:
            return {name: (m.in_flight, len(m.waiters)) for name, m in self._models.items()}

    @contextlib.asynccontextmanager
    async def slot(self, model: str) -> AsyncIterator[None]:
        """Hold one of ``model``'s slots for the block; wait for one, or raise Saturated."""
        await self._acquire(model)
        started = asyncio.get_running_loop().time()
        try:
            yield
        finally:
            self._release(model, asyncio.get_running_loop().time() - started)

    async def _acquire(self, model: str) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._models.setdefault(model, _Model())
            if state.in_flight < self.limit and not state.waiters:
                state.in_flight += 1
                return
            if len(state.waiters) >= self.max_queue:
                ahead = state.in_flight + len(state.waiters)
                wait = max(1, math.ceil(ahead / self.limit * state.call_s))
                raise Saturated(
                    f"{model}: {state.in_flight} calls in flight (the limit) and "
                    f"{len(state.waiters)} waiting (the queue's size); retry in {wait} s",
                    retry_after_s=wait)
            waiter: asyncio.Future[None] = loop.create_future()
            state.waiters.append((loop, waiter))
        try:
            await waiter  # the slot is handed over by _release, in_flight already counted
        except asyncio.CancelledError:
            with self._lock:
                queued = (loop, waiter) in state.waiters
                if queued:
                    state.waiters.remove((loop, waiter))
            if not queued and waiter.done() and not waiter.cancelled():
                self._release(model, None)  # handed a slot just as it gave up: pass it on
            raise

    def _release(self, model: str, took_s: float | None) -> None:
        with self._lock:
            state = self._models[model]
            if took_s is not None:
                state.call_s = 0.8 * state.call_s + 0.2 * took_s
            if not state.waiters:
                state.in_flight -= 1
                return
            loop, waiter = state.waiters.popleft()  # the slot goes to the next in line
        try:
            loop.call_soon_threadsafe(self._hand_over, model, waiter)
        except RuntimeError:  # its loop has closed: the waiter is gone
            self._release(model, None)

    def _hand_over(self, model: str, waiter: asyncio.Future[None]) -> None:
        if waiter.cancelled():  # it gave up after being picked: the next one gets the slot
            self._release(model, None)
        else:
            waiter.set_result(None)
