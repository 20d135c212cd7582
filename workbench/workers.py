"""Model calls in extra processes, so a run uses more than one core.

litellm spends several milliseconds of CPU on every call (building the request, parsing
the response, pricing it, logging). One Python process therefore tops out at a few
hundred calls per second however fast the provider answers. A ``WorkerPool`` starts
processes that each run a ``Gateway`` of their own: the runner hands them calls, they
answer with the completion record, and everything else (scoring, statistics, MLflow)
stays in the calling process, where the user's own scorers live.

Workers make calls only: the calling process caches each answer as it arrives, so the
run has one cache writer and an interrupted run resumes as it does in one process. A
worker exits when its parent does, even after ``kill -9``: it reads its requests from a
pipe and stops at end of file.

Workers are started once per process and reused by later runs (a notebook pays the start,
about 2 s to import litellm, once). Rate limits are split between the processes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import math
import multiprocessing
import threading
from collections.abc import Sequence
from typing import Any

from .errors import GatewayError
from .gateway import Completion, ModelConfig


class RemoteGateway:
    """The part of ``Gateway`` the runner uses, answered by one worker process.

    Replies are read on the event loop itself (``add_reader`` on the pipe), not by a thread:
    a reader thread contending for the GIL cost more than a millisecond per call.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True,
                                        name=f"workbench-worker-{index}")
        self._process.start()
        child.close()
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._configs: dict[str, int] = {}  # sent once, then named by number
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = False
        self._dead: str | None = None

    @property
    def alive(self) -> bool:
        return self._dead is None

    def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop or self._dead is not None:
            return
        self.detach()
        loop.add_reader(self._conn.fileno(), self._read)
        self._loop = loop

    def detach(self) -> None:
        """Stop reading on the current loop (a run's loop ends with the run)."""
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._conn.fileno())
            self._loop = None

    async def ready(self) -> bool:
        """Wait until the worker has imported what it needs; False if it died instead."""
        self._attach()
        while not self._ready and self._dead is None:
            if not self._process.is_alive():
                self._died()
                break
            await asyncio.sleep(0.05)
        return self._dead is None

    async def complete(self, config: ModelConfig, messages: list[dict[str, str]]
                       ) -> Completion:
        """The model's answer, never from a cache (the caller looks, and stores it)."""
        number = self._configs.get(config.key)
        if number is None:
            number = self._configs[config.key] = len(self._configs)
            await self._ask("config", {"number": number, "config": config})
        kind, value = await self._ask("complete", {"config": number, "messages": messages})
        if kind == "error":
            raise GatewayError(value)
        return Completion(**value)

    async def _ask(self, command: str, payload: dict[str, Any]) -> tuple[str, Any]:
        self._attach()
        if self._dead is not None:
            raise GatewayError(self._dead)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        number = next(self._ids)
        self._pending[number] = future
        try:
            self._conn.send((number, command, payload))
        except (OSError, EOFError, ValueError):
            self._pending.pop(number, None)
            self._died()
            raise GatewayError(self._dead or "worker process gone") from None
        return await future

    def _read(self) -> None:
        try:
            while self._conn.poll():
                number, kind, value = self._conn.recv()
                if number == -1:
                    self._ready = True
                    continue
                future = self._pending.pop(number, None)
                if future is not None and not future.done():
                    future.set_result((kind, value))
        except (EOFError, OSError, ValueError):
            self._died()

    def _died(self) -> None:
        if self._dead is None:
            self._process.join(timeout=1)
            self._dead = (f"worker process {self.index} exited (code "
                          f"{self._process.exitcode}); its unfinished calls are error rows "
                          "and a re-run sends them again")
        self.detach()
        for future in self._pending.values():
            if not future.done():
                future.set_result(("error", self._dead))
        self._pending.clear()

    def close(self) -> None:
        self.detach()
        with contextlib.suppress(OSError, EOFError, ValueError):
            self._conn.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
        self._conn.close()


class WorkerPool:
    """``processes - 1`` worker processes beside this one, which makes calls too."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.remotes = [RemoteGateway(i + 1) for i in range(processes - 1)]

    def close(self) -> None:
        for remote in self.remotes:
            remote.close()
        self.remotes = []


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def pool(processes: int) -> WorkerPool:
    """The process-wide pool with ``processes`` processes in all, started on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and (_POOL.processes != processes
                                  or not all(r.alive for r in _POOL.remotes)):
            _POOL.close()
            _POOL = None
        if _POOL is None:
            _POOL = WorkerPool(processes)
        return _POOL


@atexit.register
def _close_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.close()
        _POOL = None


def split_limits(config: ModelConfig, processes: int) -> ModelConfig:
    """The same model with its rpm/tpm shared out between ``processes`` pacers."""
    if processes <= 1:
        return config
    update: dict[str, Any] = {
        "fallbacks": [split_limits(f, processes) for f in config.fallbacks]}
    for name in ("rpm", "tpm"):
        value = getattr(config, name)
        if value is not None:
            update[name] = max(1, math.floor(value / processes))
    return config.model_copy(update=update)


def can_share(configs: Sequence[ModelConfig]) -> bool:
    """The embedded model runs in one process: it is not called from workers."""
    return not any(c.model.startswith("local/")
                   for config in configs for c in (config, *config.fallbacks))


# ---- the worker process -----------------------------------------------------------------

def _serve(conn: Any) -> None:
    """Answer requests from the parent until the pipe closes (the parent exited)."""
    import litellm  # noqa: F401  (imported before the parent is told it is ready)

    from .gateway import Gateway

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    gateway = Gateway(None, max_concurrency=512)
    configs: dict[int, ModelConfig] = {}
    tasks: set[asyncio.Task[None]] = set()

    def reply(number: int, kind: str, value: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            conn.send((number, kind, value))

    async def handle(number: int, command: str, payload: dict[str, Any]) -> None:
        try:
            if command == "config":
                configs[payload["number"]] = payload["config"]
                reply(number, "ok", None)
                return
            completion = await gateway.complete(configs[payload["config"]],
                                                payload["messages"])
            reply(number, "ok", completion.record())
        except GatewayError as exc:
            reply(number, "error", str(exc))
        except Exception as exc:  # a bug must not hang the parent's call
            reply(number, "error", f"{type(exc).__name__}: {exc}")

    def read() -> None:
        try:
            while conn.poll():
                request = conn.recv()
                if request is None:
                    loop.stop()
                    return
                task = loop.create_task(handle(*request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (EOFError, OSError):
            loop.stop()

    loop.add_reader(conn.fileno(), read)
    reply(-1, "ready", None)
    loop.run_forever()
