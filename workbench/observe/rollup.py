"""Rollups: usage totals per UTC day and group, step latency histograms per hour
(``histogram``), so a month-long report sums thousands of rows instead of sorting a
million calls.

A period is rolled up once, by the database (INSERT ... SELECT ... GROUP BY), when it
has been over for ``SETTLE_S``: by the ledger's writer as time passes, or by the first
report that needs it. Nothing is added to the write of a call. A call written later than
that (a store that was down) removes its periods' rollups, so they are made again. A
report reads the rolled-up periods of its window and the rest from the calls, so usage
totals are exact either way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from . import histogram

DAY = 86400.0
SETTLE_S = 600.0
TEXT = ("application", "user", "request_type", "prompt", "prompt_alias", "model", "provider",
        "requested_model", "status", "error_type", "route")
KEYS = (*TEXT, "prompt_version", "cache_hit", "fallback")
SUMS = ("calls", "tokens_in", "tokens_out", "tokens_cached", "cost", "unpriced_calls",
        "cache_hits", "errors")
NO_VERSION = -1  # a unique key treats NULLs as distinct: missing names are '' and -1
PERIODS = {"usage_daily": DAY, "step_hist": histogram.HOUR}


def day_of(ts: float) -> float:
    return (ts // DAY) * DAY


def tables(meta: Any) -> tuple[Any, Any]:
    """usage_daily, and ``rolled``: which periods of which rollup are done."""
    import sqlalchemy as sa

    usage_daily = sa.Table(
        "usage_daily", meta,
        sa.Column("day", sa.Float, nullable=False),
        *(sa.Column(c, sa.String(200), nullable=False) for c in TEXT),
        sa.Column("prompt_version", sa.Integer, nullable=False),
        sa.Column("cache_hit", sa.Boolean, nullable=False),
        sa.Column("fallback", sa.Boolean, nullable=False),
        *(sa.Column(c, sa.Integer, nullable=False) for c in SUMS if c != "cost"),
        sa.Column("cost", sa.Float, nullable=False),
        sa.UniqueConstraint("day", *KEYS),
    )
    rolled = sa.Table(
        "rolled", meta,
        sa.Column("rollup", sa.String(20), primary_key=True),
        sa.Column("start", sa.Float, primary_key=True),
    )
    return usage_daily, rolled


def _roll_day(conn: Any, store: Any, day: float) -> None:
    import sqlalchemy as sa

    c = store.calls.c
    keys = [*(sa.func.coalesce(c[n], "") for n in TEXT),
            sa.func.coalesce(c.prompt_version, NO_VERSION),
            *(sa.func.coalesce(c[n], False) for n in ("cache_hit", "fallback"))]
    yes = sa.literal(1)
    sums = [
        sa.func.count(),
        *(sa.func.coalesce(sa.func.sum(c[n]), 0) for n in ("tokens_in", "tokens_out",
                                                            "tokens_cached")),
        sa.func.coalesce(sa.func.sum(c.cost), 0.0),
        sa.func.sum(sa.case((sa.and_(c.priced.is_(False), c.tokens_in + c.tokens_out > 0),
                             yes), else_=0)),
        sa.func.sum(sa.case((c.cache_hit.is_(True), yes), else_=0)),
        sa.func.sum(sa.case((c.status == "error", yes), else_=0)),
    ]
    query = sa.select(sa.literal(day), *keys, *sums).where(
        c.ts >= day, c.ts < day + DAY).group_by(*keys)
    conn.execute(store.usage_daily.insert().from_select(["day", *KEYS, *SUMS], query))


def ensure(store: Any, rollup: str, start: float, end: float,
           now: float | None = None) -> float:
    """Roll up the periods of ``rollup`` from ``start`` up to ``end`` that are over and not
    done yet; returns where the rolled-up periods end (a period boundary)."""
    import sqlalchemy as sa

    period = PERIODS[rollup]
    settled = ((time.time() if now is None else now) - SETTLE_S) // period * period
    first = -(-start // period) * period  # the first whole period
    last = min(end // period * period, settled)
    if last <= first:
        return first
    with store.engine.connect() as conn:  # periods before the first call have nothing
        oldest = conn.execute(sa.select(sa.func.min(store.calls.c.ts))).scalar()
    if oldest is None:
        return first
    begin_at = max(first, oldest // period * period)
    r = store.rolled.c
    with store.engine.connect() as conn:
        done = set(conn.execute(sa.select(r.start).where(
            r.rollup == rollup, r.start >= first, r.start < last)).scalars())
    roll = _roll_day if rollup == "usage_daily" else histogram.roll
    begin = begin_at
    while begin < last:
        if begin not in done:
            try:
                with store.engine.begin() as conn:
                    conn.execute(store.rolled.insert(), {"rollup": rollup, "start": begin})
                    roll(conn, store, begin)
            except sa.exc.IntegrityError:
                pass  # another process rolled it up meanwhile
        begin += period
    return last


def forget(conn: Any, store: Any, timestamps: Iterable[float]) -> None:
    """Drop the rollups of the periods holding ``timestamps`` (calls written late)."""
    import sqlalchemy as sa

    stamps = list(timestamps)
    r = store.rolled.c
    for rollup, period in PERIODS.items():
        starts = sorted({ts // period * period for ts in stamps})
        table = store.usage_daily if rollup == "usage_daily" else store.step_hist
        column = table.c.day if rollup == "usage_daily" else table.c.hour
        for i in range(0, len(starts), 500):
            chunk = starts[i:i + 500]
            conn.execute(sa.delete(store.rolled).where(r.rollup == rollup,
                                                       r.start.in_(chunk)))
            conn.execute(sa.delete(table).where(column.in_(chunk)))


def usage_query(store: Any, names: Sequence[str], first: float, last: float) -> Any:
    """The totals of rolled-up days ``[first, last)`` per group of ``names``."""
    import sqlalchemy as sa

    d = store.usage_daily.c
    columns = [d[n] for n in names]
    return sa.select(*columns, *(sa.func.sum(d[s]).label(s) for s in SUMS)).where(
        d.day >= first, d.day < last).group_by(*columns)


def restore(frame: Any, names: Sequence[str]) -> Any:
    """The stored stand-ins back to missing values, and flags back to booleans."""
    for name in names:
        if name in TEXT:
            frame[name] = frame[name].astype(object).where(frame[name] != "", None)
        elif name == "prompt_version":
            frame[name] = frame[name].astype(object).where(frame[name] != NO_VERSION, None)
        else:
            frame[name] = frame[name].astype(bool)
    return frame
