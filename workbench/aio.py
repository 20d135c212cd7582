"""Sync entry points over async code, including inside Jupyter's running event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# How long an interrupted call waits for its cancelled work to wind down (closing
# connections, committing the cache) before the interrupt reaches the caller anyway.
CANCEL_GRACE_S = 5.0


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion; in a notebook, on a helper thread with its own loop.

    An interrupt (KeyboardInterrupt, e.g. the kernel's stop button) while the helper runs
    cancels the coroutine there, so its calls stop as they would under ``asyncio.run``,
    instead of running on behind the notebook's back.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    # Events, not Thread.join: an interrupted join (3.11) marks a running thread stopped.
    started, finished = threading.Event(), threading.Event()
    held: dict[str, Any] = {}

    async def main() -> T:
        held["loop"], held["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        return await make()

    def target() -> None:
        try:
            held["value"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            held["error"] = exc
        finally:
            started.set()
            finished.set()

    threading.Thread(target=target, name="workbench-sync", daemon=True).start()
    try:
        finished.wait()
    except BaseException:
        _cancel(started, finished, held)
        raise
    if "error" in held:
        raise held["error"]
    return held["value"]


def _cancel(started: threading.Event, finished: threading.Event, held: dict[str, Any]) -> None:
    """Cancel the helper's coroutine and give it a bounded time to finish."""
    started.wait(CANCEL_GRACE_S)
    loop, task = held.get("loop"), held.get("task")
    if loop is not None and task is not None:
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # the loop has closed: it finished meanwhile
            return
    finished.wait(CANCEL_GRACE_S)
