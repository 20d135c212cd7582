"""Serving: the promoted version is what answers, and alias moves are picked up."""

import asyncio
import json
import logging
import threading
import time

import mlflow
import pytest

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.errors import RegistryError, TemplateError
from workbench.prompts.registry import promote, register_version
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
    service.complete(ticket="The screen is broken")  # starts the refresh, does not wait
    wait_until(lambda: service.prompt.version == v2)
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


def test_a_registry_outage_keeps_the_last_good_version_serving(registered, project, caplog):
    v1, v2 = registered
    service = PromptService("triage", alias="production", refresh_s=0)
    (project / "mlruns").rename(project / "mlruns-away")  # the store disappears
    with caplog.at_level(logging.WARNING, logger="workbench.serving"):
        reply = service.complete(ticket="The screen is broken")
        wait_until(lambda: service.status()["registry"] == "unreachable")
    assert reply.version == v1
    assert "registry unreachable" in caplog.text and "still serving triage v1" in caplog.text
    assert not (project / "mlruns").exists()
    (project / "mlruns-away").rename(project / "mlruns")  # back again, and the alias moved
    promote("triage", v2, "production", approver="test")
    wait_until(lambda: service.complete(ticket="The screen is broken").version == v2)
    assert service.status()["registry"] == "ok"


def test_a_cold_start_without_a_registry_fails_with_the_reason(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(RegistryError, match=r"cannot start serving prompts:/triage@production: "
                                            r"the registry at http://127.0.0.1:9 did not answer"):
        PromptService("triage", alias="production", tracking_uri="http://127.0.0.1:9")


def test_missing_variables_are_named(registered, llm_server):
    service = PromptService("triage", alias="production")
    with pytest.raises(TemplateError, match=r"missing \['ticket'\]"):
        service.complete()
    assert llm_server.request_count == 0


def test_each_request_is_logged_with_version_cost_and_tags(registered, caplog):
    service = PromptService("triage", alias="production", tags={"application": "helpdesk"})
    with caplog.at_level(logging.INFO, logger="workbench.serving"):
        reply = service.complete(ticket="I love it", tags={"user": "u-7", "request_type": "t"})
    assert reply.tags == {"application": "helpdesk", "user": "u-7", "request_type": "t"}
    record = served_records(caplog)[-1]
    assert record["event"] == "served" and record["version"] == reply.version
    assert record["model"] == "openai/test-model" and record["prompt_tokens"] > 0
    assert {"cost", "latency_s"} <= record.keys()
    assert record["tags"] == reply.tags


def test_a_variable_named_tags_goes_in_the_mapping(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url, num_retries=0)
    register_version("tagged", PromptTemplate("Tags: {{tags}}"), model)
    promote("tagged", 1, "production", approver="test")
    reply = PromptService("tagged").complete({"tags": "red, blue"}, tags={"user": "u"})
    assert reply.tags == {"user": "u"}
    assert llm_server.last_request["messages"][-1]["content"] == "Tags: red, blue"


def test_streaming_yields_pieces_and_then_the_reply(registered, llm_server, caplog):
    llm_server.responder = lambda body: "one two three"
    service = PromptService("triage", alias="production")
    stream = service.stream(ticket="hi", tags={"user": "u-1"})
    with caplog.at_level(logging.INFO, logger="workbench.serving"):
        pieces = list(stream)
    assert len(pieces) == 3 and "".join(pieces) == "one two three"
    assert stream.reply.text == "one two three" and stream.reply.completion_tokens == 3
    assert stream.reply.version == registered[0] and stream.reply.tags == {"user": "u-1"}
    assert llm_server.last_request["stream"] is True
    assert served_records(caplog)[-1]["stream"] is True


def test_streaming_works_in_async_code(registered, llm_server):
    llm_server.responder = lambda body: "a b"
    service = PromptService("triage", alias="production")

    async def collect():
        stream = service.stream(ticket="hi")
        return [piece async for piece in stream], stream.reply

    pieces, reply = asyncio.run(collect())
    assert "".join(pieces) == "a b" and reply.prompt_tokens > 0


def test_stream_checks_variables_before_any_call(registered, llm_server):
    with pytest.raises(TemplateError, match="unexpected"):
        PromptService("triage", alias="production").stream(tiket="typo")
    assert llm_server.request_count == 0


def test_acomplete_in_an_event_loop(registered):
    service = PromptService("triage", alias="production")
    replies = asyncio.run(_gather(service))
    assert {r.version for r in replies} == {registered[0]}


def wait_until(condition, timeout=10.0):
    """Poll for what a background refresh brings; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time limit"
        time.sleep(0.01)


def served_records(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "workbench.serving"]


async def _gather(service):
    return await asyncio.gather(*(service.acomplete(ticket=f"t{i}") for i in range(5)))


@pytest.fixture
def hanging_registry(monkeypatch):
    """Registry look-ups after the first block until released, as a stopped server's would."""
    from workbench.serving import live_prompt

    calls, release = [], threading.Event()

    def load(*args, **kwargs):
        calls.append(time.monotonic())
        if len(calls) > 1:
            release.wait(timeout=30)
        return real_load(*args, **kwargs)

    real_load = live_prompt.load
    monkeypatch.setattr(live_prompt, "load", load)
    yield calls, release
    release.set()


def test_requests_do_not_wait_for_a_hanging_registry(registered, hanging_registry):
    calls, release = hanging_registry
    service = PromptService("triage", alias="production", refresh_s=0, refresh_timeout_s=1.0)
    service.complete(ticket="warm-up")  # imports litellm; the registry is not involved
    took = []
    for _ in range(12):
        started = time.perf_counter()
        assert service.complete(ticket="I love it").version == registered[0]
        took.append(time.perf_counter() - started)
    assert sum(took) < 3.0 and max(took) < 1.0, took  # each waited the 1 s timeout before
    assert len(calls) == 2  # the first load, then one refresh in flight, never more
    wait_until(lambda: service.status()["registry"] == "unreachable")
    assert "no answer" in service.status()["registry_error"]
    promote("triage", registered[1], "production", approver="test")
    release.set()
    wait_until(lambda: service.prompt.version == registered[1])
    assert service.status()["registry"] == "ok"


def test_a_version_that_cannot_be_rendered_is_reported_as_such(registered, caplog):
    v1, _ = registered
    service = PromptService("triage", alias="production", refresh_s=0)
    mlflow.genai.register_prompt("triage", "{% if x %}{{ticket}}{% endif %}")  # Jinja: refused
    version = mlflow.genai.load_prompt("prompts:/triage@latest").version
    mlflow.genai.set_prompt_alias("triage", "production", version)  # promote() would refuse
    with caplog.at_level(logging.WARNING, logger="workbench.serving"):
        assert service.complete(ticket="I love it").version == v1
        wait_until(lambda: service.status()["registry"] != "ok")
    status = service.status()
    assert status["registry"] == "unservable" and status["version"] == v1
    assert f"names v{version}, which cannot be served (TemplateError" in status["registry_error"]
    assert "Jinja blocks" in caplog.text and "registry unreachable" not in caplog.text


def test_a_version_without_a_model_is_not_served(registered):
    v1, _ = registered
    service = PromptService("triage", alias="production", refresh_s=0)
    v3, _ = register_version("triage", PromptTemplate("No model: {{ticket}}"))
    promote("triage", v3, "production", approver="test")
    service.prompt  # noqa: B018  (starts the refresh)
    wait_until(lambda: service.status()["registry"] == "unservable")
    assert service.complete(ticket="x").version == v1
    assert "has no model config" in service.status()["registry_error"]


def test_a_lost_sqlite_file_is_unreachable_and_not_recreated(registered, project):
    service = PromptService("triage", alias="production", refresh_s=0)
    for thread in threading.enumerate():  # MLflow tags the prompt after a load, in the background
        if thread.name.startswith("link_prompt_to_experiment_thread"):
            thread.join(timeout=10)
    db = project / "mlruns" / "mlflow.db"
    db.unlink()
    service.prompt  # noqa: B018  (starts the refresh)
    wait_until(lambda: service.status()["registry"] == "unreachable")
    assert "mlflow.db is gone" in service.status()["registry_error"]
    assert service.complete(ticket="I love it").version == registered[0]
    assert not db.exists()


def test_a_prompt_over_the_context_window_is_refused_before_sending(project, llm_server,
                                                                    monkeypatch):
    from workbench.gateway.client import ContextWindowError, Gateway

    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        context_window=300, params={"max_tokens": 50}, num_retries=0)
    register_version("small", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("small", 1, "production", approver="test")
    service = PromptService("small")
    with pytest.raises(ContextWindowError, match="over the 300-token context window"):
        service.complete(ticket="word " * 2000)
    with pytest.raises(ContextWindowError):
        service.stream(ticket="word " * 2000)
    assert llm_server.request_count == 0
    # a prompt that surely fits is not counted: counting a long prompt costs CPU
    monkeypatch.setattr(Gateway, "count_tokens", lambda *a: pytest.fail("counted"))
    assert service.complete(ticket="I love it").text == "positive"


def test_a_cold_start_on_a_lost_sqlite_file_does_not_create_one(project):
    db = project / "elsewhere" / "mlflow.db"
    db.parent.mkdir()
    with pytest.raises(RegistryError, match=r"prompts:/triage@production: there is no MLflow "
                                            r"store at .*/elsewhere/mlflow.db"):
        PromptService("triage", alias="production", tracking_uri=f"sqlite:///{db}")
    assert not db.exists()


def test_a_missing_alias_says_what_the_prompt_has_and_the_command_that_fixes_it(registered):
    with pytest.raises(RegistryError) as raised:
        PromptService("triage", alias="staging")
    text = str(raised.value)
    assert "cannot start serving" in text
    assert "triage has versions 1 to 2 and aliases {'production': 1}" in text
    assert "`workbench promote triage --version <N> --alias staging`" in text


def test_a_missing_prompt_names_the_registered_ones(registered):
    with pytest.raises(RegistryError) as raised:
        PromptService("triaje", alias="production")
    text = str(raised.value)
    assert "registered prompts: ['triage'] (did you mean 'triage'?)" in text
