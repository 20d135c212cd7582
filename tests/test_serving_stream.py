"""A served stream goes through the gateway: fallbacks, pacing and pricing apply to it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.errors import ProviderError
from workbench.gateway import client, limits
from workbench.gateway.pricing import price
from workbench.prompts.registry import promote, register_version

from .llm_server import Faults


def serve(name, server, **model):
    """A service over a prompt registered with this model config (loopback server)."""
    config = ModelConfig(**{"model": "openai/test-model", "api_base": server.base_url,
                            "num_retries": 0, **model})
    register_version(name, PromptTemplate("Sentiment: {{ticket}}"), config)
    promote(name, 1, "production", approver="test")
    service = PromptService(name)
    records = []
    service.observers.append(records.append)
    return service, records


def test_a_stream_falls_back_when_the_primary_fails_before_the_first_piece(project,
                                                                           llm_server):
    llm_server.responder = lambda body: "one two three"
    llm_server.faults = Faults(down_models={"test-model"})
    fallback = {"model": "openai/test-model-2", "api_base": llm_server.base_url,
                "num_retries": 0}
    service, records = serve("fallback", llm_server, fallbacks=[fallback])
    stream = service.stream(ticket="hi")
    assert "".join(stream) == "one two three"
    assert stream.reply.model == "openai/test-model-2"
    assert (llm_server.count_for("test-model"), llm_server.count_for("test-model-2")) == (1, 1)
    assert records[-1].fallback and records[-1].model == "openai/test-model-2"
    assert records[-1].status == "ok"


def test_a_completion_answered_by_a_fallback_names_the_model_that_answered(project,
                                                                          llm_server):
    llm_server.faults = Faults(down_models={"test-model"})
    fallback = {"model": "openai/test-model-2", "api_base": llm_server.base_url,
                "num_retries": 0}
    service, records = serve("fallback-complete", llm_server, fallbacks=[fallback])
    reply = service.complete(ticket="I love it")
    assert reply.model == "openai/test-model-2" and records[-1].fallback


def test_a_stream_whose_every_model_fails_raises_the_mapped_error(project, llm_server):
    llm_server.faults = Faults(down_models={"test-model", "test-model-2"})
    fallback = {"model": "openai/test-model-2", "api_base": llm_server.base_url,
                "num_retries": 0}
    service, records = serve("down", llm_server, fallbacks=[fallback])
    with pytest.raises(ProviderError, match="test-model-2.*503") as failed:
        list(service.stream(ticket="hi"))
    assert failed.value.status == 503
    assert records[-1].status == "error" and llm_server.request_count == 2


def test_streams_wait_for_the_models_rate_limits(project, llm_server, monkeypatch):
    asked = []

    class Window(limits.MinuteWindow):
        async def acquire(self, units: int = 1) -> float:
            asked.append((self.limit, units))
            return await super().acquire(units)

    monkeypatch.setattr(client, "MinuteWindow", Window)
    service, _ = serve("paced", llm_server, rpm=1, tpm=10_000, params={"max_tokens": 5})

    async def two_streams() -> None:  # one event loop, as in the HTTP app
        assert "".join([p async for p in service.stream(ticket="I love it")])
        second = asyncio.create_task(anext(aiter(service.stream(ticket="I love it"))))
        for _ in range(200):
            if len([1 for limit, _ in asked if limit == 1]) == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert not second.done()  # waiting for the next minute's request
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second

    asyncio.run(two_streams())
    assert [units for limit, units in asked if limit == 1] == [1, 1]
    assert [units >= 5 for limit, units in asked if limit == 10_000] == [True]
    assert llm_server.request_count == 1


def test_a_rate_limited_stream_halves_the_models_concurrency(project, llm_server):
    llm_server.faults = Faults(by_content={"busy": "rate_limit"})
    service, _ = serve("limited", llm_server)

    async def limited_stream() -> float:
        with pytest.raises(Exception, match="RateLimitError"):
            [p async for p in service.stream(ticket="busy")]
        model = service.model
        return service._gateway._pacing_for(model).concurrency.limit

    assert asyncio.run(limited_stream()) == service._gateway.max_concurrency / 2


@pytest.mark.parametrize("model", [
    {"model": "openai/test-model", "input_cost_per_token": 1e-3,
     "output_cost_per_token": 2e-3},          # the config's own prices
    {"model": "openai/gpt-4o-mini"},          # litellm's price table
])
def test_a_stream_is_priced_from_its_usage(project, llm_server, model):
    llm_server.responder = lambda body: "one two three"
    service, records = serve("priced", llm_server, **model)
    stream = service.stream(ticket="I love it")
    assert "".join(stream) == "one two three"
    reply = stream.reply
    assert reply.completion_tokens == 3 and reply.prompt_tokens > 0
    expected = price(service.model, reply.prompt_tokens, reply.completion_tokens)
    assert reply.cost == pytest.approx(expected) and reply.cost > 0
    assert records[-1].cost == pytest.approx(expected) and records[-1].priced


def test_an_unpriced_stream_warns_and_is_recorded_as_unpriced(project, llm_server, caplog):
    service, records = serve("unpriced", llm_server, model="openai/unpriced-stream-model")
    with caplog.at_level(logging.WARNING, logger="workbench.gateway"):
        stream = service.stream(ticket="I love it")
        assert "".join(stream)
    assert "no price known for openai/unpriced-stream-model" in caplog.text
    assert stream.reply.cost == 0.0 and stream.reply.completion_tokens > 0
    assert not records[-1].priced  # counted as 0, not mistaken for free


def test_a_reader_that_stops_early_releases_the_models_slot(project, llm_server):
    llm_server.responder = lambda body: "one two three four"
    service, records = serve("early", llm_server)

    async def read_one() -> tuple[int, int]:
        pacing = service._gateway._pacing_for(service.model).concurrency
        async with contextlib.aclosing(aiter(service.stream(ticket="I love it"))) as pieces:
            async for _ in pieces:
                during = pacing.in_flight
                break
        return during, pacing.in_flight

    assert asyncio.run(read_one()) == (1, 0)
    assert records[-1].status == "cancelled"
