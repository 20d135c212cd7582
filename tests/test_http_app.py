"""The HTTP app: answers with version, usage, cost and latency; 422 names the field."""

import pytest
from fastapi.testclient import TestClient

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.cli import main
from workbench.cli.serve import is_loopback
from workbench.http_app import create_app
from workbench.registry import promote, register_version

from .llm_server import Faults

URL = "/v1/prompts/triage/complete"


@pytest.fixture
def service(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url, num_retries=0)
    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    register_version("triage", PromptTemplate(
        [{"role": "system", "content": "Answer with one word."},
         {"role": "user", "content": "{{ticket}}"}]), model)
    promote("triage", 1, "production", approver="test")
    return PromptService("triage", "production", refresh_s=0, tags={"application": "web"})


@pytest.fixture
def http(service):
    with TestClient(create_app(service)) as client:
        yield client


def test_complete_answers_with_output_version_usage_cost_and_latency(http):
    response = http.post(URL, json={"variables": {"ticket": "I love it"},
                                    "tags": {"user": "u-1", "request_type": "triage"}})
    assert response.status_code == 200
    body = response.json()
    assert body["output"] == "positive" and body["version"] == 1
    assert body["prompt"] == "triage" and body["alias"] == "production"
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"])
    assert body["cost"] == 0.0 and body["latency_s"] > 0
    assert body["tags"] == {"application": "web", "user": "u-1", "request_type": "triage"}


def test_an_alias_move_reaches_the_app(http):
    promote("triage", 2, "production", approver="test")
    assert http.post(URL, json={"variables": {"ticket": "broken"}}).json()["version"] == 2


@pytest.mark.parametrize(("body", "loc"), [
    ({"variables": {}}, ["body", "variables", "ticket"]),
    ({}, ["body", "variables", "ticket"]),
    ({"variables": {"ticket": "x", "tiket": "y"}}, ["body", "variables", "tiket"]),
    ({"variables": "ticket=x"}, ["body", "variables"]),
    ({"variables": {"ticket": "x"}, "tags": {"user": 7}}, ["body", "tags", "user"]),
    ({"variables": {"ticket": "x"}, "temperature": 2}, ["body", "temperature"]),
    ([1, 2], ["body"]),
])
def test_a_bad_body_is_a_422_naming_the_field(http, llm_server, body, loc):
    response = http.post(URL, json=body)
    assert response.status_code == 422
    assert loc in [error["loc"] for error in response.json()["detail"]]
    assert llm_server.request_count == 0


def test_a_body_that_is_not_json_is_a_422(http):
    response = http.post(URL, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"


def test_an_unknown_prompt_is_a_404_naming_what_is_served(http):
    response = http.post("/v1/prompts/other/complete", json={"variables": {}})
    assert response.status_code == 404 and "triage" in response.json()["detail"]


def test_a_failing_model_is_a_502_with_the_reason(http, llm_server):
    llm_server.faults = Faults(server_error=1.0)
    response = http.post(URL, json={"variables": {"ticket": "x"}})
    assert response.status_code == 502 and "openai/test-model" in response.json()["detail"]


def test_health_and_openapi_docs(http):
    health = http.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["prompts"][0] | {"loaded_s_ago": 0} == {
        "prompt": "triage", "alias": "production", "version": 1, "registry": "ok",
        "registry_error": None, "loaded_s_ago": 0}
    schema = http.get("/openapi.json").json()
    assert URL.replace("triage", "{name}") in schema["paths"]
    assert "CompleteRequest" in schema["components"]["schemas"]
    assert http.get("/docs").status_code == 200


def test_with_a_token_the_prompt_routes_want_the_bearer(service):
    with TestClient(create_app(service, token="s3cret")) as http:
        body = {"variables": {"ticket": "x"}}
        assert http.post(URL, json=body).status_code == 401
        wrong = http.post(URL, json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        right = http.post(URL, json=body, headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert http.get("/healthz").status_code == 200


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("192.168.1.10", False), ("myhost", False),
])
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_bind_without_a_token(project, capsys, monkeypatch):
    monkeypatch.delenv("WORKBENCH_SERVE_TOKEN", raising=False)
    assert main(["serve", "triage@production", "--host", "0.0.0.0"]) == 1
    assert "bearer token" in capsys.readouterr().err


def test_serve_wants_name_at_alias(project, capsys):
    assert main(["serve", "triage"]) == 1
    assert "NAME@ALIAS" in capsys.readouterr().err
