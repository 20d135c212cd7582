"""Anomalies in the ledger: cost against a seasonal baseline, tokens, prices, latency, errors.

Every detector works on hourly buckets over the whole frame at once (numpy/pandas), so one
call checks a month as cheaply as an hour. Raw hourly findings of the same kind and key
are merged into one alert per episode, which names its window, the expected and the
observed value, and what changed in it (prompt versions, models).

* ``cost``: USD per hour per application, user and request type against the median of
  the same hour on earlier days of the same kind (weekday or weekend), with the median
  absolute deviation as its spread: daily and weekly cycles are in the baseline.
* ``tokens_per_request``: the hourly median of input or output tokens per request of an
  application and request type against the previous week's.
* ``token_outlier``: single requests far above their group's usual size.
* ``unpriced``: calls that used tokens on a model with no known price.
* ``latency_slo`` / ``latency_regression``: hourly p95 of a step over its SLO, or well above
  the previous week's.
* ``error_rate`` / ``fallback_rate``: failed or fallen-back calls per requested provider
  against the previous week's rate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

HOUR = 3600.0
WEEK_H = 168


@dataclass(frozen=True)
class Thresholds:
    """When a finding is an alert; the defaults are measured on simulated months by
    benchmarks/observe_anomalies.py (figures in benchmarks/RESULTS.md)."""

    history_days: int = 28
    min_history_days: int = 3
    cost_ratio: float = 2.0
    cost_z: float = 5.0
    cost_min_excess: float = 0.25  # USD per hour
    tokens_ratio: float = 1.5
    min_calls: int = 10
    outlier_ratio: float = 5.0
    latency_ratio: float = 1.5
    latency_min_excess_s: float = 0.05
    latency_z: float = 5.0
    latency_min_hours: int = 2  # a regression must last; a single noisy hour is not one
    latency_min_calls: int = 20
    slo: Mapping[str, float] = field(default_factory=dict)  # step -> p95 seconds
    error_min: int = 5
    error_ratio: float = 4.0
    error_excess: float = 0.1
    merge_gap_h: int = 2


@dataclass(frozen=True)
class Alert:
    """One episode: ``kind`` of trouble at ``key`` (``column=value``) from ``start`` to ``end``.

    ``expected`` and ``observed`` are the values of the worst hour, in ``unit``.
    """

    kind: str
    key: str
    start: float
    end: float
    expected: float
    observed: float
    unit: str
    detail: str = ""

    @property
    def alert_id(self) -> str:
        """The same episode has the same id on every check, so it is delivered once."""
        return hashlib.sha256(f"{self.kind}|{self.key}|{self.start:.0f}".encode()).hexdigest()[:32]

    @property
    def message(self) -> str:
        window = f"{_when(self.start)} to {_when(self.end)}"
        text = (f"{self.kind} at {self.key}, {window}: expected {self.expected:.4g} "
                f"{self.unit}, observed {self.observed:.4g}")
        return f"{text} ({self.detail})" if self.detail else text

    def as_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "kind": self.kind, "key": self.key,
                "start": _when(self.start), "end": _when(self.end), "expected": self.expected,
                "observed": self.observed, "unit": self.unit, "detail": self.detail,
                "message": self.message}


def detect(calls: Any, steps: Any = None, *, since: float | None = None,
           thresholds: Thresholds | None = None) -> list[Alert]:
    """Alerts from ``calls`` (ledger rows) and ``steps`` (ts, application, step, seconds).

    Earlier rows are the baseline; only episodes ending after ``since`` are returned.
    """
    import pandas as pd

    th = thresholds or Thresholds()
    if calls is None or not len(calls):
        return []
    calls = calls.assign(hour=(calls["ts"] // HOUR).astype("int64"))
    raw = [*_cost(calls, th), *_tokens(calls, th), *_unpriced(calls),
           *_failures(calls, th)]
    if steps is not None and len(steps):
        raw += _latency(steps.assign(hour=(steps["ts"] // HOUR).astype("int64")), th)
    if not raw:
        return []
    alerts = _episodes(pd.DataFrame(raw, columns=["kind", "key", "hour", "expected",
                                                  "observed", "unit", "detail"]), th)
    alerts = [_explain(a, calls) for a in alerts if a.kind != "latency_regression"
              or a.end - a.start >= th.latency_min_hours * HOUR]
    return [a for a in alerts if since is None or a.end > since]


# -- detectors: each returns rows (kind, key, hour, expected, observed, unit, detail) -------

def _hourly(calls: Any, column: str, value: str, how: str, fill: float | None = 0.0) -> Any:
    """key x hour matrix over every hour of the frame (missing hours: ``fill``)."""
    import numpy as np

    grouped = calls.groupby([column, "hour"])[value]
    table = (grouped.quantile(0.95) if how == "p95" else grouped.agg(how)).unstack("hour")
    first, last = int(calls["hour"].min()), int(calls["hour"].max())
    table = table.reindex(columns=np.arange(first, last + 1))
    return table if fill is None else table.fillna(fill)


def _cost(calls: Any, th: Thresholds) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for dimension in ("application", "user", "request_type"):
        if calls[dimension].isna().all():
            continue
        matrix = _hourly(calls.dropna(subset=[dimension]), dimension, "cost", "sum")
        expected, spread = _seasonal(matrix, th)
        observed = matrix.to_numpy()
        excess = observed - expected
        with _quiet():
            hit = ((observed > th.cost_ratio * expected) & (excess > th.cost_z * spread)
                   & (excess >= th.cost_min_excess))
        rows += _rows(hit, matrix, "cost", dimension, expected, observed, "USD/h")
    return rows


def _seasonal(matrix: Any, th: Thresholds) -> tuple[Any, Any]:
    """Median and spread of the same hour on earlier days of the same kind, per key."""
    import numpy as np

    values = matrix.to_numpy(dtype=float)
    first_hour = int(matrix.columns[0])
    lead = first_hour % 24  # pad to whole days starting at midnight UTC
    padded = np.concatenate([np.full((len(values), lead), np.nan), values], axis=1)
    days = -(-padded.shape[1] // 24)
    padded = np.pad(padded, ((0, 0), (0, days * 24 - padded.shape[1])),
                    constant_values=np.nan).reshape(len(values), days, 24)
    first_day = first_hour // 24
    weekend = np.array([datetime.fromtimestamp((first_day + d) * 86400, UTC).weekday() >= 5
                        for d in range(days)])
    expected = np.full_like(padded, np.nan)
    spread = np.full_like(padded, np.nan)
    for day in range(days):
        earlier = [d for d in range(max(0, day - th.history_days), day)
                   if weekend[d] == weekend[day]]
        if len(earlier) < th.min_history_days:
            continue
        with _quiet():
            history = padded[:, earlier, :]
            median = np.nanmedian(history, axis=1)
            mad = np.nanmedian(np.abs(history - median[:, None, :]), axis=1)
        expected[:, day, :] = median
        spread[:, day, :] = np.maximum(1.4826 * mad, 0.2 * median)
    width = values.shape[1]
    return (expected.reshape(len(values), -1)[:, lead:lead + width],
            spread.reshape(len(values), -1)[:, lead:lead + width])


def _tokens(calls: Any, th: Thresholds) -> list[tuple[Any, ...]]:
    import numpy as np

    calls = calls.assign(group=_group(calls), tokens=calls["tokens_in"] + calls["tokens_out"])
    ok = calls[(calls["status"] == "ok") & ~calls["cache_hit"].astype(bool)]
    if not len(ok):
        return []
    rows: list[tuple[Any, ...]] = []
    baselines = {}
    for column in ("tokens_in", "tokens_out", "tokens"):
        medians = _hourly(ok, "group", column, "median", fill=None)
        counts = _hourly(ok, "group", column, "size")
        medians = medians.where(counts >= th.min_calls)
        baseline = _previous_week(medians)
        baselines[column] = baseline
        if column == "tokens":
            continue
        observed = medians.to_numpy()
        with _quiet():
            hit = observed > th.tokens_ratio * baseline.to_numpy()
        rows += _rows(hit, medians, column + "_per_request", "group",
                      baseline.to_numpy(), observed, "tokens")
    usual = baselines["tokens"].stack().rename("usual").reset_index()
    usual.columns = ["group", "hour", "usual"]
    joined = ok.merge(usual, on=["group", "hour"])
    outliers = joined[joined["tokens"] > th.outlier_ratio * joined["usual"]]
    for (group, hour), found in outliers.groupby(["group", "hour"]):
        worst = found.loc[found["tokens"].idxmax()]
        rows.append(("token_outlier", f"group={group}", int(hour), float(worst["usual"]),
                     float(worst["tokens"]),
                     "tokens", f"{len(found)} request(s), e.g. {worst['request_id']}"))
    return [r for r in rows if not (isinstance(r[3], float) and np.isnan(r[3]))]


def _unpriced(calls: Any) -> list[tuple[Any, ...]]:
    unpriced = calls[~calls["priced"].astype(bool) & (calls["tokens_in"] + calls["tokens_out"]
                                                       > 0)]
    counts = unpriced.groupby(["model", "hour"]).size()
    return [("unpriced", f"model={model}", int(hour), 0.0, float(n), "calls/h",
             "tokens were used but no price is known; set input_cost_per_token and "
             "output_cost_per_token in the model config")
            for (model, hour), n in counts.items()]


def _failures(calls: Any, th: Thresholds) -> list[tuple[Any, ...]]:
    from .record import provider_of

    model = calls["requested_model"].fillna(calls["model"])
    calls = calls.assign(requested=model.map(provider_of),
                         error=(calls["status"] == "error").astype(float),
                         fell_back=calls["fallback"].astype(float))
    rows: list[tuple[Any, ...]] = []
    for column, kind in (("error", "error_rate"), ("fell_back", "fallback_rate")):
        failed = _hourly(calls, "requested", column, "sum")
        total = _hourly(calls, "requested", column, "size")
        base = (failed.T.rolling(WEEK_H, min_periods=24).sum().shift(1)
                / total.T.rolling(WEEK_H, min_periods=24).sum().shift(1)).T
        rate = (failed / total.where(total > 0)).to_numpy()
        expected = base.to_numpy()
        with _quiet():
            hit = ((failed.to_numpy() >= th.error_min)
                   & (rate >= th.error_ratio * expected) & (rate >= expected + th.error_excess))
        rows += _rows(hit, failed, kind, "provider", expected, rate, "share of calls")
    return rows


def _latency(steps: Any, th: Thresholds) -> list[tuple[Any, ...]]:
    group = (steps["application"].fillna("-") + "/" + steps["step"]
             if "application" in steps else steps["step"])
    steps = steps.assign(group=group)
    p95 = _hourly(steps, "group", "seconds", "p95", fill=None)
    counts = _hourly(steps, "group", "seconds", "size")
    p95 = p95.where(counts >= th.latency_min_calls)
    baseline = _previous_week(p95).to_numpy()
    spread = _previous_week_spread(p95).to_numpy()
    observed = p95.to_numpy()
    with _quiet():
        hit = ((observed > th.latency_ratio * baseline)
               & (observed - baseline > th.latency_min_excess_s)
               & (observed - baseline > th.latency_z * spread))
    rows = _rows(hit, p95, "latency_regression", "step", baseline, observed, "s (p95)")
    for step, limit in th.slo.items():
        mine = [g for g in p95.index if g == step or str(g).endswith("/" + step)]
        if not mine:
            continue
        part = p95.loc[mine]
        with _quiet():
            over = part.to_numpy() > limit
        rows += _rows(over, part, "latency_slo", "step", limit + 0 * part.to_numpy(),
                      part.to_numpy(), "s (p95)")
    return rows


# -- shared pieces ----------------------------------------------------------------------

def _group(calls: Any) -> Any:
    return calls["application"].fillna("-") + "/" + calls["request_type"].fillna("-")


def _previous_week(matrix: Any) -> Any:
    """Per key and hour: the median of that key's hourly values over the previous week."""
    return matrix.T.rolling(WEEK_H, min_periods=24).median().shift(1).T


def _previous_week_spread(matrix: Any) -> Any:
    """The standard deviation the previous week's interquartile range implies."""
    rolling = matrix.T.rolling(WEEK_H, min_periods=24)
    return ((rolling.quantile(0.75) - rolling.quantile(0.25)) / 1.349).shift(1).T


def _rows(hit: Any, matrix: Any, kind: str, dimension: str, expected: Any, observed: Any,
          unit: str) -> list[tuple[Any, ...]]:
    import numpy as np

    keys, hours = np.nonzero(np.asarray(hit, dtype=bool))
    return [(kind, f"{dimension}={matrix.index[k]}", int(matrix.columns[h]),
             float(expected[k, h]), float(observed[k, h]), unit, "")
            for k, h in zip(keys, hours, strict=True)]


def _episodes(raw: Any, th: Thresholds) -> list[Alert]:
    """Merge hourly findings of one kind and key that are at most ``merge_gap_h`` apart."""
    raw = raw.sort_values(["kind", "key", "hour"])
    new = (raw["hour"].diff() > th.merge_gap_h) | (raw["kind"] != raw["kind"].shift()) | (
        raw["key"] != raw["key"].shift())
    raw = raw.assign(episode=new.cumsum(), gap=raw["observed"] - raw["expected"])
    alerts = []
    for _, part in raw.groupby("episode", sort=False):
        worst = part.loc[part["gap"].idxmax()]
        alerts.append(Alert(kind=worst["kind"], key=worst["key"],
                            start=float(part["hour"].min()) * HOUR,
                            end=float(part["hour"].max() + 1) * HOUR,
                            expected=float(worst["expected"]), observed=float(worst["observed"]),
                            unit=worst["unit"], detail=str(worst["detail"] or "")))
    return sorted(alerts, key=lambda a: (a.start, a.kind, a.key))


def _explain(alert: Alert, calls: Any) -> Alert:
    """Name the prompt versions and models seen in the episode that were not used before."""
    if alert.kind not in ("cost", "tokens_in_per_request", "tokens_out_per_request"):
        return alert
    column, _, value = alert.key.partition("=")
    mine = calls[_group(calls) == value] if column == "group" else calls[
        calls[column].astype(str) == value]
    inside = mine[(mine["ts"] >= alert.start) & (mine["ts"] < alert.end)]
    before = mine[(mine["ts"] >= alert.start - 7 * 86400) & (mine["ts"] < alert.start)]
    notes = []
    for name, col in (("prompt version", "prompt_version"), ("model", "model")):
        new = sorted({str(v) for v in inside[col].dropna()} - {str(v) for v in
                                                              before[col].dropna()})
        if new:
            notes.append(f"new {name} in the window: {', '.join(new)}")
    if not notes:
        return alert
    detail = "; ".join(filter(None, [alert.detail, *notes]))
    return Alert(**{**alert.__dict__, "detail": detail})


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _quiet() -> Any:
    import numpy as np

    return np.errstate(invalid="ignore", divide="ignore")
