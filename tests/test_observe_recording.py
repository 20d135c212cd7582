"""Every served request and every experiment call lands in the project's usage ledger."""

from __future__ import annotations

import asyncio

import pytest

from workbench import Experiment, Gateway, ModelConfig, PromptService, PromptTemplate
from workbench.errors import GatewayError
from workbench.observe import attribute, default_ledger, queries
from workbench.prompts.registry import promote, register_version

from .llm_server import Faults


@pytest.fixture
def registered(project, llm_server):
    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                        params={"temperature": 0}, num_retries=0)
    version, _ = register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", version, "production", approver="test")
    return version


def ledger_calls():
    ledger = default_ledger()
    assert ledger.flush()
    return queries.calls_frame(ledger.store(), since="1h")


def ledger_steps():
    return queries.steps_frame(default_ledger().store(), "1h", [])


def test_a_served_request_is_one_record_attributed_by_its_tags(registered):
    service = PromptService("triage", tags={"application": "helpdesk"})
    reply = service.complete(ticket="I love it", tags={"user": "u-7", "request_type": "triage"})
    calls = ledger_calls()
    assert len(calls) == 1
    row = calls.iloc[0]
    assert (row.application, row.user, row.request_type) == ("helpdesk", "u-7", "triage")
    assert (row.prompt, row.prompt_version, row.prompt_alias) == ("triage", registered,
                                                                 "production")
    assert (row.model, row.provider, row.status) == ("openai/test-model", "openai", "ok")
    assert (row.tokens_in, row.tokens_out) == (reply.prompt_tokens, reply.completion_tokens)
    assert not row.priced  # the loopback model has no price: its 0 cost is not "free"
    steps = ledger_steps().set_index("step")["seconds"]
    assert set(steps.index) == {"prompt", "render", "call", "total"}
    assert steps["total"] == pytest.approx(steps["prompt"] + steps["render"] + steps["call"])
    assert steps["call"] >= reply.latency_s


def test_a_failed_request_is_recorded_with_its_error_type(registered, llm_server):
    service = PromptService("triage")
    llm_server.faults = Faults(server_error=1.0)
    with pytest.raises(GatewayError):
        service.complete(ticket="x", tags={"user": "u-1"})
    row = ledger_calls().iloc[0]
    assert (row.status, row.user, row.tokens_in) == ("error", "u-1", 0)
    assert row.error_type == "InternalServerError"


def test_a_stream_records_time_to_first_token(registered, llm_server):
    llm_server.responder = lambda body: "one two three"
    stream = PromptService("triage").stream(ticket="hi", tags={"request_type": "chat"})
    assert "".join(stream) == "one two three"
    row = ledger_calls().iloc[0]
    assert row.request_type == "chat" and row.tokens_out == 3
    steps = ledger_steps().set_index("step")["seconds"]
    assert set(steps.index) == {"render", "call", "total", "ttft"}  # ttft read as a step
    assert 0 < row.ttft_s == steps["ttft"] <= steps["call"]


def test_experiment_calls_are_recorded_and_cache_hits_cost_nothing(make_experiment):
    folder = make_experiment(name="triage-ab")
    Experiment.from_yaml(folder).run(track=False, progress=False)
    Experiment.from_yaml(folder).run(track=False, progress=False)  # all from the cache
    calls = ledger_calls()
    assert len(calls) == 2 * 40
    assert set(calls["application"]) == {"triage-ab"}
    assert set(calls["request_type"]) == {"experiment"}
    assert calls["cache_hit"].sum() == 40
    assert (calls.loc[calls["cache_hit"], "cost"] == 0).all()
    assert (calls.loc[~calls["cache_hit"], "tokens_in"] > 0).all()


def test_gateway_calls_outside_an_attribution_are_not_recorded(project, llm_server):
    config = ModelConfig(model="openai/test-model", api_base=llm_server.base_url)
    messages = [{"role": "user", "content": "hi"}]
    asyncio.run(Gateway().complete(config, messages))
    assert ledger_calls().empty

    async def attributed():
        with attribute("notebook", user="ana", request_type="probe"):
            return await Gateway().complete(config, messages)

    asyncio.run(attributed())
    row = ledger_calls().iloc[0]
    assert (row.application, row.user, row.request_type) == ("notebook", "ana", "probe")


def test_calls_made_by_worker_processes_are_recorded_once(make_experiment):
    folder = make_experiment(name="triage-workers")
    Experiment.from_yaml(folder).run(track=False, progress=False, use_cache=False, workers=2)
    calls = ledger_calls()
    assert len(calls) == 40 and calls["call_id"].is_unique
    assert set(calls["application"]) == {"triage-workers"} and not calls["cache_hit"].any()


def test_a_stream_the_caller_abandons_is_recorded_as_cancelled(registered, llm_server):
    llm_server.responder = lambda body: "one two three four"
    service = PromptService("triage")

    async def read_one_piece():
        stream = service.stream(ticket="hi", tags={"user": "u-9"})
        pieces = aiter(stream)
        first = await anext(pieces)
        await pieces.aclose()  # what `break` in `async for` leads to
        return first

    assert asyncio.run(read_one_piece()).strip() == "one"
    row = ledger_calls().iloc[0]
    assert (row.status, row.user, row.tokens_out) == ("cancelled", "u-9", 0)
    assert row.ttft_s > 0
