"""A model's rpm/tpm hold across calls: sync calls, threads and gateways share its minute."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import pytest

from workbench import ModelConfig, PromptService, PromptTemplate
from workbench.aio import run_sync
from workbench.gateway import client
from workbench.gateway.client import Gateway
from workbench.gateway.config import Completion
from workbench.gateway.limits import MinuteWindow
from workbench.gateway.send import gateway
from workbench.prompts.registry import promote, register_version

HELLO = [{"role": "user", "content": "hello"}]
STILL_WAITING_S = 1.0  # far below the 60 s a full window makes a caller wait


def paced(server, **limits) -> ModelConfig:
    return ModelConfig(model="openai/test-model", api_base=server.base_url, num_retries=0,
                       **limits)


@pytest.fixture
def server(llm_server):
    """The loopback server after one call of another model: litellm's first call is slow."""
    warm_up = ModelConfig(model="openai/warm-up", api_base=llm_server.base_url)
    asyncio.run(Gateway().complete(warm_up, HELLO))
    return llm_server


def call_or_wait(send: Gateway, config: ModelConfig) -> str:
    """One sync call: "sent" when it was answered, "waiting" when it was held back."""
    try:
        run_sync(lambda: asyncio.wait_for(send.complete(config, HELLO), STILL_WAITING_S))
    except TimeoutError:
        return "waiting"
    return "sent"


@pytest.mark.parametrize("gateways", ["one gateway", "a gateway per call"])
def test_a_second_sync_call_waits_for_the_models_minute(server, gateways):
    config, shared = paced(server, rpm=1), Gateway()
    send = (lambda: shared) if gateways == "one gateway" else gateway  # as a shadow call does
    assert [call_or_wait(send(), config) for _ in range(2)] == ["sent", "waiting"]
    assert server.count_for("test-model") == 1


def test_the_tokens_per_minute_hold_across_sync_calls(server):
    config = paced(server, tpm=600, params={"max_tokens": 500})  # about 501 per call
    assert [call_or_wait(Gateway(), config) for _ in range(2)] == ["sent", "waiting"]
    assert server.count_for("test-model") == 1


def test_calls_from_threads_share_one_window(server):
    config, send = paced(server, rpm=2), Gateway()
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def caller() -> None:
        start.wait()
        outcomes.append(call_or_wait(send, config))

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["sent", "sent", "waiting", "waiting"]
    assert server.count_for("test-model") == 2


def test_a_served_prompts_sync_calls_are_paced_then_sent(project, llm_server, monkeypatch):
    waits: list[float] = []

    class Window(MinuteWindow):  # a short window, so the held call goes out
        def __init__(self, limit: int) -> None:
            super().__init__(limit, window_s=0.3)

        async def acquire(self, units: int = 1) -> float:
            waits.append(await super().acquire(units))
            return waits[-1]

    monkeypatch.setattr(client, "MinuteWindow", Window)
    register_version("paced-sync", PromptTemplate("Sentiment: {{ticket}}"),
                     paced(llm_server, rpm=1))
    promote("paced-sync", 1, "production", approver="test")
    service = PromptService("paced-sync")
    replies = [service.complete(ticket="I love it") for _ in range(2)]
    assert [reply.text for reply in replies] == ["positive", "positive"]
    assert waits[0] == 0.0 and waits[1] > 0.0
    assert llm_server.request_count == 2


def test_one_loops_waiters_go_in_turn_and_leave_no_loop_behind():
    window = MinuteWindow(10, window_s=0.2)
    finished: list[str] = []

    async def scenario() -> weakref.ref[asyncio.AbstractEventLoop]:
        assert window.take(10) == 0.0

        async def caller(name: str, units: int) -> None:
            await window.acquire(units)
            finished.append(name)

        big = asyncio.create_task(caller("big", 8))
        await asyncio.sleep(0)
        small = asyncio.create_task(caller("small", 3))
        await asyncio.gather(big, small)
        return weakref.ref(asyncio.get_running_loop())

    loop = asyncio.run(scenario())
    assert finished == ["big", "small"]  # the large request is not overtaken
    gc.collect()
    assert loop() is None  # the window does not keep a finished event loop alive


def test_a_full_window_says_how_long_until_room():
    window = MinuteWindow(2, window_s=60.0)
    assert [window.take(), window.take()] == [0.0, 0.0]
    assert 59.0 < window.take() <= 60.001
    assert window.take(5) > 0.0  # an oversized request counts as the whole limit


def test_a_long_lived_gateway_lets_go_of_finished_event_loops(monkeypatch):
    async def answer(config, messages):
        await asyncio.sleep(0)
        return Completion("ok", config.model, 1, 1, 0.0, 0.0)

    send = Gateway(max_concurrency=2)  # 8 calls on 2 slots: the slots are waited for
    monkeypatch.setattr(send, "_call", answer)
    config = ModelConfig(model="openai/test-model", rpm=1_000)

    async def busy_run() -> weakref.ref[asyncio.AbstractEventLoop]:
        await asyncio.gather(*(send.complete(config, HELLO) for _ in range(8)))
        return weakref.ref(asyncio.get_running_loop())

    earlier = [asyncio.run(busy_run()) for _ in range(3)]
    asyncio.run(busy_run())
    gc.collect()
    assert [loop() for loop in earlier] == [None, None, None]
