"""``workbench.testing.FakeSend``: a model that answers from your code, in memory.

Give it to ``Experiment.run(send=...)`` and the whole run (render, check, score, summarise)
happens with no server and no key; every call is recorded.
"""

import asyncio
import time

import pytest

from workbench import Experiment
from workbench.errors import (
    ConnectionFailed,
    ContextWindowExceeded,
    GatewayError,
    ProviderError,
    RateLimited,
    Timeout,
    Unauthorized,
)
from workbench.gateway.config import Completion, ModelConfig
from workbench.gateway.send import Send, gateway
from workbench.testing import FakeSend

from .conftest import sentiment


def run(folder, send, **options):
    options.setdefault("track", False)
    options.setdefault("progress", False)
    return Experiment.from_yaml(folder).run(send=send, **options)


def test_a_handler_answers_every_call_and_each_call_is_recorded(offline_experiment):
    fake = FakeSend(lambda config, messages: "positive")
    results = run(offline_experiment(), fake)

    assert len(fake.calls) == len(results.frame) == 40
    assert (results.frame["output"] == "positive").all()
    assert results.frame["answered_by"].eq("openai/test-model").all()
    first = fake.calls[0]
    assert first.config.model == "openai/test-model" and first.repeat == 0
    assert first.prompt == "Sentiment of: I love this app (order 0)"
    # scored as any run: the tickets are half positive
    assert results.frame["score.exact_match"].mean() == 0.5


def test_the_handler_sees_the_rendered_messages(offline_experiment):
    fake = FakeSend(lambda config, messages: sentiment({"messages": messages}))
    results = run(offline_experiment(), fake)
    means = results.frame.groupby("variant")["score.exact_match"].mean()
    assert (means["bare"], means["guided"]) == (0.5, 1.0)
    assert results.report is not None  # a verdict, as from real answers


def test_a_mapping_answers_by_the_last_message_and_default_covers_the_rest():
    fake = FakeSend({"I love it": "positive"}, default="negative")
    config = ModelConfig(model="openai/any")

    async def ask(text):
        return (await fake.complete(config, [{"role": "user", "content": text}])).text

    assert asyncio.run(ask("I love it")) == "positive"
    assert asyncio.run(ask("something else")) == "negative"


@pytest.mark.filterwarnings("ignore:every call of")
def test_a_message_the_mapping_does_not_know_is_an_error_row_naming_the_fix(
        offline_experiment):
    results = run(offline_experiment(), FakeSend({}), limit=1)
    assert results.frame["error"].str.contains("FakeSend has no answer for the message").all()
    assert results.frame["error"].str.contains("give default=").all()


def test_tokens_and_cost_are_counted_the_same_way_on_every_call():
    fake = FakeSend(lambda config, messages: "two words")
    config = ModelConfig(model="openai/priced", input_cost_per_token=0.001,
                         output_cost_per_token=0.002)
    done = asyncio.run(fake.complete(config, [{"role": "user", "content": "one two three"}]))
    assert (done.prompt_tokens, done.completion_tokens) == (3, 2)  # one token per word
    assert done.cost == pytest.approx(3 * 0.001 + 2 * 0.002)
    assert done.cached is False and done.model == "openai/priced"


def test_a_completion_is_returned_as_given():
    given = Completion(text="hi", model="openai/fallback", prompt_tokens=7,
                       completion_tokens=1, cost=0.5, latency_s=0.2, fallback=True)
    fake = FakeSend(lambda config, messages: given)
    assert asyncio.run(fake.complete(ModelConfig(model="openai/x"), [])) is given


def test_an_async_handler_and_latency(offline_experiment):
    async def handler(config, messages):
        await asyncio.sleep(0)
        return "positive"

    fake = FakeSend(handler, latency_s=0.05)
    started = time.perf_counter()
    results = run(offline_experiment(run={"concurrency": 8}), fake, limit=4)
    assert time.perf_counter() - started >= 0.05
    assert results.frame["latency_s"].eq(0.05).all() and len(fake.calls) == 8


@pytest.mark.parametrize(("kind", "status", "shown"), [
    (RateLimited, 429, "RateLimitError (429)"),
    (Unauthorized, 401, "AuthenticationError (401)"),
    (ContextWindowExceeded, 400, "ContextWindowExceededError (400)"),
    (Timeout, None, "Timeout: Request timed out"),
    (ConnectionFailed, None, "APIConnectionError: Connection error"),
    (ProviderError, 500, "InternalServerError (500)"),
])
def test_an_error_class_becomes_the_error_a_provider_refusal_becomes(kind, status, shown):
    fake = FakeSend(lambda config, messages: kind)
    with pytest.raises(kind) as raised:
        asyncio.run(fake.complete(ModelConfig(model="openai/x"), []))
    error = raised.value
    assert (error.model, error.status, error.retries) == ("openai/x", status, 0)
    assert str(error).startswith(f"openai/x: {shown}")


@pytest.mark.filterwarnings("ignore:every call of")
def test_refusals_in_a_run_are_error_rows_with_their_type(offline_experiment):
    fake = FakeSend(lambda config, messages: RateLimited if len(messages) == 1 else "positive")
    results = run(offline_experiment(), fake)
    bare = results.frame[results.frame["variant"] == "bare"]
    assert bare["error_type"].eq("RateLimited").all()
    assert bare["error"].str.contains("RateLimitError \\(429\\)").all()
    assert results.frame.loc[results.frame["variant"] == "guided", "error"].isna().all()


def test_an_exception_instance_is_raised_as_it_is():
    fake = FakeSend(lambda config, messages: GatewayError("down for maintenance", status=503))
    with pytest.raises(GatewayError, match="down for maintenance"):
        asyncio.run(fake.complete(ModelConfig(model="openai/x"), []))


def test_a_run_given_a_send_neither_reads_nor_writes_the_response_cache(offline_experiment,
                                                                        project):
    from workbench.gateway.cache import ResponseCache
    from workbench.settings import cache_path

    folder = offline_experiment()
    run(folder, FakeSend(lambda config, messages: "positive"))
    second = FakeSend(lambda config, messages: "negative")
    results = run(folder, second)
    assert len(second.calls) == 40 and not results.frame["cached"].any()
    cache = ResponseCache(cache_path(folder))
    try:
        assert len(cache) == 0  # a later real run cannot be served fake answers
    finally:
        cache.close()


def test_max_cost_stops_a_fake_run_as_a_real_one(offline_experiment):
    def handler(config, messages):  # the model has no known price: the spend is counted
        return Completion(text="positive", model=config.model, prompt_tokens=10,
                          completion_tokens=1, cost=0.01, latency_s=0.0)

    results = run(offline_experiment(run={"concurrency": 1}), FakeSend(handler),
                  max_cost=0.05)
    assert 5 <= len(results.frame) < 40
    assert results.partial.startswith("stopped at max_cost")


def test_the_run_judges_are_answered_by_the_same_send(offline_experiment):
    judge = {"type": "correctness", "scale": "pass_fail", "expected": "label",
             "model": {"model": "openai/judge-model"}}
    folder = offline_experiment(scorers=[{"type": "exact_match", "expected": "label"}, judge])

    def handler(config, messages):
        if config.model == "openai/judge-model":
            return '{"reason": "it names a label", "score": "pass"}'
        return "positive"

    fake = FakeSend(handler)
    results = run(folder, fake, limit=2)
    judged = [c for c in fake.calls if c.config.model == "openai/judge-model"]
    assert len(judged) == 4 and len(fake.calls) == 8
    assert results.frame["score.correctness"].eq(1.0).all()


def test_max_cost_counts_what_the_judges_spend(offline_experiment):
    judge = {"type": "correctness", "scale": "pass_fail", "expected": "label",
             "model": {"model": "openai/judge-model"}}
    folder = offline_experiment(scorers=[{"type": "exact_match", "expected": "label"}, judge],
                                run={"concurrency": 1})

    def handler(config, messages):  # every call, the judge's too, costs a cent
        text = ('{"reason": "ok", "score": "pass"}' if config.model == "openai/judge-model"
                else "positive")
        return Completion(text=text, model=config.model, prompt_tokens=10,
                          completion_tokens=1, cost=0.01, latency_s=0.0)

    experiment = Experiment.from_yaml(folder)
    results = experiment.run(send=FakeSend(handler), max_cost=0.05, track=False,
                             progress=False)
    # two cents an answer: the stop comes after 3 answers, not after 5 as variant calls alone
    assert len(results.frame) == 3 and results.partial.startswith("stopped at max_cost")
    assert experiment.progress.cost == pytest.approx(0.06)
    assert results.frame["judge_cost.correctness"].sum() == pytest.approx(0.03)
    assert "_judges_spent" not in results.frame.columns
    assert "plus up to 40 judge call(s), not in the estimate" in str(experiment.plan())


def test_every_transport_is_a_send():
    assert isinstance(FakeSend(lambda config, messages: ""), Send)
    assert isinstance(gateway(), Send)


def test_any_object_with_an_async_complete_is_a_send(offline_experiment):
    class Echo:
        async def complete(self, config, messages, *, repeat=0, use_cache=True, key=None):
            return Completion(text=messages[-1]["content"], model=config.model,
                              prompt_tokens=1, completion_tokens=1, cost=0.0, latency_s=0.0)

    results = run(offline_experiment(), Echo(), limit=1)
    assert results.frame["output"].str.endswith("(order 0)").all()


def test_the_public_names_of_the_seam():
    import workbench.gateway.send
    import workbench.testing

    assert workbench.testing.__all__ == ["FakeCall", "FakeSend", "assert_no_regression",
                                         "refusal"]
    assert workbench.gateway.send.__all__ == ["Batch", "CallDropped", "Send", "active",
                                              "batch", "for_calls", "for_run", "gateway",
                                              "notes", "using"]


def test_workers_are_ignored_when_the_run_is_given_a_send_and_the_results_say_so(
        offline_experiment):
    fake = FakeSend(lambda config, messages: "positive")
    results = run(offline_experiment(), fake, limit=1, workers=2)
    assert len(fake.calls) == 2
    assert "workers: 2 ignored: the run was given its own send" in results.warnings
