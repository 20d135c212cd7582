"""The Cost panel over a constructed ledger: chart with the cost alert marked in theme
colours, top groups, latency, throughput, alerts that can be acknowledged, savings advice."""

from __future__ import annotations

import time

import pytest

from workbench.observe import alerting
from workbench.observe.record import UsageRecord
from workbench.observe.store import Store
from workbench.ui import CostPanel

HOUR = 3600.0


@pytest.fixture
def store(tmp_path):
    opened = Store(f"sqlite:///{tmp_path / 'usage.sqlite'}")
    yield opened
    opened.dispose()


def traffic(store, runaway=True):
    """Ten quiet days (four calls an hour), then a user spending fast for three hours."""
    now = time.time()
    records = []
    for hour in range(10 * 24):
        for i in range(4):
            records.append(UsageRecord(
                application="helpdesk", user=f"u{i}", request_type="triage",
                model="openai/gpt-4o-mini", tokens_in=100, tokens_out=10, cost=0.01,
                steps={"call": 0.3, "total": 0.35}, fingerprint=f"f{i}",
                ts=now - (10 * 24 - hour) * HOUR + i * 60))
    if runaway:
        for i in range(300):
            records.append(UsageRecord(
                application="helpdesk", user="runaway", request_type="triage",
                model="openai/gpt-4o-mini", tokens_in=5000, tokens_out=500, cost=0.2,
                steps={"call": 0.4, "total": 0.45}, ts=now - 3 * HOUR + i * 30))
    store.write(records)


def test_the_panel_shows_cost_with_the_alert_in_theme_colours(store):
    traffic(store)
    panel = CostPanel(store=store, window="7 days")
    assert panel.status.value == ""
    chart = panel.chart.value
    assert chart.count("<svg") == 1
    assert "var(--jp-brand-color1" in chart and "var(--jp-error-color1" in chart
    assert "#010101" not in chart  # every placeholder colour was replaced
    assert "helpdesk" in panel.top.value
    assert ">call<" in panel.latency.value and ">total<" in panel.latency.value
    assert "calls per active minute" in panel.throughput.value
    panel.group.value = "user"  # refreshes
    assert "runaway" in panel.top.value
    assert "response_cache" in panel.advice.value


def test_an_alert_can_be_acknowledged(store):
    traffic(store)
    panel = CostPanel(store=store, window="7 days")
    choices = dict((label, alert_id) for label, alert_id in panel.alert_choice.options)
    label = next(k for k in choices if k.startswith("cost at user=runaway"))
    panel.alert_choice.value = choices[label]
    panel.ack_button.click()
    assert "acknowledged by" in panel.alerts.value
    assert choices[label] not in [v for _, v in panel.alert_choice.options]
    assert choices[label] in alerting.acknowledged(store, [choices[label]])


def test_acknowledge_without_a_choice_says_so(store):
    traffic(store, runaway=False)
    panel = CostPanel(store=store, window="24 hours")
    panel.alert_choice.options = []
    panel.ack_button.click()
    assert "Choose an alert" in panel.status.value


def test_an_empty_ledger_says_what_to_do(store):
    panel = CostPanel(store=store)
    assert "No calls in the last 7 days" in panel.status.value
    assert panel.chart.value == ""
