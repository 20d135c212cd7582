"""Pacing for one model: requests and tokens per minute, and concurrency that backs off.

litellm's Router enforces rpm/tpm by refusing calls over the limit; a batch evaluation
wants the opposite — wait for capacity and keep going — so pacing lives here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class MinuteWindow:
    """At most ``limit`` units (requests or tokens) in any rolling 60 s window."""

    def __init__(self, limit: int, *, window_s: float = 60.0) -> None:
        if limit <= 0:
            raise ValueError("a rate limit must be positive")
        self.limit, self.window_s = limit, window_s
        self._events: deque[tuple[float, int]] = deque()
        self._used = 0
        self._lock = asyncio.Lock()

    async def acquire(self, units: int = 1) -> float:
        """Wait until ``units`` fit; returns the seconds waited."""
        units = min(units, self.limit)  # one oversized request must still be able to run
        waited = 0.0
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._events and now - self._events[0][0] >= self.window_s:
                    self._used -= self._events.popleft()[1]
                if self._used + units <= self.limit:
                    self._events.append((now, units))
                    self._used += units
                    return waited
                pause = self.window_s - (now - self._events[0][0]) + 1e-3
                waited += pause
                await asyncio.sleep(pause)


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
