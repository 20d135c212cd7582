"""Pacing for one model: requests and tokens per minute, and concurrency that backs off.

litellm's Router enforces rpm/tpm by refusing calls over the limit; a batch evaluation
wants the opposite — wait for capacity and keep going — so pacing lives here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class MinuteWindow:
    """At most ``limit`` units (requests or tokens) in any rolling ``window_s`` window.

    What was sent is kept behind a thread lock, so every event loop and thread calling one
    model shares the window: a sync call runs on an event loop of its own, and a window per
    loop would start empty each time. Only the queue of waiters is per loop (an asyncio
    lock belongs to one loop); it keeps one loop's callers in order, so a large token
    request is not overtaken forever by small ones, and is dropped once nobody waits in it.
    """

    def __init__(self, limit: int, *, window_s: float = 60.0) -> None:
        if limit <= 0:
            raise ValueError("a rate limit must be positive")
        self.limit, self.window_s = limit, window_s
        self._events: deque[tuple[float, int]] = deque()
        self._used = 0
        self._lock = threading.Lock()
        self._queues: dict[asyncio.AbstractEventLoop, _Queue] = {}

    def take(self, units: int = 1) -> float:
        """Count ``units`` as sent now if they fit and return 0.0, else the seconds to wait
        before they might."""
        with self._lock:
            return self._take(min(units, self.limit))

    async def acquire(self, units: int = 1) -> float:
        """Wait until ``units`` fit; returns the seconds waited."""
        units = min(units, self.limit)  # one oversized request must still be able to run
        loop = asyncio.get_running_loop()
        with self._lock:
            queue = self._queues.get(loop)
            if queue is None:
                if not self._take(units):  # nobody of this loop waits: no queue needed
                    return 0.0
                queue = self._queues[loop] = _Queue()
            queue.members += 1
        try:
            waited = 0.0
            async with queue.turn:
                while pause := self.take(units):
                    waited += pause
                    await asyncio.sleep(pause)
            return waited
        finally:
            with self._lock:
                queue.members -= 1
                if not queue.members:  # a closed loop must not be kept alive here
                    del self._queues[loop]

    def _take(self, units: int) -> float:
        now = time.monotonic()
        while self._events and now - self._events[0][0] >= self.window_s:
            self._used -= self._events.popleft()[1]
        if self._used + units <= self.limit:
            self._events.append((now, units))
            self._used += units
            return 0.0
        return self.window_s - (now - self._events[0][0]) + 1e-3


class _Queue:
    """One event loop's callers waiting for a window, in turn."""

    def __init__(self) -> None:
        self.turn = asyncio.Lock()
        self.members = 0


class AdaptiveConcurrency:
    """Additive increase, multiplicative decrease: halve on a rate limit, creep back up."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = float(self.maximum)
        self.in_flight = 0
        self.backoffs = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1
        try:
            yield
        finally:
            async with self._changed:
                self.in_flight -= 1
                self._changed.notify_all()

    def rate_limited(self) -> None:
        self.limit = max(1.0, self.limit / 2)
        self.backoffs += 1

    def succeeded(self) -> None:
        if self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
