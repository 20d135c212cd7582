"""One place for every alert: ``observe.alerts()`` lists the monitor's quality alerts and RAG
query drift beside the ledger's anomalies, each delivered (log, webhook) exactly once."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from workbench import ModelConfig, PromptService, PromptTemplate, observe
from workbench.observe import alerting
from workbench.observe.anomalies import Alert
from workbench.observe.record import UsageRecord
from workbench.observe.store import Store
from workbench.prompts.registry import promote, register_version
from workbench.rag.drift import QueryDrift
from workbench.ui import CostPanel

from .llm_server import scripted
from .test_observe_alerts import Receiver
from .test_rag_serving import REFERENCE, build


@pytest.fixture
def receiver():
    started = Receiver()
    yield started
    started.close()


@pytest.fixture
def store(tmp_path):
    opened = Store(f"sqlite:///{tmp_path / 'usage.sqlite'}")
    yield opened
    opened.dispose()


@pytest.fixture
def prompt(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        params={"temperature": 0}, num_retries=0)
    version, _ = register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", version, "production", approver="test")
    return version


def posted(receiver: Receiver) -> list[dict]:
    return [alert for body in receiver.bodies for alert in body["alerts"]]


def test_a_quality_drop_found_by_the_monitor_is_among_the_alerts(prompt, llm_server,
                                                                 receiver):
    for _ in range(3):  # an anomaly too: calls on a model with no known price
        observe.record(UsageRecord(application="lab", model="acme/new-1", tokens_in=500,
                                   priced=False, ts=time.time() - 60))
    llm_server.responder = scripted({}, default="I'm sorry, but I cannot help with that.")
    svc = PromptService("triage", monitor={
        "sample": 1.0, "scorers": ["refusal"], "metric": "refusal", "baseline": 0.9,
        "horizon": 100, "webhook": receiver.url})
    for _ in range(12):
        svc.complete(ticket="hello")
    assert svc.monitor.idle() and svc.monitor.alarms

    table = observe.alerts(since="1h", webhook=receiver.url)
    quality = table[table["kind"] == "quality"]
    assert len(quality) >= 1  # alarms starting within one second are one episode
    assert set(quality["source"]) == {"monitor"} and not quality["new"].any()
    first = quality.iloc[0]
    assert first["key"] == f"prompt=triage@production v{prompt}"
    assert first["expected"] == 0.9 and first["observed"] < 0.9 and first["unit"] == "refusal"
    unpriced = table[table["key"] == "model=acme/new-1"]
    assert list(unpriced["source"]) == ["anomaly"] and unpriced["new"].all()

    again = observe.alerts(since="1h", webhook=receiver.url)
    assert sorted(again["alert_id"]) == sorted(table["alert_id"]) and not again["new"].any()
    ids = [alert["alert_id"] for alert in posted(receiver)]
    assert sorted(ids) == sorted(table["alert_id"])  # every alert posted, and only once
    assert {a["source"] for a in posted(receiver) if a["kind"] == "quality"} == {"monitor"}


def test_query_drift_is_among_the_alerts_and_delivered_once(project, receiver, caplog):
    index = build(project, embedder="lsa")
    drift = QueryDrift(index, REFERENCE, window_s=60, min_queries=10, factor=1.0,
                       webhook=receiver.url)
    for i in range(30):  # a new topic the corpus cannot answer
        query = f"when should I water tomato seedlings {i}"
        drift.observe(query, index.search(query, 1)[0].score, at=2000 + i)
    with caplog.at_level(logging.WARNING, logger="workbench.observe.alerting"):
        first, second = drift.check(), drift.check()
    assert {a.signal for a in first} == {"centroid", "top1"} and second == first
    assert len([r for r in caplog.records if "alert: query_drift" in r.getMessage()]) == 2

    tables = [observe.alerts(since="1h", webhook=receiver.url) for _ in range(2)]
    drifted = tables[1][tables[1]["kind"] == "query_drift"]
    assert sorted(drifted["key"]) == ["index=kb@v1 signal=centroid", "index=kb@v1 signal=top1"]
    assert set(drifted["source"]) == {"rag"} and not drifted["new"].any()
    assert (drifted["observed"] > drifted["expected"]).all()
    assert set(drifted["start"]) == {"1970-01-01 00:33 UTC"}  # the window, not the check
    assert len(receiver.bodies) == 1  # posted by the first check; not again by anyone
    assert sorted(a["key"] for a in posted(receiver)) == sorted(drifted["key"])
    assert {a["source"] for a in posted(receiver)} == {"rag"}


QUALITY = Alert(kind="quality", key="prompt=triage@production v3", start=1_768_870_800.0,
                end=1_768_874_400.0, expected=0.9, observed=0.55, unit="refusal")


def test_recorded_alerts_are_those_delivered_in_the_window_by_other_sources(store):
    cost = Alert(kind="cost", key="user=u-27", start=1_768_870_800.0, end=1_768_892_400.0,
                 expected=0.07, observed=1.19, unit="USD/h")
    old = Alert(kind="canary", key="prompt=triage@production v2", start=1_768_870_860.0,
                end=1_768_870_860.0, expected=0.0, observed=1.0, unit="share")
    alerting.deliver([cost], store)
    alerting.deliver([QUALITY], store, source="monitor")
    with store.engine.begin() as conn:  # rows as stored before the source was kept
        conn.execute(store.alerts.insert(), [
            {"alert_id": old.alert_id, "ts": time.time(), "kind": "canary", "key": old.key,
             "payload": json.dumps(old.as_dict())},
            {"alert_id": "x" * 32, "ts": time.time() - 7200, "kind": "quality", "key": "k",
             "payload": json.dumps({**QUALITY.as_dict(), "alert_id": "x" * 32})}])
    found = alerting.recorded(store, "1h")
    assert [(a.kind, a.source, a.alert_id) for a in found] == [
        ("quality", "monitor", QUALITY.alert_id), ("canary", "monitor", old.alert_id)]
    assert found[0].start == QUALITY.start and found[1].start == old.start
    assert np.isclose(found[0].observed, 0.55) and found[0].message == QUALITY.message


def test_the_cost_panel_lists_a_monitor_alert_and_it_can_be_acknowledged(store):
    alerting.deliver([QUALITY], store, source="monitor")
    panel = CostPanel(store=store, window="24 hours")
    assert "prompt=triage@production v3" in panel.alerts.value
    choices = dict(panel.alert_choice.options)
    panel.alert_choice.value = choices["quality at prompt=triage@production v3"]
    panel.ack_button.click()
    assert "acknowledged by" in panel.alerts.value
    assert QUALITY.alert_id in alerting.acknowledged(store, [QUALITY.alert_id])


def test_the_cli_prints_a_monitor_alert_as_delivered_before(tmp_path, monkeypatch, capsys):
    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_LEDGER_URL", raising=False)
    alerting.deliver([QUALITY], observe.default_ledger().store(), source="monitor")
    assert main(["observe", "alerts", "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert "     quality at prompt=triage@production v3, 2026-01-20 01:00 UTC" in out
    assert "0 new, 1 delivered before" in out


def test_a_drift_alert_a_webhook_refused_is_logged_returned_and_sent_on_the_next_check(
        project, receiver, caplog):
    index = build(project, embedder="lsa")
    drift = QueryDrift(index, REFERENCE, window_s=60, min_queries=10, factor=1.0,
                       webhook=receiver.url)
    for i in range(30):
        query = f"when should I water tomato seedlings {i}"
        drift.observe(query, index.search(query, 1)[0].score, at=2000 + i)
    receiver.status = 500
    with caplog.at_level(logging.ERROR, logger="workbench.rag"):
        assert len(drift.check()) == 2  # the caller still gets them
    assert any(f"webhook {receiver.url}: it answered HTTP 500" in r.getMessage()
               for r in caplog.records)
    receiver.status = 200
    drift.check()
    assert [len(body["alerts"]) for body in receiver.bodies] == [2, 2]  # refused, then sent
    assert len(observe.alerts(since="1h").query("kind == 'query_drift'")) == 2
