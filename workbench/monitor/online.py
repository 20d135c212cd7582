"""Online evaluation: a share of served requests scored in the background, and a quality alert.

``PromptService(..., monitor={"sample": 0.05, "scorers": ["pii", {"type": "relevance"}],
"judge": "openai/gpt-4o-mini", "metric": "relevance"})``. A sampled request is put on a
queue (the reply does not wait); a worker thread with its own event loop scores it with
each scorer, judges through the gateway under ``attribute(request_type="online_eval")``,
so their calls are ledger records of their own kind, and within ``judge_budget_usd`` a
day (past it, judges are skipped and say why). Each score is stored with the request
(``online_scores``). A judge that fails or hangs (``timeout_s``) is a score with an error.

The ``metric`` scorer's values feed a :class:`DropDetector` against the promoted version's
offline estimate (``baseline``, by default read from the MLflow run behind the alias);
its alarm becomes an alert naming the version and the window, delivered once through the
observability layer (log, the ledger's alert table, ``webhook``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import random
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import WorkbenchError
from .sequential import DropDetector

log = logging.getLogger("workbench.monitor")


class MonitorConfigError(WorkbenchError):
    """A ``monitor=`` setting (or a ``monitor:`` section of workbench.yaml) is invalid."""


class MonitorConfig(BaseModel):
    """What to score, how much of the traffic, and when to alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: float = Field(0.05, ge=0, le=1, description="share of requests scored")
    scorers: list[str | dict[str, Any]] = Field(default_factory=list)
    experiment: str | None = Field(None, description="folder whose reference-free scorers "
                                                     "and judge are used")
    judge: str | dict[str, Any] | None = None
    judge_budget_usd: float = Field(1.0, ge=0, description="judges' spend per UTC day")
    timeout_s: float = Field(30.0, gt=0)
    metric: str | None = Field(None, description="scorer tested against the offline score")
    baseline: float | None = Field(None, gt=0, le=1, description="offline estimate; "
                                                                 "default: from MLflow")
    tolerance: float = Field(0.0, ge=0, lt=1, description="alert only below baseline minus "
                                                          "this")
    alpha: float = Field(0.05, gt=0, lt=1)
    horizon: int = Field(15_000, ge=1, description="scores the false-alarm bound covers")
    webhook: str | None = None
    queue_size: int = Field(10_000, ge=1)


class Monitored(Protocol):
    """What a monitor reads of the ``PromptService`` it watches."""

    name: str
    alias: str
    tags: dict[str, str]


class OnlineMonitor:
    """The background scorer and the quality detector of one service."""

    def __init__(self, service: Monitored, config: MonitorConfig) -> None:
        self.config, self.prompt, self.alias = config, service.name, service.alias
        self.application = service.tags.get("application")
        self.scorers = _build_scorers(config)
        if config.metric is not None and config.metric not in {s.name for s in self.scorers}:
            raise MonitorConfigError(
                f"monitor: metric {config.metric!r} is not one of the scorers "
                f"{[s.name for s in self.scorers]}; fix: name one of them")
        self._baseline = config.baseline
        self._detector: DropDetector | None = None
        self._version: int | None = None
        self._times: list[float] = []
        self._random = random.Random()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=config.queue_size)
        self.dropped = 0
        self.judge_spent: dict[str, float] = {}
        self.alarms: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="workbench-online-eval",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def of(cls, service: Monitored, value: Mapping[str, Any] | MonitorConfig
           ) -> OnlineMonitor:
        return cls(service, parse_config(value))

    # -- the request path: two cheap calls ---------------------------------------------------

    def sampled(self) -> bool:
        return self._random.random() < self.config.sample

    def submit(self, request_id: str, version: int, inputs: Mapping[str, Any],
               output: str) -> None:
        """Queue one request for scoring; a full queue drops it (counted), never waits."""
        try:
            self._queue.put_nowait((request_id, version, dict(inputs), output))
        except queue.Full:
            self.dropped += 1

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted request is scored (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            item = self._queue.get()
            try:
                loop.run_until_complete(self._score(*item))
            except Exception:  # one request's failure never stops the monitor
                log.exception("online evaluation of request %s failed", item[0])
            finally:
                self._queue.task_done()

    async def _score(self, request_id: str, version: int, inputs: dict[str, Any],
                     output: str) -> None:
        from ..evaluation.evalsets import Example
        from ..observe.hook import attribute
        from .store import default_log, redacted

        inputs, output = redacted(inputs), redacted(output)  # judges never see personal data
        example = Example(id=request_id, inputs=inputs)
        for scorer in self.scorers:
            with attribute(self.application, request_type="online_eval", prompt=self.prompt):
                value, reason, error, cost = await self._one(scorer, output, example)
            default_log().put("online_scores", {
                "request_id": request_id, "ts": time.time(), "prompt": self.prompt,
                "prompt_version": version, "scorer": scorer.name, "value": value,
                "reason": reason[:2000], "error": error, "cost": cost})
            if scorer.name == self.config.metric and value is not None:
                self._observe(version, _unit(scorer, value))

    async def _one(self, scorer: Any, output: str, example: Any
                   ) -> tuple[float | None, str, str | None, float]:
        is_judge = getattr(scorer, "needs_judge", False)
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        if is_judge and self.judge_spent.get(day, 0.0) >= self.config.judge_budget_usd:
            return None, "", (f"skipped: the judges' budget of "
                              f"${self.config.judge_budget_usd:.2f} for {day} is spent"), 0.0
        try:
            result = scorer(output, example)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.config.timeout_s)
        except TimeoutError:
            return None, "", f"no score within {self.config.timeout_s:g} s", 0.0
        except Exception as exc:
            return None, "", f"{type(exc).__name__}: {str(exc)[:500]}", 0.0
        cost = float(getattr(result, "cost", None) or 0.0)
        if is_judge:
            self.judge_spent[day] = self.judge_spent.get(day, 0.0) + cost
        value = getattr(result, "value", None)
        return (None if value is None else float(value), getattr(result, "reason", "") or "",
                getattr(result, "error", None), cost)

    # -- the quality alert -----------------------------------------------------------------

    def baseline(self) -> float:
        if self._baseline is None:
            from .offline import offline_estimate

            self._baseline = offline_estimate(self.prompt, self.alias, self.config.metric or "")
        return self._baseline

    def _observe(self, version: int, value: float) -> None:
        if version != self._version:  # a new version: its own estimate, evidence from zero
            self._version, self._detector, self._times = version, None, []
            self._baseline = self.config.baseline
            try:
                tested = max(self.baseline() - self.config.tolerance, 1e-6)
            except WorkbenchError as exc:
                log.warning("no quality alert for %s@%s v%s: %s", self.prompt, self.alias,
                            version, exc)
                return
            self._detector = DropDetector(tested, alpha=self.config.alpha,
                                          horizon=self.config.horizon)
        if self._detector is None:
            return
        self._times.append(time.time())
        alarm = self._detector.update(value)
        if alarm is None:
            if self._detector.n == 0:
                self._times.clear()
            return
        start, end = self._times[alarm.start], self._times[alarm.end]
        self._times.clear()
        self.alarms.append(alarm)
        from .alerts import deliver_quality_alert

        deliver_quality_alert(self.prompt, self.alias, version, self.config.metric or "", alarm,
                              start, end, webhook=self.config.webhook)


def parse_config(value: Mapping[str, Any] | MonitorConfig) -> MonitorConfig:
    """A ``MonitorConfig``, or ``MonitorConfigError`` naming each bad key."""
    if isinstance(value, MonitorConfig):
        return value
    if not isinstance(value, Mapping):
        raise MonitorConfigError(f"monitor: {value!r} is not a mapping; fix: give e.g. "
                                 "{'sample': 0.05, 'scorers': ['pii']}")
    try:
        return MonitorConfig(**value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        raise MonitorConfigError(f"monitor: {problems}") from exc


def _unit(scorer: Any, value: float) -> float:
    """A 1-5 judge score on the 0-1 scale the detector tests; 0-1 scores as they are."""
    options = getattr(scorer, "options", None)
    return (value - 1.0) / 4.0 if getattr(options, "scale", None) == "1-5" else value


def _build_scorers(config: MonitorConfig) -> list[Any]:
    from ..evaluation.scorers import build_scorer
    from ..evaluation.scorers.judges import as_model_config, judge_defaults

    specs = [{"type": s} if isinstance(s, str) else dict(s) for s in config.scorers]
    judge = config.judge
    if config.experiment is not None:
        from ..spec import load_spec

        folder = Path(config.experiment)
        spec = load_spec(folder / "experiment.yaml" if folder.is_dir() else folder)
        specs += [s.model_dump() for s in spec.scorers
                  if not any(s.options.get(f) for f in ("expected", "context"))]
        judge = judge if judge is not None else spec.judge
    if judge is not None:
        specs = judge_defaults(specs, as_model_config(judge))
    if not specs:
        raise MonitorConfigError("monitor: no scorers; fix: give scorers=[...] or "
                                 "experiment=<folder> with reference-free scorers")
    built = []
    for spec in specs:
        options = {k: v for k, v in spec.items() if k not in ("type", "name")}
        if options.get("expected") or options.get("context"):
            raise MonitorConfigError(
                f"monitor: scorer {spec.get('name') or spec['type']!r} needs an expected "
                "answer or a context field; served traffic has none. fix: use reference-free "
                "scorers (pii, prompt_injection, refusal, judges such as relevance)")
        try:
            built.append(build_scorer(spec["type"], options, name=spec.get("name")))
        except WorkbenchError as exc:
            raise MonitorConfigError(f"monitor: {exc}") from exc
    return built
