"""Budgets: a warning at the alert share, a clear refusal at the limit, remembered across a
restart through the ledger; other users and applications are not affected."""

from __future__ import annotations

import logging

import pytest

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.errors import WorkbenchError
from workbench.observe.budgets import (
    Budget,
    BudgetExceeded,
    BudgetGuard,
    period_end,
    period_start,
)
from workbench.prompts.registry import promote, register_version


@pytest.fixture
def priced(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        num_retries=0, input_cost_per_token=0.001, output_cost_per_token=0.002)
    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", 1, "production", approver="test")
    # what one request costs, paid by a user no budget below watches
    return PromptService("triage").complete(ticket="same", tags={"user": "probe"}).cost


def budget_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "workbench.observe.budgets"]


def test_a_user_is_warned_then_refused_and_others_go_on(priced, caplog):
    service = PromptService("triage", budgets=[Budget(limit_usd=2.5 * priced, user="*",
                                                      alert_at=0.6)])
    with caplog.at_level(logging.WARNING, logger="workbench.observe.budgets"):
        service.complete(ticket="same", tags={"user": "ana"})
        assert budget_warnings(caplog) == []  # 40 %
        service.complete(ticket="same", tags={"user": "ana"})
        [warning] = budget_warnings(caplog)
        assert warning.startswith("budget: user 'ana' has spent") and "80%" in warning
        service.complete(ticket="same", tags={"user": "ana"})  # 2 of 2.5 spent: allowed
        assert len(budget_warnings(caplog)) == 1  # once per period
    with pytest.raises(BudgetExceeded, match="user 'ana' has spent .* of its daily budget"):
        service.complete(ticket="same", tags={"user": "ana"})
    service.complete(ticket="same", tags={"user": "bo"})  # another user is not affected
    restarted = PromptService("triage", budgets=[Budget(limit_usd=2.5 * priced, user="*")])
    with pytest.raises(BudgetExceeded, match="fix: raise the budget or wait for the next day"):
        restarted.stream(ticket="same", tags={"user": "ana"})  # the ledger remembers


def test_an_application_budget_applies_to_its_application_only(priced):
    service = PromptService("triage", tags={"application": "helpdesk"},
                            budgets=[Budget(limit_usd=priced / 2, application="helpdesk")])
    service.complete(ticket="same")
    with pytest.raises(BudgetExceeded, match="application 'helpdesk'"):
        service.complete(ticket="same")


@pytest.mark.parametrize("options", [{}, {"application": "a", "user": "u"},
                                     {"user": "u", "period": "weekly"},
                                     {"user": "u", "alert_at": 0}])
def test_a_budget_that_makes_no_sense_is_refused_at_construction(options):
    with pytest.raises(WorkbenchError, match="Budget:"):
        Budget(limit_usd=1.0, **options)


def test_periods_start_at_midnight_and_on_the_first_utc():
    at = 1_768_915_800.0  # 2026-01-20 13:30 UTC
    assert period_start("daily", at) == 1_768_867_200.0
    assert period_start("monthly", at) == 1_767_225_600.0


def test_a_guard_counts_spend_in_memory_after_the_first_look_up(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    guard = BudgetGuard([Budget(limit_usd=1.0, user="*")])
    guard.check({"user": "u"})
    guard._ledger_spend = None  # any further look-up would fail
    for _ in range(1000):
        guard.add({"user": "u"}, 0.0005)
        guard.check({"user": "u"})
    guard.add({"user": "u"}, 0.6)
    with pytest.raises(BudgetExceeded):
        guard.check({"user": "u"})


def test_a_spent_budget_is_a_429_over_http_with_the_reason_and_when_it_resets(priced):
    import time

    from fastapi.testclient import TestClient

    from workbench.serving.http_app import create_app

    service = PromptService("triage", tags={"application": "helpdesk"},
                            budgets=[Budget(limit_usd=priced / 2, application="helpdesk")])
    url = "/v1/prompts/triage/complete"
    with TestClient(create_app(service)) as http:
        assert http.post(url, json={"variables": {"ticket": "same"}}).status_code == 200
        refused = http.post(url, json={"variables": {"ticket": "same"}})
        assert refused.status_code == 429
        assert "application 'helpdesk' has spent" in refused.json()["detail"]
        wait = int(refused.headers["retry-after"])
        assert 0 < wait <= 86_400 and abs(time.time() + wait - period_end("daily")) <= 2

        def unknown_end(tags):
            raise BudgetExceeded("spent; no end known")

        service.budgets.check = unknown_end
        refused = http.post(url, json={"variables": {"ticket": "same"}})
    assert refused.status_code == 429 and "retry-after" not in refused.headers


def test_a_period_ends_at_the_next_midnight_or_the_next_first_utc():
    assert period_end("daily", 1_768_915_800.0) == 1_768_867_200.0 + 86_400
    assert period_end("monthly", 1_768_915_800.0) == 1_769_904_000.0  # 2026-02-01
    assert period_end("monthly", 1_796_083_200.0 + 3600) == 1_798_761_600.0  # Dec → Jan
