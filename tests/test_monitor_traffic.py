"""Traffic back into eval sets, guard hit counts, and online quality against the offline one."""

from __future__ import annotations

import json

import pytest

import workbench as wb
from workbench import ModelConfig, PromptService, PromptTemplate, monitor
from workbench.evaluation.evalsets import EvalSet
from workbench.prompts.registry import promote, register_version

EMAIL = "bob.jones@example.org"


@pytest.fixture
def served(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        params={"temperature": 0}, num_retries=0)
    version, _ = register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", version, "production", approver="test")
    svc = PromptService("triage", guard={"pii": "log"}, tags={"application": "helpdesk"},
                        monitor={"sample": 1.0, "scorers": ["refusal"]})
    flagged = svc.complete(ticket=f"I love it, write to {EMAIL}")
    down = svc.complete(ticket="I want a refund")
    up = svc.complete(ticket="The screen arrived broken")
    plain = svc.complete(ticket="hello")
    svc.feedback(down.request_id, score=0, comment="should be billing")
    svc.feedback(up.request_id, score=1)
    assert svc.monitor.idle()
    return svc, flagged, down, up, plain


def test_flagged_and_down_voted_requests_become_a_versioned_eval_set(served, project):
    _, flagged, down, _, _ = served
    path = monitor.to_evalset("triage", where="feedback == 0 or flagged",
                              folder=project / "data")
    assert path.name == "traffic-v1.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in rows] == [flagged.request_id, down.request_id]
    assert rows[0]["ticket"] == "I love it, write to [EMAIL]" and EMAIL not in path.read_text()
    assert rows[1] == {"id": down.request_id, "ticket": "I want a refund", "output": "negative",
                       "feedback": 0.0, "comment": "should be billing",
                       "prompt_version": 1, "flagged": False}
    loaded = EvalSet.from_file(path)  # an experiment can use it as its eval set
    assert len(loaded) == 2 and "ticket" in loaded.columns
    again = monitor.to_evalset("triage", where="feedback == 1", folder=project / "data")
    assert again.name == "traffic-v2.jsonl" and len(again.read_text().splitlines()) == 1


def test_a_filter_that_cannot_be_read_names_the_columns(served, project):
    with pytest.raises(monitor.TrafficQueryError, match=r"feedbak.*fix: write a pandas query"):
        monitor.to_evalset("triage", where="feedbak == 0", folder=project / "data")
    with pytest.raises(monitor.TrafficQueryError, match="nothing written"):
        monitor.to_evalset("triage", where="feedback == 0.5", folder=project / "data")


def test_guard_hits_are_counted_per_application(served):
    counts = monitor.guard_hits(since="1h")
    assert counts.to_dict("records") == [
        {"application": "helpdesk", "prompt": "triage", "guard": "pii", "stage": "input",
         "action": "log", "hits": 1}]


def test_online_quality_against_the_promoted_runs_offline_estimate(make_experiment, project):
    folder = make_experiment(scorers=[{"type": "exact_match", "expected": "label"},
                                      {"type": "refusal"}])
    exp = wb.Experiment.from_yaml(folder / "experiment.yaml")
    results = exp.run()
    wb.promote(results.compare("bare", "guided"), alias="production", approver="test")
    svc = PromptService(results.registry_name, monitor={"sample": 1.0, "scorers": ["refusal"],
                                                        "metric": "refusal"})
    for _ in range(5):
        svc.complete(ticket="I love it")
    assert svc.monitor.idle()
    table = monitor.quality(results.registry_name, since="1h")
    row = table.set_index("scorer").loc["refusal"]
    assert row["n"] == 5 and row["mean"] == 1.0 and row["errors"] == 0
    assert row["offline"] == 1.0  # the guided variant's refusal score in its MLflow run
    assert svc.monitor.baseline() == 1.0
