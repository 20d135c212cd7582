"""Reading the ledger: usage totals and latency percentiles as pandas DataFrames.

Totals are summed by the database (a GROUP BY), so a report over millions of records
moves only its groups; percentiles need the values, so only the step latencies are read.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from ..errors import WorkbenchError
from .record import since_ts

Since = str | float | timedelta | datetime | None

DIMENSIONS = ("application", "user", "request_type", "prompt", "prompt_version",
              "prompt_alias", "model", "provider", "requested_model", "status", "error_type",
              "cache_hit", "fallback")


def _by(by: str | list[str] | tuple[str, ...] | None, allowed: tuple[str, ...]) -> list[str]:
    names = [by] if isinstance(by, str) else list(by or [])
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise WorkbenchError(f"by={unknown} is not a ledger column; use some of {list(allowed)}")
    return names


def usage(store: Any, since: Since = "7d", by: str | list[str] | None = None,
          until: float | None = None) -> Any:
    """Calls, tokens, cost, unpriced calls, cache hits and errors per group, by cost."""
    import pandas as pd
    import sqlalchemy as sa

    names = _by(by, DIMENSIONS)
    c = store.calls.c
    columns = [c[n] for n in names]
    yes = sa.literal(1)
    query = sa.select(
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
    ).where(*_window(c, since, until, store)).group_by(*columns)
    with store.engine.connect() as conn:
        rows = conn.execute(query).fetchall()
    frame = pd.DataFrame(rows, columns=[*names, "calls", "tokens_in", "tokens_out",
                                        "tokens_cached", "cost", "unpriced_calls",
                                        "cache_hits", "errors"])
    return frame.sort_values("cost", ascending=False, kind="stable").reset_index(drop=True)


def latency(store: Any, since: Since = "24h", by: str | list[str] | None = "step",
            until: float | None = None) -> Any:
    """p50/p95/p99 and the count per group, in seconds; time to first token is step 'ttft'."""
    import pandas as pd

    names = _by(by, ("step", *DIMENSIONS))
    frame = steps_frame(store, since, [n for n in names if n != "step"], until)
    keys = names or ["step"]
    if not len(frame):
        return pd.DataFrame(columns=[*keys, "calls", "p50", "p95", "p99"])
    grouped = frame.groupby(keys, dropna=False)["seconds"]
    out = grouped.quantile([0.5, 0.95, 0.99]).unstack()
    out.columns = ["p50", "p95", "p99"]
    out.insert(0, "calls", grouped.size())
    return out.reset_index()


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
    if store is not None and _most_of(store, ts, start):
        ts = ts + 0  # an expression SQLite cannot index: most of a table reads faster by scan
    conditions = [ts >= start]
    if until is not None:
        conditions.append(ts < until)
    return conditions


def _most_of(store: Any, ts: Any, start: float) -> bool:
    """Whether a SQLite window from ``start`` to now covers over half the table's time span
    (SQLite's planner has no range statistics to know; PostgreSQL's has)."""
    import sqlalchemy as sa

    if store.engine.dialect.name != "sqlite":
        return False
    with store.engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.min(ts))).scalar()
    return first is not None and start - first < (time.time() - first) / 2
