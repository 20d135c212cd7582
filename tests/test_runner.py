"""Running the matrix: cached calls are free, interrupted runs resume, failures are rows."""

import asyncio
import gc
import signal
import threading
import time

import pytest

from workbench import Experiment
from workbench.errors import ProviderError
from workbench.prompts.registry import client
from workbench.testing import FakeSend

from .conftest import sentiment
from .llm_server import Faults


def run(folder, **options):
    options.setdefault("track", False)
    options.setdefault("progress", False)
    return Experiment.from_yaml(folder).run(**options)


def answers(**options):
    """The loopback server's model, in memory: for tests that need answers, not HTTP."""
    return FakeSend(lambda config, messages: sentiment({"messages": messages}), **options)


def test_every_variant_answers_every_example_once(offline_experiment):
    fake = answers(latency_s=0.001)
    results = run(offline_experiment(), send=fake)
    frame = results.frame
    assert len(frame) == 40 and len(fake.calls) == 40
    assert set(frame["variant"]) == {"bare", "guided"}
    assert frame.groupby("variant")["example_id"].nunique().tolist() == [20, 20]
    guided = frame[frame["variant"] == "guided"]
    assert guided["score.exact_match"].mean() == 1.0
    assert frame.loc[frame["variant"] == "bare", "score.exact_match"].mean() == 0.5
    assert (frame["prompt_tokens"] > 0).all() and frame["latency_s"].gt(0).all()


def test_the_collector_settings_a_run_changes_are_restored_after_it(offline_experiment):
    before = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())
    run(offline_experiment(), send=answers())
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before


def test_the_mlflow_logging_runs_with_the_heap_frozen_too(offline_experiment, monkeypatch):
    seen = []
    monkeypatch.setattr(Experiment, "_track",
                        lambda self, results, evalset, **_: seen.append(gc.get_freeze_count()))
    run(offline_experiment(), track=True, send=answers())
    assert len(seen) == 1 and seen[0] > 0
    assert gc.get_freeze_count() == 0


def test_a_second_run_is_served_from_the_cache_with_zero_requests(make_experiment, llm_server):
    folder = make_experiment()
    first = run(folder)
    llm_server.reset()
    second = run(folder)
    assert llm_server.request_count == 0
    assert second.frame["cached"].all() and second.cache_hits == 40
    assert second.frame["output"].tolist() == first.frame["output"].tolist()
    # the original latency is kept, so statistics do not change on a cached re-run
    assert second.frame["latency_s"].tolist() == first.frame["latency_s"].tolist()


def test_no_cache_calls_again(make_experiment, llm_server):
    folder = make_experiment()
    run(folder)
    llm_server.reset()
    run(folder, use_cache=False)
    assert llm_server.request_count == 40


def test_an_interrupted_run_resumes_without_repeating_a_call(make_experiment, llm_server):
    folder = make_experiment()
    llm_server.latency = 0.02
    experiment = Experiment.from_yaml(folder)
    stop_after = threading.Event()

    def cancel_midway(progress):
        if progress.done >= 15 and not stop_after.is_set():
            stop_after.set()
            experiment.cancel()

    experiment.progress.listeners.append(cancel_midway)
    partial = experiment.run(track=False, progress=False)
    done_first = llm_server.request_count
    assert 15 <= len(partial.frame) < 40 and done_first == len(partial.frame)

    llm_server.reset()
    resumed = run(folder)
    assert llm_server.request_count == 40 - done_first
    assert len(resumed.frame) == 40
    assert resumed.frame.duplicated(["variant", "example_id", "repeat"]).sum() == 0


def test_failing_calls_become_error_rows_and_the_run_goes_on(make_experiment, llm_server):
    llm_server.faults = Faults(server_error=0.3)
    results = run(make_experiment())
    errors = results.errors
    assert len(results.frame) == 40
    assert 0 < len(errors) < 40
    assert errors["error"].str.contains("InternalServerError").all()
    assert errors["score.exact_match"].isna().all()
    assert (errors["reason.exact_match"] == "not scored: the call failed").all()


def test_errors_are_not_cached_so_a_rerun_retries_them(make_experiment, llm_server):
    folder = make_experiment()
    llm_server.faults = Faults(fail_first=5)
    first = run(folder)
    assert len(first.errors) == 5
    llm_server.faults = Faults()
    llm_server.reset()
    second = run(folder)
    assert llm_server.request_count == 5 and len(second.errors) == 0


def test_repeats_are_separate_calls(offline_experiment):
    fake = answers()
    results = run(offline_experiment(run={"concurrency": 2, "repeats": 3}), limit=2, send=fake)
    assert len(results.frame) == 12 and len(fake.calls) == 12
    assert sorted(call.repeat for call in fake.calls) == [0] * 4 + [1] * 4 + [2] * 4
    assert sorted(set(results.frame["repeat"])) == [0, 1, 2]


def test_a_missing_key_variable_stops_before_any_call(make_experiment, llm_server, monkeypatch):
    monkeypatch.delenv("WB_TEST_KEY", raising=False)
    folder = make_experiment()
    experiment = Experiment.from_yaml(folder)
    model = experiment.variants[0].model.model_copy(update={"api_key_env": "WB_TEST_KEY"})
    experiment.variants[0] = experiment.variants[0].__class__(
        **{**experiment.variants[0].__dict__, "model": model})
    with pytest.raises(Exception, match="WB_TEST_KEY"):
        experiment.run(track=False, progress=False)
    assert llm_server.request_count == 0


def _interrupt_after_logging(monkeypatch):
    """Ctrl-C while the MLflow writes finish: the signal lands inside the logging step."""
    track = Experiment._track

    def track_then_interrupt(self, results, evalset, **options):
        track(self, results, evalset, **options)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Experiment, "_track", track_then_interrupt)


def test_ctrl_c_after_the_run_was_logged_returns_the_results(offline_experiment, monkeypatch):
    _interrupt_after_logging(monkeypatch)
    try:
        results = run(offline_experiment(), track=True, send=answers())
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C after the run was logged lost the finished run")
    assert results.run_ids["parent"] and len(results.frame) == 40
    assert results.warnings[-1] == ("interrupted after the run had finished and was logged: "
                                    "nothing was lost")


def test_ctrl_c_during_the_calls_still_interrupts_and_logs_nothing(offline_experiment):
    experiment = Experiment.from_yaml(offline_experiment())
    experiment.progress.listeners.append(
        lambda progress: progress.done == 3 and signal.raise_signal(signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        experiment.run(progress=False, send=answers())
    assert client().search_runs([e.experiment_id for e in client().search_experiments()]) == []


def test_ctrl_c_in_a_notebook_stops_the_run_left_in_its_helper_thread(make_experiment,
                                                                       llm_server):
    llm_server.latency = 0.05
    experiment = Experiment.from_yaml(make_experiment())
    main = threading.main_thread().ident
    experiment.progress.listeners.append(
        lambda progress: progress.done == 3 and signal.pthread_kill(main, signal.SIGINT))

    async def cell():  # a notebook cell: the kernel's event loop is running
        experiment.run(progress=False)

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(cell())
    finally:
        loop.close()
    # the calls on the helper thread are cancelled: the server's counter stops
    at_interrupt = llm_server.request_count
    time.sleep(1.0)
    assert llm_server.request_count == at_interrupt < 20
    assert client().search_runs([e.experiment_id for e in client().search_experiments()]) == []


def test_the_python_api_says_when_every_call_of_a_variant_failed(offline_experiment):
    refuses = FakeSend(lambda config, messages: ProviderError)
    with pytest.warns(UserWarning, match=r"every call of 'bare' failed \(20 calls\)"):
        results = run(offline_experiment(), send=refuses)
    assert "every call of 'guided' failed (20 calls)" in results.warnings
    assert results.failures() == ["every call of 'bare' failed (20 calls)",
                                  "every call of 'guided' failed (20 calls)"]
