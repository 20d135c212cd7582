"""Keys a provider echoes in an error message reach no table, trace, log or HTTP body."""

import logging

import pytest
from fastapi.testclient import TestClient

from workbench import Experiment, ModelConfig, PromptService, PromptTemplate
from workbench.errors import GatewayError
from workbench.gateway.failures import _describe
from workbench.gateway.scrub import REDACTED, scrub
from workbench.prompts.registry import promote, register_version
from workbench.serving.http_app import create_app

from .llm_server import Faults

# Shaped like no provider's key: only the configured value can find it.
PLAIN_KEY = "q7Rz0pLm4XvB9tYw2KcN8dHs5JfA1gUe"
SHAPED_KEY = "sk-proj-Zx81Lq0W9vTn3Ry7Ub5Mc2Kd6Ps4Ha1J"


@pytest.fixture
def wrong_key(monkeypatch, llm_server):
    """A model whose key (in WB_PROVIDER_ACCESS) the server refuses, quoting it back."""
    monkeypatch.setenv("WB_PROVIDER_ACCESS", PLAIN_KEY)
    llm_server.faults = Faults(auth_key="the-right-one", echo_key=True)
    return {"model": "openai/test-model", "api_base": llm_server.base_url,
            "api_key_env": "WB_PROVIDER_ACCESS", "num_retries": 0}


def test_scrub_removes_configured_values_and_key_shapes(monkeypatch):
    monkeypatch.setenv("WB_PROVIDER_ACCESS", PLAIN_KEY)
    monkeypatch.setenv("SOME_VENDOR_API_KEY", "abcdefgh12345678")  # read by litellm itself
    config = ModelConfig(model="openai/x", api_key_env="WB_PROVIDER_ACCESS")
    text = (f"bad key {PLAIN_KEY}; other {SHAPED_KEY}; vendor abcdefgh12345678; "
            "Authorization: Bearer eyJhbGciOi.payload.sig; "
            "https://x.example/v1?key=AIzaSyA-1234567890abcdefghijkl&alt=json; "
            "postgresql://mlflow:hunter2pass@db:5432/mlflow")
    clean = scrub(text, [config])
    for secret in (PLAIN_KEY, SHAPED_KEY, "abcdefgh12345678", "eyJhbGciOi", "AIzaSy",
                   "hunter2pass"):
        assert secret not in clean
    assert clean.startswith(f"bad key {REDACTED}; other {REDACTED}")
    assert "&alt=json" in clean and "@db:5432/mlflow" in clean  # the rest stays readable


def test_scrub_finds_the_key_of_a_fallback(monkeypatch):
    monkeypatch.setenv("WB_PROVIDER_ACCESS", PLAIN_KEY)
    config = ModelConfig(model="openai/x", fallbacks=[
        ModelConfig(model="openai/y", api_key_env="WB_PROVIDER_ACCESS")])
    assert PLAIN_KEY not in scrub(f"401 for {PLAIN_KEY}", [config])


def test_scrub_leaves_ordinary_text_alone():
    text = "openai/test-model: RateLimitError (429): Rate limit reached, retry in 1s"
    assert scrub(text) == text


def test_a_key_straddling_the_message_cut_is_still_removed(monkeypatch):
    monkeypatch.setenv("WB_PROVIDER_ACCESS", PLAIN_KEY)
    config = ModelConfig(model="openai/x", api_key_env="WB_PROVIDER_ACCESS")
    exc = RuntimeError("x" * 290 + PLAIN_KEY)  # the message is cut at 300 characters
    described = _describe(exc, config)
    assert PLAIN_KEY[:10] not in described and REDACTED[:5] in described


def test_a_run_stores_no_echoed_key(wrong_key, make_experiment, project, caplog):
    folder = make_experiment(models={"fake": wrong_key}, run={"concurrency": 2, "trace": True})
    with caplog.at_level(logging.DEBUG):
        results = Experiment.from_yaml(folder).run(limit=2, progress=False)
    errors = results.frame["error"].tolist()
    assert all("Incorrect API key provided: [redacted]" in e for e in errors), errors
    assert PLAIN_KEY not in caplog.text
    for path in project.rglob("*"):  # results.json, traces, the MLflow database, the cache
        if path.is_file():
            assert PLAIN_KEY.encode() not in path.read_bytes(), path


def test_a_served_call_returns_and_logs_no_echoed_key(wrong_key, project, caplog):
    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"),
                     ModelConfig(**wrong_key))
    promote("triage", 1, "production", approver="test")
    service = PromptService("triage", "production")
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(GatewayError) as caught:
            service.complete(ticket="x")
        with pytest.raises(GatewayError) as streamed:
            list(service.stream(ticket="x"))
        with TestClient(create_app(service)) as http:
            response = http.post("/v1/prompts/triage/complete",
                                 json={"variables": {"ticket": "x"}})
    assert "Incorrect API key provided: [redacted]" in str(caught.value)
    assert PLAIN_KEY not in str(streamed.value) and "AuthenticationError" in str(streamed.value)
    assert response.status_code == 502 and PLAIN_KEY not in response.text
    assert "[redacted]" in response.json()["detail"]
    assert PLAIN_KEY not in caplog.text


def test_litellm_logs_no_echoed_key(wrong_key, caplog, capfd):
    import asyncio

    from workbench.gateway.client import Gateway

    fallback = ModelConfig(**{**wrong_key, "model": "openai/test-model-2"})
    config = ModelConfig(**wrong_key, fallbacks=[fallback])  # through litellm's Router
    with caplog.at_level(logging.DEBUG), pytest.raises(GatewayError):
        asyncio.run(Gateway().complete(config, [{"role": "user", "content": "hi"}]))
    assert "Incorrect API key provided" in caplog.text  # the Router did log the error
    assert PLAIN_KEY not in caplog.text
    assert PLAIN_KEY not in capfd.readouterr().err
