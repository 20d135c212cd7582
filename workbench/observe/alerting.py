"""Checking the ledger for anomalies and delivering each alert once: log, notebook, webhook.

An alert episode has a stable id (kind, key and start), and the ids delivered are kept in
the ledger's ``alerts`` table, so a check run every few minutes (cron, a notebook) sends
an ongoing episode once. A webhook that fails is an error naming the URL and the reason;
its alerts are not marked delivered, so the next check sends them again.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import WorkbenchError
from .anomalies import Alert, Thresholds, detect
from .record import seconds, since_ts

log = logging.getLogger("workbench.observe.alerting")


class AlertDeliveryError(WorkbenchError):
    """A webhook did not accept the alerts."""


@dataclass(frozen=True)
class Delivery:
    """What a delivery did: alerts new to this ledger, and those delivered before."""

    new: int
    already_delivered: int


def check(store: Any, since: Any = "24h", history: Any = "28d",
          thresholds: Thresholds | None = None) -> list[Alert]:
    """Alert episodes that end within ``since``, judged against ``history`` before it."""
    from .queries import calls_frame, steps_frame

    span = seconds(since) + seconds(history)
    calls = calls_frame(store, since=span)
    steps = steps_frame(store, span, ["application"])
    return detect(calls, steps, since=since_ts(since), thresholds=thresholds)


def deliver(alerts: Sequence[Alert], store: Any, *, webhook: str | None = None,
            timeout_s: float = 10.0) -> Delivery:
    """Log each alert not delivered before and POST them as JSON to ``webhook``."""
    sent = _delivered(store, [a.alert_id for a in alerts])
    new = [a for a in alerts if a.alert_id not in sent]
    for alert in new:
        log.warning("alert: %s", alert.message)
    if new and webhook:
        post(webhook, new, timeout_s)
    _mark(store, new)
    return Delivery(new=len(new), already_delivered=len(alerts) - len(new))


def post(url: str, alerts: Sequence[Alert], timeout_s: float = 10.0) -> None:
    """One JSON POST ``{"alerts": [...]}``; any failure is an ``AlertDeliveryError``."""
    body = json.dumps({"source": "workbench", "alerts": [a.as_dict() for a in alerts]})
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        reason = f"it answered HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        reason = f"it could not be reached ({getattr(exc, 'reason', exc)})"
    else:
        if 200 <= status < 300:
            return
        reason = f"it answered HTTP {status}"
    raise AlertDeliveryError(
        f"webhook {url}: {reason}; {len(alerts)} alert(s) were not delivered there and will "
        "be sent again by the next check. fix: check the URL and that the receiver is up")


def frame(alerts: Sequence[Alert], new_ids: set[str] | None = None) -> Any:
    """Alerts as a DataFrame for a notebook: one row per episode, newest first."""
    import pandas as pd

    columns = ["kind", "key", "start", "end", "expected", "observed", "unit", "detail",
               "message", "alert_id"]
    rows = [a.as_dict() for a in alerts]
    table = pd.DataFrame(rows, columns=columns)
    if new_ids is not None:
        table["new"] = table["alert_id"].isin(new_ids)
    return table.iloc[::-1].reset_index(drop=True)


def _delivered(store: Any, ids: list[str]) -> set[str]:
    import sqlalchemy as sa

    if not ids:
        return set()
    column = store.alerts.c.alert_id
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(column).where(column.in_(ids))).scalars())


def _mark(store: Any, alerts: Sequence[Alert]) -> None:
    if not alerts:
        return
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(store.alerts.insert(), [
            {"alert_id": a.alert_id, "ts": now, "kind": a.kind, "key": a.key,
             "payload": json.dumps(a.as_dict())} for a in alerts])


def acknowledge(store: Any, alert_id: str, by: str | None = None, note: str = "") -> None:
    """Mark an alert episode as seen, by whom and why (the Cost panel's Acknowledge)."""
    import getpass

    import sqlalchemy as sa

    a = store.acks
    with store.engine.begin() as conn:
        conn.execute(sa.delete(a).where(a.c.alert_id == alert_id))
        conn.execute(a.insert(), {"alert_id": alert_id, "ts": time.time(),
                                  "by": by or getpass.getuser(), "note": note[:500]})


def acknowledged(store: Any, ids: Sequence[str]) -> dict[str, str]:
    """alert id → who acknowledged it, for the ids that were."""
    import sqlalchemy as sa

    if not ids:
        return {}
    a = store.acks.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(a.alert_id, a.by).where(a.alert_id.in_(list(ids))))
        return {alert_id: by for alert_id, by in rows}
