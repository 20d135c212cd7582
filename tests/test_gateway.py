"""The gateway under real traffic: retries, fallbacks, pacing, context windows, cost."""

import asyncio
import math
import time

import pytest
import yaml
from pydantic import ValidationError

from workbench import Experiment
from workbench.errors import SpecError
from workbench.gateway.client import ContextWindowError, Gateway
from workbench.gateway.config import ModelConfig
from workbench.gateway.limits import AdaptiveConcurrency, MinuteWindow
from workbench.gateway.pricing import has_price, price
from workbench.preflight import CostLimitError

from .llm_server import Faults

HELLO = [{"role": "user", "content": "hello"}]


def model(server, name="test-model", **overrides):
    return ModelConfig(model=f"openai/{name}", api_base=server.base_url, **overrides)


def complete(config, messages=HELLO):
    return asyncio.run(Gateway().complete(config, messages))


def test_server_errors_are_retried_and_the_retries_are_recorded(llm_server):
    llm_server.faults = Faults(fail_first=2)
    completion = complete(model(llm_server, num_retries=2))
    assert completion.text == "neutral" and completion.retries == 2
    assert llm_server.request_count == 3


def test_a_rate_limit_waits_what_retry_after_says(llm_server):
    llm_server.faults = Faults(rate_limit=1.0, retry_after="1")
    started = time.perf_counter()
    with pytest.raises(Exception, match="RateLimitError"):
        complete(model(llm_server, num_retries=1))
    assert time.perf_counter() - started >= 1.0
    assert llm_server.request_count == 2


def test_a_model_that_stays_down_falls_back_and_the_row_says_so(llm_server):
    llm_server.faults = Faults(down_models={"test-model"})
    config = model(llm_server, num_retries=0, fallbacks=[model(llm_server, "test-model-2")])
    completion = complete(config)
    assert completion.fallback and completion.model == "openai/test-model-2"
    assert llm_server.count_for("test-model-2") == 1


def test_authentication_errors_fail_fast_with_the_fix(llm_server, monkeypatch):
    llm_server.faults = Faults(auth_key="the-right-key")
    monkeypatch.setenv("WB_TEST_KEY", "a-wrong-key")
    with pytest.raises(Exception, match="AuthenticationError.*api_key_env"):
        complete(model(llm_server, api_key_env="WB_TEST_KEY", num_retries=3))
    assert llm_server.request_count == 1


def test_the_key_comes_from_the_named_variable(llm_server, monkeypatch):
    llm_server.faults = Faults(auth_key="the-right-key")
    monkeypatch.setenv("WB_TEST_KEY", "the-right-key")
    assert complete(model(llm_server, api_key_env="WB_TEST_KEY")).text == "neutral"


def test_a_literal_key_in_a_model_config_is_refused():
    with pytest.raises(ValidationError, match="api_key_env"):
        ModelConfig(model="openai/gpt-4o-mini", api_key="sk-live-123")


def test_custom_prices_cost_unknown_models(llm_server):
    config = model(llm_server, input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    completion = complete(config)
    expected = completion.prompt_tokens * 1e-6 + completion.completion_tokens * 2e-6
    assert completion.cost == pytest.approx(expected) and completion.cost > 0


def test_known_models_are_priced_from_litellms_table(llm_server):
    config = ModelConfig(model="openai/gpt-4o-mini", api_base=llm_server.base_url,
                         api_key_env=None)
    completion = complete(config)
    assert completion.cost > 0


def test_a_model_without_a_price_is_still_unpriced_after_litellm_is_given_zero(
        llm_server, caplog):
    # litellm searches its price table for a near match on every call to a model it lacks,
    # so the gateway registers one; the cost must still read as unknown, not as free
    import litellm

    config = model(llm_server, name="model-nobody-prices")
    assert complete(config).cost == 0.0
    assert litellm.get_model_info(config.model)["input_cost_per_token"] == 0.0
    assert not has_price(config)
    assert math.isnan(price(config, 10, 10, unknown=math.nan))
    assert "no price known for openai/model-nobody-prices" in caplog.text


def test_litellm_is_given_the_configs_own_prices_and_keeps_its_own_table(llm_server):
    import litellm

    custom = model(llm_server, name="model-priced-here", input_cost_per_token=1e-6,
                   output_cost_per_token=2e-6)
    complete(custom)
    assert litellm.get_model_info(custom.model)["output_cost_per_token"] == 2e-6
    known = ModelConfig(model="openai/gpt-4o-mini", api_base=llm_server.base_url,
                        input_cost_per_token=1.0, output_cost_per_token=1.0)
    before = litellm.get_model_info(known.model)["input_cost_per_token"]
    assert complete(known).cost >= 1.0  # the config's price for the workbench
    assert litellm.get_model_info(known.model)["input_cost_per_token"] == before


def test_the_minute_window_paces_instead_of_failing():
    async def scenario():
        window = MinuteWindow(2, window_s=0.3)
        started = time.perf_counter()
        for _ in range(5):
            await window.acquire()
        return time.perf_counter() - started

    assert 0.55 <= asyncio.run(scenario()) < 1.5  # 5 requests at 2 per 0.3 s


def test_concurrency_halves_on_rate_limits_and_creeps_back():
    limiter = AdaptiveConcurrency(16)
    limiter.rate_limited()
    limiter.rate_limited()
    assert limiter.limit == 4
    for _ in range(20):
        limiter.succeeded()
    assert 4 < limiter.limit <= 16


def write_models(folder, **model_fields):
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    spec["models"]["fake"].update(model_fields)
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def set_run(folder, **run_fields):
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    spec["run"].update(run_fields)
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def test_context_overflow_stops_the_run_before_any_call(make_experiment, llm_server):
    folder = write_models(make_experiment(), context_window=12)
    with pytest.raises(ContextWindowError, match="nothing was sent") as caught:
        Experiment.from_yaml(folder).run(track=False, progress=False)
    assert "truncate_variable" in str(caught.value) and "example t0" in str(caught.value)
    assert llm_server.request_count == 0


def test_truncation_is_recorded_on_each_row(make_experiment, llm_server):
    rows = [{"id": "long", "ticket": "word " * 200, "label": "negative"},
            {"id": "short", "ticket": "I love it", "label": "positive"}]
    folder = write_models(make_experiment(rows=rows), context_window=60)
    set_run(folder, context_policy="truncate", truncate_variable="ticket")
    results = Experiment.from_yaml(folder).run(track=False, progress=False)
    frame = results.frame.set_index(["variant", "example_id"])
    assert "truncated from 1000 to" in frame.loc[("bare", "long"), "warning"]
    assert frame["warning"].isna().sum() == 2  # the short example was left alone
    sent = [r["messages"][-1]["content"] for r in llm_server.requests]
    assert all(len(text) < 400 for text in sent)
    assert any("truncated" in w for w in results.warnings)


def test_truncate_needs_a_variable(make_experiment):
    folder = set_run(make_experiment(), context_policy="truncate")
    with pytest.raises(SpecError, match="truncate_variable"):
        Experiment.from_yaml(folder)


def test_the_estimate_caps_the_cost_before_anything_is_sent(make_experiment, llm_server):
    folder = write_models(make_experiment(), input_cost_per_token=0.01,
                          output_cost_per_token=0.01)
    experiment = Experiment.from_yaml(folder)
    plan = experiment.plan()
    assert plan.to_send == 40 and plan.estimated_cost > 1
    with pytest.raises(CostLimitError, match="nothing was sent"):
        experiment.run(track=False, progress=False, max_cost=0.5)
    assert llm_server.request_count == 0


def test_max_cost_with_an_unpriced_model_is_refused_before_any_call(make_experiment,
                                                                    llm_server):
    # its calls would be recorded as free: the spend guard would never stop the run
    experiment = Experiment.from_yaml(make_experiment())
    with pytest.raises(CostLimitError, match=r"max_cost \$0.5000 cannot be kept: no price is "
                                             r"known for \['openai/test-model'\]"):
        experiment.run(track=False, progress=False, max_cost=0.5)
    assert llm_server.request_count == 0
    assert len(experiment.run(track=False, progress=False).frame) == 40  # without: it runs


def test_the_cost_guard_cancels_once_the_spend_reaches_max_cost():
    import threading

    from workbench.runner import Progress, cost_guard

    cancel = threading.Event()
    guard = cost_guard(0.05, cancel)
    guard(Progress(cost=0.049))
    assert not cancel.is_set()
    guard(Progress(cost=0.05))
    assert cancel.is_set()


def test_a_variant_can_be_refreshed_alone(make_experiment, llm_server):
    folder = make_experiment()
    Experiment.from_yaml(folder).run(track=False, progress=False)
    llm_server.reset()
    results = Experiment.from_yaml(folder).run(track=False, progress=False, refresh=["guided"])
    assert llm_server.request_count == 20
    assert results.frame.groupby("variant")["cached"].all().to_dict() == {
        "bare": True, "guided": False}


def test_cached_single_samples_at_temperature_above_zero_are_flagged(make_experiment):
    folder = make_experiment()
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    spec["models"]["fake"]["params"]["temperature"] = 0.7
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec))
    Experiment.from_yaml(folder).run(track=False, progress=False)
    again = Experiment.from_yaml(folder).run(track=False, progress=False)
    assert any("hides the variance" in w for w in again.warnings)


def test_a_fallbacks_answer_is_cached_as_the_fallbacks_not_the_primarys(llm_server, tmp_path):
    from workbench.gateway.cache import ResponseCache

    llm_server.faults = Faults(down_models={"test-model"})
    params = {"temperature": 0, "max_tokens": 8}
    fallback = model(llm_server, "test-model-2", params=params)
    config = model(llm_server, num_retries=0, params=params, fallbacks=[fallback])
    cache = ResponseCache(tmp_path / "cache.sqlite")
    gateway = Gateway(cache)
    first = asyncio.run(gateway.complete(config, HELLO))
    assert first.fallback and first.model == "openai/test-model-2"

    llm_server.faults = Faults()  # the primary is back: the next run must hear it
    second = asyncio.run(gateway.complete(config, HELLO))
    assert not second.cached and not second.fallback and second.model == "openai/test-model"
    assert llm_server.count_for("test-model") >= 1
    # the fallback's answer is kept, for a request to that model
    again = asyncio.run(gateway.complete(fallback, HELLO))
    assert again.cached and again.model == "openai/test-model-2" and again.fallback
    cache.close()
