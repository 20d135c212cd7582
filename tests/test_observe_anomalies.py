"""Anomaly detection on a simulated month with five injected incidents, and on small cases.

The simulation (workbench/observe/simulate.py) has daily and weekly cycles over four
applications; an alert is true when its key is one its incident changed and its window
overlaps the incident's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.observe.anomalies import Thresholds, detect
from workbench.observe.simulate import score, simulate

SLO = Thresholds(slo={"retrieve": 0.5})


@pytest.fixture(scope="module", params=[7, 11])
def month(request):
    sim = simulate(days=28, seed=request.param)
    return sim, detect(sim.calls, sim.steps, thresholds=SLO)


def test_every_incident_is_found_with_at_most_one_false_alert_a_week(month):
    sim, alerts = month
    result = score(alerts, sim)
    assert result.recall >= 0.9 and result.precision >= 0.9
    assert result.false_per_week <= 1.0


@pytest.mark.parametrize(("incident", "kind", "key", "says"), [
    ("prompt version 4 triples input tokens", "tokens_in_per_request", "group=search/answer",
     "new prompt version in the window: 4"),
    ("runaway user", "cost", "user=u-27", ""),
    ("retrieval latency regression", "latency_regression", "step=search/retrieve", ""),
    ("retrieval latency regression", "latency_slo", "step=search/retrieve", ""),
    ("unpriced model", "unpriced", "model=acme/sum-1", "no price is known"),
    ("provider outage with fallbacks", "fallback_rate", "provider=openai", ""),
    ("provider outage with fallbacks", "error_rate", "provider=openai", ""),
])
def test_each_incident_raises_its_alert_in_its_window(month, incident, kind, key, says):
    sim, alerts = month
    injected = next(i for i in sim.incidents if i.name == incident)
    mine = [a for a in alerts if a.kind == kind and a.key == key]
    assert mine, f"no {kind} alert at {key}"
    alert = mine[0]
    assert injected.start <= alert.start < injected.end
    assert alert.observed > alert.expected
    assert says in alert.message and key in alert.message


def test_only_episodes_ending_after_since_are_returned(month):
    sim, alerts = month
    last = max(a.end for a in alerts)
    recent = detect(sim.calls, sim.steps, since=last - 1, thresholds=SLO)
    assert recent and all(a.end > last - 1 for a in recent)
    assert len(recent) < len(alerts)


def steady(hours=72, per_hour=30, seed=0):
    """Three days of one group's calls: steady size, price and speed."""
    rng = np.random.default_rng(seed)
    n = hours * per_hour
    return pd.DataFrame({
        "ts": 1_700_000_000 // 86400 * 86400 + np.sort(rng.random(n)) * hours * 3600,
        "application": "app", "user": "u", "request_type": "t", "prompt": "p",
        "prompt_version": 1, "model": "openai/gpt-4o", "requested_model": "openai/gpt-4o",
        "tokens_in": rng.normal(1000, 30, n).round().astype(int), "tokens_out": 50,
        "cost": 0.001, "priced": True, "cache_hit": False, "fallback": False, "status": "ok",
        "request_id": [f"r{i}" for i in range(n)]})


def test_a_single_huge_request_is_a_token_outlier_naming_it():
    calls = steady()
    calls.loc[len(calls) - 5, "tokens_in"] = 50_000
    alerts = detect(calls)
    assert [(a.kind, a.key) for a in alerts] == [("token_outlier", "group=app/t")]
    assert f"e.g. r{len(calls) - 5}" in alerts[0].detail
    assert alerts[0].observed == 50_050


def test_steady_traffic_raises_nothing():
    assert detect(steady()) == []


def test_a_step_over_its_slo_is_an_alert_even_without_history():
    steps = pd.DataFrame({"ts": 1_700_000_000 + np.arange(40) * 10.0, "application": "app",
                          "step": "call", "seconds": 3.0})
    alerts = detect(steady(hours=1), steps, thresholds=Thresholds(slo={"call": 2.0}))
    assert [(a.kind, a.key, a.expected, a.observed) for a in alerts] == [
        ("latency_slo", "step=app/call", 2.0, 3.0)]
