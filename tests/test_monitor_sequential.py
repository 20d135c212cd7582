"""The quality alert's sequential test: valid under continuous monitoring, quick after a drop."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.monitor.sequential import DropDetector, first_alarms
from workbench.monitor.simulate import arrivals, run


def test_a_drop_alarms_and_names_its_window():
    detector = DropDetector(0.8, alpha=0.05, horizon=1000)
    rng = np.random.default_rng(1)
    scores = np.r_[rng.random(300) < 0.8, rng.random(700) < 0.5].astype(float)
    alarms = [(i, a) for i, s in enumerate(scores) if (a := detector.update(s))]
    assert alarms, "a 30-point drop must be found"
    at, alarm = alarms[0]
    assert 300 < at < 450 and alarm.end == at
    assert 250 <= alarm.start <= 330  # the change point, roughly
    assert alarm.observed < 0.65 and alarm.baseline == 0.8 and alarm.threshold == 20_000


def test_scores_at_or_above_the_baseline_never_alarm():
    detector = DropDetector(0.7, horizon=5000)
    assert not any(detector.update(1.0) for _ in range(5000))
    assert detector.statistic < 1


def test_the_vectorised_form_is_the_detector():
    rng = np.random.default_rng(4)
    scores = (rng.random((20, 400)) < 0.6).astype(float)
    first = first_alarms(scores, 0.75, alpha=0.05, horizon=400)
    for row, expected in zip(scores, first, strict=True):
        detector = DropDetector(0.75, alpha=0.05, horizon=400)
        fired = [i for i, s in enumerate(row) if detector.update(s)]
        assert (fired[0] if fired else -1) == expected


@pytest.mark.parametrize("baseline", [0.0, 1.5])
def test_a_baseline_outside_0_1_is_refused(baseline):
    with pytest.raises(ValueError, match="baseline"):
        DropDetector(baseline)


def test_a_month_of_demo_traffic_few_false_alarms_and_a_drop_found_within_a_day():
    times = arrivals()  # the helpdesk's triage requests, every one scored: ~470 a day
    result = run(times, runs=150, seed=11)
    assert 400 < result.scored_per_day < 550
    assert result.false_alarm_rate <= 0.08  # alpha 5 %, plus the sampling error of 150 runs
    assert result.detected >= 0.95 and result.delay_h_median <= 24
