"""Spending limits per application or user, daily or monthly, checked before each call.

The spend of a period is read from the ledger once per subject (so a restarted service
remembers it) and then kept in memory as this process's calls add to it: a check costs a
dictionary look-up, not a query. Several processes serving the same application each see
the ledger's spend at their start plus their own calls since.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ..errors import WorkbenchError

log = logging.getLogger("workbench.observe.budgets")


class BudgetExceeded(WorkbenchError):
    """A request was refused: its application or user has spent its budget.

    ``resets_at`` is when the budget's period ends (epoch seconds, UTC), when known."""

    def __init__(self, message: str, *, resets_at: float | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at


@dataclass(frozen=True)
class Budget:
    """``limit_usd`` per ``period`` for one ``application`` or ``user`` (``"*"``: each one).

    A warning is logged once per period when the spend reaches ``alert_at`` of the limit.
    """

    limit_usd: float
    application: str | None = None
    user: str | None = None
    period: Literal["daily", "monthly"] = "daily"
    alert_at: float = 0.8

    def __post_init__(self) -> None:
        if (self.application is None) == (self.user is None):
            raise WorkbenchError("Budget: give exactly one of application= or user= "
                                 "(a name, or '*' for each one)")
        if self.period not in ("daily", "monthly"):
            raise WorkbenchError(f"Budget: period {self.period!r}: use 'daily' or 'monthly'")
        if self.limit_usd <= 0 or not 0 < self.alert_at <= 1:
            raise WorkbenchError("Budget: limit_usd must be > 0 and alert_at in (0, 1]")

    @property
    def scope(self) -> str:
        return "application" if self.application is not None else "user"

    def subject(self, tags: Mapping[str, str]) -> str | None:
        """The application or user of a request this budget applies to, if any."""
        wanted = self.application if self.application is not None else self.user
        value = tags.get(self.scope)
        return value if value is not None and wanted in ("*", value) else None


def period_start(period: str, now: float | None = None) -> float:
    day = datetime.fromtimestamp(time.time() if now is None else now, UTC).replace(
        hour=0, minute=0, second=0, microsecond=0)
    return (day.replace(day=1) if period == "monthly" else day).timestamp()


def period_end(period: str, now: float | None = None) -> float:
    """When the period holding ``now`` ends: the next midnight or first of a month, UTC."""
    start = datetime.fromtimestamp(period_start(period, now), UTC)
    if period == "monthly":
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    else:
        end = start + timedelta(days=1)
    return end.timestamp()


class BudgetGuard:
    """Refuses requests over a budget and warns at its alert share; ``add`` counts spend."""

    def __init__(self, budgets: Sequence[Budget], ledger: Any = None) -> None:
        self.budgets = list(budgets)
        self._ledger = ledger
        self._spent: dict[tuple[int, str, float], float] = {}
        self._warned: set[tuple[int, str, float]] = set()
        self._lock = threading.Lock()

    def check(self, tags: Mapping[str, str]) -> None:
        """Raise ``BudgetExceeded`` when any budget of this request is used up."""
        for key, budget in self._keys(tags):
            spent = self._spend(key, budget)
            if spent >= budget.limit_usd:
                raise BudgetExceeded(
                    f"{budget.scope} {key[1]!r} has spent ${spent:.4f} of its {budget.period} "
                    f"budget of ${budget.limit_usd:.2f}; requests are refused until the "
                    f"period ends. fix: raise the budget or wait for the next "
                    f"{'day' if budget.period == 'daily' else 'month'} (UTC)",
                    resets_at=period_end(budget.period, key[2]))

    def add(self, tags: Mapping[str, str], cost: float) -> None:
        """Count a call's cost; log a warning when a budget first reaches its alert share."""
        for key, budget in self._keys(tags):
            with self._lock:
                spent = self._spend(key, budget) + cost
                self._spent[key] = spent
                crossed = spent >= budget.alert_at * budget.limit_usd
                first = crossed and key not in self._warned
                if first:
                    self._warned.add(key)
            if first:
                log.warning("budget: %s %r has spent $%.4f, %.0f%% of its %s budget of $%.2f",
                            budget.scope, key[1], spent, 100 * spent / budget.limit_usd,
                            budget.period, budget.limit_usd)

    def _keys(self, tags: Mapping[str, str]) -> list[tuple[tuple[int, str, float], Budget]]:
        keys = []
        for index, budget in enumerate(self.budgets):
            subject = budget.subject(tags)
            if subject is not None:
                keys.append(((index, subject, period_start(budget.period)), budget))
        return keys

    def _spend(self, key: tuple[int, str, float], budget: Budget) -> float:
        spent = self._spent.get(key)
        if spent is None:  # first request of this subject in this period: ask the ledger
            spent = self._spent[key] = self._ledger_spend(budget.scope, key[1], key[2])
        return spent

    def _ledger_spend(self, scope: str, subject: str, since: float) -> float:
        import sqlalchemy as sa

        from .hook import default_ledger

        store = (self._ledger or default_ledger()).store()
        c = store.calls.c
        query = sa.select(sa.func.coalesce(sa.func.sum(c.cost), 0.0)).where(
            c[scope] == subject, c.ts >= since)
        with store.engine.connect() as conn:
            return float(conn.execute(query).scalar_one())
