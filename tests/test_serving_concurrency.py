"""A per-model limit on calls in flight: a bounded queue waits its turn, past it a 429 with
Retry-After; the calls in flight and the queue depth are gauges in /metrics."""

import asyncio
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.prompts.registry import promote, register_version
from workbench.serving.concurrency import ConcurrencyLimiter, Saturated
from workbench.serving.http_app import create_app

from .test_http_app import URL, metric

MODEL = "openai/test-model"


@pytest.fixture
def slow(project, llm_server):
    model = ModelConfig(model=MODEL, api_base=llm_server.base_url, num_retries=0)
    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", 1, "production", approver="test")
    llm_server.latency = 0.3
    return llm_server


def test_calls_over_the_limit_wait_their_turn_and_past_the_queue_are_refused(slow):
    service = PromptService("triage", max_concurrency=1, max_queue=1)
    records = []
    service.observers.append(records.append)

    async def three():
        return await asyncio.gather(*(service.acomplete(ticket=f"t{i}") for i in range(3)),
                                    return_exceptions=True)

    started = time.perf_counter()
    results = asyncio.run(three())
    elapsed = time.perf_counter() - started
    refused = [r for r in results if isinstance(r, Exception)]
    assert [type(r) for r in refused] == [Saturated] and refused[0].retry_after_s >= 1
    assert "1 calls in flight (the limit) and 1 waiting" in str(refused[0])
    assert len(results) - len(refused) == 2 and elapsed >= 0.55  # one after the other
    assert slow.request_count == 2
    assert service.limiter.state() == {MODEL: (0, 0)}
    waits = sorted(r.steps["queue"] for r in records)  # the second waited for the first
    assert waits[0] < 0.1 and waits[1] >= 0.25


def test_the_limit_holds_across_threads_and_streams(slow):
    service = PromptService("triage", max_concurrency=1, max_queue=4)
    errors = []

    def call(stream):
        try:
            if stream:
                assert "".join(service.stream(ticket="x"))
            else:
                service.complete(ticket="x")
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i % 2 == 0,)) for i in range(3)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and time.perf_counter() - started >= 0.85  # never two at once
    assert service.limiter.state() == {MODEL: (0, 0)}


def test_a_waiter_that_gives_up_leaves_the_queue():
    limiter = ConcurrencyLimiter(1, max_queue=1)

    async def scenario():
        release = asyncio.Event()

        async def hold():
            async with limiter.slot("m"):
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        waiter = asyncio.create_task(hold())
        await asyncio.sleep(0)
        assert limiter.state() == {"m": (1, 1)}
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert limiter.state() == {"m": (1, 0)}
        release.set()
        await holder
        assert limiter.state() == {"m": (0, 0)}
        async with limiter.slot("m"):  # and the slot is free again
            assert limiter.state() == {"m": (1, 0)}

    asyncio.run(scenario())


@pytest.mark.parametrize("options", [{"max_concurrency": 0},
                                     {"max_concurrency": 1, "max_queue": -1}])
def test_a_limit_that_makes_no_sense_is_refused(options):
    with pytest.raises(WorkbenchError, match="max_concurrency"):
        ConcurrencyLimiter(options["max_concurrency"], options.get("max_queue"))


def test_saturated_is_a_429_with_retry_after_and_the_gauges_show_it(slow):
    service = PromptService("triage", max_concurrency=1, max_queue=1)
    app = create_app(service)
    body = {"variables": {"ticket": "x"}}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            first = [asyncio.create_task(http.post(URL, json=body)) for _ in range(2)]
            deadline = time.monotonic() + 5
            while service.limiter.state().get(MODEL) != (1, 1):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            busy = (await http.get("/metrics")).text
            refused = await http.post(URL, json=body)
            answered = await asyncio.gather(*first)
            after = (await http.get("/metrics")).text
        return busy, refused, answered, after

    busy, refused, answered, after = asyncio.run(scenario())
    assert [r.status_code for r in answered] == [200, 200]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "waiting (the queue's size)" in refused.json()["detail"]
    model = {"prompt": "triage", "gen_ai_request_model": MODEL}
    assert metric(busy, "workbench_in_flight_requests", **model) == 1
    assert metric(busy, "workbench_queue_depth", **model) == 1
    assert metric(after, "workbench_in_flight_requests", **model) == 0
    assert metric(after, "workbench_queue_depth", **model) == 0
    assert metric(after, "workbench_max_concurrency", prompt="triage") == 1
    assert metric(after, "workbench_rejected_requests_total", reason="saturated") == 1


def test_serve_passes_its_concurrency_limit(slow, monkeypatch):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app))
    assert main(["serve", "triage@production", "--max-concurrency", "3",
                 "--max-queue", "5"]) == 0
    with TestClient(started["app"]) as http:
        text = http.get("/metrics").text
    assert metric(text, "workbench_max_concurrency", prompt="triage") == 3
