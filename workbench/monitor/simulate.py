"""A month of scored production traffic, to measure the quality alert's false alarms and delay.

Arrival times are the demo traffic of ``workbench.observe.simulate`` (one application's
request type, with its daily and weekly cycle); each scored request passes with probability
``baseline`` (the offline estimate), or ``baseline - drop`` after a change at a random time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sequential import first_alarms

HOUR = 3600.0


@dataclass(frozen=True)
class QualitySimulation:
    runs: int
    scored_per_day: float
    false_alarm_rate: float  # runs with any alarm over the month, no change
    detected: float  # share of changed runs alarmed after the change
    early_alarms: float  # changed runs alarmed before their change
    delay_h_median: float
    delay_h_p90: float
    within_a_day: float  # share of changed runs detected within 24 h of the change
    naive_false_alarm_rate: float  # a z-test at alpha repeated after every score, same runs


def arrivals(days: int = 30, seed: int = 7, application: str = "helpdesk",
             request_type: str | None = "triage", sample: float = 1.0) -> np.ndarray:
    """Seconds since the start of the month of each scored request (``request_type=None``:
    all of the application's requests)."""
    from ..observe.simulate import simulate

    sim = simulate(days=days, seed=seed)
    calls = sim.calls
    chosen = calls["application"] == application
    if request_type is not None:
        chosen &= calls["request_type"] == request_type
    times = calls.loc[chosen, "ts"].to_numpy()
    times = np.sort(times - sim.start)
    keep = np.random.default_rng(seed).random(len(times)) < sample
    return times[keep]


def run(times: np.ndarray, *, runs: int = 200, baseline: float = 0.81, drop: float = 0.10,
        alpha: float = 0.05, seed: int = 0) -> QualitySimulation:
    """``runs`` months without a change and ``runs`` with one, on the same arrival times."""
    rng = np.random.default_rng(seed)
    n = len(times)
    days = times[-1] / 86400.0
    null = (rng.random((runs, n)) < baseline).astype(np.float64)
    false_alarm = float((first_alarms(null, baseline, alpha=alpha, horizon=n) >= 0).mean())
    naive = float(_naive_peeking(null, baseline, alpha).mean())
    # a change at a random time between the second day and two days before the end
    change_t = rng.uniform(86400.0, times[-1] - 2 * 86400.0, runs)
    change_i = np.searchsorted(times, change_t)
    after = np.arange(n)[None, :] >= change_i[:, None]
    p = np.where(after, baseline - drop, baseline)
    changed = (rng.random((runs, n)) < p).astype(np.float64)
    first = first_alarms(changed, baseline, alpha=alpha, horizon=n)
    hit = first >= change_i
    delay_h = (times[first[hit]] - change_t[hit]) / HOUR
    return QualitySimulation(
        runs=runs, scored_per_day=n / days, false_alarm_rate=false_alarm,
        detected=float(hit.mean()), early_alarms=float(((first >= 0) & ~hit).mean()),
        delay_h_median=float(np.median(delay_h)) if len(delay_h) else float("nan"),
        delay_h_p90=float(np.percentile(delay_h, 90)) if len(delay_h) else float("nan"),
        within_a_day=float((hit & (np.where(hit, times[first], 0) - change_t
                                   <= 86400.0)).mean()),
        naive_false_alarm_rate=naive)


def _naive_peeking(scores: np.ndarray, baseline: float, alpha: float, min_n: int = 30
                   ) -> np.ndarray:
    """Whether a one-sided z-test, looked at after every score, ever rejected: the peeking
    the sequential test replaces."""
    from scipy.stats import norm

    n = np.arange(1, scores.shape[1] + 1)
    z = (np.cumsum(scores, axis=1) / n - baseline) / np.sqrt(baseline * (1 - baseline) / n)
    return ((z < norm.ppf(alpha)) & (n >= min_n)).any(axis=1)
