"""``workbench observe report`` and ``workbench observe alerts`` read the project's ledger."""

from __future__ import annotations

import time

import pytest

from workbench import observe
from workbench.cli import main
from workbench.observe.record import UsageRecord


@pytest.fixture
def ledger_project(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_LEDGER_URL", raising=False)
    for user, cost in (("ana", 0.25), ("ana", 0.25), ("bo", 1.0)):
        observe.record(UsageRecord(application="helpdesk", user=user, request_type="triage",
                                   model="openai/gpt-4o", tokens_in=100, tokens_out=10,
                                   cost=cost, steps={"call": 0.5, "total": 0.6},
                                   ts=time.time() - 60))
    observe.record(UsageRecord(application="lab", model="acme/new-1", tokens_in=900,
                               priced=False, ts=time.time() - 60))
    return tmp_path


def test_report_prints_usage_per_group_and_latency_per_step(ledger_project, capsys):
    assert main(["observe", "report", "--since", "1h", "--by", "application,user"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["application", "user", "calls", "tokens_in"]
    assert lines[2].split()[:3] == ["helpdesk", "bo", "1"]  # most expensive first
    assert "lab" in out and "latency (seconds)" in out
    assert any(line.split()[:2] == ["call", "3"] for line in lines)


def test_alerts_prints_new_alerts_then_nothing_new(ledger_project, capsys):
    assert main(["observe", "alerts", "--since", "2h"]) == 0
    first = capsys.readouterr().out
    assert "NEW  unpriced at model=acme/new-1" in first and "1 new, 0 delivered before" in first
    assert main(["observe", "alerts", "--since", "2h"]) == 0
    assert "0 new, 1 delivered before" in capsys.readouterr().out


def test_a_bad_slo_or_span_exits_1_with_the_fix(ledger_project, capsys):
    assert main(["observe", "alerts", "--slo", "call"]) == 1
    assert "write STEP=SECONDS" in capsys.readouterr().err
    assert main(["observe", "report", "--since", "a week"]) == 1
    assert "e.g. '30m', '24h', '7d'" in capsys.readouterr().err


def test_a_failing_webhook_exits_1_naming_it(ledger_project, capsys):
    assert main(["observe", "alerts", "--since", "2h", "--webhook",
                 "http://127.0.0.1:9/nothing-listens"]) == 1
    assert "webhook http://127.0.0.1:9/nothing-listens" in capsys.readouterr().err


def test_recommend_prints_each_advice_with_its_monthly_saving(ledger_project, capsys):
    for _ in range(3):  # the same request three times: two a response cache would answer
        observe.record(UsageRecord(application="faq", request_type="faq", prompt="faq",
                                   model="openai/gpt-4o", cost=0.5, fingerprint="same",
                                   ts=time.time() - 120))
    assert main(["observe", "recommend", "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert "/month  response_cache  application=faq request_type=faq prompt=faq" in out
    assert "2 of 3 requests (67%) repeated" in out


def test_recommend_with_nothing_to_advise_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_LEDGER_URL", raising=False)
    assert main(["observe", "recommend"]) == 0
    assert "no savings advice from the last 30d" in capsys.readouterr().out
