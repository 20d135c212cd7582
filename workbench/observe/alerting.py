"""Checking the ledger for anomalies and delivering each alert once: log, notebook, webhook.

An alert episode has a stable id (kind, key and start), and the ids delivered are kept in
the ledger's ``alerts`` table, so a check run every few minutes (cron, a notebook) sends
an ongoing episode once. A webhook that fails is an error naming the URL and the reason;
its alerts are not marked delivered, so the next check sends them again.

Alerts raised elsewhere (the monitor's ``quality`` and ``canary`` alerts, RAG
``query_drift``) are delivered through the same ``deliver`` with their ``source``, so
``recorded`` reads them back from the table and one DataFrame shows every alert that
fired.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import WorkbenchError
from .anomalies import Alert, Thresholds, detect
from .record import seconds, since_ts

ANOMALY = "anomaly"  # the source of the alerts ``check`` finds in the ledger's calls
_LEGACY_SOURCES = {"quality": "monitor", "canary": "monitor"}  # rows stored without a source

log = logging.getLogger("workbench.observe.alerting")


class AlertDeliveryError(WorkbenchError):
    """A webhook did not accept the alerts."""


@dataclass(frozen=True)
class Delivery:
    """What a delivery did: alerts new to this ledger, and those delivered before."""

    new: int
    already_delivered: int


@dataclass(frozen=True)
class RecordedAlert(Alert):
    """An alert read back from the ledger's table: the part that raised it (``source``:
    ``monitor``, ``rag``) and the id it was stored under, which acknowledgements and the
    ``new`` flag refer to."""

    source: str = ANOMALY
    recorded_id: str = field(default="", compare=False)

    @property
    def alert_id(self) -> str:
        return self.recorded_id or super().alert_id

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "source": self.source}


def check(store: Any, since: Any = "24h", history: Any = "28d",
          thresholds: Thresholds | None = None) -> list[Alert]:
    """Alert episodes that end within ``since``, judged against ``history`` before it."""
    from .queries import calls_frame, steps_frame

    span = seconds(since) + seconds(history)
    calls = calls_frame(store, since=span)
    steps = steps_frame(store, span, ["application"])
    return detect(calls, steps, since=since_ts(since), thresholds=thresholds)


def with_recorded(store: Any, since: Any, found: Sequence[Alert]) -> list[Alert]:
    """``found`` (``check``'s anomalies) and the alerts other parts delivered within
    ``since`` (``recorded``): every alert of the window, oldest first."""
    ids = {a.alert_id for a in found}
    rest = [a for a in recorded(store, since) if a.alert_id not in ids]
    return sorted([*found, *rest], key=lambda a: (a.start, a.kind, a.key))


def recorded(store: Any, since: Any = "24h") -> list[RecordedAlert]:
    """Alerts delivered within ``since`` by a source other than ``check`` (the monitor's
    quality and canary alerts, RAG query drift), as they were delivered."""
    import sqlalchemy as sa

    t = store.alerts.c
    query = sa.select(t.alert_id, t.kind, t.payload).where(t.ts >= since_ts(since))
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(t.ts)).all()
    found = []
    for alert_id, kind, payload in rows:
        fields = json.loads(payload or "{}")
        source = fields.get("source") or _LEGACY_SOURCES.get(kind, ANOMALY)
        if source != ANOMALY:
            found.append(_revived(alert_id, source, fields))
    return found


def deliver(alerts: Sequence[Alert], store: Any, *, webhook: str | None = None,
            timeout_s: float = 10.0, source: str = ANOMALY) -> Delivery:
    """Log each alert not delivered before and POST them as JSON to ``webhook``.

    ``source`` names the part that raised them; alerts of any source but ``check``'s
    are read back by ``recorded``, so ``observe.alerts()`` lists them too.
    """
    sent = _delivered(store, [a.alert_id for a in alerts])
    new = [a for a in alerts if a.alert_id not in sent]
    for alert in new:
        log.warning("alert: %s", alert.message)
    if new and webhook:
        post(webhook, new, timeout_s, source=source)
    _mark(store, new, source)
    return Delivery(new=len(new), already_delivered=len(alerts) - len(new))


def post(url: str, alerts: Sequence[Alert], timeout_s: float = 10.0, *,
         source: str = ANOMALY) -> None:
    """One JSON POST ``{"alerts": [...]}``; any failure is an ``AlertDeliveryError``."""
    body = json.dumps({"source": "workbench",
                       "alerts": [{**a.as_dict(), "source": source} for a in alerts]})
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

    columns = ["kind", "source", "key", "start", "end", "expected", "observed", "unit",
               "detail", "message", "alert_id"]
    rows = [{**a.as_dict(), "source": getattr(a, "source", ANOMALY)} for a in alerts]
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


def _mark(store: Any, alerts: Sequence[Alert], source: str = ANOMALY) -> None:
    if not alerts:
        return
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(store.alerts.insert(), [
            {"alert_id": a.alert_id, "ts": now, "kind": a.kind, "key": a.key,
             "payload": json.dumps({**a.as_dict(), "source": source, "start_ts": a.start,
                                    "end_ts": a.end})} for a in alerts])


def _revived(alert_id: str, source: str, fields: dict[str, Any]) -> RecordedAlert:
    """A stored payload as an alert; rows stored before the epoch seconds were kept carry
    only the minute-precise text of ``start`` and ``end``."""
    def at(edge: str) -> float:
        if f"{edge}_ts" in fields:
            return float(fields[f"{edge}_ts"])
        when = datetime.strptime(fields[edge], "%Y-%m-%d %H:%M UTC")
        return when.replace(tzinfo=UTC).timestamp()

    return RecordedAlert(kind=fields["kind"], key=fields["key"], start=at("start"),
                         end=at("end"), expected=float(fields["expected"]),
                         observed=float(fields["observed"]), unit=fields.get("unit", ""),
                         detail=fields.get("detail", ""), source=source,
                         recorded_id=alert_id)


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
