"""Sync entry points over async code, including inside Jupyter's running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
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


def iterate_sync(make: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """An async iterator as a sync one, run on a helper thread with its own loop (so it works
    inside Jupyter's running loop too). Leaving the ``for`` loop early, or an interrupt,
    cancels the async side instead of letting it run to its end unseen."""
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop, held = threading.Event(), {}

    async def pump() -> None:
        held["loop"], held["task"] = asyncio.get_running_loop(), asyncio.current_task()
        if stop.is_set():  # closed before this thread got going
            return
        async for item in make():
            items.put(("item", item))

    def target() -> None:
        try:
            asyncio.run(pump())
            items.put(("end", None))
        except BaseException as exc:  # re-raised in the caller's thread
            items.put(("error", exc))

    threading.Thread(target=target, name="workbench-stream", daemon=True).start()
    done = False
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
                continue
            done = True
            if kind == "error":
                raise value
            return
    finally:
        if not done:
            stop.set()  # set before reading held: pump sees one or the other
            loop, task = held.get("loop"), held.get("task")
            if loop is not None and task is not None:
                with contextlib.suppress(RuntimeError):  # its loop has closed meanwhile
                    loop.call_soon_threadsafe(task.cancel)
