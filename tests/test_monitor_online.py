"""Online evaluation: sampled requests scored in the background, and the quality alert."""

from __future__ import annotations

import sqlite3
import time

import pytest

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.monitor import MonitorConfigError
from workbench.monitor.store import default_log
from workbench.observe.hook import default_ledger
from workbench.prompts.registry import promote, register_version
from workbench.serving.feedback import agreement

from .llm_server import FakeLLMServer, Faults, scripted

VERDICTS = {"<answer>\nnegative": '{"reason": "answers the refund", "score": "pass"}',
            "": '{"reason": "off topic", "score": "fail"}'}


@pytest.fixture
def prompt(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        params={"temperature": 0}, num_retries=0)
    version, _ = register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", version, "production", approver="test")
    return version


def judge(server, **extra):
    return {"type": "relevance", "scale": "pass_fail", "cache": False,
            "model": {"model": "openai/judge", "api_base": server.base_url,
                      "num_retries": 0}, **extra}


def rows(project, sql) -> list[tuple]:
    default_log().flush()
    with sqlite3.connect(project / ".workbench" / "usage.sqlite") as db:
        return db.execute(sql).fetchall()


def test_a_slow_or_failing_judge_never_delays_the_request(prompt, project):
    with FakeLLMServer(latency=3.0) as slow, \
            FakeLLMServer(faults=Faults(server_error=1.0)) as failing:
        svc = PromptService("triage", monitor={
            "sample": 1.0, "timeout_s": 1.0,
            "scorers": [judge(slow, name="slow"), judge(failing, name="failing"), "pii"]})
        svc.complete(ticket="warm-up")  # the first call sets up litellm
        started = time.perf_counter()
        reply = svc.complete(ticket="I want a refund")
        took = time.perf_counter() - started
        assert took < 1.0 and reply.text == "negative"
        assert svc.monitor.idle(timeout=20)
    scores = rows(project, "select scorer, value, error from online_scores where "
                           f"request_id = '{reply.request_id}' order by scorer")
    assert scores[0][:2] == ("failing", None) and "InternalServerError" in scores[0][2]
    assert scores[1] == ("pii", 1.0, None)
    assert scores[2] == ("slow", None, "no score within 1 s")


def test_judges_are_ledger_records_of_their_own_and_capped(prompt, project):
    with FakeLLMServer(responder=scripted(VERDICTS)) as judging:
        svc = PromptService("triage", tags={"application": "helpdesk"}, monitor={
            "sample": 1.0, "scorers": [judge(judging)]})
        capped = PromptService("triage", monitor={
            "sample": 1.0, "judge_budget_usd": 0, "scorers": [judge(judging)]})
        judged = svc.complete(ticket="I want a refund")
        skipped = capped.complete(ticket="I want a refund")
        assert svc.monitor.idle() and capped.monitor.idle()
        assert judging.request_count == 1  # the capped monitor sent nothing
    default_ledger().flush()
    kinds = rows(project, "select application, request_type, model from calls "
                          "order by request_type")
    assert ("helpdesk", "online_eval", "openai/judge") in kinds
    score = "select value, error from online_scores where request_id = '{}'"
    assert rows(project, score.format(judged.request_id)) == [(1.0, None)]
    (value, error), = rows(project, score.format(skipped.request_id))
    assert value is None and "budget of $0.00 for" in error


def test_sampling_scores_about_the_share_asked(prompt, project):
    svc = PromptService("triage", monitor={"sample": 0.3, "scorers": ["pii"]})
    svc.monitor._random.seed(3)
    for _ in range(60):
        svc.complete(ticket="I love it")
    assert svc.monitor.idle()
    (scored,), = rows(project, "select count(*) from online_scores")
    (sampled,), = rows(project, "select count(*) from served_requests where sampled")
    assert scored == sampled and 8 <= scored <= 30


def test_a_quality_drop_alerts_once_naming_version_and_window(prompt, project, llm_server,
                                                             caplog):
    llm_server.responder = scripted({}, default="I'm sorry, but I cannot help with that.")
    svc = PromptService("triage", monitor={
        "sample": 1.0, "scorers": ["refusal"], "metric": "refusal", "baseline": 0.9,
        "horizon": 100})
    for _ in range(12):
        svc.complete(ticket="hello")
    assert svc.monitor.idle()
    assert len(svc.monitor.alarms) >= 1
    alerts = rows(project, "select kind, key, payload from alerts")
    assert alerts and alerts[0][0] == "quality"
    assert alerts[0][1] == f"prompt=triage@production v{prompt}"
    assert "expected 0.9 refusal, observed 0" in alerts[0][2]
    assert any("alert: quality at prompt=triage@production" in r.message
               for r in caplog.records)


def test_no_alert_while_the_score_holds(prompt, project):
    svc = PromptService("triage", monitor={
        "sample": 1.0, "scorers": ["refusal"], "metric": "refusal", "baseline": 0.9,
        "horizon": 100})
    for _ in range(30):
        svc.complete(ticket="I love it")
    assert svc.monitor.idle() and svc.monitor.alarms == []


def test_judge_and_human_agreement_on_production_traffic(prompt, project):
    with FakeLLMServer(responder=scripted(VERDICTS)) as judging:
        svc = PromptService("triage", monitor={"sample": 1.0, "scorers": [judge(judging)]})
        replies = [svc.complete(ticket=t) for t in ["I want a refund", "hello"] * 11]
        assert svc.monitor.idle()
    for i, reply in enumerate(replies):  # people agree with the judge on all but two
        svc.feedback(reply.request_id, score=int(i % 2 == 0) if i >= 2 else int(i % 2 == 1))
    found = agreement("triage", "relevance")
    assert found.n == 22 and found.accuracy == pytest.approx(20 / 22)
    assert found.kappa > 0.6 and found.trusted


@pytest.mark.parametrize("config, message", [
    ({"sample": 2}, "sample: Input should be less than or equal to 1"),
    ({"scorers": []}, "no scorers"),
    ({"scorers": [{"type": "exact_match", "expected": "label"}]}, "served traffic has none"),
    ({"scorers": ["pii"], "metric": "relevance"}, "metric 'relevance' is not one of"),
    ({"scorers": ["pii"], "sampel": 0.1}, "sampel: Extra inputs are not permitted"),
])
def test_a_bad_monitor_setting_is_refused_when_the_service_is_made(prompt, config, message):
    with pytest.raises(MonitorConfigError, match=message):
        PromptService("triage", monitor=config)


def test_without_an_offline_estimate_scores_are_kept_and_the_reason_logged(prompt, project,
                                                                          caplog):
    svc = PromptService("triage", monitor={"sample": 1.0, "scorers": ["refusal"],
                                           "metric": "refusal"})
    for _ in range(3):
        svc.complete(ticket="I love it")
    assert svc.monitor.idle()
    (scored,), = rows(project, "select count(*) from online_scores where value = 1")
    assert scored == 3
    warnings = [r.message for r in caplog.records if "no quality alert" in r.message]
    assert len(warnings) == 1 and "was not promoted from a tracked comparison" in warnings[0]


def test_an_experiments_reference_free_scorers_and_judge_are_used(make_experiment, prompt,
                                                                  llm_server):
    folder = make_experiment(
        scorers=[{"type": "exact_match", "expected": "label"}, {"type": "refusal"},
                 {"type": "relevance", "scale": "pass_fail"}],
        judge={"model": "openai/judge", "api_base": llm_server.base_url})
    svc = PromptService("triage", monitor={"sample": 0.5, "experiment": str(folder)})
    assert [s.name for s in svc.monitor.scorers] == ["refusal", "relevance"]
    assert svc.monitor.scorers[1].options.model.model == "openai/judge"
