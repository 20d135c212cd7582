"""An interrupt in a notebook stops a blocking call's work, not just the wait for it.

Jupyter runs a cell inside its running event loop, so a blocking ``exp.run()`` does its
work on a helper thread; the kernel's stop button raises KeyboardInterrupt in the main
thread. These tests reproduce that: a cell runs synchronously inside a running loop, and
SIGINT is sent to the main thread while it blocks.
"""

import asyncio
import signal
import threading
import time

import pytest

from workbench import Experiment
from workbench.aio import run_sync

pytestmark = pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
    reason="needs Python's default SIGINT handler, as a Jupyter kernel executing a cell has")


def interrupt_when(condition, timeout=20.0):
    """Send SIGINT to the main thread once ``condition()`` holds; the time it was sent."""
    main, sent = threading.main_thread().ident, {}

    def watch():
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)
        sent["at"] = time.monotonic()
        signal.pthread_kill(main, signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()
    return sent


def in_a_running_loop(cell):
    """Run ``cell`` as Jupyter runs one: synchronously, inside a running event loop."""
    async def kernel():
        return cell()

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(kernel())
    finally:
        loop.close()


def test_an_interrupt_cancels_the_coroutine_on_the_helper_thread():
    steps, cleaned = [], threading.Event()

    async def work():
        try:
            while True:
                steps.append(1)
                await asyncio.sleep(0.01)
        finally:
            cleaned.set()

    sent = interrupt_when(lambda: len(steps) >= 5)
    with pytest.raises(KeyboardInterrupt):
        in_a_running_loop(lambda: run_sync(work))
    assert time.monotonic() - sent["at"] < 1.0
    assert cleaned.is_set()  # the coroutine saw the cancellation
    counted = len(steps)
    time.sleep(0.1)
    assert len(steps) == counted
    deadline = time.monotonic() + 1.0  # the helper thread ends too
    while any(t.name == "workbench-sync" for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_interrupting_a_run_stops_its_calls(make_experiment, llm_server):
    llm_server.latency = 0.2
    experiment = Experiment.from_yaml(make_experiment(run={"concurrency": 4}))
    sent = interrupt_when(lambda: llm_server.request_count >= 6)
    with pytest.raises(KeyboardInterrupt):
        in_a_running_loop(lambda: experiment.run(progress=False, track=False))
    assert time.monotonic() - sent["at"] < 1.0
    at_interrupt = llm_server.request_count
    time.sleep(1.0)  # five calls' time: a run still going would send about twenty more
    assert llm_server.request_count == at_interrupt < 40


def threads_named(name):
    return [t for t in threading.enumerate() if t.name == name]


def wait_gone(name, timeout=1.0):
    deadline = time.monotonic() + timeout
    while threads_named(name):
        assert time.monotonic() < deadline, f"{name} still running"
        time.sleep(0.01)


@pytest.fixture
def service(project, llm_server):
    from workbench import ModelConfig, PromptService, PromptTemplate
    from workbench.prompts.registry import promote, register_version

    model = ModelConfig(model="openai/test-model", api_base=llm_server.base_url, num_retries=0)
    register_version("triage", PromptTemplate("Sentiment: {{ticket}}"), model)
    promote("triage", 1, "production", approver="test")
    return PromptService("triage", "production")


def test_interrupting_a_stream_in_a_notebook_stops_it(service, llm_server):
    service.complete(ticket="warm-up")  # imports litellm before the clock matters
    llm_server.latency = 3.0
    sent = interrupt_when(lambda: llm_server.request_count >= 2)
    with pytest.raises(KeyboardInterrupt):
        in_a_running_loop(lambda: list(service.stream(ticket="I love it")))
    assert time.monotonic() - sent["at"] < 1.0
    wait_gone("workbench-stream")  # it waited out the model's 3 s before


def test_leaving_a_stream_early_stops_it(service, llm_server):
    llm_server.responder = lambda body: "one two three four five"
    llm_server.chunk_latency = 0.3  # the whole answer takes about 2 s
    for piece in service.stream(ticket="I love it"):
        assert piece == "one "
        break
    wait_gone("workbench-stream", timeout=0.5)


def test_interrupting_a_run_on_workers_drops_the_calls_they_hold(make_experiment, llm_server):
    llm_server.latency = 1.0
    # two workers, one call in flight each, and each holds two more that have not started
    experiment = Experiment.from_yaml(make_experiment(run={"concurrency": 2, "workers": 2}))
    sent = interrupt_when(lambda: llm_server.request_count >= 2, timeout=60)  # workers start
    with pytest.raises(KeyboardInterrupt):
        in_a_running_loop(lambda: experiment.run(progress=False, track=False))
    assert time.monotonic() - sent["at"] < 1.0
    time.sleep(max(0.0, sent["at"] + 0.5 - time.monotonic()))  # calls already sent arrive
    settled = llm_server.request_count
    time.sleep(1.5)  # the calls in flight end after 1 s; a held call would be sent then
    assert llm_server.request_count == settled
