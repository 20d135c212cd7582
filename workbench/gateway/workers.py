"""Model calls in extra processes, so a run uses more than one core.

litellm spends several milliseconds of CPU on every call (building the request, parsing
the response, pricing it, logging). One Python process therefore tops out at a few
hundred calls per second however fast the provider answers. A ``WorkerPool`` starts
processes that each run a ``Gateway`` of their own. With workers, they make all of a run's
calls and the calling process does the rest (cache, scoring, statistics, MLflow), where the
user's own scorers live; its event loop stays free, so a notebook stays responsive.

Each worker keeps its share of the run's concurrency in flight by itself, with a few calls
queued beyond it: an answer waiting for the calling process's event loop does not hold a
call slot. Workers make calls only: the calling process caches each answer as it arrives,
so the run has one cache writer and an interrupted run resumes as it does in one process.
A worker exits when its parent does, even after ``kill -9``: it reads its requests from a
pipe and stops at end of file.

Workers are started once per process and reused by later runs (a notebook pays the start,
importing litellm, once per worker). Rate limits are split between the workers. The runner
sees none of this: ``gateway.send.for_run`` gives it a ``WorkerSend``, whose batch hands
each call to a live worker with room for it, and to this process once no worker has.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import itertools
import math
import multiprocessing
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ..errors import GatewayError
from .config import Completion, ModelConfig
from .worker_process import serve


class CallDropped(GatewayError):
    """A call sent to a worker was dropped before the worker sent it: the run was stopped."""


class RemoteGateway:
    """The part of ``Gateway`` the runner uses, answered by one worker process.

    Replies are read on the event loop itself (``add_reader`` on the pipe), not by a thread:
    a reader thread contending for the GIL costs the loop on every call.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve, args=(child,), daemon=True,
                                        name=f"workbench-worker-{index}")
        self._process.start()
        child.close()
        self._ids = itertools.count()
        self._shares = itertools.count()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._configs: dict[str, int] = {}  # sent once, then named by number
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = False
        self._dead: str | None = None
        self._users = 0

    @property
    def failure(self) -> str | None:
        """Why the worker stopped, once this process has noticed."""
        return self._dead

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def started(self) -> bool:
        """The worker has imported what it needs and takes calls."""
        return self._ready

    @property
    def alive(self) -> bool:
        return self._dead is None and self._process.is_alive()

    def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop or self._dead is not None:
            return
        self.detach()
        loop.add_reader(self._conn.fileno(), self._read)
        self._loop = loop

    def hold(self) -> None:
        """A run uses this worker until ``release()``; runs may overlap on one loop."""
        self._users += 1

    def release(self) -> None:
        """The run is over: stop reading replies once no other run is using the worker."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            self.detach()

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

    async def complete(self, config: ModelConfig, messages: list[dict[str, str]], *,
                       share: int | None = None) -> Completion:
        """The model's answer, never from a cache (the caller looks, and stores it).

        ``share`` is what ``share()`` returned: the call waits for a slot of that run's.
        """
        number = self._configs.get(config.key)
        if number is None:
            number = self._configs[config.key] = len(self._configs)
            await self._ask("config", {"number": number, "config": config})
        kind, value = await self._ask("complete", {"config": number, "messages": messages,
                                                   "share": share})
        if kind == "error":  # the worker's GatewayError itself (its type, status, retries)
            raise value if isinstance(value, GatewayError) else GatewayError(
                value, model=config.model)
        if kind == "dropped":
            raise CallDropped(f"worker process {self.index}: dropped before it was sent")
        return Completion(**value)

    async def share(self, calls: int) -> int:
        """A run's share of the worker: ``calls`` of its calls at a time, the rest waiting.
        Concurrent runs (several experiments in one notebook) each get their own."""
        number = next(self._shares)
        await self._ask("share", {"number": number, "calls": calls})
        return number

    def end(self, share: int) -> None:
        """The run is done with its share: the worker drops the share's calls that have not
        started (each answers as dropped) and forgets the share. Nothing to wait for."""
        if self._dead is None:
            with contextlib.suppress(OSError, EOFError, ValueError):
                self._conn.send((next(self._ids), "end", {"share": share}))

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
            code = self._process.exitcode
            self._dead = (
                f"worker process {self.index} exited (code {code}); its unfinished calls are "
                "error rows and a re-run sends them again" if self._ready else
                f"worker process {self.index} exited while starting (code {code}), so this "
                "process made its calls; in a script, start the run under "
                "`if __name__ == \"__main__\":` (worker processes import the script)")
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
    """The worker processes of this process: started on first use, reused by later runs.

    A run with ``count`` workers uses the first ``count``; asking for more starts the
    missing ones and keeps the others, so switching between ``workers=2`` and ``workers=3``
    does not restart anything. A worker that died is replaced.
    """

    def __init__(self) -> None:
        self._remotes: list[RemoteGateway] = []
        self._lock = threading.Lock()

    def remotes(self, count: int) -> list[RemoteGateway]:
        with self._lock:
            for i, remote in enumerate(self._remotes):
                if not remote.alive:
                    remote.close()
                    self._remotes[i] = RemoteGateway(i + 1)
            while len(self._remotes) < count:
                self._remotes.append(RemoteGateway(len(self._remotes) + 1))
            return self._remotes[:max(0, count)]

    def close(self) -> None:
        with self._lock:
            for remote in self._remotes:
                remote.close()
            self._remotes = []


_POOL = WorkerPool()


def pool(count: int) -> list[RemoteGateway]:
    """``count`` worker processes, started on first use and reused by later runs."""
    return _POOL.remotes(count)


atexit.register(_POOL.close)


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


class WorkerSend:
    """A send whose calls are made by worker processes, behind this process's gateway: a
    cache hit needs no worker, and each answer is cached here, by the run's one cache
    writer, the moment it arrives. A call outside a batch is made in this process."""

    def __init__(self, local: Any, remotes: Sequence[RemoteGateway]) -> None:
        self.local, self.remotes = local, list(remotes)

    async def complete(self, config: ModelConfig, messages: list[dict[str, str]],
                       **options: Any) -> Completion:
        return await self.local.complete(config, messages, **options)

    def notes(self) -> list[str]:
        return [f"workers: {r.failure}" for r in self.remotes if not r.alive and r.failure]

    @contextlib.asynccontextmanager
    async def batch(self, concurrency: int,
                    status: Callable[[str], None]) -> AsyncIterator[_WorkerBatch]:
        """Each worker keeps its share of ``concurrency`` in flight; calls a dead worker
        would have taken are made in this process."""
        remotes = self.remotes[:concurrency]  # each worker keeps at least one call in flight
        starting = sum(not remote.started for remote in remotes)
        if starting:  # once per Python process: say why nothing moves
            status(f"starting {starting} worker process{'es' if starting > 1 else ''}")
        for remote in remotes:
            remote.hold()
        opened = _WorkerBatch(self.local, concurrency, len(remotes))
        try:
            await opened.start(remotes)
            status("")
            yield opened
        finally:
            opened.stop()
            for remote in remotes:
                remote.release()


class _Lane:
    """One worker's share of a batch: its calls in flight, and how many it may hold."""

    def __init__(self, remote: RemoteGateway, share: int, calls: int) -> None:
        self.remote, self.share, self.calls = remote, share, calls
        self.capacity = calls + queued(calls)
        self.outstanding, self.ended = 0, False
        self.send = functools.partial(remote.complete, share=share)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.remote.end(self.share)


class _WorkerBatch:
    """Hands each call to the live worker with room for it, else makes it in this process."""

    def __init__(self, local: Any, concurrency: int, processes: int) -> None:
        self.local, self.concurrency, self.processes = local, concurrency, processes
        self.in_flight = concurrency
        self.lanes: list[_Lane] = []
        self._configs: dict[str, ModelConfig] = {}

    async def start(self, remotes: Sequence[RemoteGateway]) -> None:
        if not remotes:
            return
        count = len(remotes)
        shares = [self.concurrency // count + (i < self.concurrency % count)
                  for i in range(count)]
        ready = await asyncio.gather(*(r.ready() for r in remotes))
        for remote, calls, ok in zip(remotes, shares, ready, strict=True):
            if not ok:
                continue  # it died starting: this process makes its calls
            with contextlib.suppress(GatewayError):
                self.lanes.append(_Lane(remote, await remote.share(calls), calls))
        # a worker is sent a few more than its share, so it never waits for this process
        self.in_flight = self.concurrency + sum(lane.capacity - lane.calls
                                                for lane in self.lanes)

    def _lane(self) -> _Lane | None:
        open_lanes = [lane for lane in self.lanes if lane.remote.alive and not lane.ended
                      and lane.outstanding < lane.capacity]
        return min(open_lanes, key=lambda lane: lane.outstanding, default=None)

    def _split(self, config: ModelConfig) -> ModelConfig:
        split = self._configs.get(config.key)
        if split is None:
            split = self._configs[config.key] = split_limits(config, max(1, self.processes))
        return split

    async def complete(self, config: ModelConfig, messages: list[dict[str, str]],
                       **options: Any) -> Completion:
        config, lane = self._split(config), self._lane()
        if lane is None:
            return await self.local.complete(config, messages, **options)
        lane.outstanding += 1
        try:
            return await self.local.complete(config, messages, send=lane.send, **options)
        finally:
            lane.outstanding -= 1

    def stop(self) -> None:
        """Every worker drops the calls it holds beyond those in flight, and the share."""
        for lane in self.lanes:
            lane.end()


def queued(share: int) -> int:
    """Calls sent to a worker beyond its share: enough to cover this process's event-loop
    delay (a few ms on busy cores) at a few hundred calls per second."""
    return max(2, share // 4)
