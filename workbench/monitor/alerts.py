"""Quality alerts through the observability layer's channels: the log, the ledger's alert
table (each episode delivered once) and the webhook. Stored there with source ``monitor``,
they are listed by ``observe.alerts()`` beside the cost and latency anomalies."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sequential import Alarm

log = logging.getLogger("workbench.monitor")


def quality_alert(prompt: str, alias: str, version: int, metric: str, alarm: Alarm,
                  start: float, end: float) -> Any:
    """The alarm as an observability ``Alert``: kind ``quality``, keyed by prompt and version."""
    from ..observe.anomalies import Alert

    detail = (f"{metric} of prompts:/{prompt}@{alias} version {version} over "
              f"{alarm.end - alarm.start + 1} scored requests, below the offline estimate "
              f"(sequential test, e-value {alarm.statistic:.3g} >= {alarm.threshold:.3g})")
    return Alert(kind="quality", key=f"prompt={prompt}@{alias} v{version}", start=start,
                 end=end, expected=alarm.baseline, observed=alarm.observed, unit=metric,
                 detail=detail)


def deliver_quality_alert(prompt: str, alias: str, version: int, metric: str, alarm: Alarm,
                          start: float, end: float, *, webhook: str | None) -> None:
    from ..observe.alerting import deliver
    from ..observe.hook import default_ledger

    alert = quality_alert(prompt, alias, version, metric, alarm, start, end)
    try:
        deliver([alert], default_ledger().store(), webhook=webhook, source="monitor")
    except Exception as exc:  # the alert is still in the log; the monitor keeps running
        log.error("quality alert not delivered (%s): %s", exc, alert.message)
