"""The worker process's side of ``gateway.workers``: it answers the parent's requests
from a gateway of its own until the pipe closes (the parent exited, even after ``kill -9``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .. import collector
from ..errors import GatewayError
from .config import ModelConfig


def serve(conn: Any) -> None:
    """Answer requests from the parent until the pipe closes (the parent exited)."""
    import litellm  # noqa: F401  (imported before the parent is told it is ready)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = _Server(conn, loop)
    loop.add_reader(conn.fileno(), server.read)
    server.reply(-1, "ready", None)
    # for the worker's whole life: litellm's many objects stay out of the collector's
    # passes (what a worker keeps between calls is small)
    with collector.quiet():
        loop.run_forever()


class _Server:
    """The worker's side of the pipe: one task per request, each run's calls under its share."""

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        from .client import Gateway

        self.conn, self.loop = conn, loop
        self.gateway = Gateway(None, max_concurrency=512)
        self.configs: dict[int, ModelConfig] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.shares: dict[int | None, asyncio.Semaphore] = {None: asyncio.Semaphore(512)}
        self.waiting: dict[int, tuple[int | None, asyncio.Task[Any]]] = {}  # not yet started

    def reply(self, number: int, kind: str, value: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send((number, kind, value))

    def read(self) -> None:
        try:
            while self.conn.poll():
                request = self.conn.recv()
                if request is None:
                    self.loop.stop()
                    return
                task = self.loop.create_task(self.handle(*request))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        except (EOFError, OSError):
            self.loop.stop()

    async def handle(self, number: int, command: str, payload: dict[str, Any]) -> None:
        try:
            if command == "complete":
                await self.call(number, payload)
                return
            if command == "end":
                self.end(payload["share"])
                return  # nobody waits for this one
            if command == "config":
                self.configs[payload["number"]] = payload["config"]
            elif command == "share":
                self.shares[payload["number"]] = asyncio.Semaphore(payload["calls"])
            self.reply(number, "ok", None)
        except GatewayError as exc:  # pickled with its type, model, status and retries
            self.reply(number, "error", exc)
        except Exception as exc:  # a bug must not hang the parent's call
            self.reply(number, "error", f"{type(exc).__name__}: {exc}")

    async def call(self, number: int, payload: dict[str, Any]) -> None:
        slots, task = self.shares[payload["share"]], asyncio.current_task()
        assert task is not None
        self.waiting[number] = (payload["share"], task)
        try:
            await slots.acquire()
        except asyncio.CancelledError:
            self.reply(number, "dropped", None)
            return
        finally:
            self.waiting.pop(number, None)
        try:
            completion = await self.gateway.complete(self.configs[payload["config"]],
                                                     payload["messages"])
        finally:
            slots.release()
        self.reply(number, "ok", completion.record())

    def end(self, share: int) -> None:
        """Drop the share's calls that have not started; each answers as dropped."""
        self.shares.pop(share, None)
        for owner, task in list(self.waiting.values()):
            if owner == share:
                task.cancel()
