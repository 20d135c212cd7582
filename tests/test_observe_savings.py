"""Savings advice from constructed ledgers: each kind is proposed when the traffic supports
it, with the saving the ledger implies, and not proposed otherwise."""

from __future__ import annotations

import time

import pytest

from workbench import ModelConfig, PromptTemplate
from workbench.gateway.pricing import price
from workbench.observe import savings
from workbench.observe.record import UsageRecord
from workbench.observe.store import Store
from workbench.prompts.registry import register_version

DAY = 86400.0
MINI = "openai/gpt-4o-mini"


@pytest.fixture
def store(project):
    opened = Store(f"sqlite:///{project / 'usage.sqlite'}")
    yield opened
    opened.dispose()


def spread(count, days=10.0, **fields):
    """``count`` calls evenly over the last ``days`` days."""
    now = time.time()
    return [UsageRecord(**{"application": "helpdesk", "request_type": "triage",
                           "prompt": "triage", "model": MINI, "tokens_in": 100,
                           "tokens_out": 10, "cost": 0.01, **fields},
                        ts=now - days * DAY * (1 - i / (count - 1)))
            for i in range(count)]


def by_kind(found):
    return {r.kind: r for r in found}


def test_repeated_requests_propose_a_response_cache_with_their_monthly_cost(store):
    records = spread(100)
    for i, r in enumerate(records):  # 60 distinct requests; 20 of them asked three times
        r.fingerprint = f"f{i % 60 if i < 60 else i % 20:02d}"
    store.write(records)
    found = by_kind(savings.recommend(store, "30d"))
    cache = found["response_cache"]
    assert cache.key == "application=helpdesk request_type=triage prompt=triage"
    assert "40 of 100 requests (40%) repeated" in cache.detail
    assert cache.monthly_savings_usd == pytest.approx(40 * 0.01 * 3, rel=0.01)  # 10 days → 30


def test_rare_repeats_propose_nothing(store):
    records = spread(100)
    for i, r in enumerate(records):
        r.fingerprint = "same" if i < 2 else f"f{i}"  # 1 repeat in 100
    store.write(records)
    assert "response_cache" not in by_kind(savings.recommend(store, "30d"))


@pytest.mark.parametrize(("cap", "proposed"), [(1000, True), (None, True), (60, False)])
def test_a_cap_far_above_p99_output_tokens_is_proposed(store, cap, proposed):
    params = {} if cap is None else {"max_tokens": cap}
    register_version("triage", PromptTemplate("Sort: {{ticket}}"),
                     ModelConfig(model=MINI, params=params))
    records = spread(200, prompt_version=1, tokens_out=40)
    records[-1].tokens_out = 800  # one runaway answer
    store.write(records)
    found = by_kind(savings.recommend(store, "30d"))
    assert ("max_tokens" in found) is proposed
    if proposed:
        advice = found["max_tokens"]
        assert advice.key == "prompt=triage version=1" and "max_tokens: 50" in advice.detail
        expected = price(ModelConfig(model=MINI), 0, 750) * 3
        assert advice.monthly_savings_usd == pytest.approx(expected, rel=0.01)


def test_a_long_fixed_prompt_beginning_proposes_provider_caching(store):
    system = "You sort support tickets. " + "Rule: be brief and exact. " * 240  # ~6,000 chars
    template = PromptTemplate([{"role": "system", "content": system},
                               {"role": "user", "content": "{{ticket}}"}])
    register_version("triage", template, ModelConfig(model=MINI))
    register_version("triage", template, ModelConfig(model=MINI, params={"seed": 1}))
    store.write(spread(100, prompt_version=1, tokens_in=1600))
    store.write(spread(100, prompt_version=2, tokens_in=1600, tokens_cached=1400))
    found = [r for r in savings.recommend(store, "30d") if r.kind == "prompt_caching"]
    assert [r.key for r in found] == ["prompt=triage version=1"]  # v2 is cached already
    prefix = len(system) // 4
    expected = price(ModelConfig(model=MINI), prefix * 100, 0) * 0.5 * 3
    assert found[0].monthly_savings_usd == pytest.approx(expected, rel=0.01)


def ab_evidence(request_type, non_inferior):
    """A logged A/B in the workbench's format: parent with child runs and ab_report.json."""
    from mlflow.tracking import MlflowClient

    from workbench.settings import tracking_uri

    client = MlflowClient(tracking_uri())
    experiment = client.create_experiment(f"ab-{request_type}-{non_inferior}")
    children = {}
    for name, model in (("big", "openai/gpt-4o"), ("small", MINI)):
        child = client.create_run(experiment, run_name=name)
        client.log_param(child.info.run_id, "model", model)
        children[name] = child.info.run_id
    parent = client.create_run(experiment, tags={
        "workbench.request_type": request_type,
        "workbench.child_runs": ",".join(f"{k}={v}" for k, v in children.items())})
    verdict = ("small non-inferior to big within 0.05" if non_inferior
               else "non-inferiority of small within 0.05 not shown")
    client.log_dict(parent.info.run_id, {"pairs": [
        {"a": "big", "b": "small", "verdict": verdict, "winner": None,
         "non_inferior": non_inferior}]}, "ab_report.json")
    return parent.info.run_id


def test_a_downgrade_is_proposed_only_with_a_non_inferior_ab_of_that_request_type(store):
    big = ModelConfig(model="openai/gpt-4o")
    cost = price(big, 1000, 100)
    store.write(spread(100, model="openai/gpt-4o", tokens_in=1000, tokens_out=100, cost=cost))
    ab_evidence("triage", non_inferior=False)
    ab_evidence("chat", non_inferior=True)
    assert "downgrade" not in by_kind(savings.recommend(store, "30d"))
    run_id = ab_evidence("triage", non_inferior=True)
    advice = by_kind(savings.recommend(store, "30d"))["downgrade"]
    assert advice.evidence == run_id and advice.key == "request_type=triage model=openai/gpt-4o"
    expected = (cost - price(ModelConfig(model=MINI), 1000, 100)) * 100 * 3
    assert advice.monthly_savings_usd == pytest.approx(expected, rel=0.01)
    assert f"A/B run {run_id}: small non-inferior" in advice.detail


def test_the_notebook_form_is_a_frame_largest_saving_first(store, monkeypatch):
    from workbench import observe

    records = spread(100)
    for i, r in enumerate(records):
        r.fingerprint = f"f{i % 50}"
    store.write(records)
    monkeypatch.setattr("workbench.observe.default_ledger",
                        lambda: type("L", (), {"store": lambda self: store})())
    table = observe.recommend("30d")
    assert list(table.columns) == ["kind", "key", "monthly_savings_usd", "detail", "evidence"]
    assert table.loc[0, "kind"] == "response_cache"
    assert observe.recommend("30d", min_savings_usd=1e6).empty
