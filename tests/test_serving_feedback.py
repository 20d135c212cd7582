"""Feedback from applications: a person's label against a served request's id."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.monitor.store import default_log
from workbench.prompts.registry import promote, register_version
from workbench.serving.feedback import FeedbackInputError, UnknownRequest
from workbench.serving.http_app import create_app


@pytest.fixture
def svc(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        params={"temperature": 0}, num_retries=0)
    version, _ = register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", version, "production", approver="test")
    return PromptService("triage", alias="production")


def labels(project) -> list[tuple]:
    default_log().flush()
    with sqlite3.connect(project / ".workbench" / "usage.sqlite") as db:
        return db.execute("select request_id, score, comment, annotator "
                          "from request_feedback order by ts").fetchall()


def test_feedback_is_kept_with_the_request(svc, project):
    reply = svc.complete(ticket="I want a refund")
    svc.feedback(reply.request_id, score=0, comment="wrong team")
    svc.feedback(reply.request_id, score=1, annotator="lead")  # append-only
    assert labels(project) == [(reply.request_id, 0.0, "wrong team", None),
                               (reply.request_id, 1.0, None, "lead")]


def test_feedback_on_an_unknown_request_id_is_refused(svc, project):
    svc.complete(ticket="I want a refund")
    with pytest.raises(UnknownRequest, match=r"no served request has the id 'nope'.*fix: send"):
        svc.feedback("nope", score=0)
    assert labels(project) == []


@pytest.mark.parametrize("score, comment, message", [
    (None, None, "needs a score"), (5, None, "from 0 .bad. to 1 .good., got 5"),
    (True, None, "got True"), (-0.1, "x", "got -0.1")])
def test_a_bad_label_is_refused_before_anything_is_stored(svc, score, comment, message):
    with pytest.raises(FeedbackInputError, match=message):
        svc.feedback("any", score=score, comment=comment)


def test_http_feedback(svc, project):
    with TestClient(create_app(svc)) as http:
        answer = http.post("/v1/prompts/triage/complete", json={"variables": {"ticket": "hi"}})
        request_id = answer.json()["request_id"]
        ok = http.post("/v1/feedback", json={"request_id": request_id, "score": 0})
        unknown = http.post("/v1/feedback", json={"request_id": "f" * 32, "score": 0})
        bad = http.post("/v1/feedback", json={"request_id": request_id, "score": 3})
        empty = http.post("/v1/feedback", json={"request_id": request_id})
    assert ok.status_code == 201 and ok.json() == {"status": "recorded",
                                                   "request_id": request_id}
    assert unknown.status_code == 404 and "no served request has the id" in unknown.text
    assert bad.status_code == 422 and "score" in bad.text
    assert empty.status_code == 422 and "needs a score" in empty.text
    assert labels(project) == [(request_id, 0.0, None, None)]


def test_a_streamed_answer_takes_feedback_too(svc, project):
    stream = svc.stream(ticket="I want a refund")
    assert "".join(stream) == "negative"
    assert stream.reply.request_id and "request_id" not in stream.reply.tags
    svc.feedback(stream.reply.request_id, score=1)
    assert labels(project) == [(stream.reply.request_id, 1.0, None, None)]
