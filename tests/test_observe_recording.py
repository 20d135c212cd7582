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


def test_judge_calls_are_recorded_as_judge_calls_of_the_run(project, llm_server):
    from workbench.evaluation.evalsets import Example
    from workbench.evaluation.scorers import build_scorer

    llm_server.responder = lambda body: '{"reason": "fine", "score": 4}'
    judge = build_scorer("coherence", {"model": {"model": "openai/judge-model",
                                                 "api_base": llm_server.base_url,
                                                 "num_retries": 0}, "cache": False})
    example = Example(id="1", inputs={"question": "q"})
    config = ModelConfig(model="openai/test-model", api_base=llm_server.base_url)

    async def run_and_judge():
        with attribute("triage-ab", request_type="experiment"):
            await Gateway().complete(config, [{"role": "user", "content": "hi"}])
            return await judge.judge_text("an answer", example)

    assert asyncio.run(run_and_judge()).value == 4.0
    calls = ledger_calls().set_index("request_type")
    assert sorted(calls.index) == ["experiment", "judge"]
    assert calls.loc["judge", "application"] == "triage-ab"
    assert calls.loc["judge", "model"] == "openai/judge-model"
    assert calls.loc["judge", "prompt"] == judge.prompt.name


def test_provider_prompt_cache_tokens_are_recorded(registered, llm_server):
    llm_server.cached_prompt_tokens = 3
    PromptService("triage").complete(ticket="I love it")
    assert ledger_calls().iloc[0].tokens_cached == 3
    assert queries.usage(default_ledger().store(), "1h").loc[0, "tokens_cached"] == 3


def test_provider_without_cache_details_leaves_tokens_cached_empty(registered):
    PromptService("triage").complete(ticket="I love it")
    assert pd_isna(ledger_calls().iloc[0].tokens_cached)


def pd_isna(value):
    import pandas as pd

    return bool(pd.isna(value))


def test_a_spent_budget_is_recorded_as_refused(registered, llm_server):
    import sqlalchemy as sa

    from workbench.observe import Budget, BudgetExceeded

    priced = ModelConfig(model="openai/test-model", api_base=llm_server.base_url,
                         num_retries=0, input_cost_per_token=0.001)
    service = PromptService("triage", model=priced,
                            budgets=[Budget(limit_usd=1e-6, user="*")])
    service.complete(ticket="a", tags={"user": "ana"})  # spends the budget
    with pytest.raises(BudgetExceeded):
        service.complete(ticket="b", tags={"user": "ana"})
    with pytest.raises(BudgetExceeded):
        service.stream(ticket="c", tags={"user": "ana"})
    calls = ledger_calls()
    refused = calls[calls["status"] == "refused"]
    assert list(refused["error_type"]) == ["BudgetExceeded", "BudgetExceeded"]
    assert list(refused["user"]) == ["ana", "ana"] and (refused["tokens_in"] == 0).all()
    store = default_ledger().store()
    with store.engine.connect() as conn:
        steps = set(conn.execute(sa.select(store.steps.c.step).where(
            store.steps.c.call_id.in_(list(refused["call_id"])))).scalars())
    assert "call" not in steps and "total" in steps  # no call was made


def test_a_saturated_model_refusal_is_recorded(registered, llm_server):
    from workbench.serving.concurrency import Saturated

    llm_server.latency = 0.3
    service = PromptService("triage", max_concurrency=1, max_queue=0)
    seen = []
    service.observers.append(seen.append)

    async def two():
        return await asyncio.gather(*(service.acomplete(ticket=f"t{i}") for i in range(2)),
                                    return_exceptions=True)

    results = asyncio.run(two())
    assert sum(isinstance(r, Saturated) for r in results) == 1
    calls = ledger_calls()
    assert sorted(calls["status"]) == ["ok", "refused"]
    assert calls.set_index("status").loc["refused", "error_type"] == "Saturated"
    assert [r.status for r in seen] == ["ok"]  # /metrics counts refusals on its own


def test_the_calls_of_a_regression_check_are_recorded_as_check(make_experiment):
    from workbench.evaluation.gate import check

    folder = make_experiment(name="triage-gate")
    check(folder, candidate="guided", use_cache=False)  # no prompt at the alias: one variant
    calls = ledger_calls()
    assert len(calls) == 20  # the candidate on each example of the eval set
    assert set(calls["application"]) == {"triage-gate"}
    assert set(calls["request_type"]) == {"check"}
