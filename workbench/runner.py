"""The variant × example × repeat matrix, run concurrently on asyncio.

A failing call becomes an error row, never a crashed run. Completed calls are committed to
the response cache as they arrive, so running the same matrix again after an interruption
sends only the calls that had not finished.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import collector
from .errors import GatewayError
from .evaluation.classification import label_columns
from .evaluation.evalsets import Example
from .evaluation.scorers import Score, Scorer
from .gateway.scrub import scrub
from .gateway.send import Batch, CallDropped, Send, batch
from .run_types import Call, Plan, Variant

_JUDGES_SPENT = "_judges_spent"  # what a row's judges paid now, for Progress.cost only


@dataclass
class Progress:
    """Live counters a progress bar or a widget can show."""

    total: int = 0
    done: int = 0
    errors: int = 0
    cache_hits: int = 0
    cost: float = 0.0
    cancelled: bool = False
    # per variant: [calls done, calls in the run, errors], so a panel can show each one's progress
    variants: dict[str, list[int]] = field(default_factory=dict)
    listeners: list[Callable[[Progress], None]] = field(default_factory=list, repr=False)

    def _plan(self, jobs: Sequence[tuple[Example, int, Variant]]) -> None:
        self.total = len(jobs)
        self.variants = {}
        for _, _, variant in jobs:
            self.variants.setdefault(variant.name, [0, 0, 0])[1] += 1

    def _update(self, row: dict[str, Any], judges_spent: float = 0.0) -> None:
        self.done += 1
        self.errors += row["error"] is not None
        counts = self.variants.setdefault(row["variant"], [0, 0, 0])
        counts[0] += 1
        counts[2] += row["error"] is not None
        self.cache_hits += bool(row["cached"])
        # spent by this run: a cached answer or verdict was paid for by an earlier one
        self.cost += (0.0 if row["cached"] else row["cost"]) + judges_spent
        for listener in self.listeners:
            listener(self)


async def run_matrix(
    variants: Sequence[Variant],
    examples: Sequence[Example],
    scorers: Sequence[Scorer],
    send: Send,
    *,
    concurrency: int = 4,
    repeats: int = 1,
    use_cache: bool = True,
    refresh: frozenset[str] = frozenset(),
    plan: Plan | None = None,
    progress: Progress | None = None,
    show_progress: bool = True,
    cancel: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Run every (example, repeat, variant) call and score it; rows come back in matrix order.

    Variants are interleaved per example so that drift during a long run (rate limits,
    provider load) hits every variant alike. ``plan`` (from ``preflight.plan_run``) supplies
    the checked messages; variants in ``refresh`` are called again even when cached. Every
    call goes through ``send`` (``gateway.send``), which says how many to keep in flight.
    """
    jobs = list(itertools.product(examples, range(repeats), variants))
    matrix = _Matrix(jobs, scorers, use_cache, refresh, plan,
                     progress if progress is not None else Progress(), show_progress)
    try:
        with collector.quiet():
            async with batch(send, concurrency, status=matrix.status) as opened:
                await matrix.pump(opened, cancel)
    finally:
        if matrix.bar is not None:
            matrix.bar.close()
    return [row for row in matrix.rows if row is not None]


class _Matrix:
    """One run's jobs, rows and counters, and the loop that keeps its calls in flight."""

    def __init__(self, jobs: list[tuple[Example, int, Variant]], scorers: Sequence[Scorer],
                 use_cache: bool, refresh: frozenset[str], plan: Plan | None,
                 state: Progress, show_progress: bool) -> None:
        self.jobs, self.scorers, self.plan, self.state = jobs, scorers, plan, state
        self.use_cache, self.refresh = use_cache, refresh
        state._plan(jobs)
        self.bar = _progress_bar(len(jobs)) if show_progress else None
        self.rows: list[dict[str, Any] | None] = [None] * len(jobs)

    def status(self, text: str) -> None:
        """What the send is waiting for (workers starting), on the progress bar."""
        if self.bar is not None:
            self.bar.set_description_str(f"calls ({text})" if text else "calls")

    async def pump(self, opened: Batch, cancel: threading.Event | None) -> None:
        """Keep ``opened.in_flight`` calls in flight, each in a task of its own (less CPU per
        call than long-lived worker coroutines making calls in turn)."""
        slots = asyncio.Semaphore(opened.in_flight)
        running: set[asyncio.Task[None]] = set()
        try:
            for index in range(len(self.jobs)):
                await slots.acquire()
                if cancel is not None and cancel.is_set():
                    self.state.cancelled = True
                    opened.stop()  # calls the send holds beyond those in flight are dropped
                    break
                task = asyncio.create_task(self.run_job(index, opened, slots))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()

    async def run_job(self, index: int, opened: Batch, slots: asyncio.Semaphore) -> None:
        example, repeat, variant = self.jobs[index]
        try:
            call = self.plan.messages(variant.name, example.id) if self.plan else None
            try:
                row = await _one(variant, example, repeat, self.scorers, opened,
                                 self.use_cache and variant.name not in self.refresh, call)
            except CallDropped:
                return  # never sent: no row, as for a call the run had not reached
            self.rows[index] = row
            self.state._update(row, row.pop(_JUDGES_SPENT, 0.0))
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(errors=self.state.errors, cached=self.state.cache_hits,
                                     cost=f"${self.state.cost:.4f}", refresh=False)
        finally:
            slots.release()


async def _one(variant: Variant, example: Example, repeat: int, scorers: Sequence[Scorer],
               send: Send | Batch, use_cache: bool, call: Call | None = None) -> dict[str, Any]:
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
        completion = await send.complete(variant.model, messages, repeat=repeat,
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
        # a scorer that does not read the answer (a retrieval metric) scores a failed call too
        if row["error"] is not None and getattr(scorer, "reads_output", True):
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
            if not score.cached:  # counts against max_cost; popped before the row is kept
                row[_JUDGES_SPENT] = row.get(_JUDGES_SPENT, 0.0) + float(score.cost or 0.0)
    return row


async def _score(scorer: Scorer, output: str, example: Example) -> Score:
    try:
        result = scorer(output, example)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return Score(None, error=f"scorer error: {type(exc).__name__}: {exc}")
    return result


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
