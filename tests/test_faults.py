"""A hostile provider: every example still ends with a result or an explicit error row."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from workbench import Experiment
from workbench.gateway.cache import ResponseCache

from .llm_server import Faults

ROWS = [{"id": f"e{i:03d}", "ticket": f"message number {i} about a refund", "label": "negative"}
        for i in range(60)]


def test_mixed_faults_and_a_dead_model_with_a_fallback(make_experiment, llm_server):
    llm_server.faults = Faults(rate_limit=0.20, retry_after="0", server_error=0.10,
                               timeout=0.05, hang_seconds=3, bad_json=0.02, reset=0.03)
    folder = make_experiment(rows=ROWS)
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    fake = spec["models"]["fake"]
    fake.update(num_retries=3, timeout=0.5)
    spec["models"] = {
        "flaky": fake,
        "dead": {**fake, "model": "openai/down-model",
                 "fallbacks": [{**fake, "model": "openai/test-model-2"}]},
    }
    spec["prompts"] = {"bare": spec["prompts"]["bare"]}
    spec["baseline"] = "flaky"
    spec["run"]["concurrency"] = 16
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    llm_server.faults.down_models = {"down-model"}

    results = Experiment.from_yaml(folder).run(progress=False)
    frame = results.frame
    assert len(frame) == 120
    assert not frame.duplicated(["variant", "example_id", "repeat"]).any()
    answered, failed = frame["error"].isna(), frame["error"].notna()
    assert (answered | failed).all()
    assert frame.loc[failed, "output"].isna().all()
    assert frame.loc[answered, "output"].notna().all()
    assert answered.mean() > 0.9          # retries recover nearly everything
    assert frame["retries"].sum() > 10    # ... and they are visible on the rows
    dead = frame[(frame["variant"] == "dead") & answered]
    assert dead["fallback"].all() and (dead["answered_by"] == "openai/test-model-2").all()
    # and in MLflow: the per-example table of the run carries the same columns
    from workbench.prompts.registry import client

    c = client()
    run = c.get_run(results.run_ids["dead"])
    table = c.load_table(run.info.experiment_id, "results.json", run_ids=[run.info.run_id])
    logged = table[table["error"].isna()]
    assert len(logged) == len(dead) and logged["fallback"].astype(bool).all()
    assert "retries" in table and "answered_by" in table


def test_kill_9_mid_run_then_the_same_command_resumes(make_experiment, llm_server, project):
    llm_server.latency = 0.05
    folder = make_experiment(rows=ROWS, run={"concurrency": 4})
    command = [sys.executable, "-m", "workbench.cli", "run", str(folder), "--no-track"]
    env = {**os.environ, "WORKBENCH_HOME": str(project)}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while llm_server.request_count < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 40 <= llm_server.request_count < 120, "the run was not interrupted mid-way"

    cache = ResponseCache(Path(project) / ".workbench" / "cache.sqlite")
    completed = len(cache)
    cache.close()
    llm_server.reset()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert llm_server.request_count == 120 - completed  # no completed call was sent again
    results = Experiment.from_yaml(folder).run(track=False, progress=False)
    assert len(results.frame) == 120 and results.frame["cached"].all()


def test_a_cache_locked_by_another_process_mid_run_loses_no_paid_answer(make_experiment,
                                                                        llm_server, project):
    llm_server.latency = 0.02
    folder = make_experiment(rows=ROWS, run={"concurrency": 4})
    path = Path(project) / ".workbench" / "cache.sqlite"
    cache = ResponseCache(path)
    cache._db.execute("PRAGMA busy_timeout=50")  # fail fast on the lock, as a long hold would
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    held = []

    def hold_the_lock_for_a_while():
        deadline = time.monotonic() + 30
        while llm_server.request_count < 20 and time.monotonic() < deadline:
            time.sleep(0.005)
        other.execute("BEGIN IMMEDIATE")
        held.append(llm_server.request_count)
        while llm_server.request_count < 80 and time.monotonic() < deadline:
            time.sleep(0.005)
        held.append(llm_server.request_count)
        other.execute("ROLLBACK")

    holder = threading.Thread(target=hold_the_lock_for_a_while)
    holder.start()
    results = Experiment.from_yaml(folder).run(track=False, progress=False, cache=cache)
    holder.join()
    cache.close()
    assert held[0] < 40 and held[1] >= 80, "the lock was not held mid-run"
    assert llm_server.request_count == 120
    assert len(results.frame) == 120 and results.frame["error"].isna().all()
    llm_server.reset()
    again = Experiment.from_yaml(folder).run(track=False, progress=False)
    assert llm_server.request_count == 0 and again.frame["cached"].all()
