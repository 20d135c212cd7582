"""Step latencies kept per hour as log-scale histograms, so a long latency report is a
GROUP BY over counts instead of a read of every step row.

Each (hour, step, application, request_type, model) has a count per bucket; a bucket
spans 2 % of its value, so a percentile read from it is within 1 % of the exact one.
An hour is counted once, by the database, when it is over (see ``rollups``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

HOUR = 3600.0
RATIO = 1.02
_LOG_RATIO = math.log(RATIO)
ZERO_BUCKET = -100_000  # zero or negative seconds
KEYS = ("application", "request_type", "model")  # the dimensions the histogram keeps


def bucket(seconds: float) -> int:
    return math.floor(math.log(seconds) / _LOG_RATIO) if seconds > 0 else ZERO_BUCKET


def buckets(values: Any) -> Any:
    """``bucket`` over a numpy array."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    out = np.full(values.shape, ZERO_BUCKET, dtype=np.int64)
    positive = values > 0
    out[positive] = np.floor(np.log(values[positive]) / _LOG_RATIO).astype(np.int64)
    return out


def value(bucket_index: int) -> float:
    """The value a bucket stands for: its geometric middle (0 for the zero bucket)."""
    if bucket_index == ZERO_BUCKET:
        return 0.0
    return math.exp((bucket_index + 0.5) * _LOG_RATIO)


def hour_of(ts: float) -> float:
    return (ts // HOUR) * HOUR


def table(meta: Any) -> Any:
    import sqlalchemy as sa

    return sa.Table(
        "step_hist", meta,
        sa.Column("hour", sa.Float, nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        *(sa.Column(c, sa.String(200), nullable=False) for c in KEYS),
        sa.Column("bucket", sa.Integer, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.UniqueConstraint("hour", "step", *KEYS, "bucket"),
    )


def roll(conn: Any, store: Any, hour: float) -> None:
    """Count one hour's step values (and times to first token) into the histogram."""
    import sqlalchemy as sa

    c, s = store.calls.c, store.steps.c
    names = [sa.func.coalesce(c[k], "") for k in KEYS]  # NULLs would defeat the unique key

    def bucket_of(seconds: Any) -> Any:
        return sa.case((seconds > 0, sa.cast(sa.func.floor(sa.func.ln(seconds) / _LOG_RATIO),
                                              sa.Integer)), else_=ZERO_BUCKET)

    target = ["hour", "step", *KEYS, "bucket", "n"]
    steps = [sa.literal(hour), s.step, *names, bucket_of(s.seconds)]
    query = sa.select(*steps, sa.func.count()).join_from(
        store.steps, store.calls, s.call_id == c.call_id).where(
        s.ts >= hour, s.ts < hour + HOUR, s.seconds.is_not(None)).group_by(*steps[1:])
    conn.execute(store.step_hist.insert().from_select(target, query))
    ttft = [sa.literal(hour), sa.literal("ttft"), *names, bucket_of(c.ttft_s)]
    query = sa.select(*ttft, sa.func.count()).where(
        c.ts >= hour, c.ts < hour + HOUR, c.ttft_s.is_not(None)).group_by(*ttft[2:])
    conn.execute(store.step_hist.insert().from_select(target, query))


def percentiles(frame: Any, keys: Sequence[str], qs: Sequence[float] = (0.5, 0.95, 0.99)
                ) -> Any:
    """Per group of ``keys``: the count and each quantile from (``bucket``, ``n``) rows."""
    import numpy as np
    import pandas as pd

    rows = []
    for group, part in frame.groupby(list(keys), dropna=False, sort=True):
        part = part.groupby("bucket", sort=True)["n"].sum()
        total = int(part.sum())
        if total <= 0:
            continue
        cumulative = np.cumsum(part.to_numpy())
        index = part.index.to_numpy()
        # the bucket holding the value of rank q*(n-1), as pandas' quantile ranks them
        found = [index[np.searchsorted(cumulative, round(q * (total - 1)) + 1)] for q in qs]
        group = group if isinstance(group, tuple) else (group,)
        rows.append((*group, total, *(value(int(b)) for b in found)))
    return pd.DataFrame(rows, columns=[*keys, "calls", "p50", "p95", "p99"])
