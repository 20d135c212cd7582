"""The variant × example × repeat matrix, run concurrently on asyncio.

A failing call becomes an error row, never a crashed run. Completed calls are committed to
the response cache as they arrive, so running the same matrix again after an interruption
sends only the calls that had not finished.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import collector
from .errors import GatewayError
from .evaluation.classification import label_columns
from .evaluation.evalsets import Example
from .evaluation.scorers import Score, Scorer
from .gateway.client import Gateway
from .gateway.config import Completion, ModelConfig
from .gateway.scrub import scrub
from .gateway.workers import CallDropped, split_limits
from .run_types import Call, Plan, Variant

if TYPE_CHECKING:
    from .gateway.workers import RemoteGateway


@dataclass
class Progress:
    """Live counters a progress bar or a widget can show."""

    total: int = 0
    done: int = 0
    errors: int = 0
    cache_hits: int = 0
    cost: float = 0.0
    cancelled: bool = False
    listeners: list[Callable[[Progress], None]] = field(default_factory=list, repr=False)

    def _update(self, row: dict[str, Any]) -> None:
        self.done += 1
        self.errors += row["error"] is not None
        self.cache_hits += bool(row["cached"])
        self.cost += 0.0 if row["cached"] else row["cost"]
        for listener in self.listeners:
            listener(self)


async def run_matrix(
    variants: Sequence[Variant],
    examples: Sequence[Example],
    scorers: Sequence[Scorer],
    gateway: Gateway,
    *,
    concurrency: int = 4,
    repeats: int = 1,
    use_cache: bool = True,
    refresh: frozenset[str] = frozenset(),
    plan: Plan | None = None,
    progress: Progress | None = None,
    show_progress: bool = True,
    cancel: threading.Event | None = None,
    remotes: Sequence[RemoteGateway] = (),
) -> list[dict[str, Any]]:
    """Run every (example, repeat, variant) call and score it; rows come back in matrix order.

    Variants are interleaved per example so that drift during a long run (rate limits,
    provider load) hits every variant alike. ``plan`` (from ``preflight.plan_run``) supplies
    the checked messages; variants in ``refresh`` are called again even when cached.
    With ``remotes`` (worker processes), each process keeps its share of ``concurrency``
    calls in flight and its share of each model's rate limits.
    """
    jobs = list(itertools.product(examples, range(repeats), variants))
    state = progress if progress is not None else Progress()
    state.total = len(jobs)
    bar = _progress_bar(len(jobs)) if show_progress else None
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    pending = iter(enumerate(jobs))

    remotes = remotes[:concurrency]  # each worker keeps at least one call in flight
    configs = {v.name: split_limits(v.model, max(1, len(remotes))) for v in variants}

    async def run_job(index: int, job: tuple[Example, int, Variant], via: Any,
                      slots: asyncio.Semaphore) -> None:
        example, repeat, variant = job
        try:
            call = plan.messages(variant.name, example.id) if plan is not None else None
            try:
                row = await _one(variant, example, repeat, scorers, via,
                                 use_cache and variant.name not in refresh, call,
                                 configs[variant.name])
            except CallDropped:
                return  # never sent: no row, as for a call the run had not reached
            rows[index] = row
            state._update(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(errors=state.errors, cached=state.cache_hits,
                                cost=f"${state.cost:.4f}", refresh=False)
        finally:
            slots.release()

    async def process(share: int, remote: RemoteGateway | None = None) -> None:
        """Keep up to ``share`` calls in flight, each in a task of its own (less CPU per call
        than long-lived worker coroutines making calls in turn).
        A worker is sent a few more than its share, so it never waits for this process."""
        if share < 1:
            return
        via: Gateway | _ViaWorker = gateway
        if remote is not None:
            try:
                ready = await remote.ready()
                if bar is not None and bar.desc != "calls":
                    bar.set_description_str("calls")  # a worker is taking calls
                if not ready:
                    return
                via = _ViaWorker(remote, gateway, await remote.share(share))
            except GatewayError:
                return  # it died: the others, or this process, make its calls
        slots = asyncio.Semaphore(share + (queued(share) if remote is not None else 0))
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                if cancel is not None and cancel.is_set():
                    state.cancelled = True
                    if isinstance(via, _ViaWorker):
                        via.end()  # the calls it holds beyond those in flight are dropped
                    break
                if remote is not None and not remote.alive:
                    break  # the other workers take the remaining calls
                job = next(pending, None)
                if job is None:
                    break
                task = asyncio.create_task(run_job(*job, via, slots))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
            if isinstance(via, _ViaWorker):
                via.end()  # every call answered: the worker forgets the share
        except asyncio.CancelledError:
            if isinstance(via, _ViaWorker):
                via.end()  # interrupted: the worker drops the calls it holds, not yet sent
            raise
        finally:
            for task in running:
                task.cancel()

    starting = sum(not remote.started for remote in remotes)
    if bar is not None and starting:  # once per Python process: say why nothing moves
        bar.set_description_str(f"calls (starting {starting} worker process"
                                f"{'es' if starting > 1 else ''})")
    for remote in remotes:
        remote.hold()
    try:
        with collector.quiet():
            if remotes:  # the workers make the calls; this process caches, scores and counts
                shares = [concurrency // len(remotes) + (i < concurrency % len(remotes))
                          for i in range(len(remotes))]
                await asyncio.gather(*(process(share, remote=r)
                                       for share, r in zip(shares, remotes, strict=True)))
            await process(concurrency)  # everything, or what workers that died left over
    finally:
        for remote in remotes:
            remote.release()
        if bar is not None:
            bar.close()
    return [row for row in rows if row is not None]


async def _one(variant: Variant, example: Example, repeat: int, scorers: Sequence[Scorer],
               gateway: Gateway | _ViaWorker, use_cache: bool, call: Call | None = None,
               config: ModelConfig | None = None) -> dict[str, Any]:
    example = variant.example(example)
    row: dict[str, Any] = {
        "variant": variant.name,
        "prompt": variant.prompt_name,
        "model": variant.model.model,
        "example_id": example.id,
        "repeat": repeat,
        "output": None,
        "error": None,
        "error_type": None,  # the error's class name: RateLimited, Unauthorized, ...
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": 0.0,
        "latency_s": math.nan,
        "started_at": time.time(),
        "cached": False,
        "answered_by": None,
        "retries": 0,
        "fallback": False,
        "warning": call.warning if call is not None else None,
    }
    try:
        messages = call.messages if call is not None else variant.prompt.render(**example.inputs)
        key = call.keys[repeat] if call is not None and call.keys else None
        completion = await gateway.complete(config or variant.model, messages, repeat=repeat,
                                            use_cache=use_cache, key=key)
    except CallDropped:
        raise
    except GatewayError as exc:
        row["error"] = scrub(str(exc), [variant.model])  # a worker's text too
        row["error_type"] = type(exc).__name__
    except Exception as exc:  # a bug must not sink the other calls of the run
        row["error"] = scrub(f"{type(exc).__name__}: {exc}", [variant.model])
        row["error_type"] = type(exc).__name__
    else:
        row.update(output=completion.text, prompt_tokens=completion.prompt_tokens,
                   completion_tokens=completion.completion_tokens, cost=completion.cost,
                   latency_s=completion.latency_s, cached=completion.cached,
                   answered_by=completion.model, retries=completion.retries,
                   fallback=completion.fallback)
    for scorer in scorers:
        if row["error"] is not None:
            row[f"score.{scorer.name}"] = math.nan
            row[f"reason.{scorer.name}"] = "not scored: the call failed"
            continue
        score = await _score(scorer, row["output"], example)
        row[f"score.{scorer.name}"] = math.nan if score.value is None else float(score.value)
        row[f"reason.{scorer.name}"] = score.reason if score.error is None else score.error
        row.update(label_columns(scorer, row["output"], example))
        if score.cost is not None or score.tokens is not None:  # an LLM judge's own call
            row[f"judge_cost.{scorer.name}"] = float(score.cost or 0.0)
            row[f"judge_tokens.{scorer.name}"] = int(score.tokens or 0)
    return row


async def _score(scorer: Scorer, output: str, example: Example) -> Score:
    try:
        result = scorer(output, example)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return Score(None, error=f"scorer error: {type(exc).__name__}: {exc}")
    return result


class _ViaWorker:
    """A worker process's gateway behind this process's cache: a hit needs no worker, and
    the answer is cached here, by the one writer of the run, the moment it arrives."""

    def __init__(self, remote: RemoteGateway, local: Gateway, share: int) -> None:
        self.remote, self.local, self.share = remote, local, share
        self.send = functools.partial(remote.complete, share=share)

    def complete(self, config: ModelConfig, messages: list[dict[str, str]],
                 **options: Any) -> Awaitable[Completion]:
        return self.local.complete(config, messages, send=self.send, **options)

    def end(self) -> None:
        self.remote.end(self.share)


def queued(share: int) -> int:
    """Calls sent to a worker beyond its share: enough to cover this process's event-loop
    delay (a few ms on busy cores) at a few hundred calls per second."""
    return max(2, share // 4)


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="calls", unit="call", dynamic_ncols=True)


def cost_guard(max_cost: float, cancel: threading.Event) -> Callable[[Progress], None]:
    """A progress listener that stops the run once the cost spent reaches ``max_cost``."""

    def guard(progress: Progress) -> None:
        if progress.cost >= max_cost and not cancel.is_set():
            cancel.set()

    guard.max_cost = max_cost  # type: ignore[attr-defined]  (marks it as a guard)
    return guard
