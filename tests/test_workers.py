"""Worker processes: the same results as one process, the same cache, and no orphans."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench import Experiment
from workbench.gateway.cache import ResponseCache
from workbench.gateway.config import ModelConfig
from workbench.gateway.workers import CallDropped, can_share, pool, queued, split_limits

ROWS = [{"id": f"e{i:03d}", "ticket": f"message {i}: I want a refund", "label": "negative"}
        for i in range(40)]


def columns(frame):
    keep = ["variant", "example_id", "repeat", "output", "error", "score.exact_match"]
    return frame[keep].sort_values(["variant", "example_id"]).reset_index(drop=True)


def test_two_processes_give_the_rows_one_process_gives(make_experiment, llm_server, project):
    folder = make_experiment(rows=ROWS, run={"concurrency": 8})
    one = Experiment.from_yaml(folder).run(progress=False, track=False, use_cache=False)
    sent = llm_server.request_count
    two = Experiment.from_yaml(folder).run(progress=False, use_cache=False, workers=2)

    assert llm_server.request_count - sent == len(one.frame) == len(two.frame) == 80
    assert not two.frame.duplicated(["variant", "example_id", "repeat"]).any()
    assert columns(two.frame).equals(columns(one.frame))
    assert two.run_ids["parent"]  # scored and logged in this process as usual
    # answers from the worker are committed when the run returns: a re-run sends nothing
    cache = ResponseCache(Path(project) / ".workbench" / "cache.sqlite")
    assert len(cache) == 80
    cache.close()
    sent = llm_server.request_count
    again = Experiment.from_yaml(folder).run(progress=False, track=False, workers=2)
    assert llm_server.request_count == sent and again.frame["cached"].all()


def test_a_dead_worker_costs_only_its_calls_in_flight(make_experiment, llm_server):
    llm_server.latency = 0.05
    folder = make_experiment(rows=ROWS, run={"concurrency": 8})
    experiment = Experiment.from_yaml(folder)
    remote = pool(2)[0]
    experiment.progress.listeners.append(
        lambda p: p.done == 20 and remote._process.kill())

    results = experiment.run(progress=False, track=False, use_cache=False, workers=2)
    frame = results.frame
    assert not remote.alive
    assert len(frame) == 80 and not frame.duplicated(["variant", "example_id"]).any()
    lost = frame[frame["error"].notna()]
    assert len(lost) <= 4 + queued(4)  # at most the calls handed to the dead worker
    assert lost["error"].str.contains("worker process 1 exited").all()
    assert any("worker process 1 exited" in note for note in results.warnings)
    # the next run starts a new worker; the lost calls were not cached, so they are sent
    sent = llm_server.request_count
    rerun = experiment.run(progress=False, track=False, workers=2)
    assert llm_server.request_count - sent == len(lost)
    assert rerun.frame["error"].isna().all()


def test_when_every_worker_dies_this_process_makes_the_remaining_calls(make_experiment,
                                                                      llm_server):
    llm_server.latency = 0.05
    folder = make_experiment(rows=ROWS, run={"concurrency": 8})
    experiment = Experiment.from_yaml(folder)
    remotes = pool(2)
    experiment.progress.listeners.append(
        lambda p: p.done == 20 and [r._process.kill() for r in remotes])

    results = experiment.run(progress=False, track=False, use_cache=False, workers=2)
    frame = results.frame
    assert not any(r.alive for r in remotes)
    assert len(frame) == 80 and not frame.duplicated(["variant", "example_id"]).any()
    lost = frame[frame["error"].notna()]
    assert len(lost) <= 2 * (4 + queued(4))
    assert frame.loc[frame["error"].isna(), "output"].notna().all()  # the rest made here
    assert sum("exited" in note for note in results.warnings) == 2


def test_a_cancelled_run_with_workers_resumes_without_repeating_a_call(make_experiment,
                                                                     llm_server):
    llm_server.latency = 0.02
    folder = make_experiment(rows=ROWS, run={"concurrency": 8, "workers": 2})
    experiment = Experiment.from_yaml(folder)
    experiment.progress.listeners.append(lambda p: p.done == 20 and experiment.cancel())

    partial = experiment.run(progress=False, track=False)
    sent = llm_server.request_count
    assert 20 <= len(partial.frame) < 80 and sent == len(partial.frame)
    resumed = Experiment.from_yaml(folder).run(progress=False, track=False)
    assert llm_server.request_count - sent == 80 - sent
    assert len(resumed.frame) == 80 and resumed.frame["error"].isna().all()


def test_cancelling_one_of_two_runs_on_the_same_workers_leaves_the_other_whole(
        make_experiment, llm_server):
    llm_server.latency = 0.02
    stopped = Experiment.from_yaml(make_experiment("a", rows=ROWS, run={"concurrency": 4}))
    other = Experiment.from_yaml(make_experiment("b", rows=ROWS, run={"concurrency": 4}))
    stopped.progress.listeners.append(lambda p: p.done == 10 and stopped.cancel())

    async def both():
        return await asyncio.gather(
            stopped.arun(progress=False, track=False, use_cache=False, workers=2),
            other.arun(progress=False, track=False, use_cache=False, workers=2))

    partial, whole = asyncio.run(both())
    assert len(partial.frame) < 80
    assert len(whole.frame) == 80 and whole.frame["error"].isna().all()
    assert llm_server.request_count == len(partial.frame) + 80


def test_calls_a_worker_has_not_started_are_dropped_when_the_run_stops(llm_server):
    llm_server.latency = 0.3
    remote = pool(1)[0]
    config = ModelConfig(model="openai/test-model", api_base=llm_server.base_url)
    messages = [{"role": "user", "content": "I want a refund"}]

    async def stopped_run() -> list[object]:
        assert await remote.ready()
        share = await remote.share(1)
        calls = [asyncio.ensure_future(remote.complete(config, messages, share=share))
                 for _ in range(3)]
        while llm_server.request_count < 1:
            await asyncio.sleep(0.01)
        remote.end(share)
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(stopped_run())
    remote.detach()
    made = [o for o in outcomes if not isinstance(o, CallDropped)]
    assert [o.text for o in made] == ["negative"]  # the one in flight finished
    assert llm_server.request_count == 1


def test_workers_stop_when_the_run_is_killed(make_experiment, llm_server, project):
    llm_server.latency = 0.05
    folder = make_experiment(rows=ROWS, run={"concurrency": 4, "workers": 2})
    command = [sys.executable, "-m", "workbench.cli", "run", str(folder), "--no-track"]
    child = subprocess.Popen(command, env={**os.environ, "WORKBENCH_HOME": str(project)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while llm_server.request_count < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = children(child.pid)
    assert workers, "the run started no worker process"
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)

    cache = ResponseCache(Path(project) / ".workbench" / "cache.sqlite")
    completed = len(cache)
    cache.close()
    sent = llm_server.request_count
    finished = subprocess.run(command, env={**os.environ, "WORKBENCH_HOME": str(project)},
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert llm_server.request_count - sent == 80 - completed


def test_asking_for_more_workers_keeps_the_running_ones():
    two = pool(2)
    three = pool(3)
    assert len(two) == 2 and len(three) == 3
    assert three[0] is two[0]  # not restarted: a worker costs ~2 s to start
    assert pool(2) == two and all(remote.alive for remote in three)


def test_rate_limits_are_shared_out_between_processes():
    config = ModelConfig(model="openai/x", rpm=100, tpm=9_001,
                         fallbacks=[ModelConfig(model="openai/y", rpm=3)])
    shared = split_limits(config, 2)
    assert (shared.rpm, shared.tpm, shared.fallbacks[0].rpm) == (50, 4500, 1)
    assert split_limits(config, 1) is config


@pytest.mark.parametrize("model, shareable", [("openai/x", True), ("local/smollm2", False)])
def test_the_embedded_model_is_not_called_from_workers(model, shareable):
    assert can_share([ModelConfig(model=model)]) is shareable


def children(pid: int) -> list[int]:
    found: list[int] = []
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
        time.sleep(0.05)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_progress_bar_says_why_it_waits_while_workers_start(make_experiment, llm_server,
                                                                 monkeypatch, capsys):
    from workbench.gateway import workers

    fresh = workers.WorkerPool()  # workers started by earlier tests would be ready at once
    monkeypatch.setattr(workers, "_POOL", fresh)
    folder = make_experiment(rows=ROWS[:10], run={"concurrency": 4})
    try:
        Experiment.from_yaml(folder).run(track=False, use_cache=False, workers=2)
    finally:
        fresh.close()
    shown = capsys.readouterr().err
    assert "calls (starting 2 worker processes)" in shown
    assert "calls: 100%" in shown  # back to plain "calls" once a worker takes them


def test_the_send_factory_uses_workers_only_when_asked_and_every_model_can_be_called_there():
    from workbench.gateway.client import Gateway
    from workbench.gateway.send import for_run
    from workbench.gateway.workers import WorkerSend

    remote = ModelConfig(model="openai/x")
    local = ModelConfig(model="local/smollm2")
    one, notes = for_run(None, concurrency=4, workers=1, models=[remote])
    assert isinstance(one, Gateway) and notes == []
    two, notes = for_run(None, concurrency=4, workers=2, models=[remote])
    assert isinstance(two, WorkerSend) and len(two.remotes) == 2 and notes == []
    embedded, notes = for_run(None, concurrency=4, workers=2, models=[remote, local])
    assert isinstance(embedded, Gateway)
    assert notes == ["workers: 2 ignored: the embedded model runs in this process only"]
