"""Serving: the promoted version is what answers, and alias moves are picked up."""

import mlflow
import pytest

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.errors import RegistryError, TemplateError
from workbench.registry import promote, register_version
from workbench.settings import tracking_uri


@pytest.fixture
def registered(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        params={"temperature": 0}, num_retries=0)
    v1, _ = register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    v2, _ = register_version("triage", PromptTemplate(
        [{"role": "system", "content": "Answer with one word."},
         {"role": "user", "content": "{{ticket}}"}]), model)
    promote("triage", v1, "production", approver="test")
    return v1, v2


def test_the_service_answers_with_the_promoted_version(registered, llm_server):
    v1, _ = registered
    reply = PromptService("triage", alias="production").complete(ticket="The screen is broken")
    assert reply.version == v1 and reply.model == "openai/test-model"
    assert reply.text.startswith("I think the customer feels")  # the bare prompt's answer
    assert reply.prompt_tokens > 0 and reply.latency_s > 0
    assert llm_server.last_request["messages"] == [
        {"role": "user", "content": "Sentiment: The screen is broken"}]


def test_an_alias_move_is_seen_after_the_refresh_interval(registered):
    v1, v2 = registered
    service = PromptService("triage", alias="production", refresh_s=0)
    assert service.prompt.version == v1
    promote("triage", v2, "production", approver="test")
    reply = service.complete(ticket="The screen is broken")
    assert reply.version == v2 and reply.text == "negative"


def test_within_the_interval_the_loaded_version_keeps_serving(registered):
    v1, v2 = registered
    service = PromptService("triage", alias="production", refresh_s=3600)
    promote("triage", v2, "production", approver="test")
    assert service.prompt.version == v1


def test_unknown_variables_are_refused_before_the_call(registered, llm_server):
    service = PromptService("triage", alias="production")
    with pytest.raises(TemplateError, match=r"takes \['ticket'\]; unexpected \['tiket'\]"):
        service.complete(tiket="typo")
    assert llm_server.request_count == 0


def test_an_unknown_alias_fails_at_start_with_the_uri(registered):
    with pytest.raises(RegistryError, match="prompts:/triage@canary"):
        PromptService("triage", alias="canary")


def test_a_prompt_registered_with_plain_mlflow_can_be_served(project, llm_server):
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_registry_uri(tracking_uri())
    mlflow.genai.register_prompt(
        "plain", "Say: {{x}}",
        model_config={"provider": "openai", "model_name": "test-model", "temperature": 0,
                      "extra_params": {"api_base": llm_server.base_url}})
    mlflow.genai.set_prompt_alias("plain", "production", 1)
    reply = PromptService("plain", alias="production").complete(x="hello")
    assert reply.text == "neutral" and reply.model == "openai/test-model"
