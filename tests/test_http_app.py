"""The HTTP app: answers with version, usage, cost and latency; 422 names the field."""

import pytest
from fastapi.testclient import TestClient

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.cli import main
from workbench.cli.serve import is_loopback
from workbench.prompts.registry import promote, register_version
from workbench.serving.http_app import create_app

from .llm_server import Faults
from .test_serving import wait_until

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
    wait_until(lambda: http.post(URL, json={"variables": {"ticket": "broken"}}
                                 ).json()["version"] == 2)


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


def test_health_without_the_token_says_only_the_state(service, project):
    with TestClient(create_app(service, token="s3cret")) as http:
        (project / "mlruns").rename(project / "mlruns-away")  # the store disappears
        service.prompt  # noqa: B018  (starts the refresh)
        wait_until(lambda: service.status()["registry"] == "unreachable")
        anonymous = http.get("/healthz")
        detailed = http.get("/healthz", headers={"Authorization": "Bearer s3cret"}).json()
    assert anonymous.json() == {"status": "degraded",
                                "prompts": [{"prompt": "triage", "registry": "unreachable"}]}
    assert "sqlite" not in anonymous.text and str(project) not in anonymous.text
    assert detailed["prompts"][0]["version"] == 1
    assert "registry unreachable" in detailed["prompts"][0]["registry_error"]


def test_one_registry_look_up_per_request(service, http, monkeypatch):
    from workbench.serving import live_prompt

    calls = []
    real_load = live_prompt.load
    monkeypatch.setattr(live_prompt, "load", lambda *a, **k: calls.append(1) or real_load(*a, **k))
    for _ in range(5):
        assert http.post(URL, json={"variables": {"ticket": "I love it"}}).status_code == 200
        wait_until(lambda: not service._live.refreshing)
    assert len(calls) == 5  # refresh_s=0: every request looks the alias up, once


def test_a_body_over_the_limit_is_a_413(service, llm_server):
    with TestClient(create_app(service, max_body_bytes=1000)) as http:
        big = {"variables": {"ticket": "x" * 2000}}
        assert http.post(URL, json=big).status_code == 413

        def chunks():  # no Content-Length: the limit counts what arrives
            yield b'{"variables": {"ticket": "'
            for _ in range(100):
                yield b"x" * 100
            yield b'"}}'

        chunked = http.post(URL, content=chunks(), headers={"content-type": "application/json"})
        assert chunked.status_code == 413 and "over 1000 bytes" in chunked.json()["detail"]
        assert http.post(URL, json={"variables": {"ticket": "I love it"}}).status_code == 200
    assert llm_server.request_count == 1


def test_a_prompt_over_the_context_window_is_a_422(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        context_window=300, num_retries=0)
    register_version("small", PromptTemplate("Say: {{x}}"), model)
    promote("small", 1, "production", approver="test")
    with TestClient(create_app(PromptService("small"))) as http:
        response = http.post("/v1/prompts/small/complete",
                             json={"variables": {"x": "word " * 5000}})
    assert response.status_code == 422 and "context window" in response.json()["detail"]
    assert llm_server.request_count == 0


def test_serve_passes_its_body_limit_to_the_app(service, monkeypatch):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app))
    assert main(["serve", "triage@production", "--max-body", "100"]) == 0
    with TestClient(started["app"]) as http:
        response = http.post(URL, json={"variables": {"ticket": "x" * 200}})
    assert response.status_code == 413 and "over 100 bytes" in response.json()["detail"]


def metric(text, name, **labels):
    """The value of the one sample ``name`` with these labels (and maybe others) in ``text``."""
    from prometheus_client.parser import text_string_to_metric_families

    values = [sample.value for family in text_string_to_metric_families(text)
              for sample in family.samples
              if sample.name == name and labels.items() <= sample.labels.items()]
    assert len(values) == 1, (name, labels, values)
    return values[0]


def test_metrics_count_requests_tokens_and_cost_by_application_and_version(project,
                                                                           llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url, num_retries=0,
                        input_cost_per_token=0.001, output_cost_per_token=0.002)
    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", 1, "production", approver="test")
    service = PromptService("triage", tags={"application": "web"})
    with TestClient(create_app(service)) as http:
        costs, tokens_in = [], 0
        for user in ("u-secret-1", "u-secret-2"):
            body = http.post(URL, json={"variables": {"ticket": "I love it"},
                                        "tags": {"user": user, "request_type": "triage"}}).json()
            costs.append(body["cost"])
            tokens_in += body["usage"]["prompt_tokens"]
        llm_server.faults = Faults(server_error=1.0)
        assert http.post(URL, json={"variables": {"ticket": "x"}}).status_code == 502
        response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/plain")
    text = response.text
    labels = {"application": "web", "request_type": "triage", "prompt": "triage",
              "prompt_version": "1", "gen_ai_response_model": "openai/test-model",
              "gen_ai_operation_name": "chat"}
    assert metric(text, "workbench_requests_total", status="ok", **labels) == 2
    assert metric(text, "gen_ai_client_token_usage_count", gen_ai_token_type="input",
                  **labels) == 2
    assert metric(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="input",
                  **labels) == tokens_in
    assert metric(text, "gen_ai_client_token_usage_count", gen_ai_token_type="output",
                  **labels) == 2
    assert metric(text, "gen_ai_client_operation_duration_seconds_count", **labels) == 2
    assert metric(text, "workbench_cost_usd_total", **labels) == pytest.approx(sum(costs))
    assert sum(costs) > 0
    assert metric(text, "workbench_errors_total", application="web", request_type="",
                  prompt_version="1") == 1
    assert metric(text, "workbench_requests_total", status="error") == 1
    assert "u-secret" not in text and "user" not in text


def test_metrics_count_unpriced_calls_and_apps_do_not_share_counts(service):
    with TestClient(create_app(service)) as first:
        assert first.post(URL, json={"variables": {"ticket": "x"}}).status_code == 200
        text = first.get("/metrics").text
    assert metric(text, "workbench_unpriced_calls_total", application="web") == 1
    assert "workbench_cost_usd_total{" not in text  # unpriced: no cost was counted
    with TestClient(create_app(PromptService("triage"))) as second:
        assert "workbench_requests_total{" not in second.get("/metrics").text


def test_metrics_want_the_bearer_when_a_token_is_configured(service):
    with TestClient(create_app(service, token="s3cret")) as http:
        assert http.get("/metrics").status_code == 401
        allowed = http.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert allowed.status_code == 200 and "gen_ai_client_token_usage" in allowed.text
