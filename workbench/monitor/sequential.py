"""A sequential test for "the online score dropped below the offline estimate".

Scores are in [0, 1]. Under the null hypothesis their mean stays at or above ``baseline``;
for a bet ``lam`` in [0, 1/(1 - baseline)], ``e = 1 + lam * (baseline - x)`` is then a
non-negative factor with expectation at most 1. The detector is the Shiryaev-Roberts
e-detector (Shin, Ramdas and Rinaldo, 2022) averaged over a grid of bets:
``R_t = mean over lam of (R_{t-1}(lam) + 1) * e_t(lam)``, which sums the evidence of a
drop starting at every earlier request, so evidence gathered before a change does not slow
its detection. ``R_t - t`` is a supermartingale under the null, hence (Ville's inequality on
``R_t + N - t``) the chance of any alarm within the first ``horizon`` = N scores is at most
N / threshold; the threshold is ``horizon / alpha``. This holds however often the statistic
is looked at: every score updates it, and there is no peeking penalty to pay.

After ``horizon`` scores or an alarm the detector starts again; the alarm's window runs
from the most likely change point (the start of the best CUSUM run) to the alarm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# fractions of the largest bet 1/(1 - baseline): small bets for small drops, large for large
BET_FRACTIONS = np.geomspace(0.01, 0.8, 12)


@dataclass(frozen=True)
class Alarm:
    """The detector fired: the score fell below ``baseline`` from ``start`` to ``end``
    (indices of the scores given since the detector started)."""

    start: int
    end: int
    n: int
    observed: float
    baseline: float
    statistic: float
    threshold: float


class DropDetector:
    """Feed it scores one by one (``update``) or in a batch (``extend``)."""

    def __init__(self, baseline: float, *, alpha: float = 0.05, horizon: int = 10_000) -> None:
        if not 0 < baseline <= 1:
            raise ValueError(f"baseline must be in (0, 1], got {baseline!r}")
        if not 0 < alpha < 1 or horizon < 1:
            raise ValueError("alpha must be in (0, 1) and horizon at least 1")
        self.baseline, self.alpha, self.horizon = baseline, alpha, horizon
        self.threshold = horizon / alpha
        self.bets = BET_FRACTIONS / max(1.0 - baseline, 1e-9)
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self._sr = np.zeros(len(self.bets))
        self._cusum = np.ones(len(self.bets))
        self._cusum_start = np.zeros(len(self.bets), dtype=np.int64)
        self._scores: list[float] = []  # this period's, for the alarm window's mean

    @property
    def statistic(self) -> float:
        return float(self._sr.mean())

    def update(self, score: float) -> Alarm | None:
        """One score in [0, 1]; the alarm, if this score completes the evidence."""
        x = min(max(float(score), 0.0), 1.0)
        e = 1.0 + self.bets * (self.baseline - x)
        self._sr = (self._sr + 1.0) * e
        restart = self._cusum < 1.0
        self._cusum_start = np.where(restart, self.n, self._cusum_start)
        self._cusum = np.maximum(self._cusum, 1.0) * e
        self._scores.append(x)
        self.n += 1
        if self.statistic >= self.threshold:
            best = int(np.argmax(self._cusum))
            start, end = int(self._cusum_start[best]), self.n - 1
            observed = float(np.mean(self._scores[start:]))
            alarm = Alarm(start=start, end=end, n=self.n, observed=observed,
                          baseline=self.baseline, statistic=self.statistic,
                          threshold=self.threshold)
            self.reset()
            return alarm
        if self.n >= self.horizon:  # a new period: the false-alarm bound is per horizon
            self.reset()
        return None


def first_alarms(scores: np.ndarray, baseline: float, *, alpha: float = 0.05,
                 horizon: int | None = None) -> np.ndarray:
    """For each row of ``scores`` (runs x time), the index of the first alarm, or -1.

    Vectorised over runs, for the simulation: the same recursion as ``DropDetector``."""
    runs, steps = scores.shape
    horizon = horizon or steps
    bets = BET_FRACTIONS / max(1.0 - baseline, 1e-9)
    threshold = horizon / alpha
    sr = np.zeros((runs, len(bets)))
    first = np.full(runs, -1, dtype=np.int64)
    for t in range(min(steps, horizon)):
        e = 1.0 + bets[None, :] * (baseline - scores[:, t:t + 1])
        sr = np.minimum((sr + 1.0) * e, 1e200)  # past the threshold its size is moot
        fired = (sr.mean(axis=1) >= threshold) & (first < 0)
        first[fired] = t
    return first
