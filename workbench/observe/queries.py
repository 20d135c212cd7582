"""Reading the ledger: usage totals and latency percentiles as pandas DataFrames.

Totals are summed by the database (a GROUP BY), from the daily rollup for the days of a
window that are over and from the calls for the rest, so a report over millions of
records moves only its groups. Percentiles are exact over the step values of a window of
up to ``EXACT_LIMIT`` of them; a larger window is read from the hourly latency histogram
(within 1 %) and its hours not rolled up from the step rows.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import WorkbenchError
from . import histogram, rollup
from .record import since_ts

Since = str | float | timedelta | datetime | None
EXACT_LIMIT = 50_000  # step values read exactly; above, the per-hour histogram

DIMENSIONS = ("application", "user", "request_type", "prompt", "prompt_version",
              "prompt_alias", "model", "provider", "requested_model", "status", "error_type",
              "cache_hit", "fallback", "route")


def _by(by: str | list[str] | tuple[str, ...] | None, allowed: tuple[str, ...]) -> list[str]:
    names = [by] if isinstance(by, str) else list(by or [])
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise WorkbenchError(f"by={unknown} is not a ledger column; use some of {list(allowed)}")
    return names


def usage(store: Any, since: Since = "7d", by: str | list[str] | None = None,
          until: float | None = None) -> Any:
    """Calls, tokens, cost, unpriced calls, cache hits and errors per group, by cost.

    Rolled-up days of the window are summed from the daily rollup, the rest from the calls.
    """
    import pandas as pd

    names = _by(by, DIMENSIONS)
    start = since_ts(since)
    first, last = _rolled_span(store, "usage_daily", start, until)
    columns = [*names, *rollup.SUMS]
    parts = []
    if last > first:
        daily = _fetch(store, rollup.usage_query(store, names, first, last))
        parts.append(rollup.restore(pd.DataFrame.from_records(daily, columns=columns), names))
    for edge_start, edge_end in _edges(start, until, first, last):
        rows = _fetch(store, _usage_query(store, names, edge_start, edge_end))
        parts.append(pd.DataFrame.from_records(rows, columns=columns))
    frame = pd.concat([p for p in parts if len(p)] or [pd.DataFrame(columns=columns)],
                      ignore_index=True)
    if names and len(frame):
        frame = frame.groupby(names, dropna=False, sort=False).sum().reset_index()
    elif len(frame) > 1:
        frame = frame.sum().to_frame().T
    for name in rollup.SUMS:
        frame[name] = frame[name].astype(float if name == "cost" else "int64")
    for name in names:
        if name in ("cache_hit", "fallback"):
            frame[name] = frame[name].astype(bool)
        else:  # the group-by turns a missing name into NaN
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame.sort_values("cost", ascending=False, kind="stable").reset_index(drop=True)


def _rolled_span(store: Any, name: str, start: float, until: float | None) -> tuple[float, float]:
    """The whole periods of the window that are (now) rolled up: ``[first, last)``."""
    period = rollup.PERIODS[name]
    first = -(-start // period) * period
    last = rollup.ensure(store, name, start, time.time() if until is None else until)
    return first, max(first, last)


def _edges(start: float, until: float | None, first: float, last: float
           ) -> list[tuple[float, float | None]]:
    """The parts of ``[start, until)`` outside the rolled-up ``[first, last)``."""
    if last <= first:
        return [(start, until)]
    edges: list[tuple[float, float | None]] = []
    if start < first:
        edges.append((start, first))
    if until is None or until > last:
        edges.append((last, until))
    return edges


def _usage_query(store: Any, names: list[str], start: float, until: float | None) -> Any:
    import sqlalchemy as sa

    c = store.calls.c
    columns = [c[n] for n in names]
    yes = sa.literal(1)
    return sa.select(
        *columns,
        sa.func.count().label("calls"),
        sa.func.coalesce(sa.func.sum(c.tokens_in), 0).label("tokens_in"),
        sa.func.coalesce(sa.func.sum(c.tokens_out), 0).label("tokens_out"),
        sa.func.coalesce(sa.func.sum(c.tokens_cached), 0).label("tokens_cached"),
        sa.func.coalesce(sa.func.sum(c.cost), 0.0).label("cost"),
        sa.func.coalesce(sa.func.sum(sa.case(
            (sa.and_(c.priced.is_(False), c.tokens_in + c.tokens_out > 0), yes), else_=0)),
            0).label("unpriced_calls"),
        sa.func.coalesce(sa.func.sum(sa.case((c.cache_hit.is_(True), yes), else_=0)),
                         0).label("cache_hits"),
        sa.func.coalesce(sa.func.sum(sa.case((c.status == "error", yes), else_=0)),
                         0).label("errors"),
    ).where(c.ts >= start, *([] if until is None else [c.ts < until])).group_by(*columns)


def latency(store: Any, since: Since = "24h", by: str | list[str] | None = "step",
            until: float | None = None) -> Any:
    """p50/p95/p99 and the count per group, in seconds; time to first token is step 'ttft'.

    Exact when the window's rolled-up hours hold up to ``EXACT_LIMIT`` values (or ``by``
    names a column the histogram does not keep); else from the histogram, within 1 %."""
    import pandas as pd

    names = _by(by, ("step", *DIMENSIONS))
    keys = names or ["step"]
    dimensions = [n for n in names if n != "step"]
    if set(dimensions) <= set(histogram.KEYS):
        found = _latency_from_histogram(store, since_ts(since), keys, until)
        if found is not None:
            return found
    frame = steps_frame(store, since, dimensions, until)
    if not len(frame):
        return pd.DataFrame(columns=[*keys, "calls", "p50", "p95", "p99"])
    grouped = frame.groupby(keys, dropna=False)["seconds"]
    out = grouped.quantile([0.5, 0.95, 0.99]).unstack()
    out.columns = ["p50", "p95", "p99"]
    out.insert(0, "calls", grouped.size())
    return out.reset_index()


def _latency_from_histogram(store: Any, start: float, keys: list[str],
                            until: float | None) -> Any:
    """Rolled-up hours from the histogram (summed by the database), the rest from step
    rows; None when the window holds few enough values to read them all."""
    import pandas as pd
    import sqlalchemy as sa

    first, last = _rolled_span(store, "step_hist", start, until)
    if last <= first:
        return None
    h = store.step_hist.c
    columns = [h[k] for k in keys]
    query = sa.select(*columns, h.bucket, sa.func.sum(h.n)).where(
        h.hour >= first, h.hour < last).group_by(*columns, h.bucket)
    counted = pd.DataFrame.from_records(_fetch(store, query), columns=[*keys, "bucket", "n"])
    if counted["n"].sum() <= EXACT_LIMIT:
        return None
    dimensions = [k for k in keys if k != "step"]
    counted[dimensions] = counted[dimensions].replace({"": None})
    parts = [counted]
    for edge_start, edge_end in _edges(start, until, first, last):
        rows = steps_frame(store, datetime.fromtimestamp(edge_start, UTC), dimensions,
                           edge_end)
        rows["bucket"], rows["n"] = histogram.buckets(rows["seconds"]), 1
        parts.append(rows[[*keys, "bucket", "n"]])
    return histogram.percentiles(pd.concat(parts, ignore_index=True), keys)


def steps_frame(store: Any, since: Since, dimensions: list[str],
                until: float | None = None) -> Any:
    """One row per (call, step) with ts and ``dimensions``; ttft rows from the calls table."""
    import pandas as pd
    import sqlalchemy as sa

    c, s = store.calls.c, store.steps.c
    extra = [c[n] for n in dimensions]
    step_q = sa.select(s.ts, s.step, s.seconds, *extra).where(*_window(s, since, until, store))
    if dimensions:
        step_q = step_q.join_from(store.steps, store.calls, s.call_id == c.call_id)
    ttft_q = sa.select(c.ts, sa.literal("ttft").label("step"), c.ttft_s.label("seconds"),
                       *extra).where(c.ttft_s.is_not(None), *_window(c, since, until, store))
    columns = ["ts", "step", "seconds", *dimensions]
    return pd.DataFrame.from_records(_fetch(store, step_q) + _fetch(store, ttft_q),
                                     columns=columns)


def calls_frame(store: Any, since: Since = "30d", until: float | None = None) -> Any:
    """Every call in the window, one row each (the anomaly detectors read this)."""
    import pandas as pd
    import sqlalchemy as sa

    c = store.calls.c
    query = sa.select(store.calls).where(*_window(c, since, until, store)).order_by(c.ts)
    frame = pd.DataFrame.from_records(_fetch(store, query), columns=[col.name for col in c])
    for flag in ("priced", "cache_hit", "fallback"):
        frame[flag] = frame[flag].fillna(False).astype(bool)  # SQLite gives 0/1
    return frame


def _fetch(store: Any, query: Any) -> list[tuple[Any, ...]]:
    """The rows as the driver returns them: building SQLAlchemy Row objects for millions of
    rows costs more than the fetch (benchmarks/RESULTS.md, Observability)."""
    dialect = store.engine.dialect
    compiled = query.compile(dialect=dialect)
    params: Any = compiled.params
    if dialect.positional:
        params = tuple(params[name] for name in compiled.positiontup)
    with store.engine.connect() as conn:
        return conn.exec_driver_sql(str(compiled), params).cursor.fetchall()


def series(store: Any, since: Since = "7d", every_s: float = 3600.0) -> Any:
    """Cost, calls and busy seconds (the sum of 'total' steps) per period of ``every_s``:
    the Cost panel's chart, throughput and average concurrency (busy seconds / period)."""
    import pandas as pd
    import sqlalchemy as sa

    c = store.calls.c
    if store.engine.dialect.name == "sqlite":  # no floor() without its math extension
        period = sa.cast(c.ts / every_s, sa.Integer) * every_s
    else:
        period = sa.func.floor(c.ts / every_s) * every_s
    query = sa.select(period.label("start"), sa.func.count(), sa.func.coalesce(
        sa.func.sum(c.cost), 0.0)).where(c.ts >= since_ts(since)).group_by(period)
    frame = pd.DataFrame.from_records(_fetch(store, query), columns=["start", "calls", "cost"])
    s = store.steps.c
    busy_period = (sa.cast(s.ts / every_s, sa.Integer) * every_s
                   if store.engine.dialect.name == "sqlite" else
                   sa.func.floor(s.ts / every_s) * every_s)
    busy = sa.select(busy_period, sa.func.sum(s.seconds)).where(
        s.step == "total", s.ts >= since_ts(since)).group_by(busy_period)
    seconds = dict(_fetch(store, busy))
    frame["busy_s"] = [float(seconds.get(start, 0.0) or 0.0) for start in frame["start"]]
    return frame.sort_values("start").reset_index(drop=True)


def lost(store: Any, since: Since = "7d") -> int:
    """How many records were lost (queue full, too many waiting) in the window."""
    import sqlalchemy as sa

    t = store.lost.c
    query = sa.select(sa.func.coalesce(sa.func.sum(t.count), 0)).where(
        t.ts >= since_ts(since))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _window(columns: Any, since: Since, until: float | None, store: Any = None) -> list[Any]:
    start = since_ts(since)
    ts = columns.ts
    if store is not None and _most_of(store, ts, start, until):
        ts = ts + 0  # an expression SQLite cannot index: most of a table reads faster by scan
    conditions = [ts >= start]
    if until is not None:
        conditions.append(ts < until)
    return conditions


def _most_of(store: Any, ts: Any, start: float, until: float | None = None) -> bool:
    """Whether a SQLite window from ``start`` to ``until`` (now) covers over half the
    table's time span (SQLite's planner has no range statistics to know; PostgreSQL's has)."""
    import sqlalchemy as sa

    if store.engine.dialect.name != "sqlite":
        return False
    with store.engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.min(ts))).scalar()
    now = time.time()
    return first is not None and min(until or now, now) - max(start, first) > (now - first) / 2
