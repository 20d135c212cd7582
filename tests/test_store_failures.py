"""When the MLflow store fails: before the calls, after them, or under concurrent first use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench import Experiment
from workbench.cli import main
from workbench.prompts.registry import client
from workbench.store import (
    ABANDONED_TAG,
    HOST_TAG,
    PID_START_TAG,
    PID_TAG,
    StoreUnavailable,
    check_store,
    process_tags,
)

ROOT = Path(__file__).resolve().parents[1]


def dead_port() -> int:
    """A loopback port nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_dead_tracking_server_stops_the_run_before_any_call(make_experiment, llm_server,
                                                               monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{dead_port()}")
    experiment = Experiment.from_yaml(make_experiment())
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="nothing was sent") as raised:
        experiment.run(progress=False)
    assert time.monotonic() - started < 10  # not MLflow's minutes of retries
    assert "refused" in str(raised.value) and "--no-track" in str(raised.value)
    assert llm_server.request_count == 0


def test_a_server_that_never_answers_times_out_with_a_clear_error(monkeypatch):
    with socket.socket() as listener:  # accepts connections into its backlog, never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(StoreUnavailable, match="did not answer in time"):
            check_store(uri, timeout=0.5)


def test_a_store_timeout_that_is_not_a_number_is_a_clear_error(monkeypatch):
    from workbench.errors import WorkbenchError

    monkeypatch.setenv("WORKBENCH_STORE_TIMEOUT", "5s")
    with pytest.raises(WorkbenchError, match="WORKBENCH_STORE_TIMEOUT='5s'"):
        check_store("http://127.0.0.1:1")


def test_the_cli_says_the_store_is_dead_without_a_traceback(make_experiment, llm_server,
                                                            monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{dead_port()}")
    assert main(["run", str(make_experiment())]) == 1
    err = capsys.readouterr().err
    assert "error: MLflow store http://127.0.0.1:" in err and "Traceback" not in err
    assert llm_server.request_count == 0


@pytest.fixture
def store_breaks_mid_run(project):
    """Once the first answer arrives, the SQLite store cannot be opened (a directory stands
    where the database was); ``repair()`` puts the database back."""
    database = project / "mlruns" / "mlflow.db"
    aside = project / "mlflow.db.aside"

    def break_store(progress) -> None:
        if progress.done == 1:
            database.rename(aside)
            database.mkdir()

    def repair() -> None:
        database.rmdir()
        aside.rename(database)

    break_store.repair = repair
    return break_store


def test_when_logging_fails_the_results_stay_and_the_next_run_logs_them_for_free(
        make_experiment, llm_server, store_breaks_mid_run):
    folder = make_experiment()
    experiment = Experiment.from_yaml(folder)
    experiment.progress.listeners.append(store_breaks_mid_run)
    results = experiment.run(progress=False)
    assert len(results.frame) == 40 and llm_server.request_count == 40
    assert results.run_ids == {}
    assert "not logged to MLflow" in results.log_error
    assert "running the same command again logs this run without sending" in results.log_error
    assert results.log_error in results.warnings

    store_breaks_mid_run.repair()
    llm_server.reset()
    again = Experiment.from_yaml(folder).run(progress=False)
    assert llm_server.request_count == 0
    assert again.log_error is None
    parent = client().get_run(again.run_ids["parent"])
    assert parent.info.status == "FINISHED" and parent.data.metrics


def test_the_cli_prints_the_summary_then_how_the_run_will_be_logged(
        make_experiment, llm_server, store_breaks_mid_run, monkeypatch, capsys):
    folder = make_experiment()
    real = Experiment.from_yaml
    monkeypatch.setattr(Experiment, "from_yaml", classmethod(
        lambda cls, path: _listening(real(path), store_breaks_mid_run)))
    assert main(["run", str(folder)]) == 1
    captured = capsys.readouterr()
    assert "exact_match" in captured.out and "parent run" not in captured.out
    last = captured.err.rstrip().splitlines()[-1]  # after whatever MLflow logged itself
    assert last.startswith("not logged to MLflow") and "running the same command again" in last


def _listening(experiment: Experiment, listener) -> Experiment:
    experiment.progress.listeners.append(listener)
    return experiment


def test_with_no_cache_the_message_says_to_run_with_the_cache(
        make_experiment, llm_server, store_breaks_mid_run):
    experiment = Experiment.from_yaml(make_experiment())
    experiment.progress.listeners.append(store_breaks_mid_run)
    results = experiment.run(progress=False, use_cache=False)
    assert "without --no-cache or --refresh" in results.log_error


def _killed_logger(uri: str, experiment_id: str) -> str:
    """A process that starts a run as the workbench does, then is killed (SIGKILL)."""
    code = textwrap.dedent(f"""
        import os, signal
        from mlflow import MlflowClient
        from workbench.store import process_tags
        run = MlflowClient({uri!r}).create_run({experiment_id!r}, tags=process_tags())
        print(run.info.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done.stdout.strip()


def test_a_run_left_running_by_a_killed_process_is_marked_killed_by_the_next_run(
        make_experiment, llm_server):
    folder = make_experiment()
    first = Experiment.from_yaml(folder).run(progress=False)
    c = client()
    experiment_id = c.get_run(first.run_ids["parent"]).info.experiment_id
    killed = _killed_logger(c.tracking_uri, experiment_id)
    assert c.get_run(killed).info.status == "RUNNING"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        others = {
            "live": {**process_tags(), PID_TAG: str(live.pid), PID_START_TAG: ""},
            "elsewhere": {**process_tags(), HOST_TAG: "another-host", PID_TAG: "1"},
            "not ours": {},
        }
        left = {name: c.create_run(experiment_id, tags=tags).info.run_id
                for name, tags in others.items()}
        Experiment.from_yaml(folder).run(progress=False, log_again=True)
        run = c.get_run(killed)
        assert run.info.status == "KILLED"
        assert "ended before it finished logging this run" in run.data.tags[ABANDONED_TAG]
        for name, run_id in left.items():
            assert c.get_run(run_id).info.status == "RUNNING", name
    finally:
        live.kill()
        live.wait(timeout=10)


def test_a_pid_reused_by_another_process_does_not_keep_a_run_alive(make_experiment, project):
    from workbench.store import mark_abandoned

    c = client()
    experiment_id = c.create_experiment("reused-pid")
    tags = {**process_tags(), PID_START_TAG: "1"}  # this pid, but started at another time
    if not process_tags()[PID_START_TAG]:
        pytest.skip("no /proc: a process's start time cannot be read here")
    run_id = c.create_run(experiment_id, tags=tags).info.run_id
    assert mark_abandoned(c, experiment_id) == [run_id]
    assert c.get_run(run_id).info.status == "KILLED"


def _spawn(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _finish(processes: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    outcomes = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        outcomes.append((process.returncode, out, err))
    return outcomes


def test_three_first_runs_at_once_on_a_fresh_store_all_succeed(make_experiment, project):
    (project / "mlruns" / "mlflow.db").unlink()  # no store yet: each run would create it
    folder = make_experiment()
    code = "import sys; from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
    outcomes = _finish([_spawn(code, "run", str(folder)) for _ in range(3)])
    for returncode, out, err in outcomes:
        assert returncode == 0, err[-2000:]
        parent_id = out.split("parent run", 1)[1].split()[0]
        assert client().get_run(parent_id).info.status == "FINISHED"


def test_two_first_registrations_of_a_prompt_at_once_both_succeed(project):
    code = """
        import sys, time
        from workbench.prompts.registry import client, register_version
        from workbench.prompts.templates import PromptTemplate
        c = client()
        c.search_experiments(max_results=1)
        start = float(sys.argv[1])
        while time.time() < start:
            time.sleep(0.001)
        for name in ("first", "second", "third", "fourth"):
            print(name, *register_version(name, PromptTemplate("Hi {{x}}"), mlflow_client=c))
    """
    start = str(time.time() + 12)  # both processes have imported MLflow by then
    outcomes = _finish([_spawn(code, start) for _ in range(2)])
    for returncode, _out, err in outcomes:
        assert returncode == 0, err[-2000:]
    versions = [dict(line.split(" ", 1) for line in out.splitlines()) for _, out, _ in outcomes]
    assert versions[0].keys() == {"first", "second", "third", "fourth"}
    for name in versions[0]:  # the same template: one version, whoever registered it
        assert versions[0][name].split()[0] == versions[1][name].split()[0] == "1"


def _two_priced_models(make_experiment, llm_server) -> Path:
    model = {"api_base": llm_server.base_url, "params": {"temperature": 0, "max_tokens": 8},
             "num_retries": 0, "input_cost_per_token": 0.001, "output_cost_per_token": 0.001}
    return make_experiment(
        prompts={"bare": {"template": "Sentiment of: {{ticket}}"}},
        models={"one": {"model": "openai/test-model", **model},
                "two": {"model": "openai/test-model-2", **model}},
        baseline="one", run={"concurrency": 1})


def test_a_max_cost_stop_logs_what_was_paid_for_marked_partial(make_experiment, llm_server,
                                                                capsys, monkeypatch):
    # the estimate is an upper bound, so it refuses most runs the spend would stop: it
    # counts nothing here, so that the stop itself is seen
    monkeypatch.setattr("workbench.preflight._call_cost", lambda variant, tokens: 0.0)
    folder = _two_priced_models(make_experiment, llm_server)
    assert main(["run", str(folder), "--max-cost", "0.02", "--promote", "staging"]) == 0
    out = capsys.readouterr().out
    assert "partial: stopped at max_cost $0.0200" in out and "no verdict" in out
    assert "not promoted: the run is partial" in out
    c = client()
    parent_id = out.split("parent run", 1)[1].split()[0]
    parent = c.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["partial"] == "true"
    table = c.load_table(parent.info.experiment_id, "results.json", run_ids=[parent_id])
    assert 0 < len(table) < 40 and len(table) == llm_server.request_count
    artifacts = {a.path for a in c.list_artifacts(parent_id)}
    assert "ab_report.json" not in artifacts  # no verdict from partial data


def test_a_cancelled_run_logs_its_rows_marked_partial(make_experiment, llm_server):
    experiment = Experiment.from_yaml(make_experiment())
    experiment.progress.listeners.append(lambda p: p.done == 10 and experiment.cancel())
    results = experiment.run(progress=False)
    assert results.partial.startswith("cancelled: ") and results.report is None
    parent = client().get_run(results.run_ids["parent"])
    assert parent.data.tags["partial"] == "true"
    assert parent.data.tags["workbench.partial_reason"] == results.partial
    for variant in ("bare", "guided"):
        assert client().get_run(results.run_ids[variant]).data.tags["partial"] == "true"


def test_processes_creating_the_response_cache_at_once_all_open_it(tmp_path):
    code = """
        import sys, time
        from pathlib import Path
        from workbench.gateway.cache import ResponseCache
        start = float(sys.argv[2])
        while time.time() < start:
            time.sleep(0.0005)
        for i in range(20):  # twenty new caches, each created by three processes at once
            ResponseCache(Path(sys.argv[1]) / f"cache{i}.sqlite").close()
    """
    start = str(time.time() + 3)
    outcomes = _finish([_spawn(code, str(tmp_path), start) for _ in range(3)])
    for returncode, _out, err in outcomes:
        assert returncode == 0, err[-2000:]
