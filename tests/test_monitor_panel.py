"""The Monitor panel shows what workbench.monitor reads: quality, feedback, guards, canary."""

from __future__ import annotations

import pytest

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.prompts.registry import promote, register_version

pytest.importorskip("ipywidgets")

from workbench.ui import MonitorPanel  # noqa: E402


def test_the_panel_shows_online_scores_feedback_and_guard_hits(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        num_retries=0)
    version, _ = register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", version, "production", approver="test")
    svc = PromptService("triage", guard={"pii": "log"},
                        monitor={"sample": 1.0, "scorers": ["refusal"]})
    first = svc.complete(ticket="I love it, mail me at ann@example.com")
    svc.complete(ticket="I want a refund")
    svc.feedback(first.request_id, score=0)
    assert svc.monitor.idle()
    panel = MonitorPanel("triage", since="24h")
    assert "refusal" in panel.quality.value and "<td>2</td>" in panel.quality.value
    assert "2 requests stored, 1 with feedback, mean 0.00" in panel.feedback.value
    assert "pii" in panel.guards.value and "input" in panel.guards.value
    assert "No canary runs" in panel.canary.value and panel.status.value == ""


def test_an_empty_project_says_what_to_do(project):
    panel = MonitorPanel("nothing-served")
    assert "No online scores yet" in panel.quality.value
    assert "0 requests stored, 0 with feedback" in panel.feedback.value
